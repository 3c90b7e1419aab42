#include "base/clock.h"

namespace ganglion {

SystemClock::SystemClock() : thread_([this] { run(); }) {}

SystemClock::~SystemClock() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

MonoTime SystemClock::now() const {
  return std::chrono::time_point_cast<Duration>(std::chrono::steady_clock::now());
}

WallTime SystemClock::wall_now() const {
  return std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now());
}

TimerId SystemClock::schedule_after(Duration delay, std::function<void()> fn) {
  const MonoTime at = now() + delay;
  TimerId id;
  {
    std::lock_guard lock(mu_);
    id = next_id_++;
    deadlines_.emplace(at, id);
    timers_.emplace(id, std::make_pair(at, std::move(fn)));
  }
  cv_.notify_all();
  return id;
}

bool SystemClock::cancel(TimerId id) {
  std::lock_guard lock(mu_);
  auto it = timers_.find(id);
  if (it == timers_.end()) return false;
  auto [lo, hi] = deadlines_.equal_range(it->second.first);
  for (auto d = lo; d != hi; ++d) {
    if (d->second == id) {
      deadlines_.erase(d);
      break;
    }
  }
  timers_.erase(it);
  return true;
}

void SystemClock::run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    if (deadlines_.empty()) {
      cv_.wait(lock);
      continue;
    }
    auto first = deadlines_.begin();
    if (first->first > now()) {
      cv_.wait_until(lock, std::chrono::steady_clock::time_point(
                               std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                   first->first.time_since_epoch())));
      continue;
    }
    const TimerId id = first->second;
    deadlines_.erase(first);
    auto node = timers_.extract(id);
    lock.unlock();
    if (!node.empty()) node.mapped().second();
    lock.lock();
  }
}

SystemClock& SystemClock::instance() {
  static SystemClock clock;
  return clock;
}

ManualClock::ManualClock(WallTime wall_start) : wall_start_(wall_start) {}

TimerId ManualClock::schedule_after(Duration delay, std::function<void()> fn) {
  if (delay < Duration::zero()) delay = Duration::zero();
  const TimerId id = next_id_++;
  const MonoTime at = now_ + delay;
  timers_.emplace(std::make_pair(at, id), std::move(fn));
  deadline_of_.emplace(id, at);
  return id;
}

bool ManualClock::cancel(TimerId id) {
  auto it = deadline_of_.find(id);
  if (it == deadline_of_.end()) return false;
  timers_.erase({it->second, id});
  deadline_of_.erase(it);
  return true;
}

std::size_t ManualClock::advance(Duration d) { return advance_to(now_ + d); }

std::size_t ManualClock::advance_to(MonoTime t) {
  std::size_t fired = 0;
  // Timers scheduled by callbacks with a deadline <= t fire in this same call.
  while (!timers_.empty() && timers_.begin()->first.first <= t) {
    auto node = timers_.extract(timers_.begin());
    deadline_of_.erase(node.key().second);
    if (node.key().first > now_) now_ = node.key().first;
    node.mapped()();
    ++fired;
  }
  if (t > now_) now_ = t;
  return fired;
}

MonoTime ManualClock::next_deadline() const {
  return timers_.empty() ? MonoTime::max() : timers_.begin()->first.first;
}

}  // namespace ganglion
