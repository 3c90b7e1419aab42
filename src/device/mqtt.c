/* gd_mqtt: see include/ganglion/device/mqtt.h. Wire format references are to the MQTT 3.1.1
 * and 5.0 specifications; only what a device client needs is implemented. */
#include "ganglion/device/mqtt.h"

#include <string.h>

enum {
  PT_CONNECT = 1,
  PT_CONNACK = 2,
  PT_PUBLISH = 3,
  PT_PUBACK = 4,
  PT_PUBREC = 5,
  PT_PUBREL = 6,
  PT_SUBSCRIBE = 8,
  PT_SUBACK = 9,
  PT_PINGREQ = 12,
  PT_PINGRESP = 13,
  PT_DISCONNECT = 14
};

const char* gd_status_str(int status) {
  switch (status) {
    case GD_OK:
      return "ok";
    case GD_ERR_ARG:
      return "invalid argument";
    case GD_ERR_FULL:
      return "full";
    case GD_ERR_STATE:
      return "not allowed in this state";
    case GD_ERR_IO:
      return "i/o error";
    case GD_ERR_PROTOCOL:
      return "protocol error";
    case GD_ERR_FORMAT:
      return "bad format";
    case GD_ERR_EMPTY:
      return "empty";
    case GD_ERR_REFUSED:
      return "refused";
    case GD_ERR_TIMEOUT:
      return "timeout";
    default:
      return "unknown";
  }
}

const char* gd_mqtt_state_str(gd_mqtt_state state) {
  switch (state) {
    case GD_MQTT_IDLE:
      return "idle";
    case GD_MQTT_CONNECTING:
      return "connecting";
    case GD_MQTT_CONNECTED:
      return "connected";
    case GD_MQTT_BACKOFF:
      return "backoff";
  }
  return "unknown";
}

/* ---- encoding ------------------------------------------------------------------------ */

/* Bodies are written at tx + 5 so the fixed header (1-5 bytes) can be put in front. */
typedef struct writer {
  uint8_t* p;
  size_t cap;
  size_t len;
  bool overflow;
} writer;

static void put_u8(writer* w, uint8_t v) {
  if (w->len + 1 > w->cap) {
    w->overflow = true;
    return;
  }
  w->p[w->len++] = v;
}
static void put_u16(writer* w, uint16_t v) {
  put_u8(w, (uint8_t)(v >> 8));
  put_u8(w, (uint8_t)v);
}
static void put_u32(writer* w, uint32_t v) {
  put_u16(w, (uint16_t)(v >> 16));
  put_u16(w, (uint16_t)v);
}
static void put_bytes(writer* w, const void* data, size_t n) {
  if (n > w->cap - w->len || w->len > w->cap) {
    w->overflow = true;
    return;
  }
  if (n) memcpy(w->p + w->len, data, n);
  w->len += n;
}
/* A length-prefixed string or binary (spec 1.5.3 / 1.5.6). */
static void put_str(writer* w, const void* s, size_t n) {
  if (n > 0xFFFF) {
    w->overflow = true;
    return;
  }
  put_u16(w, (uint16_t)n);
  put_bytes(w, s, n);
}
static size_t varint_len(size_t v) { return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4; }
static void put_varint_at(uint8_t* p, size_t v) {
  do {
    uint8_t b = (uint8_t)(v % 128);
    v /= 128;
    *p++ = (uint8_t)(v ? b | 0x80 : b);
  } while (v);
}

/* Starts a packet body in `buf` (of size cap >= 5). */
static writer body_writer(uint8_t* buf, size_t cap) {
  writer w = {buf + 5, cap - 5, 0, false};
  return w;
}
/* Puts the fixed header in front of the body; returns the packet start and its length. */
static uint8_t* finish(uint8_t* buf, const writer* w, uint8_t first, size_t* len) {
  size_t n = varint_len(w->len);
  uint8_t* start = buf + 5 - 1 - n;
  start[0] = first;
  put_varint_at(start + 1, w->len);
  *len = 1 + n + w->len;
  return start;
}

/* ---- helpers ---------------------------------------------------------------------------- */

