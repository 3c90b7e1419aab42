// MQTT 3.1, 3.1.1 and 5.0 control packets as plain value types.
//
// These types carry no I/O and no session state. The codec (codec.h) turns bytes into them
// and back. A decoded packet owns its strings; the PUBLISH payload lives in a shared,
// immutable buffer (SharedBytes) so that fanning one message out to many subscribers copies
// a reference count, not the bytes.
//
// Version differences: fields that exist only in MQTT 5 (properties, most reason codes) are
// ignored by the 3.1.1 encoder and left at their defaults by the 3.1.1 decoder.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "base/status.h"

namespace ganglion::mqtt {

// The protocol level byte of CONNECT.
enum class ProtocolVersion : std::uint8_t {
  kV31 = 3,   // MQTT 3.1 (protocol name "MQIsdp"), decoded and encoded like 3.1.1
  kV311 = 4,  // MQTT 3.1.1
  kV5 = 5,    // MQTT 5.0
};
std::string_view to_string(ProtocolVersion v);

// Fixed header packet type (high nibble of byte 1).
enum class PacketType : std::uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
  kAuth = 15,  // MQTT 5 only
};
std::string_view to_string(PacketType t);

enum class QoS : std::uint8_t { kAtMostOnce = 0, kAtLeastOnce = 1, kExactlyOnce = 2 };

// MQTT 5.0 reason codes (spec 2.4). Several share a value; the aliases name the meaning
// in the packet where they are used.
enum class ReasonCode : std::uint8_t {
  kSuccess = 0x00,
  kNormalDisconnection = 0x00,
  kGrantedQoS0 = 0x00,
  kGrantedQoS1 = 0x01,
  kGrantedQoS2 = 0x02,
  kDisconnectWithWillMessage = 0x04,
  kNoMatchingSubscribers = 0x10,
  kNoSubscriptionExisted = 0x11,
  kContinueAuthentication = 0x18,
  kReAuthenticate = 0x19,
  kUnspecifiedError = 0x80,
  kMalformedPacket = 0x81,
  kProtocolError = 0x82,
  kImplementationSpecificError = 0x83,
  kUnsupportedProtocolVersion = 0x84,
  kClientIdentifierNotValid = 0x85,
  kBadUserNameOrPassword = 0x86,
  kNotAuthorized = 0x87,
  kServerUnavailable = 0x88,
  kServerBusy = 0x89,
  kBanned = 0x8A,
  kServerShuttingDown = 0x8B,
  kBadAuthenticationMethod = 0x8C,
  kKeepAliveTimeout = 0x8D,
  kSessionTakenOver = 0x8E,
  kTopicFilterInvalid = 0x8F,
  kTopicNameInvalid = 0x90,
  kPacketIdentifierInUse = 0x91,
  kPacketIdentifierNotFound = 0x92,
  kReceiveMaximumExceeded = 0x93,
  kTopicAliasInvalid = 0x94,
  kPacketTooLarge = 0x95,
  kMessageRateTooHigh = 0x96,
  kQuotaExceeded = 0x97,
  kAdministrativeAction = 0x98,
  kPayloadFormatInvalid = 0x99,
  kRetainNotSupported = 0x9A,
  kQoSNotSupported = 0x9B,
  kUseAnotherServer = 0x9C,
  kServerMoved = 0x9D,
  kSharedSubscriptionsNotSupported = 0x9E,
  kConnectionRateExceeded = 0x9F,
  kMaximumConnectTime = 0xA0,
  kSubscriptionIdentifiersNotSupported = 0xA1,
  kWildcardSubscriptionsNotSupported = 0xA2,
};
// The spec's name for a reason code ("Malformed Packet"); "Success" for 0x00.
std::string_view to_string(ReasonCode r);

// Builds an error Status that carries an MQTT reason code. The message reads
// "[mqtt 0x81 Malformed Packet] <what>"; reason_of() recovers the code, also after
// Status::with_context().
Status error(ReasonCode reason, std::string_view what);
// The reason code attached by error(), or nullopt for an ok Status or one made elsewhere.
std::optional<ReasonCode> reason_of(const Status& status);

// An immutable, reference-counted byte buffer. Copying a SharedBytes copies a pointer.
// Empty SharedBytes hold no allocation. Thread: safe to share read-only across threads.
class SharedBytes {
 public:
  SharedBytes() = default;
  explicit SharedBytes(std::string bytes)
      : data_(bytes.empty() ? nullptr : std::make_shared<const std::string>(std::move(bytes))) {}
  explicit SharedBytes(std::string_view bytes)
      : data_(bytes.empty() ? nullptr : std::make_shared<const std::string>(bytes)) {}
  explicit SharedBytes(std::shared_ptr<const std::string> data) : data_(std::move(data)) {}

