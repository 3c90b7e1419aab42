// Controller: the cloud side of the fleet (`ganglion cloud`).
//
// Wires the store, the PKI, an MQTT broker for nodes (mutual TLS, per-node ACL, identity
// filter for revoked nodes), an in-process MQTT client that consumes heartbeats, reported
// twins and uplink batches, the health tracker, and the HTTPS REST API (docs/api.md).
//
// Threads: MQTT handlers run on one IoPool loop (the in-process client's executor); API
// handlers on any loop; health and retention timers on the Clock's thread. Shared state is
// the Store (thread-safe) and the registry cache below (guarded by mu_).
//
// Lifetime (like EdgeNode): start() after IoPool::start(); on shutdown stop(), then
// IoPool::stop(), then release() (destroys the in-process client before the broker).
#pragma once

#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "base/clock.h"
#include "base/config.h"
#include "base/env.h"
#include "base/metrics.h"
#include "net/io_pool.h"

namespace ganglion::cloud {

class Controller {
 public:
  Controller(const Config& config, Env& env, Clock& clock, net::IoPool& pool);
  ~Controller();
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  // Opens the store, creates the PKI and the first admin token on first start, binds the
  // API and MQTT listeners and writes <data_dir>/endpoints.json. Errors: kInvalidArgument
  // for configuration problems, others for I/O.
  Status start();
  // Stops accepting and stops timers. Idempotent.
  void stop();
  // Destroys the parts; call after IoPool::stop().
  void release();

  // The admin API token created at this start (first start only), else "". Shown once.
  const std::string& initial_admin_token() const { return initial_admin_token_; }
  std::uint16_t api_port() const;
  std::string mqtt_url() const;

  struct Parts;  // implementation detail (controller.cc)

 private:
  const Config& config_;
  Env& env_;
  Clock& clock_;
  net::IoPool& pool_;
  MetricsRegistry metrics_;
  std::unique_ptr<Parts> parts_;
  std::string initial_admin_token_;
};

}  // namespace ganglion::cloud