static uint64_t now_ms(const gd_mqtt* c) { return c->cfg.clock.now_ms(c->cfg.clock.ctx); }
static bool v5(const gd_mqtt* c) { return c->cfg.protocol == 5; }

static void set_state(gd_mqtt* c, gd_mqtt_state s, int status, int reason) {
  c->state = s;
  if (c->cfg.on_state) c->cfg.on_state(c->cfg.user, s, status, reason);
}

static uint32_t next_random(gd_mqtt* c) {
  /* xorshift32: enough for jitter. */
  uint32_t x = c->rng;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  c->rng = x;
  return x;
}

static void schedule_retry(gd_mqtt* c, uint64_t now) {
  uint64_t cap = c->cfg.backoff_initial_ms;
  for (uint32_t i = 0; i < c->failures && cap < c->cfg.backoff_max_ms; ++i) cap *= 2;
  if (cap > c->cfg.backoff_max_ms) cap = c->cfg.backoff_max_ms;
  uint64_t half = cap / 2;
  uint64_t delay = half + (cap - half ? next_random(c) % (cap - half + 1) : 0);
  if (c->failures < 32) c->failures++;
  c->next_attempt_ms = now + delay;
}

/* Closes the link and schedules the next attempt. */
static void lose(gd_mqtt* c, int status, int reason) {
  c->cfg.transport.close(c->cfg.transport.ctx);
  c->rx_len = 0;
  c->rx_skip = 0;
  c->ping_outstanding = false;
  schedule_retry(c, now_ms(c));
  set_state(c, GD_MQTT_BACKOFF, status, reason);
}

/* Writes a whole packet; a transport error loses the connection. */
static int write_packet(gd_mqtt* c, const uint8_t* data, size_t len) {
  int n = c->cfg.transport.send(c->cfg.transport.ctx, data, len);
  if (n < 0 || (size_t)n != len) {
    lose(c, GD_ERR_IO, 0);
    return GD_ERR_IO;
  }
  c->last_tx_ms = now_ms(c);
  return GD_OK;
}

static int send_simple(gd_mqtt* c, uint8_t first) {
  uint8_t p[2] = {first, 0};
  return write_packet(c, p, 2);
}

static int send_connect(gd_mqtt* c) {
  const gd_mqtt_config* cfg = &c->cfg;
  writer w = body_writer(c->tx, sizeof c->tx);
  put_str(&w, "MQTT", 4);
  put_u8(&w, cfg->protocol);
  uint8_t flags = cfg->clean_start ? 0x02 : 0;
  if (cfg->will_topic)
    flags |= (uint8_t)(0x04 | (cfg->will_qos << 3) | (cfg->will_retain ? 0x20 : 0));
  if (cfg->password) flags |= 0x40;
  if (cfg->username) flags |= 0x80;
  put_u8(&w, flags);
  put_u16(&w, cfg->keep_alive_s);
  if (v5(c)) {
    if (cfg->session_expiry_s) {
      put_u8(&w, 5);
      put_u8(&w, 0x11);
      put_u32(&w, cfg->session_expiry_s);
    } else {
      put_u8(&w, 0);
    }
  }
  put_str(&w, cfg->client_id, strlen(cfg->client_id));
  if (cfg->will_topic) {
    if (v5(c)) put_u8(&w, 0); /* no will properties */
    put_str(&w, cfg->will_topic, strlen(cfg->will_topic));
    put_str(&w, cfg->will_payload, cfg->will_len);
  }
  if (cfg->username) put_str(&w, cfg->username, strlen(cfg->username));
  if (cfg->password) put_str(&w, cfg->password, strlen(cfg->password));
  if (w.overflow) return GD_ERR_ARG;
  size_t len;
  uint8_t* p = finish(c->tx, &w, PT_CONNECT << 4, &len);
  return write_packet(c, p, len);
}

