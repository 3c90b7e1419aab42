// FleetSimulator: thousands of lightweight edge-node agents in one process, speaking the
// real edge <-> cloud protocol, to measure how much fleet one controller holds.
//
// Each simulated node is the edge's own CloudAgent (enrolment with its own EC key and CSR,
// certificate checks, MQTT 5 over mutual TLS, heartbeats, reported twin, desired state) with
// synthetic NodeFacts, plus a batch timer that publishes small uplink batches in the
// uplink's batch format (uplink/batch_format.h, class "telemetry") to
// ganglion/v1/<node>/up/telemetry over the same connection. Identities are cached under
// <data>/<node>/cloud, so a rerun with the same data folder does not enrol again.
//
// Resources: all agents share `io_threads` event loops (MqttClient, HTTPS enrolment) and the
// process's SystemClock thread (heartbeat and batch timers). Each node has its own
// ssl::context (its own certificate), one TLS connection and one MqttClient; see the README
// for the measured cost per node. One zstd context serves every batch (built on the clock
// thread only).
//
// Thread model: start() and stop() from one controlling thread; snapshot() from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "base/clock.h"
#include "base/status.h"

namespace ganglion::sim {

struct FleetOptions {
  std::size_t count = 1000;
  std::string cloud_url;        // https://host:port
  std::string token;            // must allow `count` enrolments
  std::string trusted_ca_file;  // optional: the controller's CA (else trust on first use)
  std::string data_dir = "ganglion-sim";
  std::string prefix = "sim";  // node ids are <prefix>-00001 ...
  Duration heartbeat_interval = std::chrono::seconds(10);
  Duration batch_interval = std::chrono::seconds(5);  // zero: no uplink batches
  std::size_t records_per_batch = 5;
  std::size_t io_threads = 1;
  std::size_t enrol_concurrency = 32;  // enrolments in flight at once
  double start_rate = 500;             // node starts per second (connect storm control)
};

struct FleetSnapshot {
  std::size_t nodes = 0;  // started so far
  std::size_t enrolled = 0;
  std::size_t enrolling = 0;
  std::size_t failed = 0;  // refused enrolment (token, CSR, node id taken)
  std::size_t connected = 0;
  std::uint64_t enrolments = 0;  // requests made by this process
  std::uint64_t heartbeats = 0;  // sent since start
  std::uint64_t heartbeats_acked = 0;
  std::uint64_t batches = 0;  // published
  std::uint64_t batches_acked = 0;
  std::uint64_t link_errors = 0;  // connection attempts failed or connections lost
  std::uint64_t publish_errors = 0;
  double rss_bytes = 0;
  std::string last_error;       // one example (enrolment)
  std::string last_link_error;  // one example (connection)
};

class FleetSimulator {
 public:
  explicit FleetSimulator(FleetOptions options, Clock& clock = SystemClock::instance());
  ~FleetSimulator();
  FleetSimulator(const FleetSimulator&) = delete;
  FleetSimulator& operator=(const FleetSimulator&) = delete;

  // Starts the loops and begins starting nodes in the background (at start_rate, at most
  // enrol_concurrency enrolling). Errors: kInvalidArgument (options, CA file).
  Status start();
  // Stops every node (DISCONNECT) and the loops. Idempotent.
  void stop();
  // True once every node has been started (enrolled or not).
  bool all_started() const;
  FleetSnapshot snapshot() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// "enrolled 950/1000 connected 948 hb/s 99.8 batches/s 199 errors 2 rss 512MiB (...)".
std::string status_line(const FleetSnapshot& now, const FleetSnapshot& before, double seconds);

}  // namespace ganglion::sim
