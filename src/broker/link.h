// Link: the transport side of one client connection, as the broker core sees it.
//
// A listener (TCP, TLS, WebSocket, Unix socket) or the in-process client implements Link;
// the broker core calls it to send packets and to close. The core never touches a socket.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

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

// A PUBLISH without properties (an MQTT 5 link writes an empty property block), as the
// fan-out path sends it. The views are only used during the call.
struct PublishView {
  std::string_view topic;
  const mqtt::SharedBytes& payload;
  std::uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  std::uint16_t packet_id = 0;  // non-zero for QoS 1 and 2
  std::uint64_t stored_id = 0;  // see Link::send_publish
};

// Remaining Length of `p` in `version`; nullopt when it cannot be encoded (a topic over
// 65535 bytes, a packet over mqtt::kMaxRemainingLength).
inline std::optional<std::size_t> plain_publish_remaining(const PublishView& p,
                                                          mqtt::ProtocolVersion version) {
  if (p.topic.size() > 0xFFFF) return std::nullopt;
  const std::size_t n = 2 + p.topic.size() + (p.qos != 0 ? 2 : 0) +
                        (version == mqtt::ProtocolVersion::kV5 ? 1 : 0) + p.payload.size();
  if (n > 268'435'455) return std::nullopt;
  return n;
}

// Appends the wire bytes of `p`, whose Remaining Length is `remaining` (from
// plain_publish_remaining), the same bytes mqtt::encode writes for such a PUBLISH.
inline void append_plain_publish(const PublishView& p, mqtt::ProtocolVersion version,
                                 std::size_t remaining, std::string& out) {
  char head[8];
  std::size_t n = 0;
  head[n++] = static_cast<char>(0x30 | (p.dup ? 0x08 : 0) | (p.qos << 1) | (p.retain ? 1 : 0));
  do {
    auto byte = static_cast<unsigned char>(remaining & 0x7F);
    remaining >>= 7;
    if (remaining) byte |= 0x80;
    head[n++] = static_cast<char>(byte);
  } while (remaining);
  head[n++] = static_cast<char>(p.topic.size() >> 8);
  head[n++] = static_cast<char>(p.topic.size() & 0xFF);
  out.reserve(out.size() + n + p.topic.size() + 3 + p.payload.size());
  out.append(head, n);
  out.append(p.topic);
  if (p.qos != 0) {
    out.push_back(static_cast<char>(p.packet_id >> 8));
    out.push_back(static_cast<char>(p.packet_id & 0xFF));
  }
  if (version == mqtt::ProtocolVersion::kV5) out.push_back('\0');  // no properties
  out.append(p.payload.view());
}

class Link {
 public:
  virtual ~Link() = default;

  // Queues `packet` for the peer, encoded in the link's protocol version. Thread-safe:
  // called from any thread (deliveries come from publishers' threads). Never blocks on I/O.
  // Returns false when the packet was not sent because it exceeds the peer's Maximum
  // Packet Size (MQTT 5 says to discard it as if it had been delivered) or the link is closed.
  virtual bool send(const mqtt::Packet& packet) = 0;
  // The same for a PUBLISH, without building a Packet (the fan-out path). The default
  // wraps it in a Packet; transports that encode override it. `stored_id` is the id under
  // which a persistent session journaled this delivery (0: not journaled). It is stable
  // across broker restarts and never reused, so a consumer that made the message durable
  // itself can recognise the redelivery that follows a crash; only the in-process client
  // hands it on (DeliveryAck::stored_id), nothing puts it on the wire.
  virtual bool send_publish(const mqtt::Publish& publish, std::uint64_t stored_id) {
    (void)stored_id;
    return send(mqtt::Packet(publish));
  }
  // The same without building an mqtt::Publish at all; transports that encode write the
  // bytes directly. The default builds one.
  virtual bool send_plain_publish(const PublishView& p) {
    mqtt::Publish publish;
    publish.topic = std::string(p.topic);
    publish.payload = p.payload;
    publish.qos = static_cast<mqtt::QoS>(p.qos);
    publish.retain = p.retain;
    publish.dup = p.dup;
    publish.packet_id = p.packet_id;
    return send_publish(publish, p.stored_id);
  }
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
