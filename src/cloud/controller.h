// Controller: the cloud side of the fleet (`ganglion cloud`).
//
// Wires the store, the PKI, an MQTT broker for nodes (mutual TLS, per-node ACL, identity
// filter for revoked nodes), an in-process MQTT client that consumes heartbeats, reported
// twins and uplink batches, the health tracker, and the HTTPS REST API (docs/api.md).
//
// Threads: the nodes' MQTT connections run on the given IoPool; MQTT handlers on its loop 0
// (the in-process client's executor). The REST API runs on the controller's own loops
// (`cloud.api.threads`, an IoPool owned here), so a request never queues behind MQTT work;
// API handlers may block on the store (enrolment waits for its fsync) but never wait for an
// MQTT loop (publishing a desired twin or disconnecting a revoked node only takes the
// broker's routing lock). Health and retention timers run on the Clock's thread. Shared
// state is the Store (thread-safe) and the registry cache (guarded by its mutexes).
//
// Lifetime (like EdgeNode): start() after IoPool::start(); on shutdown stop() (stops the
// API and joins its threads first, so no handler runs while the rest stops), then
// IoPool::stop(), then release() (destroys the in-process client before the broker, the
// HTTP server before the API loops).
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
  // The REST API's loops; created and started by start() (unless cloud.api.threads is 0:
  // then the API shares `pool_`), stopped by stop(), destroyed by release() after the HTTP
  // server.
  std::unique_ptr<net::IoPool> api_pool_;
  MetricsRegistry metrics_;
  std::unique_ptr<Parts> parts_;
  std::string initial_admin_token_;
};

}  // namespace ganglion::cloud
