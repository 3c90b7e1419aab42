#include "rules/executor.h"

#include <pthread.h>

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
    {
      std::lock_guard lock(mu_);
      if (stopped_) return;
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

  void stop() override {
    std::deque<std::function<void()>> dropped;  // destroyed outside the lock
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
      dropped.swap(tasks_);
    }
    cv_.notify_one();
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
  }

 private:
  void run() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return stopped_ || !tasks_.empty(); });
        if (stopped_) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // GUARDED_BY(mu_)
  bool stopped_ = false;                      // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace

std::unique_ptr<SerialExecutor> make_worker_thread(const std::string& name) {
  return std::make_unique<WorkerThread>(name);
}

}  // namespace ganglion::rules