static int send_subscribe(gd_mqtt* c, size_t i) {
  writer w = body_writer(c->tx, sizeof c->tx);
  uint16_t id = (uint16_t)(0xF000u + i); /* a range PUBLISH ids never use */
  put_u16(&w, id);
  if (v5(c)) put_u8(&w, 0);
  put_str(&w, c->subs[i], strlen(c->subs[i]));
  put_u8(&w, c->sub_qos[i]);
  if (w.overflow) return GD_ERR_ARG;
  size_t len;
  uint8_t* p = finish(c->tx, &w, (PT_SUBSCRIBE << 4) | 0x02, &len);
  return write_packet(c, p, len);
}

static int send_puback(gd_mqtt* c, uint16_t id) {
  uint8_t p[4] = {PT_PUBACK << 4, 2, (uint8_t)(id >> 8), (uint8_t)id};
  return write_packet(c, p, 4);
}

/* Writes the in-flight entries that were not written on this connection, oldest first. */
static void send_pending(gd_mqtt* c, bool reconnected) {
  uint32_t after = 0;
  bool first = true;
  for (;;) {
    gd_mqtt_inflight* best = NULL;
    for (size_t i = 0; i < GD_MQTT_INFLIGHT; ++i) {
      gd_mqtt_inflight* e = &c->inflight[i];
      if (!e->packet_id || (!first && e->order <= after)) continue;
      if (!best || e->order < best->order) best = e;
    }
    if (!best) return;
    first = false;
    after = best->order;
    if (best->sent == 2) continue; /* already written on this connection */
    if (best->sent && reconnected) {
      best->packet[0] |= 0x08; /* DUP */
      c->stats.retransmitted++;
    }
    if (write_packet(c, best->packet, best->len) != GD_OK) return;
    best->sent = 2;
    c->stats.published++;
  }
}

/* ---- decoding --------------------------------------------------------------------------- */

static uint16_t get_u16(const uint8_t* p) { return (uint16_t)((p[0] << 8) | p[1]); }

/* Reads a variable byte integer at b[*pos]; false when malformed or truncated. */
static bool get_varint(const uint8_t* b, size_t n, size_t* pos, size_t* out) {
  size_t v = 0, mult = 1;
  for (int k = 0; k < 4; ++k) {
    if (*pos >= n) return false;
    uint8_t byte = b[(*pos)++];
    v += (byte & 0x7Fu) * mult;
    mult *= 128;
    if (!(byte & 0x80)) {
      *out = v;
      return true;
    }
  }
  return false;
}

/* CONNACK properties (MQTT 5, spec 3.2.2.3): each one is skipped by its type; only Server
 * Keep Alive (0x13) is used. */
static int read_connack_properties(gd_mqtt* c, const uint8_t* b, size_t n) {
  size_t pos = 0, plen;
  if (!get_varint(b, n, &pos, &plen) || plen > n - pos) return GD_ERR_PROTOCOL;
  size_t end = pos + plen;
  while (pos < end) {
    uint8_t id = b[pos++];
    size_t need;
    switch (id) {
      case 0x01:
      case 0x17:
      case 0x19:
      case 0x24:
      case 0x25:
      case 0x28:
      case 0x29:
      case 0x2A:
        need = 1;
        break;
      case 0x13:
      case 0x21:
      case 0x22:
      case 0x23:
        need = 2;
        break;
      case 0x02:
      case 0x11:
      case 0x18:
      case 0x27:
        need = 4;
        break;
      case 0x0B: {
        size_t v;
        if (!get_varint(b, end, &pos, &v)) return GD_ERR_PROTOCOL;
        continue;
      }
      case 0x03:
      case 0x08:
      case 0x09:
      case 0x12:
      case 0x15:
      case 0x16:
      case 0x1A:
      case 0x1C:
      case 0x1F:
        if (end - pos < 2) return GD_ERR_PROTOCOL;
        need = 2 + (size_t)get_u16(b + pos);
        break;
      case 0x26: {
        if (end - pos < 2) return GD_ERR_PROTOCOL;
        size_t k = 2 + (size_t)get_u16(b + pos);
        if (end - pos < k + 2) return GD_ERR_PROTOCOL;
        need = k + 2 + (size_t)get_u16(b + pos + k);
        break;
      }
      default:
        return GD_ERR_PROTOCOL;
    }
    if (end - pos < need) return GD_ERR_PROTOCOL;
    if (id == 0x13) c->server_keep_alive_s = get_u16(b + pos);
    pos += need;
  }
  return GD_OK;
}