  std::string_view view() const { return data_ ? std::string_view(*data_) : std::string_view(); }
  std::size_t size() const { return data_ ? data_->size() : 0; }
  bool empty() const { return size() == 0; }
  const std::shared_ptr<const std::string>& shared() const { return data_; }

  // Compares contents, not identity.
  friend bool operator==(const SharedBytes& a, const SharedBytes& b) {
    return a.view() == b.view();
  }

 private:
  std::shared_ptr<const std::string> data_;
};

using UserProperty = std::pair<std::string, std::string>;

// All MQTT 5 properties (spec 2.2.2.2). An unset optional means "absent on the wire".
// Which properties a packet may carry is checked by the decoder (and documented per field);
// the encoder writes whatever is set, in identifier order, user properties last in order.
struct Properties {
  std::optional<std::uint8_t> payload_format_indicator;      // 0x01 PUBLISH, will: 0 bytes, 1 UTF-8
  std::optional<std::uint32_t> message_expiry_interval;      // 0x02 PUBLISH, will (seconds)
  std::optional<std::string> content_type;                   // 0x03 PUBLISH, will
  std::optional<std::string> response_topic;                 // 0x08 PUBLISH, will
  std::optional<std::string> correlation_data;               // 0x09 PUBLISH, will (binary)
  std::vector<std::uint32_t> subscription_identifiers;       // 0x0B PUBLISH (many), SUBSCRIBE (one)
  std::optional<std::uint32_t> session_expiry_interval;      // 0x11 CONNECT, CONNACK, DISCONNECT
  std::optional<std::string> assigned_client_identifier;     // 0x12 CONNACK
  std::optional<std::uint16_t> server_keep_alive;            // 0x13 CONNACK
  std::optional<std::string> authentication_method;          // 0x15 CONNECT, CONNACK, AUTH
  std::optional<std::string> authentication_data;            // 0x16 CONNECT, CONNACK, AUTH (binary)
  std::optional<std::uint8_t> request_problem_information;   // 0x17 CONNECT
  std::optional<std::uint32_t> will_delay_interval;          // 0x18 will
  std::optional<std::uint8_t> request_response_information;  // 0x19 CONNECT
  std::optional<std::string> response_information;           // 0x1A CONNACK
  std::optional<std::string> server_reference;               // 0x1C CONNACK, DISCONNECT
  std::optional<std::string> reason_string;                  // 0x1F acks, DISCONNECT, AUTH
  std::optional<std::uint16_t> receive_maximum;              // 0x21 CONNECT, CONNACK
  std::optional<std::uint16_t> topic_alias_maximum;          // 0x22 CONNECT, CONNACK
  std::optional<std::uint16_t> topic_alias;                  // 0x23 PUBLISH
  std::optional<std::uint8_t> maximum_qos;                   // 0x24 CONNACK
  std::optional<std::uint8_t> retain_available;              // 0x25 CONNACK
  std::vector<UserProperty> user_properties;                 // 0x26 every packet, ordered
  std::optional<std::uint32_t> maximum_packet_size;          // 0x27 CONNECT, CONNACK
  std::optional<std::uint8_t> wildcard_subscription_available;    // 0x28 CONNACK
  std::optional<std::uint8_t> subscription_identifier_available;  // 0x29 CONNACK
  std::optional<std::uint8_t> shared_subscription_available;      // 0x2A CONNACK

  // True when no property is set (cheaper than comparing with Properties{}).
  bool empty() const {
    return !payload_format_indicator && !message_expiry_interval && !content_type &&
           !response_topic && !correlation_data && subscription_identifiers.empty() &&
           !session_expiry_interval && !assigned_client_identifier && !server_keep_alive &&
           !authentication_method && !authentication_data && !request_problem_information &&
           !will_delay_interval && !request_response_information && !response_information &&
           !server_reference && !reason_string && !receive_maximum && !topic_alias_maximum &&
           !topic_alias && !maximum_qos && !retain_available && user_properties.empty() &&
           !maximum_packet_size && !wildcard_subscription_available &&
           !subscription_identifier_available && !shared_subscription_available;
  }
  friend bool operator==(const Properties&, const Properties&) = default;
};

struct Will {
  std::string topic;
  std::string payload;  // binary
  QoS qos = QoS::kAtMostOnce;
  bool retain = false;
  Properties properties;  // MQTT 5 will properties
  friend bool operator==(const Will&, const Will&) = default;
};

