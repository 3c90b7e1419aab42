#include "mqtt/packet.h"

namespace ganglion::mqtt {

std::string_view to_string(ProtocolVersion v) {
  switch (v) {
    case ProtocolVersion::kV31:
      return "3.1";
    case ProtocolVersion::kV311:
      return "3.1.1";
    case ProtocolVersion::kV5:
      return "5.0";
  }
  return "unknown";
}

std::string_view to_string(PacketType t) {
  switch (t) {
    case PacketType::kConnect:
      return "CONNECT";
    case PacketType::kConnack:
      return "CONNACK";
    case PacketType::kPublish:
      return "PUBLISH";
    case PacketType::kPuback:
      return "PUBACK";
    case PacketType::kPubrec:
      return "PUBREC";
    case PacketType::kPubrel:
      return "PUBREL";
    case PacketType::kPubcomp:
      return "PUBCOMP";
    case PacketType::kSubscribe:
      return "SUBSCRIBE";
    case PacketType::kSuback:
      return "SUBACK";
    case PacketType::kUnsubscribe:
      return "UNSUBSCRIBE";
    case PacketType::kUnsuback:
      return "UNSUBACK";
    case PacketType::kPingreq:
      return "PINGREQ";
    case PacketType::kPingresp:
      return "PINGRESP";
    case PacketType::kDisconnect:
      return "DISCONNECT";
    case PacketType::kAuth:
      return "AUTH";
  }
  return "reserved";
}

std::string_view to_string(ReasonCode r) {
  switch (r) {
    case ReasonCode::kSuccess:
      return "Success";
    case ReasonCode::kGrantedQoS1:
      return "Granted QoS 1";
    case ReasonCode::kGrantedQoS2:
      return "Granted QoS 2";
    case ReasonCode::kDisconnectWithWillMessage:
      return "Disconnect with Will Message";
    case ReasonCode::kNoMatchingSubscribers:
      return "No matching subscribers";
    case ReasonCode::kNoSubscriptionExisted:
      return "No subscription existed";
    case ReasonCode::kContinueAuthentication:
      return "Continue authentication";
    case ReasonCode::kReAuthenticate:
      return "Re-authenticate";
    case ReasonCode::kUnspecifiedError:
      return "Unspecified error";
    case ReasonCode::kMalformedPacket:
      return "Malformed Packet";
    case ReasonCode::kProtocolError:
      return "Protocol Error";
    case ReasonCode::kImplementationSpecificError:
      return "Implementation specific error";
    case ReasonCode::kUnsupportedProtocolVersion:
      return "Unsupported Protocol Version";
    case ReasonCode::kClientIdentifierNotValid:
      return "Client Identifier not valid";
    case ReasonCode::kBadUserNameOrPassword:
      return "Bad User Name or Password";
    case ReasonCode::kNotAuthorized:
      return "Not authorized";
    case ReasonCode::kServerUnavailable:
      return "Server unavailable";
    case ReasonCode::kServerBusy:
      return "Server busy";
    case ReasonCode::kBanned:
      return "Banned";
    case ReasonCode::kServerShuttingDown:
      return "Server shutting down";
    case ReasonCode::kBadAuthenticationMethod:
      return "Bad authentication method";
    case ReasonCode::kKeepAliveTimeout:
      return "Keep Alive timeout";
    case ReasonCode::kSessionTakenOver:
      return "Session taken over";
    case ReasonCode::kTopicFilterInvalid:
      return "Topic Filter invalid";
    case ReasonCode::kTopicNameInvalid:
      return "Topic Name invalid";
    case ReasonCode::kPacketIdentifierInUse:
      return "Packet Identifier in use";
    case ReasonCode::kPacketIdentifierNotFound:
      return "Packet Identifier not found";
    case ReasonCode::kReceiveMaximumExceeded:
      return "Receive Maximum exceeded";
    case ReasonCode::kTopicAliasInvalid:
      return "Topic Alias invalid";
    case ReasonCode::kPacketTooLarge:
      return "Packet too large";
    case ReasonCode::kMessageRateTooHigh:
      return "Message rate too high";
    case ReasonCode::kQuotaExceeded:
      return "Quota exceeded";
    case ReasonCode::kAdministrativeAction:
      return "Administrative action";
    case ReasonCode::kPayloadFormatInvalid:
      return "Payload format invalid";
    case ReasonCode::kRetainNotSupported:
      return "Retain not supported";
    case ReasonCode::kQoSNotSupported:
      return "QoS not supported";
    case ReasonCode::kUseAnotherServer:
      return "Use another server";
    case ReasonCode::kServerMoved:
      return "Server moved";
    case ReasonCode::kSharedSubscriptionsNotSupported:
      return "Shared Subscriptions not supported";
    case ReasonCode::kConnectionRateExceeded:
      return "Connection rate exceeded";
    case ReasonCode::kMaximumConnectTime:
      return "Maximum connect time";
    case ReasonCode::kSubscriptionIdentifiersNotSupported:
      return "Subscription Identifiers not supported";
    case ReasonCode::kWildcardSubscriptionsNotSupported:
      return "Wildcard Subscriptions not supported";
  }
  return "unknown reason code";
}

namespace {
constexpr std::string_view kTag = "[mqtt 0x";
constexpr char kHex[] = "0123456789abcdef";

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}
}  // namespace

Status error(ReasonCode reason, std::string_view what) {
  const auto code = static_cast<std::uint8_t>(reason);
  std::string m;
  m.reserve(what.size() + 48);
  m += kTag;
  m += kHex[code >> 4];
  m += kHex[code & 0xF];
  m += ' ';
  m += to_string(reason);
  m += "] ";
  m += what;
  const StatusCode sc = reason == ReasonCode::kPacketTooLarge ? StatusCode::kResourceExhausted
                                                              : StatusCode::kInvalidArgument;
  return {sc, std::move(m)};
}

std::optional<ReasonCode> reason_of(const Status& status) {
  if (status.ok()) return std::nullopt;
  const std::string& m = status.message();
  const auto at = m.find(kTag);
  if (at == std::string::npos || at + kTag.size() + 2 > m.size()) return std::nullopt;
  const int hi = hex_value(m[at + kTag.size()]);
  const int lo = hex_value(m[at + kTag.size() + 1]);
  if (hi < 0 || lo < 0) return std::nullopt;
  return static_cast<ReasonCode>(hi * 16 + lo);
}

}  // namespace ganglion::mqtt