static void on_connected(gd_mqtt* c) {
  c->failures = 0;
  c->stats.connects++;
  /* Entries written on an earlier connection need DUP; "2" means written on this one. */
  for (size_t i = 0; i < GD_MQTT_INFLIGHT; ++i)
    if (c->inflight[i].sent == 2) c->inflight[i].sent = 1;
  set_state(c, GD_MQTT_CONNECTED, GD_OK, 0);
  if (c->state != GD_MQTT_CONNECTED) return; /* the callback stopped us */
  for (size_t i = 0; i < c->sub_count; ++i)
    if (send_subscribe(c, i) != GD_OK) return;
  send_pending(c, true);
}

/* Handles one complete packet; returns GD_OK or an error that ends the connection. */
static int handle_packet(gd_mqtt* c, uint8_t first, const uint8_t* b, size_t n) {
  uint8_t type = first >> 4;
  switch (type) {
    case PT_CONNACK: {
      if (c->state != GD_MQTT_CONNECTING || n < 2) return GD_ERR_PROTOCOL;
      uint8_t reason = b[1];
      if (v5(c) && n > 2) {
        int st = read_connack_properties(c, b + 2, n - 2);
        if (st != GD_OK) return st;
      }
      if (reason != 0) {
        lose(c, GD_ERR_REFUSED, reason);
        return GD_OK;
      }
      on_connected(c);
      return GD_OK;
    }
    case PT_PUBACK: {
      if (c->state != GD_MQTT_CONNECTED || n < 2) return GD_ERR_PROTOCOL;
      uint16_t id = get_u16(b);
      int reason = (v5(c) && n > 2) ? b[2] : 0;
      for (size_t i = 0; i < GD_MQTT_INFLIGHT; ++i) {
        if (c->inflight[i].packet_id == id && c->inflight[i].sent) {
          c->inflight[i].packet_id = 0;
          c->stats.acked++;
          if (c->cfg.on_published) c->cfg.on_published(c->cfg.user, id, reason);
          break;
        }
      }
      return GD_OK; /* an unknown id (e.g. a duplicate PUBACK) is ignored */
    }
    case PT_PUBLISH: {
      if (c->state != GD_MQTT_CONNECTED || n < 2) return GD_ERR_PROTOCOL;
      int qos = (first >> 1) & 3;
      if (qos == 3) return GD_ERR_PROTOCOL;
      size_t tlen = get_u16(b), pos = 2 + tlen;
      if (pos > n) return GD_ERR_PROTOCOL;
      uint16_t id = 0;
      if (qos) {
        if (n - pos < 2) return GD_ERR_PROTOCOL;
        id = get_u16(b + pos);
        pos += 2;
        if (id == 0) return GD_ERR_PROTOCOL;
      }
      if (v5(c)) {
        size_t plen;
        if (!get_varint(b, n, &pos, &plen) || plen > n - pos) return GD_ERR_PROTOCOL;
        pos += plen;
      }
      if (qos == 2) return GD_ERR_PROTOCOL; /* never granted: we subscribe at most at QoS 1 */
      c->stats.received++;
      if (c->cfg.on_message)
        c->cfg.on_message(c->cfg.user, (const char*)b + 2, tlen, b + pos, n - pos, qos, first & 1);
      if (qos == 1 && c->state == GD_MQTT_CONNECTED) send_puback(c, id);
      return GD_OK;
    }
    case PT_SUBACK:
      if (c->state != GD_MQTT_CONNECTED || n < 3) return GD_ERR_PROTOCOL;
      return GD_OK;
    case PT_PINGRESP:
      c->ping_outstanding = false;
      return GD_OK;
    case PT_DISCONNECT:
      lose(c, GD_ERR_IO, (v5(c) && n > 0) ? b[0] : 0);
      return GD_OK;
    case PT_PUBREC:
    case PT_PUBREL:
    default:
      return GD_ERR_PROTOCOL;
  }
}

