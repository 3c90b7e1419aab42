/* gd_mqtt: a small MQTT 3.1.1 / 5.0 client for devices.
 *
 * What it does: CONNECT (client id, username/password, will, keep-alive, clean start, MQTT 5
 * session expiry), PUBLISH QoS 0 and 1, SUBSCRIBE (remembered and re-sent after every
 * CONNACK), incoming PUBLISH QoS 0/1 (QoS 2 is refused by subscribing at most at QoS 1),
 * PINGREQ keep-alive with a PINGRESP deadline, and reconnection with exponential backoff.
 * QoS 1 publishes sit in a small in-flight table (GD_MQTT_INFLIGHT packets, each up to
 * GD_MQTT_MAX_PACKET bytes) until their PUBACK; they are accepted while disconnected and
 * (re)sent, in the order they were published, after the next CONNACK (DUP set when they
 * had been sent before). That is the device's at-least-once guarantee.
 *
 * How it runs: nothing happens in the background. The caller drives the client with
 * gd_mqtt_poll(client, timeout_ms) from its main loop; poll connects when a (re)connect is
 * due, reads and handles what arrived (waiting at most timeout_ms), sends PINGREQ when the
 * link was idle for keep_alive seconds, and runs the callbacks. I/O goes through a
 * gd_transport (function pointers; gd_posix_transport for TCP and optional TLS, an
 * in-memory one in the tests) and time through a gd_clock, so the state machine is tested
 * without sockets or sleeping.
 *
 * Backoff: after a failed attempt or a lost connection the next attempt waits a random time
 * in [cap/2, cap], where cap = min(backoff_max_ms, backoff_initial_ms * 2^failures) ("equal
 * jitter": a fleet that lost the broker together does not return together, and no attempt
 * follows the previous one immediately). A CONNACK with reason 0 resets it.
 *
 * Memory: gd_mqtt is a plain struct (about 8 KiB with the defaults) with every buffer
 * inside; no allocation. Incoming packets larger than GD_MQTT_RX_CAP are skipped (counted
 * in stats.rx_dropped). Strings in the config are not copied: keep them alive.
 *
 * Thread: not thread-safe; every call from the thread that polls. Callbacks run inside
 * gd_mqtt_poll() (and inside gd_mqtt_stop()); they may call gd_mqtt_publish/subscribe. */
#ifndef GANGLION_DEVICE_MQTT_H
#define GANGLION_DEVICE_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ganglion/device/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GD_MQTT_INFLIGHT 8     /* QoS 1 publishes awaiting PUBACK */
#define GD_MQTT_MAX_PACKET 768 /* largest PUBLISH/CONNECT the client builds */
#define GD_MQTT_RX_CAP 1024    /* largest packet the client reads */
#define GD_MQTT_MAX_SUBS 8     /* remembered subscriptions */

/* The byte stream to the broker. Every function gets `ctx`.
 * connect: open a connection to host:port (may block up to its own timeout); 0 or < 0.
 * send: write all `len` bytes (may block briefly) and return len, or < 0 on error.
 * recv: wait up to timeout_ms for data; return bytes read (> 0), 0 when nothing arrived in
 *       time, < 0 when the connection failed or the peer closed it.
 * close: close the connection (idempotent). */
typedef struct gd_transport {
  int (*connect)(void* ctx, const char* host, uint16_t port);
  int (*send)(void* ctx, const uint8_t* data, size_t len);
  int (*recv)(void* ctx, uint8_t* buf, size_t cap, uint32_t timeout_ms);
  void (*close)(void* ctx);
  void* ctx;
} gd_transport;

typedef enum gd_mqtt_state {
  GD_MQTT_IDLE = 0,       /* not started, or stopped */
  GD_MQTT_CONNECTING = 1, /* transport open, waiting for CONNACK */
  GD_MQTT_CONNECTED = 2,  /* CONNACK accepted */
  GD_MQTT_BACKOFF = 3     /* waiting before the next attempt */
} gd_mqtt_state;
const char* gd_mqtt_state_str(gd_mqtt_state state);

