// Link: the transport side of one client connection, as the broker core sees it.
//
// A listener (TCP, TLS, WebSocket, Unix socket) or the in-process client implements Link;
// the broker core calls it to send packets and to close. The core never touches a socket.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "mqtt/packet.h"

namespace ganglion::broker {

// What the transport knows about the peer, fixed when the connection is accepted.
struct TransportInfo {
  std::string listener;  // "tcp", "tls", "ws", "unix", "inproc"
  std::string remote;    // "ip:port", a socket path, or the in-process client's name
  // Subject common name of a verified client certificate (mutual TLS), if any.
  std::optional<std::string> certificate_cn;
  // True for the node's own parts connected in process.
  bool internal = false;
};

class Link {
 public:
  virtual ~Link() = default;

  // Queues `packet` for the peer, encoded in the link's protocol version. Thread-safe:
  // called from any thread (deliveries come from publishers' threads). Never blocks on I/O.
  // Returns false when the packet was not sent because it exceeds the peer's Maximum
  // Packet Size (MQTT 5 says to discard it as if it had been delivered) or the link is closed.
  virtual bool send(const mqtt::Packet& packet) = 0;
  // The same for a PUBLISH, without building a Packet (the fan-out path). The default
  // wraps it in a Packet; transports that encode override it.
  virtual bool send_publish(const mqtt::Publish& publish) { return send(mqtt::Packet(publish)); }
  // Sets the protocol version used to encode (after CONNECT) and the largest packet the peer
  // accepts (MQTT 5 Maximum Packet Size; 0 = no limit). Called before the CONNACK is sent.
  virtual void set_protocol(mqtt::ProtocolVersion version, std::uint32_t max_packet_size) = 0;
  // Flushes what is queued, then closes. Thread-safe, idempotent. The transport then calls
  // Connection::on_closed() on its own thread.
  virtual void close() = 0;
  // Bytes queued but not yet written, for slow-consumer bounds.
  virtual std::size_t queued_bytes() const = 0;
};

}  // namespace ganglion::broker
