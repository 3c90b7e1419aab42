// MqttClient: an MQTT 3.1.1 / 5.0 client over TCP or TLS that stays connected.
//
// A thin Asio adapter around ClientSession (the protocol) and Backoff (the reconnect policy):
// it resolves, connects, does the TLS handshake (server verified against a CA file or the
// system's CAs, SNI and host name check, optional client certificate for mutual TLS), feeds
// bytes both ways, arms the session's timer, and after any loss reconnects with exponential
// backoff and full jitter. Unacknowledged QoS 1/2 publishes survive reconnects (see
// ClientSession), so a caller may delete its copy of the data once the completion of the
// publish reports success: that is when PUBACK / PUBCOMP arrived.
//
// Thread model: all work runs on the one io_context given (one loop of the IoPool per
// client). Public methods are thread-safe: they post to that loop. Callbacks (message
// handler, completions, state changes) run on the loop; they must not block.
// Lifetime: destroy the client on its loop thread or once the loop has stopped; after
// stop() no reconnect happens and pending publishes complete with kCancelled.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "client/backoff.h"
#include "client/session.h"

namespace boost::asio {
class io_context;
}

namespace ganglion::client {

struct TlsClientOptions {
  std::string ca_file;           // PEM CAs that sign the server; empty: the system's CAs
  std::string certificate_file;  // PEM client certificate chain (mutual TLS), optional
  std::string key_file;          // its PEM private key
  std::string server_name;       // SNI and name checked in the certificate; default: URL host
  bool verify = true;            // false only for tests against self-signed servers
};

struct MqttClientOptions {
  // tcp://host:port or tls://host:port (mqtt:// and mqtts:// are accepted too; the port
  // defaults to 1883 / 8883).
  std::string url;
  TlsClientOptions tls;
  SessionOptions session;
  BackoffOptions backoff;
  // Resolve + TCP connect + TLS handshake; the CONNACK wait is session.connack_timeout.
  std::chrono::milliseconds connect_timeout{10'000};
};

struct BrokerAddress {
  bool tls = false;
  std::string host;
  std::uint16_t port = 0;
};
// Errors: kInvalidArgument naming the URL.
Result<BrokerAddress> parse_broker_url(std::string_view url);

enum class ConnectionState : std::uint8_t {
  kIdle,        // not started, or stopped
  kConnecting,  // resolving, connecting, TLS handshake, waiting for CONNACK
  kConnected,   // CONNACK accepted
  kBackingOff,  // lost or refused; the next attempt is scheduled
};
std::string_view to_string(ConnectionState s);

struct ClientStats {
  ConnectionState state = ConnectionState::kIdle;
  std::uint64_t connects = 0;    // successful CONNACKs
  std::uint64_t reconnects = 0;  // attempts scheduled after a failure or loss
  std::uint64_t publishes_sent = 0;
  std::uint64_t publishes_acked = 0;
  std::uint64_t messages_received = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  std::size_t inflight = 0;
  std::size_t queued = 0;
  std::string last_error;  // why the last connection ended or failed
};

using MessageHandler = std::function<void(const mqtt::Publish& message)>;
using StateHandler = std::function<void(ConnectionState state, const Status& why)>;

class MqttClient {
 public:
  MqttClient(boost::asio::io_context& loop, Clock& clock, MqttClientOptions options);
  ~MqttClient();
  MqttClient(const MqttClient&) = delete;
  MqttClient& operator=(const MqttClient&) = delete;

  // Set before start().
  void on_message(MessageHandler handler);
  void on_state(StateHandler handler);

  // Checks the URL and loads the TLS files (errors: kInvalidArgument), then starts
  // connecting in the background. Calling it again after stop() is an error.
  Status start();
  // Sends DISCONNECT when connected, closes, stops reconnecting; what is still queued or in
  // flight completes with kCancelled. Idempotent.
  void stop();

  // Queues a publish; `done` runs on the loop (see PublishCompletion in session.h).
  void publish(mqtt::Publish message, PublishCompletion done = {});
  void publish(std::string topic, std::string payload, mqtt::QoS qos, bool retain = false,
               PublishCompletion done = {});
  // Subscriptions are remembered and restored when the server lost the session.
  void subscribe(std::vector<mqtt::Subscription> subscriptions, AckCompletion done = {},
                 mqtt::Properties properties = {});
  void unsubscribe(std::vector<std::string> filters, AckCompletion done = {});

  ConnectionState state() const;
  ClientStats stats() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace ganglion::client