/* A message that arrived (pointers valid during the callback only). */
typedef void (*gd_mqtt_message_fn)(void* user, const char* topic, size_t topic_len,
                                   const uint8_t* payload, size_t payload_len, int qos, int retain);
/* A QoS 1 publish was acknowledged; `reason` is the MQTT 5 PUBACK reason (0 success, >= 0x80
 * refused; always 0 in 3.1.1). */
typedef void (*gd_mqtt_published_fn)(void* user, uint16_t packet_id, int reason);
/* The state changed; `status` says why (GD_OK on connect; GD_ERR_IO, GD_ERR_TIMEOUT,
 * GD_ERR_PROTOCOL, GD_ERR_REFUSED when the link went down; `reason` is the CONNACK or
 * DISCONNECT reason code when there was one, else 0). */
typedef void (*gd_mqtt_state_fn)(void* user, gd_mqtt_state state, int status, int reason);

typedef struct gd_mqtt_config {
  const char* host; /* passed to transport.connect */
  uint16_t port;
  const char* client_id; /* required, <= 64 bytes recommended */
  const char* username;  /* optional */
  const char* password;  /* optional (text) */
  uint8_t protocol;      /* 4 = MQTT 3.1.1, 5 = MQTT 5.0; 0 means 4 */
  uint16_t keep_alive_s; /* 0 disables PINGREQ */
  bool clean_start;
  uint32_t session_expiry_s; /* MQTT 5 only; 0 omits the property */
  const char* will_topic;    /* optional */
  const void* will_payload;
  size_t will_len;
  uint8_t will_qos; /* 0 or 1 */
  bool will_retain;
  uint32_t connack_timeout_ms; /* 0 means 10000 */
  uint32_t backoff_initial_ms; /* 0 means 500 */
  uint32_t backoff_max_ms;     /* 0 means 30000 */
  uint32_t seed;               /* for the backoff jitter; 0 means a fixed default */
  gd_transport transport;
  gd_clock clock;
  gd_mqtt_message_fn on_message;     /* optional */
  gd_mqtt_published_fn on_published; /* optional */
  gd_mqtt_state_fn on_state;         /* optional */
  void* user;
} gd_mqtt_config;

typedef struct gd_mqtt_stats {
  uint64_t connects;      /* CONNACKs accepted */
  uint64_t attempts;      /* transport connects tried */
  uint64_t published;     /* PUBLISH packets written (retransmissions included) */
  uint64_t acked;         /* PUBACKs matched */
  uint64_t received;      /* PUBLISH packets received */
  uint64_t retransmitted; /* PUBLISH packets re-sent with DUP after a reconnect */
  uint64_t pings;
  uint64_t rx_dropped; /* incoming packets too large for the buffer */
} gd_mqtt_stats;

typedef struct gd_mqtt_inflight {
  uint16_t packet_id; /* 0: free slot */
  uint8_t sent;       /* written on the current or an earlier connection */
  uint16_t len;
  uint32_t order; /* publish order, for in-order retransmission */
  uint8_t packet[GD_MQTT_MAX_PACKET];
} gd_mqtt_inflight;

typedef struct gd_mqtt {
  /* Private: use the functions below. */
  gd_mqtt_config cfg;
  gd_mqtt_state state;
  bool started;
  uint64_t next_attempt_ms;
  uint64_t connack_deadline_ms;
  uint64_t last_tx_ms;
  uint64_t ping_sent_ms;
  bool ping_outstanding;
  uint32_t failures;
  uint32_t rng;
  uint16_t next_packet_id;
  uint32_t next_order;
  uint16_t server_keep_alive_s;
  size_t rx_len;
  size_t rx_skip;
  const char* subs[GD_MQTT_MAX_SUBS];
  uint8_t sub_qos[GD_MQTT_MAX_SUBS];
  size_t sub_count;
  gd_mqtt_inflight inflight[GD_MQTT_INFLIGHT];
  gd_mqtt_stats stats;
  uint8_t rx[GD_MQTT_RX_CAP];
  uint8_t tx[GD_MQTT_MAX_PACKET + 8];
} gd_mqtt;

