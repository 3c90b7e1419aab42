/* gd_ring: see include/ganglion/device/ring.h.
 * Slot layout: u32 length (host order), u64 sequence number (host order), record bytes. */
#include "ganglion/device/ring.h"

#include <string.h>

static uint8_t* slot(const gd_ring* r, size_t i) {
  return r->mem + (i % r->capacity) * r->slot_size;
}

int gd_ring_init(gd_ring* r, void* mem, size_t mem_size, size_t record_max) {
  if (!r || !mem || record_max == 0 || record_max > UINT32_MAX) return GD_ERR_ARG;
  size_t slot_size = (GD_RING_SLOT_HEADER + record_max + 3u) & ~(size_t)3u;
  if (mem_size / slot_size < 1) return GD_ERR_ARG;
  memset(r, 0, sizeof *r);
  r->mem = (uint8_t*)mem;
  r->slot_size = slot_size;
  r->record_max = record_max;
  r->capacity = mem_size / slot_size;
  return GD_OK;
}

void gd_ring_set_persist(gd_ring* r, gd_ring_persist_fn fn, void* user) {
  r->persist = fn;
  r->persist_user = user;
}

static void read_slot(const gd_ring* r, size_t i, const void** data, size_t* len, uint64_t* seq) {
  const uint8_t* s = slot(r, i);
  uint32_t n;
  uint64_t q;
  memcpy(&n, s, 4);
  memcpy(&q, s + 4, 8);
  if (data) *data = s + GD_RING_SLOT_HEADER;
  if (len) *len = n;
  if (seq) *seq = q;
}

int gd_ring_push(gd_ring* r, const void* data, size_t len, uint64_t* seq_out) {
  if (!r || (!data && len) || len > r->record_max) return GD_ERR_ARG;
  if (r->count == r->capacity) {
    const void* old;
    size_t old_len;
    uint64_t old_seq;
    read_slot(r, r->head, &old, &old_len, &old_seq);
    r->head = (r->head + 1) % r->capacity;
    r->count--;
    r->dropped++;
    if (r->persist) r->persist(r->persist_user, GD_RING_DROPPED, old_seq, old, old_len);
  }
  uint8_t* s = slot(r, r->head + r->count);
  uint32_t n = (uint32_t)len;
  uint64_t seq = r->next_seq++;
  memcpy(s, &n, 4);
  memcpy(s + 4, &seq, 8);
  if (len) memcpy(s + GD_RING_SLOT_HEADER, data, len);
  r->count++;
  if (seq_out) *seq_out = seq;
  if (r->persist) r->persist(r->persist_user, GD_RING_PUSHED, seq, s + GD_RING_SLOT_HEADER, len);
  return GD_OK;
}

int gd_ring_peek(const gd_ring* r, const void** data, size_t* len, uint64_t* seq) {
  if (!r) return GD_ERR_ARG;
  if (r->count == 0) return GD_ERR_EMPTY;
  read_slot(r, r->head, data, len, seq);
  return GD_OK;
}

int gd_ring_pop(gd_ring* r) {
  if (!r) return GD_ERR_ARG;
  if (r->count == 0) return GD_ERR_EMPTY;
  const void* data;
  size_t len;
  uint64_t seq;
  read_slot(r, r->head, &data, &len, &seq);
  r->head = (r->head + 1) % r->capacity;
  r->count--;
  if (r->persist) r->persist(r->persist_user, GD_RING_POPPED, seq, data, len);
  return GD_OK;
}

size_t gd_ring_count(const gd_ring* r) { return r->count; }
size_t gd_ring_capacity(const gd_ring* r) { return r->capacity; }
bool gd_ring_empty(const gd_ring* r) { return r->count == 0; }
uint64_t gd_ring_dropped(const gd_ring* r) { return r->dropped; }
