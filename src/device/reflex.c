/* gd_reflex: see include/ganglion/device/reflex.h. */
#include "ganglion/device/reflex.h"

#include <math.h>

int gd_reflex_init(gd_reflex_rule* r) {
  if (!r || !isfinite(r->high) || !isfinite(r->low) || !(r->low < r->high)) return GD_ERR_ARG;
  if (r->dir != GD_REFLEX_ABOVE && r->dir != GD_REFLEX_BELOW) return GD_ERR_ARG;
  r->active = false;
  r->streak = 0;
  r->triggers = 0;
  r->since_ms = 0;
  return GD_OK;
}

gd_reflex_event gd_reflex_update(gd_reflex_rule* r, float v, uint64_t now_ms) {
  if (isnan(v)) {
    r->streak = 0;
    return GD_REFLEX_NONE;
  }
  const uint16_t need = r->debounce ? r->debounce : 1;
  bool toward; /* does this sample push toward the other state? */
  if (!r->active) {
    toward = r->dir == GD_REFLEX_ABOVE ? v >= r->high : v <= r->low;
  } else {
    toward = r->dir == GD_REFLEX_ABOVE ? v <= r->low : v >= r->high;
  }
  if (!toward) {
    r->streak = 0;
    return GD_REFLEX_NONE;
  }
  if (++r->streak < need) return GD_REFLEX_NONE;
  r->streak = 0;
  r->active = !r->active;
  r->since_ms = now_ms;
  if (r->active) {
    r->triggers++;
    if (r->on_trigger) r->on_trigger(r->user, r, v, now_ms);
    return GD_REFLEX_TRIGGERED;
  }
  if (r->on_clear) r->on_clear(r->user, r, v, now_ms);
  return GD_REFLEX_CLEARED;
}

size_t gd_reflex_feed(gd_reflex_rule* rules, size_t n, uint16_t channel, float value,
                      uint64_t now_ms) {
  size_t changed = 0;
  for (size_t i = 0; i < n; ++i)
    if (rules[i].channel == channel && gd_reflex_update(&rules[i], value, now_ms) != GD_REFLEX_NONE)
      changed++;
  return changed;
}
