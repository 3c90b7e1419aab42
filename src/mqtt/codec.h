// Sans-I/O MQTT codec: bytes in, packets out; packets in, bytes out.
//
// No sockets, no clock, no exceptions. Every error is a Status built with mqtt::error(), so
// mqtt::reason_of(status) gives the MQTT 5 reason code the peer should be told (in a
// CONNACK before the session exists, in a DISCONNECT after), e.g. 0x81 Malformed Packet,
// 0x82 Protocol Error, 0x84 Unsupported Protocol Version, 0x95 Packet too large.
//
// Wire format (spec 2.1): byte 1 = packet type << 4 | flags; then the remaining length as a
// variable byte integer (1-4 bytes, 7 bits each, least significant first, high bit =
// "more"); then the variable header and payload. MQTT 5 adds a property block (a variable
// byte integer length, then identifier/value pairs) after the variable header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "base/status.h"
#include "mqtt/packet.h"

namespace ganglion::mqtt {

// Largest remaining length a variable byte integer can carry (spec 1.5.5).
inline constexpr std::uint32_t kMaxRemainingLength = 268'435'455;
// Largest whole packet: 1 type byte + 4 length bytes + kMaxRemainingLength.
inline constexpr std::uint32_t kMaxPacketSize = kMaxRemainingLength + 5;

// Which side of the connection the decoder sits on. A server rejects packets only a server
// sends (CONNACK, SUBACK, UNSUBACK, PINGRESP) with 0x82 Protocol Error, requires CONNECT
// first and exactly once, and rejects Subscription Identifiers in PUBLISH; a client rejects
// the packets only a client sends. kAny accepts both directions (tools, tests, fuzzing).
enum class Role : std::uint8_t { kServer, kClient, kAny };

struct DecoderOptions {
  Role role = Role::kServer;
  // Known in advance by clients and bridges. When unset, the first packet must be CONNECT
  // and its protocol level sets the version.
  std::optional<ProtocolVersion> version;
  // Packets whose total size (fixed header included) exceeds this are rejected with
  // 0x95 Packet too large as soon as their length is known, before the body is buffered.
  std::uint32_t maximum_packet_size = kMaxPacketSize;
};

// Incremental decoder for one connection.
//
// Feed bytes as they arrive (any fragmentation, several packets per chunk), then call next()
// until it returns nullopt. Either copy bytes in with feed(), or read the socket straight
// into prepare()/commit() to skip that copy; PUBLISH payloads are then copied once, into
// their SharedBytes. The internal buffer is reused across packets.
//
// After an error the decoder is failed: next() keeps returning the same error and the
// connection should be closed (after a CONNACK/DISCONNECT carrying reason_of(error)).
// Thread: not thread-safe; one decoder per connection, driven by one executor.
class Decoder {
 public:
  explicit Decoder(DecoderOptions options = {});

  // Appends `bytes` to the buffer.
  void feed(std::string_view bytes);
  // Writable space for at least `n` more bytes at the end of the buffer; valid until the
  // next call on this decoder. Call commit() with the number of bytes written.
  std::span<char> prepare(std::size_t n);
  void commit(std::size_t n);

  // The next complete packet; nullopt when more bytes are needed; an error when the input
  // violates the protocol (see the header comment for the reason codes).
  Result<std::optional<Packet>> next();

  // The version in use: set in the options, or learnt from CONNECT. Also set when a CONNECT
  // failed after a known protocol level was read, so the CONNACK can use the right format.
  std::optional<ProtocolVersion> version() const { return version_; }
  void set_version(ProtocolVersion v) { version_ = v; }
  // E.g. after CONNACK, to apply the Maximum Packet Size a server announced.
  void set_maximum_packet_size(std::uint32_t n) { max_packet_size_ = n; }

  // Frees the buffer when nothing is buffered and its capacity exceeds `keep` bytes, so an
  // idle connection holds no read buffer. Call after next() returned nullopt. A transport
  // that reads elsewhere and feeds only what it read passes 0.
  void release_idle_buffer(std::size_t keep = 4096);

  bool failed() const { return !error_.ok(); }
  const Status& error_status() const { return error_; }
  // Bytes fed but not consumed yet.
  std::size_t buffered() const { return end_ - head_; }

 private:
  Result<std::optional<Packet>> fail(Status s);

  Role role_;
  std::optional<ProtocolVersion> version_;
  std::uint32_t max_packet_size_;
  bool seen_connect_ = false;
  std::string buf_;  // bytes [head_, end_) are fed and not yet consumed
  std::size_t head_ = 0;
  std::size_t end_ = 0;
  Status error_;
};

// Decodes exactly one packet from `bytes` (fixed header included; trailing bytes are an
// error). `version` is used for every packet but CONNECT, which carries its own.
Result<Packet> decode_packet(std::string_view bytes, ProtocolVersion version,
                             Role role = Role::kAny);

// Appends the wire bytes of `packet` in `version` to `out`. For 3.1.1 and 3.1, properties
// are dropped and reason codes become 3.1.1 return codes (CONNACK 0-5, SUBACK 0x80 for any
// failure). Errors (0x82 Protocol Error when the packet cannot be expressed, e.g. AUTH in
// 3.1.1, QoS 1 with packet id 0, a string over 65535 bytes, a packet over
// kMaxRemainingLength) leave `out` unchanged.
Status encode(const Packet& packet, ProtocolVersion version, std::string& out);

// For fan-out: appends everything of `publish` except its payload, so a broker can send
// these bytes followed by publish.payload (scatter/gather) without copying the payload.
Status encode_publish_header(const Publish& publish, ProtocolVersion version, std::string& out);

// Encodes into one reused buffer. Thread: one per connection/executor.
class Encoder {
 public:
  explicit Encoder(ProtocolVersion version) : version_(version) {}
  // The bytes of `packet`, valid until the next call.
  Result<std::string_view> encode(const Packet& packet) {
    buffer_.clear();
    GANGLION_RETURN_IF_ERROR(mqtt::encode(packet, version_, buffer_));
    return std::string_view(buffer_);
  }
  ProtocolVersion version() const { return version_; }
  void set_version(ProtocolVersion v) { version_ = v; }

 private:
  ProtocolVersion version_;
  std::string buffer_;
};

// True when `s` is a well-formed MQTT UTF-8 string (spec 1.5.4): valid UTF-8, no overlong
// forms, no surrogates (U+D800-U+DFFF), nothing above U+10FFFF, no U+0000.
bool is_valid_mqtt_utf8(std::string_view s);

}  // namespace ganglion::mqtt
