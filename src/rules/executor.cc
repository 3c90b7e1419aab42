#include "rules/executor.h"

#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace ganglion::rules {
namespace {

class WorkerThread final : public SerialExecutor {
 public:
  explicit WorkerThread(const std::string& name) : thread_([this] { run(); }) {
    // Linux limits thread names to 15 characters.
    pthread_setname_np(thread_.native_handle(), ("r:" + name).substr(0, 15).c_str());
  }
  ~WorkerThread() override { stop(); }

  void post(std::function<void()> task) override {
    bool wake;
    {
      std::lock_guard lock(mu_);
      if (stopped_) return;
      tasks_.push_back(std::move(task));
      wake = sleeping_;
    }
    if (wake) cv_.notify_one();  // a busy worker finds the task without a futex wake-up
  }

  void stop() override {
    std::deque<std::function<void()>> dropped;  // destroyed outside the lock
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
      stop_flag_.store(true, std::memory_order_release);
      dropped.swap(tasks_);
    }
    cv_.notify_one();
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
  }

 private:
  void run() {
    std::deque<std::function<void()>> batch;
    for (;;) {
      {
        std::unique_lock lock(mu_);
        sleeping_ = true;
        cv_.wait(lock, [this] { return stopped_ || !tasks_.empty(); });
        sleeping_ = false;
        if (stopped_) return;
        batch.swap(tasks_);  // take everything queued: one lock per batch, not per task
      }
      while (!batch.empty()) {
        if (stop_flag_.load(std::memory_order_acquire)) return;
        auto task = std::move(batch.front());
        batch.pop_front();
        task();
      }
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // GUARDED_BY(mu_)
  bool stopped_ = false;                     // GUARDED_BY(mu_)
  std::atomic<bool> stop_flag_{false};       // stopped_, readable without the lock
  bool sleeping_ = false;                    // GUARDED_BY(mu_): the worker waits on cv_
  std::thread thread_;
};

}  // namespace

std::unique_ptr<SerialExecutor> make_worker_thread(const std::string& name) {
  return std::make_unique<WorkerThread>(name);
}

}  // namespace ganglion::rules
