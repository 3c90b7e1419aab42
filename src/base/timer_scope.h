// TimerScope: ties Clock timers to the lifetime of the object that scheduled them.
//
// A timer callback usually captures `this`. If the object is destroyed while the timer is
// pending, or while its callback runs on the clock's thread, that is a use after free.
// Scheduling through a TimerScope wraps the callback: it runs only while the scope is open,
// and close() (called from the owner's destructor) waits for a running callback to finish.
//
// Thread-safe. close() may be called from inside a callback of the same scope.
#pragma once

#include <memory>
#include <mutex>

#include "base/clock.h"

namespace ganglion {

class TimerScope {
 public:
  explicit TimerScope(Clock& clock) : clock_(clock), state_(std::make_shared<State>()) {}
  ~TimerScope() { close(); }
  TimerScope(const TimerScope&) = delete;
  TimerScope& operator=(const TimerScope&) = delete;

  TimerId schedule_after(Duration delay, std::function<void()> fn) {
    return clock_.schedule_after(delay, [state = state_, fn = std::move(fn)] {
      std::lock_guard lock(state->mu);
      if (state->open) fn();
    });
  }
  bool cancel(TimerId id) { return clock_.cancel(id); }

  // From now on no callback of this scope runs; waits for one that is running.
  void close() {
    std::lock_guard lock(state_->mu);
    state_->open = false;
  }

  Clock& clock() { return clock_; }

 private:
  struct State {
    std::recursive_mutex mu;
    bool open = true;
  };
  Clock& clock_;
  std::shared_ptr<State> state_;
};

}  // namespace ganglion