/* Checks and copies the config (not the strings). GD_ERR_ARG when host, client_id,
 * transport functions or clock.now_ms are missing, protocol is not 4/5, will_qos > 1. */
int gd_mqtt_init(gd_mqtt* client, const gd_mqtt_config* config);
/* Allows connecting: the first attempt happens in the next poll. */
int gd_mqtt_start(gd_mqtt* client);
/* Sends DISCONNECT when connected, closes the transport, stops reconnecting. The in-flight
 * table is kept (a later gd_mqtt_start() sends it again). */
void gd_mqtt_stop(gd_mqtt* client);

/* Does the due work and waits at most timeout_ms for input (see the header comment).
 * Returns GD_OK, or GD_ERR_STATE when not started. Connection failures are not errors here:
 * they are reported through on_state and handled by reconnecting. */
int gd_mqtt_poll(gd_mqtt* client, uint32_t timeout_ms);

/* QoS 0: written at once; GD_ERR_STATE when not connected.
 * QoS 1: stored in the in-flight table and written now if connected, else after the next
 * CONNACK; GD_ERR_FULL when the table is full (poll until PUBACKs free a slot).
 * GD_ERR_ARG when the packet would exceed GD_MQTT_MAX_PACKET or qos > 1.
 * `packet_id` (optional) receives the id of a QoS 1 publish. A transport error while
 * writing is reported as a lost connection (on_state), not here: a QoS 1 publish is kept. */
int gd_mqtt_publish(gd_mqtt* client, const char* topic, const void* payload, size_t len, int qos,
                    bool retain, uint16_t* packet_id);
/* Remembers the filter (not copied) and sends SUBSCRIBE now when connected, and after every
 * later CONNACK. GD_ERR_FULL beyond GD_MQTT_MAX_SUBS; qos is capped at 1. */
int gd_mqtt_subscribe(gd_mqtt* client, const char* filter, int qos);

gd_mqtt_state gd_mqtt_get_state(const gd_mqtt* client);
static inline bool gd_mqtt_connected(const gd_mqtt* c) { return c->state == GD_MQTT_CONNECTED; }
/* QoS 1 publishes not yet acknowledged. */
size_t gd_mqtt_inflight_count(const gd_mqtt* client);
/* True when a QoS 1 publish would be accepted now. */
static inline bool gd_mqtt_can_publish(const gd_mqtt* c) {
  return gd_mqtt_inflight_count(c) < GD_MQTT_INFLIGHT;
}
const gd_mqtt_stats* gd_mqtt_get_stats(const gd_mqtt* client);
/* Milliseconds until the next connect attempt (0 when due or not backing off). */
uint64_t gd_mqtt_backoff_remaining(const gd_mqtt* client);

/* ---- POSIX transport: TCP, and TLS when built with GANGLION_DEVICE_TLS (OpenSSL). ---- */

typedef struct gd_posix_transport {
  int fd;
  uint32_t connect_timeout_ms; /* 0 means 5000 */
  uint32_t send_timeout_ms;    /* 0 means 5000 */
  /* TLS (ignored unless GD_WITH_OPENSSL): set use_tls and, optionally, a CA file (PEM;
   * NULL: the system's CAs) and server_name (SNI and host name check; NULL: the host). */
  bool use_tls;
  bool tls_verify; /* default true after init */
  const char* ca_file;
  const char* server_name;
  void* ssl_ctx; /* private */
  void* ssl;     /* private */
} gd_posix_transport;

void gd_posix_transport_init(gd_posix_transport* t);
/* A gd_transport that uses `t`. */
gd_transport gd_posix_transport_get(gd_posix_transport* t);
/* 1 when the library was built with OpenSSL (GANGLION_DEVICE_TLS). */
int gd_tls_available(void);

#ifdef __cplusplus
}
#endif

#endif
