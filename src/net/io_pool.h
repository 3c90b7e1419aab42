// IoPool: the process's event loops, one per core, each run by one thread.
//
// Connections are spread across the loops (next() round-robin), so a node uses every core
// without sharing per-connection state between threads. Asio stays behind this header: parts
// that need the io_context include <boost/asio/io_context.hpp> in their own .cc files.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace ganglion::net {

class IoPool {
 public:
  // `threads` == 0 means one per hardware thread.
  explicit IoPool(std::size_t threads = 0);
  ~IoPool();
  IoPool(const IoPool&) = delete;
  IoPool& operator=(const IoPool&) = delete;

  std::size_t size() const { return loops_.size(); }
  boost::asio::io_context& loop(std::size_t i);
  // The next loop, round-robin; thread-safe.
  boost::asio::io_context& next();

  // Starts the threads. Loops keep running (work guards) until stop().
  void start();
  // Calls `on_signal(signo)` on loop 0 when SIGINT or SIGTERM arrives.
  void on_shutdown_signal(std::function<void(int)> on_signal);
  // Asks the thread blocked in wait() to shut down; safe from any thread, loop threads too.
  void request_stop();
  // Blocks until request_stop() was called.
  void wait();
  // Stops every loop and joins the threads. Idempotent. Must not be called from a loop thread.
  void stop();

 private:
  struct State;
  std::unique_ptr<State> state_;
  std::vector<std::unique_ptr<boost::asio::io_context>> loops_;
};

}  // namespace ganglion::net
