#include <utility>  // Boost 1.74's Asio needs this before its headers.

#include "net/io_pool.h"

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <condition_variable>
#include <csignal>
#include <mutex>

namespace ganglion::net {

namespace asio = boost::asio;

struct IoPool::State {
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  std::vector<std::thread> threads;
  std::unique_ptr<asio::signal_set> signals;
  std::atomic<std::size_t> next{0};
  std::mutex mu;
  std::condition_variable cv;
  bool stop_requested = false;
  bool stopped = false;
};

IoPool::IoPool(std::size_t threads) : state_(std::make_unique<State>()) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  for (std::size_t i = 0; i < threads; ++i) {
    loops_.push_back(std::make_unique<asio::io_context>(1));
  }
}

IoPool::~IoPool() { stop(); }

asio::io_context& IoPool::loop(std::size_t i) { return *loops_.at(i); }

asio::io_context& IoPool::next() {
  return *loops_[state_->next.fetch_add(1, std::memory_order_relaxed) % loops_.size()];
}

void IoPool::start() {
  for (auto& loop : loops_) {
    state_->guards.push_back(asio::make_work_guard(*loop));
  }
  for (auto& loop : loops_) {
    state_->threads.emplace_back([l = loop.get()] { l->run(); });
  }
}

void IoPool::on_shutdown_signal(std::function<void(int)> on_signal) {
  state_->signals = std::make_unique<asio::signal_set>(*loops_[0], SIGINT, SIGTERM);
  state_->signals->async_wait(
      [fn = std::move(on_signal)](const boost::system::error_code& ec, int signo) {
        if (!ec) fn(signo);
      });
}

void IoPool::stop() {
  {
    std::lock_guard lock(state_->mu);
    if (state_->stopped) return;
    state_->stopped = true;
  }
  state_->guards.clear();
  for (auto& loop : loops_) loop->stop();
  for (auto& t : state_->threads) {
    if (t.joinable()) t.join();
  }
  state_->signals.reset();
}

void IoPool::request_stop() {
  {
    std::lock_guard lock(state_->mu);
    state_->stop_requested = true;
  }
  state_->cv.notify_all();
}

void IoPool::wait() {
  std::unique_lock lock(state_->mu);
  state_->cv.wait(lock, [&] { return state_->stop_requested; });
}

}  // namespace ganglion::net
