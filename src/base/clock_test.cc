#include "base/clock.h"

#include <gtest/gtest.h>

#include <vector>

namespace ganglion {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(ManualClock, TimeMovesOnlyWhenAdvanced) {
  ManualClock clock;
  const MonoTime t0 = clock.now();
  EXPECT_EQ(clock.now(), t0);
  clock.advance(milliseconds(250));
  EXPECT_EQ(clock.now() - t0, milliseconds(250));
}

TEST(ManualClock, FiresDueTimersInDeadlineOrder) {
  ManualClock clock;
  std::vector<int> fired;
  clock.schedule_after(seconds(3), [&] { fired.push_back(3); });
  clock.schedule_after(seconds(1), [&] { fired.push_back(1); });
  clock.schedule_after(seconds(2), [&] { fired.push_back(2); });
  EXPECT_EQ(clock.advance(milliseconds(1500)), 1u);
  EXPECT_EQ(fired, (std::vector<int>{1}));
  EXPECT_EQ(clock.advance(seconds(5)), 2u);
  EXPECT_EQ(fired, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(clock.pending(), 0u);
}

TEST(ManualClock, TiesFireInSchedulingOrder) {
  ManualClock clock;
  std::vector<int> fired;
  for (int i = 0; i < 5; ++i) clock.schedule_after(seconds(1), [&, i] { fired.push_back(i); });
  clock.advance(seconds(1));
  EXPECT_EQ(fired, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(ManualClock, NowEqualsDeadlineInsideCallback) {
  ManualClock clock;
  const MonoTime t0 = clock.now();
  Duration seen{};
  clock.schedule_after(seconds(2), [&] { seen = clock.now() - t0; });
  clock.advance(seconds(10));
  EXPECT_EQ(seen, seconds(2));
  EXPECT_EQ(clock.now() - t0, seconds(10));
}

TEST(ManualClock, CallbackMayRescheduleWithinSameAdvance) {
  ManualClock clock;
  int ticks = 0;
  std::function<void()> tick = [&] {
    ++ticks;
    clock.schedule_after(seconds(1), tick);
  };
  clock.schedule_after(seconds(1), tick);
  clock.advance(seconds(10));
  EXPECT_EQ(ticks, 10);
  EXPECT_EQ(clock.pending(), 1u);
}

TEST(ManualClock, CancelledTimerNeverFires) {
  ManualClock clock;
  bool fired = false;
  TimerId id = clock.schedule_after(seconds(1), [&] { fired = true; });
  EXPECT_TRUE(clock.cancel(id));
  EXPECT_FALSE(clock.cancel(id));
  clock.advance(seconds(2));
  EXPECT_FALSE(fired);
}

TEST(ManualClock, WallTimeFollowsMonotonicTime) {
  ManualClock clock(WallTime(seconds(1000)));
  EXPECT_EQ(clock.wall_ms(), 1'000'000);
  clock.advance(milliseconds(1234));
  EXPECT_EQ(clock.wall_ms(), 1'001'234);
}

TEST(ManualClock, NextDeadlineReportsEarliestTimer) {
  ManualClock clock;
  EXPECT_EQ(clock.next_deadline(), MonoTime::max());
  clock.schedule_after(seconds(5), [] {});
  clock.schedule_after(seconds(2), [] {});
  EXPECT_EQ(clock.next_deadline() - clock.now(), seconds(2));
}

}  // namespace
}  // namespace ganglion

#include "base/timer_scope.h"

namespace ganglion {
namespace {

TEST(TimerScope, ClosedScopeNeverRunsItsTimers) {
  ManualClock clock;
  int fired = 0;
  {
    TimerScope scope(clock);
    scope.schedule_after(std::chrono::seconds(1), [&] { ++fired; });
    scope.schedule_after(std::chrono::seconds(5), [&] { ++fired; });
    clock.advance(std::chrono::seconds(2));
  }
  clock.advance(std::chrono::seconds(10));
  EXPECT_EQ(fired, 1);
}

TEST(TimerScope, CallbackMayCloseItsOwnScope) {
  ManualClock clock;
  TimerScope scope(clock);
  bool ran = false;
  scope.schedule_after(std::chrono::seconds(1), [&] {
    scope.close();
    ran = true;
  });
  clock.advance(std::chrono::seconds(1));
  EXPECT_TRUE(ran);
}

}  // namespace
}  // namespace ganglion
