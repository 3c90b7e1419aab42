// gd_reflex: hysteresis, debounce, both directions, callbacks run at once.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "ganglion/device/reflex.h"

namespace {

struct Relay {
  std::vector<std::string> log;
};
void trip(void* user, const gd_reflex_rule* rule, float v, uint64_t t) {
  static_cast<Relay*>(user)->log.push_back(std::string("open ") + rule->name + " " +
                                           std::to_string(static_cast<int>(v)) + " @" +
                                           std::to_string(t));
}
void reset(void* user, const gd_reflex_rule* rule, float v, uint64_t t) {
  static_cast<Relay*>(user)->log.push_back(std::string("close ") + rule->name + " " +
                                           std::to_string(static_cast<int>(v)) + " @" +
                                           std::to_string(t));
}

gd_reflex_rule over_temp(Relay* relay, uint16_t debounce = 1) {
  gd_reflex_rule r{};
  r.name = "overtemp";
  r.dir = GD_REFLEX_ABOVE;
  r.high = 80;
  r.low = 70;
  r.debounce = debounce;
  r.on_trigger = trip;
  r.on_clear = reset;
  r.user = relay;
  return r;
}

TEST(DeviceReflex, TriggersAtHighAndClearsOnlyBelowLow) {
  Relay relay;
  gd_reflex_rule r = over_temp(&relay);
  ASSERT_EQ(gd_reflex_init(&r), GD_OK);
  const float samples[] = {60, 79, 80, 75, 71, 85, 70, 72, 81};
  std::vector<int> events;
  uint64_t t = 0;
  for (float v : samples) events.push_back(gd_reflex_update(&r, v, t++));
  EXPECT_EQ(events, (std::vector<int>{0, 0, GD_REFLEX_TRIGGERED, 0, 0, 0, GD_REFLEX_CLEARED, 0,
                                      GD_REFLEX_TRIGGERED}));
  EXPECT_EQ(relay.log, (std::vector<std::string>{"open overtemp 80 @2", "close overtemp 70 @6",
                                                 "open overtemp 81 @8"}));
  EXPECT_EQ(r.triggers, 2u);
  EXPECT_TRUE(gd_reflex_active(&r));
}

TEST(DeviceReflex, ValueHoveringAtTheThresholdDoesNotChatter) {
  Relay relay;
  gd_reflex_rule r = over_temp(&relay);
  ASSERT_EQ(gd_reflex_init(&r), GD_OK);
  for (int i = 0; i < 100; ++i) gd_reflex_update(&r, i % 2 ? 80.5f : 79.5f, i);
  EXPECT_EQ(relay.log.size(), 1u);  // one trigger, never cleared: 79.5 is above low
}

TEST(DeviceReflex, DebounceNeedsConsecutiveSamples) {
  Relay relay;
  gd_reflex_rule r = over_temp(&relay, 3);
  ASSERT_EQ(gd_reflex_init(&r), GD_OK);
  const float spikes[] = {90, 90, 60, 90, 90, 50, 90};  // never three in a row
  for (float v : spikes) EXPECT_EQ(gd_reflex_update(&r, v, 0), GD_REFLEX_NONE);
  EXPECT_EQ(gd_reflex_update(&r, 90, 1), GD_REFLEX_NONE);
  EXPECT_EQ(gd_reflex_update(&r, 91, 2), GD_REFLEX_TRIGGERED);
  EXPECT_EQ(gd_reflex_update(&r, 60, 3), GD_REFLEX_NONE);
  EXPECT_EQ(gd_reflex_update(&r, NAN, 4), GD_REFLEX_NONE);  // NaN resets the streak
  EXPECT_EQ(gd_reflex_update(&r, 60, 5), GD_REFLEX_NONE);
  EXPECT_EQ(gd_reflex_update(&r, 60, 6), GD_REFLEX_NONE);
  EXPECT_EQ(gd_reflex_update(&r, 60, 7), GD_REFLEX_CLEARED);
}

TEST(DeviceReflex, BelowRulesMirrorAbove) {
  gd_reflex_rule r{};
  r.name = "low-pressure";
  r.dir = GD_REFLEX_BELOW;
  r.low = 1.0f;
  r.high = 1.5f;
  ASSERT_EQ(gd_reflex_init(&r), GD_OK);
  EXPECT_EQ(gd_reflex_update(&r, 1.2f, 0), GD_REFLEX_NONE);
  EXPECT_EQ(gd_reflex_update(&r, 0.9f, 1), GD_REFLEX_TRIGGERED);
  EXPECT_EQ(gd_reflex_update(&r, 1.4f, 2), GD_REFLEX_NONE);
  EXPECT_EQ(gd_reflex_update(&r, 1.6f, 3), GD_REFLEX_CLEARED);
}

TEST(DeviceReflex, FeedRoutesByChannel) {
  Relay relay;
  gd_reflex_rule rules[2] = {over_temp(&relay), over_temp(&relay)};
  rules[1].name = "other";
  rules[1].channel = 1;
  ASSERT_EQ(gd_reflex_init(&rules[0]), GD_OK);
  ASSERT_EQ(gd_reflex_init(&rules[1]), GD_OK);
  EXPECT_EQ(gd_reflex_feed(rules, 2, 1, 99, 5), 1u);
  EXPECT_FALSE(gd_reflex_active(&rules[0]));
  EXPECT_TRUE(gd_reflex_active(&rules[1]));
}

TEST(DeviceReflex, InitRejectsInvertedOrNonFiniteThresholds) {
  gd_reflex_rule r{};
  r.high = 1;
  r.low = 2;
  EXPECT_EQ(gd_reflex_init(&r), GD_ERR_ARG);
  r.low = NAN;
  EXPECT_EQ(gd_reflex_init(&r), GD_ERR_ARG);
  r.low = 0;
  r.high = INFINITY;
  EXPECT_EQ(gd_reflex_init(&r), GD_ERR_ARG);
}

}  // namespace
