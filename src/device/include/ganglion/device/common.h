/* Ganglion device SDK: status codes and platform hooks shared by every module.
 *
 * The SDK is C11, uses only libc (plus POSIX sockets in posix_transport.c and, optionally,
 * OpenSSL), and allocates nothing: every object is a plain struct the caller places in static
 * or stack memory, and buffers are either inside those structs (sizes below) or provided by
 * the caller. No function blocks longer than the timeout it is given.
 *
 * Thread model: none. Each object belongs to one thread (or one main loop); callbacks run
 * inside the call that caused them (gd_mqtt_poll, gd_reflex_update, ...). */
#ifndef GANGLION_DEVICE_COMMON_H
#define GANGLION_DEVICE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every fallible call returns GD_OK (0) or a negative gd_status. */
typedef enum gd_status {
  GD_OK = 0,
  GD_ERR_ARG = -1,      /* bad argument (NULL, too long, out of range) */
  GD_ERR_FULL = -2,     /* no room: in-flight table, ring buffer, subscription table */
  GD_ERR_STATE = -3,    /* not allowed now (e.g. QoS 0 publish while disconnected) */
  GD_ERR_IO = -4,       /* the transport failed */
  GD_ERR_PROTOCOL = -5, /* the peer broke the MQTT protocol */
  GD_ERR_FORMAT = -6,   /* a model file is malformed */
  GD_ERR_EMPTY = -7,    /* nothing there (ring buffer) */
  GD_ERR_REFUSED = -8,  /* the broker refused the connection (CONNACK reason != 0) */
  GD_ERR_TIMEOUT = -9   /* CONNACK or PINGRESP did not arrive in time */
} gd_status;

/* A short English name for a status ("full", "io", ...). */
const char* gd_status_str(int status);

/* Time comes from the caller so that everything is testable without sleeping.
 * now_ms: a monotonic millisecond clock (any origin). sleep_ms: optional (NULL: never
 * sleep); called by gd_mqtt_poll when it has nothing to wait on (backing off) so that a
 * poll loop does not spin. A test clock advances its time in sleep_ms. */
typedef struct gd_clock {
  uint64_t (*now_ms)(void* ctx);
  void (*sleep_ms)(void* ctx, uint32_t ms);
  void* ctx;
} gd_clock;

/* A POSIX clock (CLOCK_MONOTONIC, nanosleep); in posix_transport.c. */
gd_clock gd_posix_clock(void);

#ifdef __cplusplus
}
#endif

#endif
