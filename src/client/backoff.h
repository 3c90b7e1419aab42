// Backoff: reconnect delays growing exponentially, with "full jitter" (AWS architecture blog,
// "Exponential Backoff And Jitter"): attempt n waits a uniformly random time in
// [0, min(max, initial * 2^n)], so a fleet that lost its broker at the same moment does not
// come back at the same moment. reset() after a connection that worked.
//
// Thread: not thread-safe; one owner.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace ganglion::client {

struct BackoffOptions {
  std::chrono::milliseconds initial{500};  // the cap of the first retry
  std::chrono::milliseconds max{30'000};   // the cap never grows beyond this
};

class Backoff {
 public:
  explicit Backoff(BackoffOptions options, std::uint64_t seed = std::random_device{}());

  // The delay before the next attempt; each call doubles the cap up to max.
  std::chrono::milliseconds next();
  // The cap the next call draws under.
  std::chrono::milliseconds cap() const;
  void reset() { attempt_ = 0; }
  std::uint32_t attempts() const { return attempt_; }

 private:
  BackoffOptions options_;
  std::uint32_t attempt_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace ganglion::client
