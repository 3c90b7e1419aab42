#include "cloud/health.h"

#include <gtest/gtest.h>

namespace ganglion::cloud {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

struct HealthTest : ::testing::Test {
  ManualClock clock;
  HealthTracker tracker{clock, HealthPolicy{seconds(10), seconds(60)}};
};

TEST_F(HealthTest, HeartbeatMakesHealthyThenLateDegradedThenOffline) {
  tracker.track("n1", "offline", std::nullopt);
  EXPECT_TRUE(tracker.evaluate().empty());
  auto c = tracker.on_heartbeat("n1", {});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->from, "offline");
  EXPECT_EQ(c->to, "healthy");
  clock.advance(seconds(15));  // exactly 1.5 intervals: not late yet
  EXPECT_TRUE(tracker.evaluate().empty());
  clock.advance(milliseconds(1));
  auto changes = tracker.evaluate();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].to, "degraded");
  EXPECT_EQ(changes[0].reason, "heartbeat late");
  clock.advance(seconds(45));
  changes = tracker.evaluate();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].to, "offline");
  EXPECT_EQ(changes[0].ts_ms, clock.wall_ms());
}

TEST_F(HealthTest, ReportedProblemsDegradeUntilAHeartbeatWithout) {
  tracker.on_heartbeat("n1", {});
  auto c = tracker.on_heartbeat("n1", {"disk full", "rule r1 failing"});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->to, "degraded");
  EXPECT_EQ(c->reason, "reported: disk full, rule r1 failing");
  c = tracker.on_heartbeat("n1", {});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->to, "healthy");
}

TEST_F(HealthTest, TrackedAfterRestartFromTheLastHeartbeatAge) {
  tracker.track("n1", "healthy", seconds(30));  // already late
  auto changes = tracker.evaluate();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].to, "degraded");
  tracker.track("n2", "healthy", std::nullopt);
  changes = tracker.evaluate();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].to, "offline");
}

}  // namespace
}  // namespace ganglion::cloud
