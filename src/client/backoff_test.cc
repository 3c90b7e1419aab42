#include "client/backoff.h"

#include <gtest/gtest.h>

namespace ganglion::client {
namespace {

using std::chrono::milliseconds;

TEST(BackoffTest, CapDoublesUpToTheMaximum) {
  Backoff b({milliseconds(100), milliseconds(1000)}, 1);
  std::vector<std::int64_t> caps;
  for (int i = 0; i < 6; ++i) {
    caps.push_back(b.cap().count());
    (void)b.next();
  }
  EXPECT_EQ(caps, (std::vector<std::int64_t>{100, 200, 400, 800, 1000, 1000}));
}

TEST(BackoffTest, FullJitterStaysWithinZeroAndTheCap) {
  Backoff b({milliseconds(100), milliseconds(800)}, 42);
  std::int64_t lowest = 1 << 30, highest = 0;
  for (int i = 0; i < 2000; ++i) {
    const auto cap = b.cap().count();
    const auto d = b.next().count();
    EXPECT_GE(d, 0);
    EXPECT_LE(d, cap);
    if (cap == 800) {
      lowest = std::min(lowest, d);
      highest = std::max(highest, d);
    }
  }
  EXPECT_LT(lowest, 100);  // spread over the whole range, not clustered at the cap
  EXPECT_GT(highest, 700);
}

TEST(BackoffTest, ResetStartsOverAfterAConnectionThatWorked) {
  Backoff b({milliseconds(50), milliseconds(10'000)}, 7);
  for (int i = 0; i < 10; ++i) (void)b.next();
  EXPECT_EQ(b.cap().count(), 10'000);
  b.reset();
  EXPECT_EQ(b.cap().count(), 50);
}

TEST(BackoffTest, NoOverflowAfterManyAttempts) {
  Backoff b({milliseconds(1), milliseconds(60'000)}, 3);
  for (int i = 0; i < 10'000; ++i) EXPECT_LE(b.next().count(), 60'000);
}

}  // namespace
}  // namespace ganglion::client