/* Consumes complete packets from the receive buffer. */
static void process_rx(gd_mqtt* c) {
  size_t pos = 0;
  while (c->state == GD_MQTT_CONNECTING || c->state == GD_MQTT_CONNECTED) {
    if (c->rx_skip) { /* the tail of an oversized packet */
      size_t k = c->rx_len - pos < c->rx_skip ? c->rx_len - pos : c->rx_skip;
      pos += k;
      c->rx_skip -= k;
      if (c->rx_skip) break;
      continue;
    }
    size_t avail = c->rx_len - pos;
    if (avail < 2) break;
    const uint8_t* p = c->rx + pos;
    size_t len = 0, mult = 1, hdr = 1;
    bool complete = false;
    for (int k = 0; k < 4; ++k) {
      if (hdr >= avail) break;
      uint8_t byte = p[hdr++];
      len += (byte & 0x7Fu) * mult;
      mult *= 128;
      if (!(byte & 0x80)) {
        complete = true;
        break;
      }
      if (k == 3) {
        lose(c, GD_ERR_PROTOCOL, 0);
        return;
      }
    }
    if (!complete) break;
    if (hdr + len > sizeof c->rx) { /* too large for us: skip it */
      c->stats.rx_dropped++;
      c->rx_skip = hdr + len;
      continue;
    }
    if (avail < hdr + len) break;
    int st = handle_packet(c, p[0], p + hdr, len);
    if (st != GD_OK) {
      lose(c, st, 0);
      return;
    }
    pos += hdr + len;
  }
  if (c->state != GD_MQTT_CONNECTING && c->state != GD_MQTT_CONNECTED) return;
  if (pos) {
    memmove(c->rx, c->rx + pos, c->rx_len - pos);
    c->rx_len -= pos;
  }
}

/* ---- the state machine -------------------------------------------------------------------- */

static uint32_t keep_alive_ms(const gd_mqtt* c) {
  uint32_t s = c->server_keep_alive_s ? c->server_keep_alive_s : c->cfg.keep_alive_s;
  return s * 1000u;
}

/* Deadlines: CONNACK, keep-alive, PINGRESP. Returns ms until the next one (capped). */
static uint64_t service_timers(gd_mqtt* c, uint64_t now) {
  uint64_t next = UINT64_MAX;
  if (c->state == GD_MQTT_CONNECTING) {
    if (now >= c->connack_deadline_ms) {
      lose(c, GD_ERR_TIMEOUT, 0);
      return 0;
    }
    next = c->connack_deadline_ms - now;
  } else if (c->state == GD_MQTT_CONNECTED && keep_alive_ms(c)) {
    uint64_t ka = keep_alive_ms(c);
    if (c->ping_outstanding) {
      if (now - c->ping_sent_ms >= ka) {
        lose(c, GD_ERR_TIMEOUT, 0);
        return 0;
      }
      next = c->ping_sent_ms + ka - now;
    } else if (now - c->last_tx_ms >= ka) {
      if (send_simple(c, PT_PINGREQ << 4) != GD_OK) return 0;
      c->ping_outstanding = true;
      c->ping_sent_ms = now;
      c->stats.pings++;
      next = ka;
    } else {
      next = c->last_tx_ms + ka - now;
    }
  }
  return next;
}

static void attempt(gd_mqtt* c) {
  c->stats.attempts++;
  c->server_keep_alive_s = 0;
  if (c->cfg.transport.connect(c->cfg.transport.ctx, c->cfg.host, c->cfg.port) < 0) {
    c->cfg.transport.close(c->cfg.transport.ctx);
    schedule_retry(c, now_ms(c));
    set_state(c, GD_MQTT_BACKOFF, GD_ERR_IO, 0);
    return;
  }
  c->rx_len = 0;
  c->rx_skip = 0;
  c->ping_outstanding = false;
  c->state = GD_MQTT_CONNECTING;
  c->connack_deadline_ms = now_ms(c) + c->cfg.connack_timeout_ms;
  if (c->cfg.on_state) c->cfg.on_state(c->cfg.user, GD_MQTT_CONNECTING, GD_OK, 0);
  if (c->state != GD_MQTT_CONNECTING) return;
  if (send_connect(c) == GD_ERR_ARG) lose(c, GD_ERR_ARG, 0);
}

