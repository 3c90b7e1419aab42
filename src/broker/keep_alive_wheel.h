// KeepAliveWheel: the keep-alive deadlines of every connection behind one Clock timer.
//
// One Clock timer per connection costs a map node, a hash node and two std::function
// allocations (~300 bytes) for something that fires about once per keep-alive interval. Here
// each watched object embeds an Entry (an intrusive list node: no allocation), entries sit in
// a ring of slots by deadline tick, and one timer ticks while any entry is armed. An entry is
// reported no earlier than its deadline and at most one tick after it.
//
// Thread-safe: arm() and disarm() from any thread; the tick runs on the Clock's thread and
// calls `on_due` outside the wheel's lock.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "base/timer_scope.h"

namespace ganglion::broker {

class KeepAliveWheel {
 public:
  // Embedded in the watched object. Guarded by the wheel's mutex; the owner must disarm()
  // it before the Entry is destroyed.
  struct Entry {
    Entry* prev = nullptr;
    Entry* next = nullptr;
    std::int64_t deadline_ms = 0;  // on the clock's monotonic timeline
    void* owner = nullptr;         // for the collect callback; set by the owner
    std::uint32_t slot = 0;
    bool armed = false;
  };

  // `collect(entry)` runs under the wheel's lock for every entry whose deadline passed (the
  // entry is already disarmed); it may only take a reference to the owner (e.g. lock a
  // weak_ptr) into its own storage. `run()` is then called outside the lock to act on what
  // was collected. Both run on the Clock's thread.
  KeepAliveWheel(TimerScope& timers, std::chrono::milliseconds tick,
                 std::function<void(Entry&)> collect, std::function<void()> run);
  ~KeepAliveWheel();
  KeepAliveWheel(const KeepAliveWheel&) = delete;
  KeepAliveWheel& operator=(const KeepAliveWheel&) = delete;

  // (Re)arms `e` for `deadline_ms`; moves it when already armed.
  void arm(Entry& e, std::int64_t deadline_ms);
  // Removes `e` if armed. Idempotent.
  void disarm(Entry& e);
  // Stops ticking (broker shutdown); armed entries stay until disarmed.
  void stop();

  std::size_t armed() const;

 private:
  static constexpr std::uint32_t kSlots = 256;

  std::int64_t now_ms() const;
  void link_locked(Entry& e);
  void unlink_locked(Entry& e);
  void schedule_locked(std::int64_t now);
  void tick();

  TimerScope& timers_;
  const std::int64_t tick_ms_;
  std::function<void(Entry&)> collect_;
  std::function<void()> run_;
  mutable std::mutex mu_;
  std::vector<Entry*> heads_ = std::vector<Entry*>(kSlots, nullptr);
  std::size_t armed_ = 0;
  std::int64_t done_tick_ = -1;  // the last tick whose slot was processed
  TimerId timer_ = 0;
  bool stopped_ = false;
};

}  // namespace ganglion::broker
