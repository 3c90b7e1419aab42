/* gd_reflex: threshold rules with hysteresis that act at once on the device, without the
 * network (the "reflex arc": a relay opens before the edge node even hears about it).
 *
 * A rule of direction GD_REFLEX_ABOVE triggers when `debounce` consecutive samples are
 * >= high and clears when `debounce` consecutive samples are <= low (low < high). Between
 * the two thresholds nothing changes: that band is the hysteresis that stops a value
 * hovering at the threshold from toggling the actuator. GD_REFLEX_BELOW is the mirror
 * image: triggers at <= low, clears at >= high. NaN samples are ignored (and reset the
 * debounce count).
 *
 * Callbacks run inside gd_reflex_update(), before it returns. Thread: one owner. */
#ifndef GANGLION_DEVICE_REFLEX_H
#define GANGLION_DEVICE_REFLEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ganglion/device/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum gd_reflex_dir { GD_REFLEX_ABOVE = 0, GD_REFLEX_BELOW = 1 } gd_reflex_dir;
typedef enum gd_reflex_event {
  GD_REFLEX_NONE = 0,
  GD_REFLEX_TRIGGERED = 1,
  GD_REFLEX_CLEARED = 2
} gd_reflex_event;

struct gd_reflex_rule;
/* `value` is the sample that completed the debounce. */
typedef void (*gd_reflex_fn)(void* user, const struct gd_reflex_rule* rule, float value,
                             uint64_t now_ms);

typedef struct gd_reflex_rule {
  /* Configuration (set before gd_reflex_init; not copied). */
  const char* name;
  uint16_t channel; /* which input this rule watches (gd_reflex_feed) */
  gd_reflex_dir dir;
  float high;
  float low;
  uint16_t debounce;       /* consecutive samples needed; 0 is treated as 1 */
  gd_reflex_fn on_trigger; /* optional */
  gd_reflex_fn on_clear;   /* optional */
  void* user;
  /* State (private). */
  bool active;
  uint16_t streak;
  uint64_t triggers;
  uint64_t since_ms; /* when it last changed state */
} gd_reflex_rule;

/* Resets the state. GD_ERR_ARG unless low < high (both finite). */
int gd_reflex_init(gd_reflex_rule* rule);
/* Feeds one sample; returns the event it caused (callbacks already ran). */
gd_reflex_event gd_reflex_update(gd_reflex_rule* rule, float value, uint64_t now_ms);
/* Feeds `value` to every rule of `rules` watching `channel`; returns how many changed. */
size_t gd_reflex_feed(gd_reflex_rule* rules, size_t n, uint16_t channel, float value,
                      uint64_t now_ms);
static inline bool gd_reflex_active(const gd_reflex_rule* rule) { return rule->active; }

#ifdef __cplusplus
}
#endif

#endif