int gd_mqtt_init(gd_mqtt* c, const gd_mqtt_config* cfg) {
  if (!c || !cfg || !cfg->host || !cfg->client_id || !cfg->transport.connect ||
      !cfg->transport.send || !cfg->transport.recv || !cfg->transport.close || !cfg->clock.now_ms ||
      cfg->will_qos > 1)
    return GD_ERR_ARG;
  memset(c, 0, sizeof *c);
  c->cfg = *cfg;
  if (c->cfg.protocol == 0) c->cfg.protocol = 4;
  if (c->cfg.protocol != 4 && c->cfg.protocol != 5) return GD_ERR_ARG;
  if (!c->cfg.connack_timeout_ms) c->cfg.connack_timeout_ms = 10000;
  if (!c->cfg.backoff_initial_ms) c->cfg.backoff_initial_ms = 500;
  if (!c->cfg.backoff_max_ms) c->cfg.backoff_max_ms = 30000;
  if (c->cfg.backoff_max_ms < c->cfg.backoff_initial_ms)
    c->cfg.backoff_max_ms = c->cfg.backoff_initial_ms;
  c->rng = c->cfg.seed ? c->cfg.seed : 0x9E3779B9u;
  c->next_packet_id = 1;
  c->state = GD_MQTT_IDLE;
  return GD_OK;
}

int gd_mqtt_start(gd_mqtt* c) {
  if (!c) return GD_ERR_ARG;
  if (c->started) return GD_OK;
  c->started = true;
  c->failures = 0;
  c->next_attempt_ms = now_ms(c);
  c->state = GD_MQTT_BACKOFF; /* due at once */
  return GD_OK;
}

void gd_mqtt_stop(gd_mqtt* c) {
  if (!c || !c->started) return;
  if (c->state == GD_MQTT_CONNECTED) {
    uint8_t p[2] = {PT_DISCONNECT << 4, 0};
    (void)c->cfg.transport.send(c->cfg.transport.ctx, p, 2);
  }
  c->cfg.transport.close(c->cfg.transport.ctx);
  c->started = false;
  for (size_t i = 0; i < GD_MQTT_INFLIGHT; ++i)
    if (c->inflight[i].sent == 2) c->inflight[i].sent = 1;
  set_state(c, GD_MQTT_IDLE, GD_OK, 0);
}

int gd_mqtt_poll(gd_mqtt* c, uint32_t timeout_ms) {
  if (!c) return GD_ERR_ARG;
  if (!c->started) return GD_ERR_STATE;
  uint64_t now = now_ms(c);
  if (c->state == GD_MQTT_BACKOFF) {
    if (now < c->next_attempt_ms) {
      uint64_t wait = c->next_attempt_ms - now;
      if (wait > timeout_ms) wait = timeout_ms;
      if (wait && c->cfg.clock.sleep_ms) c->cfg.clock.sleep_ms(c->cfg.clock.ctx, (uint32_t)wait);
      return GD_OK;
    }
    attempt(c);
    now = now_ms(c);
  }
  if (c->state != GD_MQTT_CONNECTING && c->state != GD_MQTT_CONNECTED) return GD_OK;
  uint64_t wait = service_timers(c, now);
  if (c->state != GD_MQTT_CONNECTING && c->state != GD_MQTT_CONNECTED) return GD_OK;
  if (wait > timeout_ms) wait = timeout_ms;
  size_t room = sizeof c->rx - c->rx_len;
  int n = c->cfg.transport.recv(c->cfg.transport.ctx, c->rx + c->rx_len, room, (uint32_t)wait);
  if (n < 0) {
    lose(c, GD_ERR_IO, 0);
    return GD_OK;
  }
  if (n > 0) {
    c->rx_len += (size_t)n;
    process_rx(c);
  }
  if (c->state == GD_MQTT_CONNECTING || c->state == GD_MQTT_CONNECTED) service_timers(c, now_ms(c));
  return GD_OK;
}

