// DeviceFleet: hundreds of simulated sensors (devices_generator.h) publishing to an MQTT
// broker — normally an edge node — from one process, for demos and load.
//
// Each device publishes at `rate` messages/s (telemetry periodically, events as a Poisson
// process), telemetry at QoS 0 and events at QoS 1 by default, on
// sites/<site>/<kind>/<device>/{telemetry|events}. Injected anomalies are appended to the
// ground-truth JSONL file (one line per anomaly, written when it ends; those still open at
// stop() are written with "truncated":true).
//
// Connections: one MqttClient per device by default (client id <site>-<device>, the way real
// devices connect), or one per `devices_per_connection` devices (client id
// <site>-sim-<n>) to save sockets and memory; topics and payloads are the same either way.
// Measured (1000 devices at 2/s against a local edge, 2-core VM, Debug build): one connection
// per device 56 MiB RSS and 0.29 CPU cores; 25 devices per connection 21 MiB and 0.21 cores
// (about 36 KiB per MqttClient connection).
// Clients reconnect with backoff when the broker goes away; while a device's connection is
// down its messages are not sent (counted as `offline`: the simulated devices do not buffer).
//
// Threads: `io_threads` event loops carry the clients; one generator thread wakes up for
// each due message, builds it and hands it to its client (MqttClient::publish posts to the
// loop) and writes the ground truth. start()/stop() from one controlling thread;
// snapshot() from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "mqtt/packet.h"
#include "sim/devices_generator.h"

namespace ganglion::sim {

struct DeviceFleetOptions {
  std::string broker_url = "tcp://127.0.0.1:1883";
  std::string site = "factory-eu";
  std::size_t devices = 200;
  std::vector<DeviceKind> kinds{std::begin(kAllDeviceKinds),
                                std::end(kAllDeviceKinds)};  // round robin
  double rate = 2.0;                                         // messages per second per device
  double anomaly_rate = 0.01;  // probability per message of starting an anomaly
  std::uint64_t seed = 42;
  std::string ground_truth_path;  // empty: none
  std::size_t devices_per_connection = 1;
  std::size_t io_threads = 1;
  mqtt::ProtocolVersion version = mqtt::ProtocolVersion::kV311;
  mqtt::QoS telemetry_qos = mqtt::QoS::kAtMostOnce;
  mqtt::QoS event_qos = mqtt::QoS::kAtLeastOnce;
  std::string username;  // optional, for every connection
  std::string password;
  std::string ca_file;  // tls:// brokers
};

struct DeviceFleetSnapshot {
  std::size_t devices = 0;
  std::size_t connections = 0;
  std::size_t connected = 0;
  std::uint64_t telemetry = 0;  // messages handed to a connected client
  std::uint64_t events = 0;
  std::uint64_t acked = 0;         // QoS 1 PUBACKs
  std::uint64_t offline = 0;       // not sent: the connection was down
  std::uint64_t anomalies = 0;     // anomalies started
  std::uint64_t ground_truth = 0;  // lines written
  std::uint64_t link_errors = 0;   // failed attempts and lost connections
  std::uint64_t publish_errors = 0;
  std::uint64_t bytes = 0;               // topic + payload bytes of the messages sent
  std::uint64_t per_kind[6] = {};        // messages sent, indexed by DeviceKind
  std::uint64_t acked_per_kind[6] = {};  // of those, acknowledged (QoS 1)
  // Of those, QoS 1 publishes that are over: acknowledged, refused, or failed/cancelled with
  // the connection (the broker may still have received those). QoS 0 ones are not counted.
  std::uint64_t settled_per_kind[6] = {};
  double rss_bytes = 0;
};

class DeviceFleet {
 public:
  explicit DeviceFleet(DeviceFleetOptions options, Clock& clock = SystemClock::instance());
  ~DeviceFleet();
  DeviceFleet(const DeviceFleet&) = delete;
  DeviceFleet& operator=(const DeviceFleet&) = delete;

  // Opens the ground-truth file, starts the clients and the generator. Errors:
  // kInvalidArgument (options, URL, file).
  Status start();
  // Stops generating, writes the open anomalies, disconnects. Idempotent.
  void stop();
  DeviceFleetSnapshot snapshot() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// "devices 200 connected 200/200 | msg/s 400.1 (telemetry 200.3 events 199.8) acked/s ... |
//  anomalies 12 | offline 0 errors: link 0 publish 0 | rss 45 MiB"
std::string device_status_line(const DeviceFleetSnapshot& now, const DeviceFleetSnapshot& before,
                               double seconds);
// One JSON object with the totals (for scripts and tests).
std::string device_summary_json(const DeviceFleetSnapshot& s, double seconds);

}  // namespace ganglion::sim
