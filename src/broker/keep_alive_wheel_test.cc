#include "broker/keep_alive_wheel.h"

#include <gtest/gtest.h>

#include <vector>

namespace ganglion::broker {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class KeepAliveWheelTest : public ::testing::Test {
 protected:
  std::int64_t now_ms() const {
    return std::chrono::duration_cast<milliseconds>(clock.now().time_since_epoch()).count();
  }

  ManualClock clock;
  TimerScope timers{clock};
  std::vector<KeepAliveWheel::Entry*> collected;
  std::vector<std::pair<int, std::int64_t>> due;  // owner tag, time reported
  KeepAliveWheel wheel{timers, milliseconds(500),
                       [this](KeepAliveWheel::Entry& e) { collected.push_back(&e); },
                       [this] {
                         for (auto* e : collected) {
                           due.emplace_back(*static_cast<int*>(e->owner), now_ms());
                         }
                         collected.clear();
                       }};
};

TEST_F(KeepAliveWheelTest, ReportsAnEntryNoEarlierThanItsDeadlineAndWithinOneTick) {
  int tag = 1;
  KeepAliveWheel::Entry e;
  e.owner = &tag;
  wheel.arm(e, 1'200);
  clock.advance(milliseconds(1'199));
  EXPECT_TRUE(due.empty());
  clock.advance(milliseconds(501));
  ASSERT_EQ(due.size(), 1u);
  EXPECT_GE(due[0].second, 1'200);
  EXPECT_LE(due[0].second, 1'700);
  EXPECT_FALSE(e.armed);
  EXPECT_EQ(wheel.armed(), 0u);
}

TEST_F(KeepAliveWheelTest, StopsTickingWhenNothingIsArmed) {
  int tag = 1;
  KeepAliveWheel::Entry e;
  e.owner = &tag;
  wheel.arm(e, 1'000);
  clock.advance(seconds(2));
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(clock.pending(), 0u);
}

TEST_F(KeepAliveWheelTest, DisarmedEntriesAreNotReported) {
  int a = 1, b = 2;
  KeepAliveWheel::Entry ea, eb;
  ea.owner = &a;
  eb.owner = &b;
  wheel.arm(ea, 1'000);
  wheel.arm(eb, 1'000);
  wheel.disarm(ea);
  wheel.disarm(ea);  // idempotent
  clock.advance(seconds(2));
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].first, 2);
}

TEST_F(KeepAliveWheelTest, ReArmingMovesTheDeadline) {
  int tag = 1;
  KeepAliveWheel::Entry e;
  e.owner = &tag;
  wheel.arm(e, 1'000);
  wheel.arm(e, 5'000);
  clock.advance(seconds(4));
  EXPECT_TRUE(due.empty());
  clock.advance(seconds(2));
  ASSERT_EQ(due.size(), 1u);
  EXPECT_GE(due[0].second, 5'000);
}

TEST_F(KeepAliveWheelTest, DeadlinesBeyondOneTurnOfTheRingWaitForTheirTurn) {
  // 256 slots of 500 ms: 128 s per turn. A 5,400 s deadline (a 3,600 s keep-alive) passes
  // its slot many times first.
  int tag = 1;
  KeepAliveWheel::Entry e;
  e.owner = &tag;
  wheel.arm(e, 5'400'000);
  clock.advance(seconds(5'399));
  EXPECT_TRUE(due.empty());
  clock.advance(seconds(1));
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].second, 5'400'000);
}

TEST_F(KeepAliveWheelTest, ManyEntriesInOneSlot) {
  std::vector<int> tags(100);
  std::vector<KeepAliveWheel::Entry> entries(100);
  for (int i = 0; i < 100; ++i) {
    tags[i] = i;
    entries[i].owner = &tags[i];
    wheel.arm(entries[i], 2'000 + i);  // all due at the tick of 2.5 s
  }
  for (int i = 0; i < 100; i += 2) wheel.disarm(entries[i]);
  clock.advance(seconds(3));
  EXPECT_EQ(due.size(), 50u);
  for (const auto& [tag, at] : due) EXPECT_EQ(tag % 2, 1);
}

TEST_F(KeepAliveWheelTest, AnEntryArmedFromTheCallbackIsReportedAgain) {
  int tag = 1;
  KeepAliveWheel::Entry e;
  e.owner = &tag;
  KeepAliveWheel rearming{timers, milliseconds(500),
                          [&](KeepAliveWheel::Entry& x) { collected.push_back(&x); },
                          [&] {
                            if (collected.empty()) return;  // a tick with nothing due
                            due.insert(due.end(), collected.size(), {1, now_ms()});
                            collected.clear();
                            if (due.size() < 3) rearming.arm(e, now_ms() + 1'000);
                          }};
  rearming.arm(e, 1'000);
  clock.advance(seconds(10));
  EXPECT_EQ(due.size(), 3u);
  rearming.disarm(e);
}

}  // namespace
}  // namespace ganglion::broker