static uint16_t take_packet_id(gd_mqtt* c) {
  for (;;) {
    uint16_t id = c->next_packet_id++;
    if (c->next_packet_id == 0 || c->next_packet_id >= 0xF000) c->next_packet_id = 1;
    bool used = false;
    for (size_t i = 0; i < GD_MQTT_INFLIGHT; ++i) used |= c->inflight[i].packet_id == id;
    if (!used) return id;
  }
}

int gd_mqtt_publish(gd_mqtt* c, const char* topic, const void* payload, size_t len, int qos,
                    bool retain, uint16_t* packet_id) {
  if (!c || !topic || (!payload && len) || qos < 0 || qos > 1) return GD_ERR_ARG;
  size_t tlen = strlen(topic);
  if (tlen == 0 || 2 + tlen + 2 + 1 + len + 5 > GD_MQTT_MAX_PACKET) return GD_ERR_ARG;
  if (qos == 0) {
    if (c->state != GD_MQTT_CONNECTED) return GD_ERR_STATE;
    writer w = body_writer(c->tx, sizeof c->tx);
    put_str(&w, topic, tlen);
    if (v5(c)) put_u8(&w, 0);
    put_bytes(&w, payload, len);
    if (w.overflow) return GD_ERR_ARG;
    size_t n;
    uint8_t* p = finish(c->tx, &w, (uint8_t)((PT_PUBLISH << 4) | (retain ? 1 : 0)), &n);
    int st = write_packet(c, p, n);
    if (st == GD_OK) c->stats.published++;
    return st;
  }
  gd_mqtt_inflight* e = NULL;
  for (size_t i = 0; i < GD_MQTT_INFLIGHT && !e; ++i)
    if (!c->inflight[i].packet_id) e = &c->inflight[i];
  if (!e) return GD_ERR_FULL;
  uint8_t buf[GD_MQTT_MAX_PACKET + 8];
  writer w = body_writer(buf, sizeof buf);
  uint16_t id = take_packet_id(c);
  put_str(&w, topic, tlen);
  put_u16(&w, id);
  if (v5(c)) put_u8(&w, 0);
  put_bytes(&w, payload, len);
  size_t n;
  uint8_t* p = finish(buf, &w, (uint8_t)((PT_PUBLISH << 4) | 0x02 | (retain ? 1 : 0)), &n);
  if (w.overflow || n > GD_MQTT_MAX_PACKET) return GD_ERR_ARG;
  memcpy(e->packet, p, n);
  e->len = (uint16_t)n;
  e->packet_id = id;
  e->sent = 0;
  e->order = ++c->next_order;
  if (packet_id) *packet_id = id;
  if (c->state == GD_MQTT_CONNECTED) send_pending(c, false);
  return GD_OK;
}

int gd_mqtt_subscribe(gd_mqtt* c, const char* filter, int qos) {
  if (!c || !filter || !*filter || qos < 0) return GD_ERR_ARG;
  if (c->sub_count == GD_MQTT_MAX_SUBS) return GD_ERR_FULL;
  size_t i = c->sub_count++;
  c->subs[i] = filter;
  c->sub_qos[i] = (uint8_t)(qos > 1 ? 1 : qos);
  if (c->state == GD_MQTT_CONNECTED) send_subscribe(c, i);
  return GD_OK;
}

gd_mqtt_state gd_mqtt_get_state(const gd_mqtt* c) { return c->state; }

size_t gd_mqtt_inflight_count(const gd_mqtt* c) {
  size_t n = 0;
  for (size_t i = 0; i < GD_MQTT_INFLIGHT; ++i) n += c->inflight[i].packet_id != 0;
  return n;
}

const gd_mqtt_stats* gd_mqtt_get_stats(const gd_mqtt* c) { return &c->stats; }

uint64_t gd_mqtt_backoff_remaining(const gd_mqtt* c) {
  if (c->state != GD_MQTT_BACKOFF) return 0;
  uint64_t now = c->cfg.clock.now_ms(c->cfg.clock.ctx);
  return now >= c->next_attempt_ms ? 0 : c->next_attempt_ms - now;
}
