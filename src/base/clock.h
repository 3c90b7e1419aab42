// Clock: the only source of time and timers for Ganglion's logic.
//
// Nothing in the logic reads the wall clock or sleeps. Every timer, retry, window,
// heartbeat and rollout takes a Clock&, so tests use ManualClock and advance it by hand.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace ganglion {

using Duration = std::chrono::nanoseconds;
// A point on the clock's monotonic timeline (not related to the calendar).
using MonoTime = std::chrono::time_point<std::chrono::steady_clock, Duration>;
// Calendar time, for timestamps that leave the process (events, logs, records).
using WallTime = std::chrono::time_point<std::chrono::system_clock, Duration>;

using TimerId = std::uint64_t;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual MonoTime now() const = 0;
  virtual WallTime wall_now() const = 0;

  // Runs `fn` once, no earlier than `delay` from now. Returns an id for cancel().
  // Thread: SystemClock runs callbacks on its timer thread; ManualClock runs them inside
  // advance(). Callbacks may schedule and cancel timers.
  virtual TimerId schedule_after(Duration delay, std::function<void()> fn) = 0;
  // Cancels a pending timer; returns false when it already ran or never existed.
  virtual bool cancel(TimerId id) = 0;

  std::int64_t wall_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(wall_now().time_since_epoch())
        .count();
  }
};

// Real time. Timer callbacks run on one internal thread in deadline order; a callback that
// must touch state owned by an event loop posts itself there.
class SystemClock final : public Clock {
 public:
  SystemClock();
  ~SystemClock() override;
  SystemClock(const SystemClock&) = delete;
  SystemClock& operator=(const SystemClock&) = delete;

  MonoTime now() const override;
  WallTime wall_now() const override;
  TimerId schedule_after(Duration delay, std::function<void()> fn) override;
  bool cancel(TimerId id) override;

  // A process-wide instance for code without an injected clock (the CLI).
  static SystemClock& instance();

 private:
  void run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::multimap<MonoTime, TimerId> deadlines_;
  std::unordered_map<TimerId, std::pair<MonoTime, std::function<void()>>> timers_;
  TimerId next_id_ = 1;
  bool stop_ = false;
  std::thread thread_;
};

// Deterministic time for tests. Time moves only through advance()/advance_to(), which fire
// every due timer in deadline order (ties in scheduling order), with now() equal to each
// timer's deadline while it runs. Not thread-safe: drive it from one thread.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(WallTime wall_start = WallTime(std::chrono::seconds(1'700'000'000)));

  MonoTime now() const override { return now_; }
  WallTime wall_now() const override { return wall_start_ + (now_ - MonoTime{}); }
  TimerId schedule_after(Duration delay, std::function<void()> fn) override;
  bool cancel(TimerId id) override;

  // Moves time forward by `d`, firing due timers. Returns the number fired.
  std::size_t advance(Duration d);
  std::size_t advance_to(MonoTime t);
  // Number of timers not yet fired.
  std::size_t pending() const { return timers_.size(); }
  // Deadline of the earliest pending timer, or MonoTime::max() when none.
  MonoTime next_deadline() const;

 private:
  WallTime wall_start_;
  MonoTime now_{};
  std::map<std::pair<MonoTime, TimerId>, std::function<void()>> timers_;
  std::unordered_map<TimerId, MonoTime> deadline_of_;
  TimerId next_id_ = 1;
};

}  // namespace ganglion
