// TokenBucket: the uplink's bandwidth budget in bytes per second with a burst.
//
// Time is passed in (the sender reads its Clock), so tests drive it with a ManualClock.
// A send of n bytes is allowed once the bucket holds min(n, burst) tokens; it then takes all
// n (the level may go negative), so a batch larger than the burst still goes out, and the
// long-run rate stays at `rate` bytes per second. Not thread-safe (the sender's executor).
#pragma once

#include <algorithm>
#include <cstdint>

#include "base/clock.h"

namespace ganglion::uplink {

class TokenBucket {
 public:
  // rate 0: unlimited. burst 0: one second's worth of rate.
  TokenBucket(std::uint64_t rate, std::uint64_t burst, MonoTime now)
      : rate_(static_cast<double>(rate)),
        burst_(static_cast<double>(burst ? burst : rate)),
        level_(burst_),
        last_(now) {}

  bool unlimited() const { return rate_ <= 0; }

  // Takes `bytes` when allowed (see above); otherwise returns false and leaves the level.
  bool try_take(std::uint64_t bytes, MonoTime now) {
    if (unlimited()) return true;
    refill(now);
    if (level_ < std::min(static_cast<double>(bytes), burst_)) return false;
    level_ -= static_cast<double>(bytes);
    return true;
  }

  // How long until try_take(bytes) can succeed (zero when it can now).
  Duration wait_for(std::uint64_t bytes, MonoTime now) {
    if (unlimited()) return Duration::zero();
    refill(now);
    const double need = std::min(static_cast<double>(bytes), burst_) - level_;
    if (need <= 0) return Duration::zero();
    return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(need / rate_)) +
           Duration(1);
  }

  double level(MonoTime now) {
    refill(now);
    return level_;
  }

 private:
  void refill(MonoTime now) {
    if (now <= last_) return;
    const double secs = std::chrono::duration<double>(now - last_).count();
    level_ = std::min(burst_, level_ + secs * rate_);
    last_ = now;
  }

  double rate_;
  double burst_;
  double level_;
  MonoTime last_;
};

}  // namespace ganglion::uplink
