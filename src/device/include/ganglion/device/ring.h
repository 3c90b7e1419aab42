/* gd_ring: a fixed-capacity FIFO of records in caller-provided memory, for readings taken
 * while the edge node is unreachable. Readings are pushed when the link is down (or always,
 * if the device wants a single path) and popped oldest first once they were handed to the
 * MQTT client, so they are flushed in the order they were taken.
 *
 * Memory: gd_ring_init() carves `mem` into equal slots of (GD_RING_SLOT_HEADER + record_max)
 * bytes, rounded up to 4; capacity = mem_size / slot size. Nothing is allocated.
 * Overflow: pushing into a full ring drops the OLDEST record (a device cares most about the
 * newest readings) and counts it in dropped(); the push still succeeds.
 * Persistence (optional): the hook sees every push, pop and drop with the record's ring
 * sequence number, so a device can mirror the ring to flash. After a reboot, replay the
 * stored records with gd_ring_push() before setting the hook again.
 *
 * Thread: not thread-safe; one owner. */
#ifndef GANGLION_DEVICE_RING_H
#define GANGLION_DEVICE_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ganglion/device/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Per-slot bookkeeping: a 4-byte length and an 8-byte sequence number. */
#define GD_RING_SLOT_HEADER 12u

typedef enum gd_ring_op { GD_RING_PUSHED, GD_RING_POPPED, GD_RING_DROPPED } gd_ring_op;

/* Called after the change; `data`/`len` are the record concerned (valid during the call). */
typedef void (*gd_ring_persist_fn)(void* user, gd_ring_op op, uint64_t seq, const void* data,
                                   size_t len);

typedef struct gd_ring {
  /* Private: read through the functions below. */
  uint8_t* mem;
  size_t slot_size;
  size_t record_max;
  size_t capacity;
  size_t head; /* slot of the oldest record */
  size_t count;
  uint64_t next_seq; /* sequence number of the next push; starts at 0 */
  uint64_t dropped;
  gd_ring_persist_fn persist;
  void* persist_user;
} gd_ring;

/* GD_ERR_ARG when mem is NULL, record_max is 0, or fewer than 1 slot fits. */
int gd_ring_init(gd_ring* ring, void* mem, size_t mem_size, size_t record_max);
void gd_ring_set_persist(gd_ring* ring, gd_ring_persist_fn fn, void* user);

/* Copies the record in. GD_ERR_ARG when len > record_max. A full ring drops its oldest
 * record first (dropped() grows by one). `seq_out` (optional) receives the record's
 * sequence number. */
int gd_ring_push(gd_ring* ring, const void* data, size_t len, uint64_t* seq_out);
/* The oldest record without removing it; pointers valid until the next push or pop.
 * GD_ERR_EMPTY when empty. `seq` may be NULL. */
int gd_ring_peek(const gd_ring* ring, const void** data, size_t* len, uint64_t* seq);
/* Removes the oldest record. GD_ERR_EMPTY when empty. */
int gd_ring_pop(gd_ring* ring);

size_t gd_ring_count(const gd_ring* ring);
size_t gd_ring_capacity(const gd_ring* ring);
bool gd_ring_empty(const gd_ring* ring);
/* Records dropped by overflow since init. */
uint64_t gd_ring_dropped(const gd_ring* ring);

#ifdef __cplusplus
}
#endif

#endif
