#include "broker/keep_alive_wheel.h"

#include <algorithm>

namespace ganglion::broker {

KeepAliveWheel::KeepAliveWheel(TimerScope& timers, std::chrono::milliseconds tick,
                               std::function<void(Entry&)> collect, std::function<void()> run)
    : timers_(timers),
      tick_ms_(std::max<std::int64_t>(1, tick.count())),
      collect_(std::move(collect)),
      run_(std::move(run)) {}

KeepAliveWheel::~KeepAliveWheel() { stop(); }

std::int64_t KeepAliveWheel::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             timers_.clock().now().time_since_epoch())
      .count();
}

void KeepAliveWheel::arm(Entry& e, std::int64_t deadline_ms) {
  std::lock_guard lock(mu_);
  if (e.armed) unlink_locked(e);
  if (stopped_) return;
  if (timer_ == 0) {
    // Not ticking: nothing was armed since the last tick, so every tick up to now is done.
    const std::int64_t now = now_ms();
    done_tick_ = std::max(done_tick_, now / tick_ms_);
    schedule_locked(now);
  }
  e.deadline_ms = deadline_ms;
  link_locked(e);
}

void KeepAliveWheel::disarm(Entry& e) {
  std::lock_guard lock(mu_);
  if (e.armed) unlink_locked(e);
}

void KeepAliveWheel::stop() {
  std::lock_guard lock(mu_);
  stopped_ = true;
  if (timer_ != 0) timers_.cancel(timer_);
  timer_ = 0;
}

std::size_t KeepAliveWheel::armed() const {
  std::lock_guard lock(mu_);
  return armed_;
}

void KeepAliveWheel::link_locked(Entry& e) {
  // Due at the first tick at or after the deadline, but never in a slot already processed.
  const std::int64_t due = (e.deadline_ms + tick_ms_ - 1) / tick_ms_;
  e.slot = static_cast<std::uint32_t>(std::max(due, done_tick_ + 1) % kSlots);
  e.prev = nullptr;
  e.next = heads_[e.slot];
  if (e.next) e.next->prev = &e;
  heads_[e.slot] = &e;
  e.armed = true;
  ++armed_;
}

void KeepAliveWheel::unlink_locked(Entry& e) {
  if (e.prev) {
    e.prev->next = e.next;
  } else {
    heads_[e.slot] = e.next;
  }
  if (e.next) e.next->prev = e.prev;
  e.prev = e.next = nullptr;
  e.armed = false;
  --armed_;
}

void KeepAliveWheel::schedule_locked(std::int64_t now) {
  const std::int64_t next_ms = (done_tick_ + 1) * tick_ms_;
  timer_ = timers_.schedule_after(
      std::chrono::milliseconds(std::max<std::int64_t>(0, next_ms - now)), [this] { tick(); });
}

void KeepAliveWheel::tick() {
  {
    std::lock_guard lock(mu_);
    timer_ = 0;
    if (stopped_) return;
    const std::int64_t now = now_ms();
    const std::int64_t current = now / tick_ms_;
    // Every tick since the last one, at most one turn of the ring (a late timer).
    const std::int64_t last = std::min(current, done_tick_ + kSlots);
    for (std::int64_t t = done_tick_ + 1; t <= last; ++t) {
      Entry* e = heads_[static_cast<std::size_t>(t % kSlots)];
      while (e) {
        Entry* next = e->next;
        // Entries of a later turn of the ring stay where they are.
        if (e->deadline_ms <= now) {
          unlink_locked(*e);
          collect_(*e);
        }
        e = next;
      }
    }
    done_tick_ = std::max(done_tick_, current);
    if (armed_ > 0) schedule_locked(now);
  }
  run_();
}

}  // namespace ganglion::broker
