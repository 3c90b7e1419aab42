// Bridge: forwards messages between the local broker and an upstream MQTT broker, like
// Mosquitto's bridge.
//
// Locally it is an InProcessClient (same ACLs and routing as any client) with a persistent
// session; upstream an MqttClient (TCP or TLS, 3.1.1 or 5.0, reconnecting with backoff).
//
//   out:  local  <local_prefix><filter>   ->  remote <remote_prefix><rest of the topic>
//   in:   remote <remote_prefix><filter>  ->  local  <local_prefix><rest of the topic>
//
// Delivery (out): a QoS 1/2 message taken from the local broker is acknowledged to the local
// broker only after the upstream broker acknowledged the forwarded copy (PUBACK / PUBCOMP).
// While the upstream is down, at most `local_inflight` messages wait in the MqttClient and
// the rest stay queued in the bridge's local session (bounded by the broker's
// mqtt.max_queued_messages): nothing is lost across an upstream outage or restart, and
// duplicates are possible (at-least-once). QoS 0 is forwarded at most once.
// Delivery (in): a message from upstream is published locally, then acknowledged upstream
// when the handler returns (the local broker is in the same process).
//
// Loops: the local subscriptions use No Local, so what the bridge publishes locally is not
// sent back up. Upstream, MQTT 5 subscriptions use No Local too, and forwarded messages carry
// the user property "ganglion-bridge: <local client id>" (dropped when seen coming back);
// with MQTT 3.1.1 an echo of a message the bridge just sent (same topic and payload, within
// the last 1024 messages) is dropped.
//
// Thread: runs on one io_context; start()/stop() may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/config.h"
#include "base/status.h"
#include "client/mqtt_client.h"
#include "mqtt/packet.h"

namespace boost::asio {
class io_context;
}

namespace ganglion::broker {

class Broker;

struct BridgeRule {
  enum class Direction : std::uint8_t { kOut, kIn, kBoth };
  Direction direction = Direction::kOut;
  std::string filter = "#";  // after the prefix on either side
  mqtt::QoS qos = mqtt::QoS::kAtLeastOnce;
  std::string remote_prefix;  // e.g. "sites/plant-7/"
  std::string local_prefix;
};

// Parses one rule of the edge configuration (bridge.out / bridge.in):
//   "<filter> [<qos>] [<remote-prefix>] [<local-prefix>]"
// separated by spaces; qos 0, 1 or 2 (default 1); "-" stands for an empty prefix (to give a
// local prefix only). Errors: kInvalidArgument naming the rule.
Result<BridgeRule> parse_bridge_rule(std::string_view text, BridgeRule::Direction direction);

struct BridgeOptions {
  // The upstream connection: url, TLS files, client id, credentials, protocol version.
  // Give it a stable client id with clean_start false and a session expiry, so the upstream
  // broker queues "in" messages while the link is down (the edge node does).
  client::MqttClientOptions remote;
  std::string local_client_id = "ganglion-bridge";
  // Seconds the local broker keeps the bridge's session while the bridge is stopped.
  std::uint32_t local_session_expiry = 86'400;
  // QoS 1/2 messages taken from the local broker and not yet acknowledged upstream.
  std::uint16_t local_inflight = 256;
  std::vector<BridgeRule> rules;
};

struct BridgeStats {
  std::uint64_t forwarded_out = 0;  // acknowledged upstream (QoS 0: handed to the client)
  std::uint64_t forwarded_in = 0;   // published locally
  std::uint64_t refused_out = 0;    // upstream answered with a failure reason (acked locally)
  std::uint64_t loops_dropped = 0;  // our own messages seen coming back
  client::ClientStats remote;
};

class Bridge {
 public:
  Bridge(Broker& broker, boost::asio::io_context& loop, Clock& clock, BridgeOptions options);
  ~Bridge();
  Bridge(const Bridge&) = delete;
  Bridge& operator=(const Bridge&) = delete;

  // Connects locally and starts connecting upstream. Errors: kInvalidArgument for a bad URL,
  // unreadable TLS files or an invalid rule.
  Status start();
  // Stops forwarding: upstream DISCONNECT, local DISCONNECT (the local session keeps
  // queuing until it expires). Idempotent.
  void stop();

  client::ConnectionState remote_state() const;
  BridgeStats stats() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// The edge node's bridge from its configuration (the bridge.* keys of edge_config.cc),
// started: nullptr when bridge.url is empty. Errors: kInvalidArgument for bad settings.
Result<std::unique_ptr<Bridge>> start_bridge(const Config& config, Broker& broker,
                                             boost::asio::io_context& loop, Clock& clock);

}  // namespace ganglion::broker
