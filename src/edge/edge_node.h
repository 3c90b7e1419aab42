// EdgeNode: wires the parts of an edge node and owns their lifetime.
//
// start() creates the data folder, binds the listeners and returns once the node serves;
// stop() shuts the parts down in reverse order. Not thread-safe: call from one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/clock.h"
#include "base/config.h"
#include "base/env.h"
#include "base/metrics.h"
#include "net/io_pool.h"

namespace ganglion::edge {

class EdgeNode {
 public:
  EdgeNode(const Config& config, Env& env, Clock& clock, net::IoPool& pool);
  ~EdgeNode();

  Status start();
  // Stops accepting and disconnects clients; the event loops may still run.
  void stop();
  // Frees the parts. Call after the event loops have stopped (IoPool::stop()).
  void release();

  std::uint16_t http_port() const;
  MetricsRegistry& metrics() { return metrics_; }
  bool ready() const { return ready_; }

 private:
  struct Parts;
  Status start_broker();
  const Config& config_;
  Env& env_;
  Clock& clock_;
  net::IoPool& pool_;
  MetricsRegistry metrics_;
  std::unique_ptr<Parts> parts_;
  bool ready_ = false;
  MonoTime started_{};
};

}  // namespace ganglion::edge