struct Connect {
  // Set by the decoder from the protocol level byte. The encoder writes the version it is
  // given, not this field.
  ProtocolVersion version = ProtocolVersion::kV5;
  bool clean_start = true;       // "clean session" in 3.1.1
  std::uint16_t keep_alive = 0;  // seconds
  std::string client_id;
  std::optional<Will> will;
  std::optional<std::string> username;
  std::optional<std::string> password;  // binary
  Properties properties;
  friend bool operator==(const Connect&, const Connect&) = default;
};

struct Connack {
  bool session_present = false;
  // In 3.1.1 the return codes 0-5 map to kSuccess, kUnsupportedProtocolVersion,
  // kClientIdentifierNotValid, kServerUnavailable, kBadUserNameOrPassword, kNotAuthorized.
  ReasonCode reason = ReasonCode::kSuccess;
  Properties properties;
  friend bool operator==(const Connack&, const Connack&) = default;
};

struct Publish {
  bool dup = false;
  QoS qos = QoS::kAtMostOnce;
  bool retain = false;
  std::string topic;            // may be empty in MQTT 5 when properties.topic_alias is set
  std::uint16_t packet_id = 0;  // non-zero for QoS 1 and 2, absent on the wire for QoS 0
  Properties properties;
  SharedBytes payload;
  friend bool operator==(const Publish&, const Publish&) = default;
};

// PUBACK, PUBREC, PUBREL and PUBCOMP share one shape. In 3.1.1 only packet_id is on the wire.
template <PacketType kType>
struct PublishResponse {
  static constexpr PacketType kPacketType = kType;
  std::uint16_t packet_id = 0;
  ReasonCode reason = ReasonCode::kSuccess;
  Properties properties;
  friend bool operator==(const PublishResponse&, const PublishResponse&) = default;
};
using Puback = PublishResponse<PacketType::kPuback>;
using Pubrec = PublishResponse<PacketType::kPubrec>;
using Pubrel = PublishResponse<PacketType::kPubrel>;
using Pubcomp = PublishResponse<PacketType::kPubcomp>;

// Subscription options byte (spec 3.8.3.1).
enum class RetainHandling : std::uint8_t {
  kSendAtSubscribe = 0,
  kSendAtSubscribeIfNew = 1,
  kDoNotSend = 2,
};

struct Subscription {
  std::string filter;  // may start with "$share/<group>/"
  QoS max_qos = QoS::kAtMostOnce;
  bool no_local = false;                                              // MQTT 5
  bool retain_as_published = false;                                   // MQTT 5
  RetainHandling retain_handling = RetainHandling::kSendAtSubscribe;  // MQTT 5
  friend bool operator==(const Subscription&, const Subscription&) = default;
};

struct Subscribe {
  std::uint16_t packet_id = 0;
  Properties properties;
  std::vector<Subscription> subscriptions;  // at least one
  friend bool operator==(const Subscribe&, const Subscribe&) = default;
};

struct Suback {
  std::uint16_t packet_id = 0;
  Properties properties;
  // One per subscription. In 3.1.1: kGrantedQoS0/1/2 or, for any failure, 0x80.
  std::vector<ReasonCode> reasons;
  friend bool operator==(const Suback&, const Suback&) = default;
};

struct Unsubscribe {
  std::uint16_t packet_id = 0;
  Properties properties;
  std::vector<std::string> filters;  // at least one
  friend bool operator==(const Unsubscribe&, const Unsubscribe&) = default;
};

struct Unsuback {
  std::uint16_t packet_id = 0;
  Properties properties;
  std::vector<ReasonCode> reasons;  // MQTT 5 only; empty when decoded from 3.1.1
  friend bool operator==(const Unsuback&, const Unsuback&) = default;
};

struct Pingreq {
  friend bool operator==(const Pingreq&, const Pingreq&) = default;
};
struct Pingresp {
  friend bool operator==(const Pingresp&, const Pingresp&) = default;
};

struct Disconnect {
  ReasonCode reason = ReasonCode::kNormalDisconnection;  // MQTT 5
  Properties properties;
  friend bool operator==(const Disconnect&, const Disconnect&) = default;
};

// MQTT 5 only.
struct Auth {
  ReasonCode reason = ReasonCode::kSuccess;
  Properties properties;
  friend bool operator==(const Auth&, const Auth&) = default;
};

using Packet = std::variant<Connect, Connack, Publish, Puback, Pubrec, Pubrel, Pubcomp, Subscribe,
                            Suback, Unsubscribe, Unsuback, Pingreq, Pingresp, Disconnect, Auth>;

// The variant's alternatives are in wire order, so the type is index + 1.
inline PacketType type_of(const Packet& p) { return static_cast<PacketType>(p.index() + 1); }

}  // namespace ganglion::mqtt
