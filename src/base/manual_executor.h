// ManualExecutor: the executor of tests. Posted tasks wait in a queue until the test calls
// drain(), so code that posts work (in-process clients, the uplink sender, function triggers)
// runs deterministically on the test's thread, like ManualClock does for timers.
// post may be called from any thread; drain() from one.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>

namespace ganglion {

class ManualExecutor {
 public:
  // Matches the parts' Executor type: std::function<void(std::function<void()>)>.
  std::function<void(std::function<void()>)> executor() {
    return [this](std::function<void()> fn) {
      std::lock_guard lock(mu_);
      tasks_.push_back(std::move(fn));
    };
  }

  // Runs tasks (and the tasks they post) until none is left; returns how many ran.
  std::size_t drain() {
    std::size_t n = 0;
    for (;;) {
      std::function<void()> fn;
      {
        std::lock_guard lock(mu_);
        if (tasks_.empty()) return n;
        fn = std::move(tasks_.front());
        tasks_.pop_front();
      }
      fn();
      ++n;
    }
  }

  std::size_t pending() {
    std::lock_guard lock(mu_);
    return tasks_.size();
  }

 private:
  std::mutex mu_;
  std::deque<std::function<void()>> tasks_;
};

}  // namespace ganglion
