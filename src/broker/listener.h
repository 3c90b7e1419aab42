// MqttListener: accepts MQTT connections on one transport and feeds them to the Broker.
//
// Transports: "tcp" (host:port), "tls" (host:port, TLS 1.2/1.3, optional mutual TLS with the
// client certificate's CN as identity), "ws" (MQTT over WebSocket, subprotocol "mqtt", on
// host:port, any path), "unix" (a socket path). Each connection lives on one loop of the
// IoPool; the listener spreads them round-robin.
//
// A connection that sends no complete CONNECT within connect_timeout is closed (slowloris);
// after CONNECT the broker's keep-alive applies.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "base/status.h"
#include "broker/broker.h"
#include "net/io_pool.h"

namespace ganglion::broker {

struct TlsOptions {
  std::string certificate_file;  // PEM chain of the server
  std::string key_file;          // PEM private key
  std::string ca_file;           // PEM CAs that sign client certificates (mutual TLS)
  bool require_client_certificate = false;
};

struct ListenerOptions {
  std::string transport = "tcp";           // tcp, tls, ws, unix
  std::string address = "127.0.0.1:1883";  // host:port, or a path for unix
  TlsOptions tls;
  std::chrono::milliseconds connect_timeout{10'000};
  std::size_t read_buffer = 16 * 1024;
};

// Parses "tcp://127.0.0.1:1883", "tls://0.0.0.0:8883", "ws://127.0.0.1:8080",
// "unix:///run/ganglion/mqtt.sock" into transport and address.
Result<ListenerOptions> parse_listener_url(std::string_view url);

class MqttListener {
 public:
  MqttListener(Broker& broker, net::IoPool& pool, ListenerOptions options);
  ~MqttListener();
  MqttListener(const MqttListener&) = delete;
  MqttListener& operator=(const MqttListener&) = delete;

  // Binds and starts accepting. Errors: bad address, port in use, unreadable certificates.
  Status start();
  // Stops accepting; live connections continue until the broker shuts them down.
  void stop();
  // The bound TCP port (after listening on port 0); 0 for unix sockets.
  std::uint16_t port() const;
  // "tcp://127.0.0.1:40123" with the port actually bound.
  std::string url() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace ganglion::broker
