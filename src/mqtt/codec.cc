#include "mqtt/codec.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <type_traits>
#include <utility>

#include "mqtt/topic.h"

namespace ganglion::mqtt {

namespace {

// ---------------------------------------------------------------------------------------
// Constants of the wire format.

// MQTT 5 property identifiers (spec 2.2.2.2).
enum PropertyId : std::uint8_t {
  kPayloadFormatIndicator = 0x01,
  kMessageExpiryInterval = 0x02,
  kContentType = 0x03,
  kResponseTopic = 0x08,
  kCorrelationData = 0x09,
  kSubscriptionIdentifier = 0x0B,
  kSessionExpiryInterval = 0x11,
  kAssignedClientIdentifier = 0x12,
  kServerKeepAlive = 0x13,
  kAuthenticationMethod = 0x15,
  kAuthenticationData = 0x16,
  kRequestProblemInformation = 0x17,
  kWillDelayInterval = 0x18,
  kRequestResponseInformation = 0x19,
  kResponseInformation = 0x1A,
  kServerReference = 0x1C,
  kReasonString = 0x1F,
  kReceiveMaximum = 0x21,
  kTopicAliasMaximum = 0x22,
  kTopicAlias = 0x23,
  kMaximumQoS = 0x24,
  kRetainAvailable = 0x25,
  kUserProperty = 0x26,
  kMaximumPacketSize = 0x27,
  kWildcardSubscriptionAvailable = 0x28,
  kSubscriptionIdentifierAvailable = 0x29,
  kSharedSubscriptionAvailable = 0x2A,
};

// Where a property block sits: the packet types, plus the will properties of CONNECT.
// Bit i of a mask below means "allowed in context i".
enum class PropertyContext : std::uint8_t {
  kConnect = 1,
  kConnack,
  kPublish,
  kPuback,
  kPubrec,
  kPubrel,
  kPubcomp,
  kSubscribe,
  kSuback,
  kUnsubscribe,
  kUnsuback,
  kPingreq,
  kPingresp,
  kDisconnect,
  kAuth,
  kWill,
};

constexpr std::uint32_t bit(PropertyContext c) { return 1u << static_cast<unsigned>(c); }
constexpr PropertyContext context_of(PacketType t) { return static_cast<PropertyContext>(t); }

constexpr std::uint32_t kPublishOrWill =
    bit(PropertyContext::kPublish) | bit(PropertyContext::kWill);
constexpr std::uint32_t kAcks = bit(PropertyContext::kConnack) | bit(PropertyContext::kPuback) |
                                bit(PropertyContext::kPubrec) | bit(PropertyContext::kPubrel) |
                                bit(PropertyContext::kPubcomp) | bit(PropertyContext::kSuback) |
                                bit(PropertyContext::kUnsuback) |
                                bit(PropertyContext::kDisconnect) | bit(PropertyContext::kAuth);

// Table 2-4 of the MQTT 5 spec: which packet may carry which property. 0 = unknown id.
constexpr std::uint32_t allowed_contexts(std::uint32_t id) {
  using C = PropertyContext;
  switch (id) {
    case kPayloadFormatIndicator:
    case kMessageExpiryInterval:
    case kContentType:
    case kResponseTopic:
    case kCorrelationData:
      return kPublishOrWill;
    case kSubscriptionIdentifier:
      return bit(C::kPublish) | bit(C::kSubscribe);
    case kSessionExpiryInterval:
      return bit(C::kConnect) | bit(C::kConnack) | bit(C::kDisconnect);
    case kAssignedClientIdentifier:
    case kServerKeepAlive:
    case kResponseInformation:
    case kMaximumQoS:
    case kRetainAvailable:
    case kWildcardSubscriptionAvailable:
    case kSubscriptionIdentifierAvailable:
    case kSharedSubscriptionAvailable:
      return bit(C::kConnack);
    case kAuthenticationMethod:
    case kAuthenticationData:
      return bit(C::kConnect) | bit(C::kConnack) | bit(C::kAuth);
    case kRequestProblemInformation:
    case kRequestResponseInformation:
      return bit(C::kConnect);
    case kWillDelayInterval:
      return bit(C::kWill);
    case kServerReference:
      return bit(C::kConnack) | bit(C::kDisconnect);
    case kReasonString:
      return kAcks;
    case kReceiveMaximum:
    case kTopicAliasMaximum:
    case kMaximumPacketSize:
      return bit(C::kConnect) | bit(C::kConnack);
    case kTopicAlias:
      return bit(C::kPublish);
    case kUserProperty:
      return 0xFFFFFFFEu;
    default:
      return 0;
  }
}

// Reason codes each packet may carry (spec 3.x.2.1 tables).
bool reason_allowed(PacketType t, std::uint8_t r) {
  switch (t) {
    case PacketType::kConnack:
      return r == 0x00 || (r >= 0x80 && r <= 0x8A) || r == 0x8C || r == 0x90 || r == 0x95 ||
             r == 0x97 || r == 0x99 || r == 0x9A || r == 0x9B || r == 0x9C || r == 0x9D ||
             r == 0x9F;
    case PacketType::kPuback:
    case PacketType::kPubrec:
      return r == 0x00 || r == 0x10 || r == 0x80 || r == 0x83 || r == 0x87 || r == 0x90 ||
             r == 0x91 || r == 0x97 || r == 0x99;
    case PacketType::kPubrel:
    case PacketType::kPubcomp:
      return r == 0x00 || r == 0x92;
    case PacketType::kSuback:
      return r <= 0x02 || r == 0x80 || r == 0x83 || r == 0x87 || r == 0x8F || r == 0x91 ||
             r == 0x97 || r == 0x9E || r == 0xA1 || r == 0xA2;
    case PacketType::kUnsuback:
      return r == 0x00 || r == 0x11 || r == 0x80 || r == 0x83 || r == 0x87 || r == 0x8F ||
             r == 0x91;
    case PacketType::kDisconnect:
      return r == 0x00 || r == 0x04 || (r >= 0x80 && r <= 0x83) || r == 0x87 || r == 0x89 ||
             (r >= 0x8B && r <= 0x8F && r != 0x8C) ||
             (r >= 0x90 && r <= 0xA2 && r != 0x91 && r != 0x92);
    case PacketType::kAuth:
      return r == 0x00 || r == 0x18 || r == 0x19;
    default:
      return false;
  }
}

// 3.1.1 CONNACK return codes 0-5 and the MQTT 5 reason codes they mean.
constexpr ReasonCode kV3ConnackReasons[] = {
    ReasonCode::kSuccess,
    ReasonCode::kUnsupportedProtocolVersion,
    ReasonCode::kClientIdentifierNotValid,
    ReasonCode::kServerUnavailable,
    ReasonCode::kBadUserNameOrPassword,
    ReasonCode::kNotAuthorized,
};

std::uint8_t v3_connack_return_code(ReasonCode r) {
  switch (r) {
    case ReasonCode::kSuccess:
      return 0;
    case ReasonCode::kUnsupportedProtocolVersion:
      return 1;
    case ReasonCode::kClientIdentifierNotValid:
      return 2;
    case ReasonCode::kBadUserNameOrPassword:
    case ReasonCode::kBadAuthenticationMethod:
      return 4;
    case ReasonCode::kNotAuthorized:
    case ReasonCode::kBanned:
      return 5;
    default:
      return 3;  // Server unavailable: the closest generic refusal
  }
}

bool is_v5(ProtocolVersion v) { return v == ProtocolVersion::kV5; }

// ---------------------------------------------------------------------------------------
// UTF-8 (spec 1.5.4).

bool utf8_ok(const unsigned char* p, std::size_t n) {
  std::size_t i = 0;
  while (i < n) {
    // ASCII fast path, 8 bytes at a time: no high bit and no zero byte.
    while (i + 8 <= n) {
      std::uint64_t w;
      std::memcpy(&w, p + i, 8);
      const bool high = (w & 0x8080808080808080ull) != 0;
      const bool zero = ((w - 0x0101010101010101ull) & ~w & 0x8080808080808080ull) != 0;
      if (high || zero) break;
      i += 8;
    }
    if (i >= n) break;
    const unsigned c = p[i];
    if (c < 0x80) {
      if (c == 0) return false;
      ++i;
      continue;
    }
    std::uint32_t cp;
    std::size_t len;
    std::uint32_t min;
    if ((c & 0xE0) == 0xC0) {
      cp = c & 0x1F, len = 2, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      cp = c & 0x0F, len = 3, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      cp = c & 0x07, len = 4, min = 0x10000;
    } else {
      return false;  // continuation byte or 0xF8..0xFF as a lead byte
    }
    if (i + len > n) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const unsigned cc = p[i + k];
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min) return false;                      // overlong
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;  // surrogate
    if (cp > 0x10FFFF) return false;
    i += len;
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// Decoding.

std::string what(PacketType t, std::string_view msg) {
  std::string m(to_string(t));
  m += ": ";
  m += msg;
  return m;
}

// Bounds-checked reader over one packet body. Every read failure is a Malformed Packet:
// the remaining length said the field was there and it is not.
class Reader {
 public:
  Reader(const char* p, std::size_t n, PacketType type)
      : p_(reinterpret_cast<const unsigned char*>(p)), end_(p_ + n), type_(type) {}

  std::size_t left() const { return static_cast<std::size_t>(end_ - p_); }
  bool empty() const { return p_ == end_; }
  const char* pos() const { return reinterpret_cast<const char*>(p_); }
  PacketType type() const { return type_; }

  Status malformed(std::string_view msg) const {
    return error(ReasonCode::kMalformedPacket, what(type_, msg));
  }
  Status protocol(std::string_view msg) const {
    return error(ReasonCode::kProtocolError, what(type_, msg));
  }

  Status u8(std::uint8_t& v, std::string_view field) {
    if (left() < 1) return truncated(field);
    v = *p_++;
    return Status::Ok();
  }
  Status u16(std::uint16_t& v, std::string_view field) {
    if (left() < 2) return truncated(field);
    v = static_cast<std::uint16_t>(p_[0] << 8 | p_[1]);
    p_ += 2;
    return Status::Ok();
  }
  Status u32(std::uint32_t& v, std::string_view field) {
    if (left() < 4) return truncated(field);
    v = static_cast<std::uint32_t>(p_[0]) << 24 | static_cast<std::uint32_t>(p_[1]) << 16 |
        static_cast<std::uint32_t>(p_[2]) << 8 | static_cast<std::uint32_t>(p_[3]);
    p_ += 4;
    return Status::Ok();
  }
  // Variable byte integer (spec 1.5.5): at most 4 bytes, minimal encoding.
  Status varint(std::uint32_t& v, std::string_view field) {
    v = 0;
    for (int i = 0; i < 4; ++i) {
      if (empty()) return truncated(field);
      const unsigned b = *p_++;
      v |= static_cast<std::uint32_t>(b & 0x7F) << (7 * i);
      if ((b & 0x80) == 0) {
        if (b == 0 && i > 0) return malformed(std::string(field) + " is not minimally encoded");
        return Status::Ok();
      }
    }
    return malformed(std::string(field) + " variable byte integer is longer than 4 bytes");
  }
  // Two-byte length + bytes, as a view into the packet.
  Status binary(std::string_view& v, std::string_view field) {
    std::uint16_t n;
    GANGLION_RETURN_IF_ERROR(u16(n, field));
    if (left() < n) return truncated(field);
    v = std::string_view(pos(), n);
    p_ += n;
    return Status::Ok();
  }
  Status utf8(std::string_view& v, std::string_view field) {
    GANGLION_RETURN_IF_ERROR(binary(v, field));
    if (!utf8_ok(reinterpret_cast<const unsigned char*>(v.data()), v.size())) {
      return malformed(std::string(field) + " is not a well-formed UTF-8 string");
    }
    return Status::Ok();
  }
  Status utf8(std::string& v, std::string_view field) {
    std::string_view sv;
    GANGLION_RETURN_IF_ERROR(utf8(sv, field));
    v.assign(sv);
    return Status::Ok();
  }
  Status rest(std::string_view& v) {
    v = std::string_view(pos(), left());
    p_ = end_;
    return Status::Ok();
  }
  void skip(std::size_t n) { p_ += n; }

 private:
  Status truncated(std::string_view field) const {
    return malformed(std::string(field) + " runs past the end of the packet");
  }

  const unsigned char* p_;
  const unsigned char* end_;
  PacketType type_;
};

class Parser {
 public:
  Parser(ProtocolVersion version, Role role) : version_(version), role_(role) {}

  // Parses into `out` (emplaced in place: a Packet is large, so it is not moved around).
  Status parse(std::uint8_t header, const char* body, std::size_t n, std::optional<Packet>& out);
  ProtocolVersion version() const { return version_; }

  // Reads the protocol name and level of a CONNECT body; sets version_.
  Status connect_version(Reader& r);

 private:
  Status properties(Reader& r, PropertyContext ctx, Properties& out);
  Status property(Reader& r, PropertyContext ctx, std::uint32_t id, Properties& out);
  Status connect(Reader& r, Connect& c);
  Status connack(Reader& r, Connack& c);
  Status publish(Reader& r, std::uint8_t flags, Publish& p);
  template <PacketType kType>
  Status publish_response(Reader& r, PublishResponse<kType>& p);
  Status subscribe(Reader& r, Subscribe& s);
  Status suback(Reader& r, Suback& s);
  Status unsubscribe(Reader& r, Unsubscribe& u);
  Status unsuback(Reader& r, Unsuback& u);
  Status disconnect(Reader& r, Disconnect& d);
  Status auth(Reader& r, Auth& a);
  Status packet_id(Reader& r, std::uint16_t& id);
  Status reason(Reader& r, ReasonCode& out);

  ProtocolVersion version_;
  Role role_;
};

Status Parser::packet_id(Reader& r, std::uint16_t& id) {
  GANGLION_RETURN_IF_ERROR(r.u16(id, "packet identifier"));
  if (id == 0) return r.malformed("packet identifier must be non-zero");
  return Status::Ok();
}

Status Parser::reason(Reader& r, ReasonCode& out) {
  std::uint8_t b;
  GANGLION_RETURN_IF_ERROR(r.u8(b, "reason code"));
  if (!reason_allowed(r.type(), b)) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02x", b);
    return r.malformed(std::string("reason code ") + hex + " is not valid in this packet");
  }
  out = static_cast<ReasonCode>(b);
  return Status::Ok();
}

Status Parser::properties(Reader& r, PropertyContext ctx, Properties& out) {
  std::uint32_t len;
  GANGLION_RETURN_IF_ERROR(r.varint(len, "property length"));
  if (len > r.left()) return r.malformed("property length runs past the end of the packet");
  Reader pr(r.pos(), len, r.type());
  r.skip(len);
  std::uint64_t seen = 0;
  while (!pr.empty()) {
    std::uint32_t id;
    GANGLION_RETURN_IF_ERROR(pr.varint(id, "property identifier"));
    const std::uint32_t allowed = allowed_contexts(id);
    if (allowed == 0) {
      return pr.malformed("unknown property identifier " + std::to_string(id));
    }
    if ((allowed & bit(ctx)) == 0) {
      return pr.malformed("property " + std::to_string(id) + " is not allowed " +
                          (ctx == PropertyContext::kWill ? "in will properties" : "here"));
    }
    const bool repeatable =
        id == kUserProperty || (id == kSubscriptionIdentifier && ctx == PropertyContext::kPublish);
    if (!repeatable) {
      if (seen & (1ull << id)) {
        return pr.protocol("property " + std::to_string(id) + " appears more than once");
      }
      seen |= 1ull << id;
    }
    GANGLION_RETURN_IF_ERROR(property(pr, ctx, id, out));
  }
  if (out.authentication_data && !out.authentication_method) {
    return r.protocol("authentication data without an authentication method");
  }
  return Status::Ok();
}

Status Parser::property(Reader& r, PropertyContext ctx, std::uint32_t id, Properties& out) {
  auto byte01 = [&](std::optional<std::uint8_t>& v, const char* name) -> Status {
    std::uint8_t b;
    GANGLION_RETURN_IF_ERROR(r.u8(b, name));
    if (b > 1) return r.protocol(std::string(name) + " must be 0 or 1");
    v = b;
    return Status::Ok();
  };
  auto u16 = [&](std::optional<std::uint16_t>& v, const char* name, bool nonzero) -> Status {
    std::uint16_t x;
    GANGLION_RETURN_IF_ERROR(r.u16(x, name));
    if (nonzero && x == 0) return r.protocol(std::string(name) + " must not be 0");
    v = x;
    return Status::Ok();
  };
  auto u32 = [&](std::optional<std::uint32_t>& v, const char* name, bool nonzero) -> Status {
    std::uint32_t x;
    GANGLION_RETURN_IF_ERROR(r.u32(x, name));
    if (nonzero && x == 0) return r.protocol(std::string(name) + " must not be 0");
    v = x;
    return Status::Ok();
  };
  auto str = [&](std::optional<std::string>& v, const char* name) -> Status {
    std::string_view s;
    GANGLION_RETURN_IF_ERROR(r.utf8(s, name));
    v.emplace(s);
    return Status::Ok();
  };
  auto bin = [&](std::optional<std::string>& v, const char* name) -> Status {
    std::string_view s;
    GANGLION_RETURN_IF_ERROR(r.binary(s, name));
    v.emplace(s);
    return Status::Ok();
  };

  switch (id) {
    case kPayloadFormatIndicator:
      return byte01(out.payload_format_indicator, "payload format indicator");
    case kMessageExpiryInterval:
      return u32(out.message_expiry_interval, "message expiry interval", false);
    case kContentType:
      return str(out.content_type, "content type");
    case kResponseTopic: {
      GANGLION_RETURN_IF_ERROR(str(out.response_topic, "response topic"));
      if (!validate_topic_name(*out.response_topic).ok()) {
        return r.protocol("response topic must be a topic name without wildcards");
      }
      return Status::Ok();
    }
    case kCorrelationData:
      return bin(out.correlation_data, "correlation data");
    case kSubscriptionIdentifier: {
      if (ctx == PropertyContext::kPublish && role_ == Role::kServer) {
        return r.protocol("a client must not send a subscription identifier in PUBLISH");
      }
      std::uint32_t v;
      GANGLION_RETURN_IF_ERROR(r.varint(v, "subscription identifier"));
      if (v == 0) return r.protocol("subscription identifier must not be 0");
      out.subscription_identifiers.push_back(v);
      return Status::Ok();
    }
    case kSessionExpiryInterval:
      return u32(out.session_expiry_interval, "session expiry interval", false);
    case kAssignedClientIdentifier:
      return str(out.assigned_client_identifier, "assigned client identifier");
    case kServerKeepAlive:
      return u16(out.server_keep_alive, "server keep alive", false);
    case kAuthenticationMethod:
      return str(out.authentication_method, "authentication method");
    case kAuthenticationData:
      return bin(out.authentication_data, "authentication data");
    case kRequestProblemInformation:
      return byte01(out.request_problem_information, "request problem information");
    case kWillDelayInterval:
      return u32(out.will_delay_interval, "will delay interval", false);
    case kRequestResponseInformation:
      return byte01(out.request_response_information, "request response information");
    case kResponseInformation:
      return str(out.response_information, "response information");
    case kServerReference:
      return str(out.server_reference, "server reference");
    case kReasonString:
      return str(out.reason_string, "reason string");
    case kReceiveMaximum:
      return u16(out.receive_maximum, "receive maximum", true);
    case kTopicAliasMaximum:
      return u16(out.topic_alias_maximum, "topic alias maximum", false);
    case kTopicAlias: {
      std::uint16_t x;
      GANGLION_RETURN_IF_ERROR(r.u16(x, "topic alias"));
      if (x == 0) {
        return error(ReasonCode::kTopicAliasInvalid, what(r.type(), "topic alias must not be 0"));
      }
      out.topic_alias = x;
      return Status::Ok();
    }
    case kMaximumQoS:
      return byte01(out.maximum_qos, "maximum QoS");
    case kRetainAvailable:
      return byte01(out.retain_available, "retain available");
    case kUserProperty: {
      std::string_view k, v;
      GANGLION_RETURN_IF_ERROR(r.utf8(k, "user property name"));
      GANGLION_RETURN_IF_ERROR(r.utf8(v, "user property value"));
      out.user_properties.emplace_back(std::string(k), std::string(v));
      return Status::Ok();
    }
    case kMaximumPacketSize:
      return u32(out.maximum_packet_size, "maximum packet size", true);
    case kWildcardSubscriptionAvailable:
      return byte01(out.wildcard_subscription_available, "wildcard subscription available");
    case kSubscriptionIdentifierAvailable:
      return byte01(out.subscription_identifier_available, "subscription identifier available");
    case kSharedSubscriptionAvailable:
      return byte01(out.shared_subscription_available, "shared subscription available");
    default:
      return r.malformed("unknown property identifier " + std::to_string(id));
  }
}

Status Parser::connect_version(Reader& r) {
  std::string_view name;
  GANGLION_RETURN_IF_ERROR(r.binary(name, "protocol name"));
  std::uint8_t level;
  GANGLION_RETURN_IF_ERROR(r.u8(level, "protocol level"));
  const bool mqtt = name == "MQTT" && (level == 4 || level == 5);
  const bool mqisdp = name == "MQIsdp" && level == 3;
  if (!mqtt && !mqisdp) {
    std::string m = "unsupported protocol \"";
    for (const char c : name.substr(0, 16)) m += (c >= 0x20 && c < 0x7F) ? c : '?';
    m += "\" level " + std::to_string(level);
    return error(ReasonCode::kUnsupportedProtocolVersion, what(PacketType::kConnect, m));
  }
  version_ = static_cast<ProtocolVersion>(level);
  return Status::Ok();
}

Status Parser::connect(Reader& r, Connect& c) {
  c.version = version_;  // protocol name and level were read by connect_version()
  std::uint8_t flags;
  GANGLION_RETURN_IF_ERROR(r.u8(flags, "connect flags"));
  if (flags & 0x01) return r.malformed("reserved connect flag bit 0 must be 0");
  c.clean_start = flags & 0x02;
  const bool will = flags & 0x04;
  const std::uint8_t will_qos = (flags >> 3) & 0x03;
  const bool will_retain = flags & 0x20;
  const bool has_password = flags & 0x40;
  const bool has_username = flags & 0x80;
  if (!will && (will_qos != 0 || will_retain)) {
    return r.malformed("will QoS and will retain must be 0 when the will flag is 0");
  }
  if (will_qos == 3) return r.malformed("will QoS must not be 3");
  if (!is_v5(version_) && has_password && !has_username) {
    return r.malformed("password flag set without user name flag");
  }
  GANGLION_RETURN_IF_ERROR(r.u16(c.keep_alive, "keep alive"));
  if (is_v5(version_))
    GANGLION_RETURN_IF_ERROR(properties(r, PropertyContext::kConnect, c.properties));

  GANGLION_RETURN_IF_ERROR(r.utf8(c.client_id, "client identifier"));
  if (!is_v5(version_) && c.client_id.empty() && !c.clean_start) {
    return error(ReasonCode::kClientIdentifierNotValid,
                 "CONNECT: an empty client identifier needs clean session = 1 in MQTT 3.1.1");
  }
  if (will) {
    Will& w = c.will.emplace();
    w.qos = static_cast<QoS>(will_qos);
    w.retain = will_retain;
    if (is_v5(version_))
      GANGLION_RETURN_IF_ERROR(properties(r, PropertyContext::kWill, w.properties));
    GANGLION_RETURN_IF_ERROR(r.utf8(w.topic, "will topic"));
    if (Status s = validate_topic_name(w.topic); !s.ok()) return s.with_context("CONNECT: will");
    std::string_view payload;
    GANGLION_RETURN_IF_ERROR(r.binary(payload, "will payload"));
    w.payload.assign(payload);
  }
  if (has_username) GANGLION_RETURN_IF_ERROR(r.utf8(c.username.emplace(), "user name"));
  if (has_password) {
    std::string_view pw;
    GANGLION_RETURN_IF_ERROR(r.binary(pw, "password"));
    c.password.emplace(pw);
  }
  if (!r.empty()) return r.malformed("trailing bytes after the payload");
  return Status::Ok();
}

Status Parser::connack(Reader& r, Connack& c) {
  std::uint8_t flags;
  GANGLION_RETURN_IF_ERROR(r.u8(flags, "connect acknowledge flags"));
  if (flags & 0xFE) return r.malformed("reserved connect acknowledge flags must be 0");
  c.session_present = flags & 0x01;
  if (is_v5(version_)) {
    GANGLION_RETURN_IF_ERROR(reason(r, c.reason));
    GANGLION_RETURN_IF_ERROR(properties(r, PropertyContext::kConnack, c.properties));
  } else {
    std::uint8_t rc;
    GANGLION_RETURN_IF_ERROR(r.u8(rc, "return code"));
    if (rc > 5) return r.malformed("return code " + std::to_string(rc) + " is reserved");
    c.reason = kV3ConnackReasons[rc];
  }
  if (c.session_present && c.reason != ReasonCode::kSuccess) {
    return r.protocol("session present must be 0 when the connection is refused");
  }
  if (!r.empty()) return r.malformed("trailing bytes after the variable header");
  return Status::Ok();
}

Status Parser::publish(Reader& r, std::uint8_t flags, Publish& p) {
  p.dup = flags & 0x08;
  p.retain = flags & 0x01;
  const std::uint8_t qos = (flags >> 1) & 0x03;
  if (qos == 3) return r.malformed("QoS must not be 3");
  if (qos == 0 && p.dup) return r.malformed("DUP must be 0 for QoS 0");
  p.qos = static_cast<QoS>(qos);
  std::string_view topic;
  GANGLION_RETURN_IF_ERROR(r.utf8(topic, "topic name"));
  if (qos > 0) GANGLION_RETURN_IF_ERROR(packet_id(r, p.packet_id));
  if (is_v5(version_)) {
    GANGLION_RETURN_IF_ERROR(properties(r, PropertyContext::kPublish, p.properties));
  }
  if (topic.empty()) {
    if (!p.properties.topic_alias) {
      return r.protocol(is_v5(version_) ? "empty topic name without a topic alias"
                                        : "topic name must not be empty");
    }
  } else if (Status s = validate_topic_name(topic); !s.ok()) {
    return s.with_context("PUBLISH");
  }
  p.topic.assign(topic);
  std::string_view payload;
  GANGLION_RETURN_IF_ERROR(r.rest(payload));
  // The one copy of the payload: from the connection's buffer into the shared buffer.
  p.payload = SharedBytes(payload);
  return Status::Ok();
}

template <PacketType kType>
Status Parser::publish_response(Reader& r, PublishResponse<kType>& p) {
  GANGLION_RETURN_IF_ERROR(packet_id(r, p.packet_id));
  if (is_v5(version_) && !r.empty()) {
    // Reason code and properties may be left out (spec 3.4.2.1).
    GANGLION_RETURN_IF_ERROR(reason(r, p.reason));
    if (!r.empty()) GANGLION_RETURN_IF_ERROR(properties(r, context_of(kType), p.properties));
  }
  if (!r.empty()) return r.malformed("trailing bytes after the variable header");
  return Status::Ok();
}

Status Parser::subscribe(Reader& r, Subscribe& s) {
  GANGLION_RETURN_IF_ERROR(packet_id(r, s.packet_id));
  if (is_v5(version_)) {
    GANGLION_RETURN_IF_ERROR(properties(r, PropertyContext::kSubscribe, s.properties));
  }
  while (!r.empty()) {
    Subscription& sub = s.subscriptions.emplace_back();
    GANGLION_RETURN_IF_ERROR(r.utf8(sub.filter, "topic filter"));
    std::uint8_t opts;
    GANGLION_RETURN_IF_ERROR(r.u8(opts, "subscription options"));
    if ((opts & 0x03) == 3) return r.malformed("maximum QoS must not be 3");
    sub.max_qos = static_cast<QoS>(opts & 0x03);
    if (is_v5(version_)) {
      if (opts & 0xC0) return r.malformed("reserved subscription option bits 6-7 must be 0");
      sub.no_local = opts & 0x04;
      sub.retain_as_published = opts & 0x08;
      const std::uint8_t rh = (opts >> 4) & 0x03;
      if (rh == 3) return r.protocol("retain handling must not be 3");
      sub.retain_handling = static_cast<RetainHandling>(rh);
    } else if (opts & 0xFC) {
      return r.malformed("reserved subscription option bits 2-7 must be 0");
    }
    if (Status st = validate_topic_filter(sub.filter); !st.ok())
      return st.with_context("SUBSCRIBE");
    if (sub.no_local && is_shared_subscription(sub.filter)) {
      return r.protocol("no local must not be set on a shared subscription");
    }
  }
  if (s.subscriptions.empty()) return r.protocol("at least one topic filter is required");
  return Status::Ok();
}

Status Parser::suback(Reader& r, Suback& s) {
  GANGLION_RETURN_IF_ERROR(packet_id(r, s.packet_id));
  if (is_v5(version_)) {
    GANGLION_RETURN_IF_ERROR(properties(r, PropertyContext::kSuback, s.properties));
  }
  while (!r.empty()) {
    if (is_v5(version_)) {
      GANGLION_RETURN_IF_ERROR(reason(r, s.reasons.emplace_back()));
    } else {
      std::uint8_t rc;
      GANGLION_RETURN_IF_ERROR(r.u8(rc, "return code"));
      if (rc > 2 && rc != 0x80)
        return r.malformed("return code " + std::to_string(rc) + " is reserved");
      s.reasons.push_back(static_cast<ReasonCode>(rc));
    }
  }
  if (s.reasons.empty()) return r.protocol("at least one return code is required");
  return Status::Ok();
}

Status Parser::unsubscribe(Reader& r, Unsubscribe& u) {
  GANGLION_RETURN_IF_ERROR(packet_id(r, u.packet_id));
  if (is_v5(version_)) {
    GANGLION_RETURN_IF_ERROR(properties(r, PropertyContext::kUnsubscribe, u.properties));
  }
  while (!r.empty()) {
    std::string& f = u.filters.emplace_back();
    GANGLION_RETURN_IF_ERROR(r.utf8(f, "topic filter"));
    if (Status st = validate_topic_filter(f); !st.ok()) return st.with_context("UNSUBSCRIBE");
  }
  if (u.filters.empty()) return r.protocol("at least one topic filter is required");
  return Status::Ok();
}

Status Parser::unsuback(Reader& r, Unsuback& u) {
  GANGLION_RETURN_IF_ERROR(packet_id(r, u.packet_id));
  if (!is_v5(version_)) {
    if (!r.empty()) return r.malformed("trailing bytes after the packet identifier");
    return Status::Ok();
  }
  GANGLION_RETURN_IF_ERROR(properties(r, PropertyContext::kUnsuback, u.properties));
  while (!r.empty()) GANGLION_RETURN_IF_ERROR(reason(r, u.reasons.emplace_back()));
  if (u.reasons.empty()) return r.protocol("at least one reason code is required");
  return Status::Ok();
}

Status Parser::disconnect(Reader& r, Disconnect& d) {
  if (is_v5(version_) && !r.empty()) {
    GANGLION_RETURN_IF_ERROR(reason(r, d.reason));
    if (!r.empty())
      GANGLION_RETURN_IF_ERROR(properties(r, PropertyContext::kDisconnect, d.properties));
  }
  if (!r.empty()) return r.malformed("remaining length must be 0");
  return Status::Ok();
}

Status Parser::auth(Reader& r, Auth& a) {
  if (!r.empty()) {
    GANGLION_RETURN_IF_ERROR(reason(r, a.reason));
    if (!r.empty()) GANGLION_RETURN_IF_ERROR(properties(r, PropertyContext::kAuth, a.properties));
  }
  if (!r.empty()) return r.malformed("trailing bytes after the properties");
  return Status::Ok();
}

// Fixed header flags (spec 2.1.3): PUBREL, SUBSCRIBE and UNSUBSCRIBE must carry 0b0010,
// PUBLISH carries DUP/QoS/RETAIN, every other type 0.
Status check_fixed_header(std::uint8_t header, ProtocolVersion version) {
  const auto type = static_cast<PacketType>(header >> 4);
  const std::uint8_t flags = header & 0x0F;
  if (header >> 4 == 0) return error(ReasonCode::kMalformedPacket, "packet type 0 is reserved");
  if (type == PacketType::kAuth && !is_v5(version)) {
    return error(ReasonCode::kMalformedPacket, "packet type 15 is reserved before MQTT 5");
  }
  if (type == PacketType::kPublish) return Status::Ok();
  const std::uint8_t want = (type == PacketType::kPubrel || type == PacketType::kSubscribe ||
                             type == PacketType::kUnsubscribe)
                                ? 0x02
                                : 0x00;
  if (flags != want) {
    return error(ReasonCode::kMalformedPacket,
                 what(type, "reserved fixed header flags must be " + std::to_string(want)));
  }
  return Status::Ok();
}

Status check_direction(PacketType t, Role role) {
  const bool server_sends = t == PacketType::kConnack || t == PacketType::kSuback ||
                            t == PacketType::kUnsuback || t == PacketType::kPingresp;
  const bool client_sends = t == PacketType::kConnect || t == PacketType::kSubscribe ||
                            t == PacketType::kUnsubscribe || t == PacketType::kPingreq;
  if (role == Role::kServer && server_sends) {
    return error(ReasonCode::kProtocolError, what(t, "a client must not send this packet"));
  }
  if (role == Role::kClient && client_sends) {
    return error(ReasonCode::kProtocolError, what(t, "a server must not send this packet"));
  }
  return Status::Ok();
}

Status Parser::parse(std::uint8_t header, const char* body, std::size_t n,
                     std::optional<Packet>& out) {
  const auto type = static_cast<PacketType>(header >> 4);
  GANGLION_RETURN_IF_ERROR(check_fixed_header(header, version_));
  GANGLION_RETURN_IF_ERROR(check_direction(type, role_));
  Reader r(body, n, type);
  auto make = [&out]<class T>(std::in_place_type_t<T> t) -> T& {
    return std::get<T>(out.emplace(t));
  };
  switch (type) {
    case PacketType::kConnect: {
      GANGLION_RETURN_IF_ERROR(connect_version(r));
      return connect(r, make(std::in_place_type<Connect>));
    }
    case PacketType::kConnack:
      return connack(r, make(std::in_place_type<Connack>));
    case PacketType::kPublish:
      return publish(r, header & 0x0F, make(std::in_place_type<Publish>));
    case PacketType::kPuback:
      return publish_response(r, make(std::in_place_type<Puback>));
    case PacketType::kPubrec:
      return publish_response(r, make(std::in_place_type<Pubrec>));
    case PacketType::kPubrel:
      return publish_response(r, make(std::in_place_type<Pubrel>));
    case PacketType::kPubcomp:
      return publish_response(r, make(std::in_place_type<Pubcomp>));
    case PacketType::kSubscribe:
      return subscribe(r, make(std::in_place_type<Subscribe>));
    case PacketType::kSuback:
      return suback(r, make(std::in_place_type<Suback>));
    case PacketType::kUnsubscribe:
      return unsubscribe(r, make(std::in_place_type<Unsubscribe>));
    case PacketType::kUnsuback:
      return unsuback(r, make(std::in_place_type<Unsuback>));
    case PacketType::kPingreq:
      if (n != 0) return r.malformed("remaining length must be 0");
      out.emplace(Pingreq{});
      return Status::Ok();
    case PacketType::kPingresp:
      if (n != 0) return r.malformed("remaining length must be 0");
      out.emplace(Pingresp{});
      return Status::Ok();
    case PacketType::kDisconnect:
      return disconnect(r, make(std::in_place_type<Disconnect>));
    case PacketType::kAuth:
      return auth(r, make(std::in_place_type<Auth>));
  }
  return error(ReasonCode::kMalformedPacket, "unknown packet type");
}

// Parses the remaining length at `p` (up to `n` bytes available). Returns the number of
// length bytes, 0 when more bytes are needed, or an error.
Result<std::size_t> remaining_length(const unsigned char* p, std::size_t n, std::uint32_t& out) {
  out = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    if (i >= n) return std::size_t{0};
    const unsigned b = p[i];
    out |= static_cast<std::uint32_t>(b & 0x7F) << (7 * i);
    if ((b & 0x80) == 0) {
      if (b == 0 && i > 0) {
        return error(ReasonCode::kMalformedPacket, "remaining length is not minimally encoded");
      }
      return i + 1;
    }
  }
  return error(ReasonCode::kMalformedPacket, "remaining length is longer than 4 bytes");
}

// ---------------------------------------------------------------------------------------
// Encoding. Each body is written twice by the same template: once into a Counter to learn
// the remaining length, once into the output. The Counter also catches fields too long for
// the wire, so the writing pass cannot fail.

class Counter {
 public:
  void u8(std::uint8_t) { n_ += 1; }
  void u16(std::uint16_t) { n_ += 2; }
  void u32(std::uint32_t) { n_ += 4; }
  void varint(std::uint32_t v) {
    if (v > kMaxRemainingLength) fail("a variable byte integer exceeds 268435455");
    n_ += v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
  }
  void raw(std::string_view s) { n_ += s.size(); }
  void binary(std::string_view s) {
    if (s.size() > 65535) fail("a string or binary field exceeds 65535 bytes");
    n_ += 2 + s.size();
  }
  std::size_t size() const { return n_; }
  const char* failure() const { return failure_; }

 private:
  void fail(const char* why) {
    if (!failure_) failure_ = why;
  }
  std::size_t n_ = 0;
  const char* failure_ = nullptr;
};

class Appender {
 public:
  explicit Appender(std::string& out) : out_(out) {}
  void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u16(std::uint16_t v) {
    const char b[2] = {static_cast<char>(v >> 8), static_cast<char>(v)};
    out_.append(b, 2);
  }
  void u32(std::uint32_t v) {
    const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                       static_cast<char>(v >> 8), static_cast<char>(v)};
    out_.append(b, 4);
  }
  void varint(std::uint32_t v) {
    do {
      std::uint8_t b = v & 0x7F;
      v >>= 7;
      if (v) b |= 0x80;
      u8(b);
    } while (v);
  }
  void raw(std::string_view s) { out_.append(s); }
  void binary(std::string_view s) {
    u16(static_cast<std::uint16_t>(s.size()));
    raw(s);
  }

 private:
  std::string& out_;
};

template <class W>
void put_properties_body(W& w, const Properties& p) {
  auto byte = [&](std::uint8_t id, const std::optional<std::uint8_t>& v) {
    if (v) {
      w.varint(id);
      w.u8(*v);
    }
  };
  auto two = [&](std::uint8_t id, const std::optional<std::uint16_t>& v) {
    if (v) {
      w.varint(id);
      w.u16(*v);
    }
  };
  auto four = [&](std::uint8_t id, const std::optional<std::uint32_t>& v) {
    if (v) {
      w.varint(id);
      w.u32(*v);
    }
  };
  auto str = [&](std::uint8_t id, const std::optional<std::string>& v) {
    if (v) {
      w.varint(id);
      w.binary(*v);
    }
  };
  byte(kPayloadFormatIndicator, p.payload_format_indicator);
  four(kMessageExpiryInterval, p.message_expiry_interval);
  str(kContentType, p.content_type);
  str(kResponseTopic, p.response_topic);
  str(kCorrelationData, p.correlation_data);
  for (const std::uint32_t id : p.subscription_identifiers) {
    w.varint(kSubscriptionIdentifier);
    w.varint(id);
  }
  four(kSessionExpiryInterval, p.session_expiry_interval);
  str(kAssignedClientIdentifier, p.assigned_client_identifier);
  two(kServerKeepAlive, p.server_keep_alive);
  str(kAuthenticationMethod, p.authentication_method);
  str(kAuthenticationData, p.authentication_data);
  byte(kRequestProblemInformation, p.request_problem_information);
  four(kWillDelayInterval, p.will_delay_interval);
  byte(kRequestResponseInformation, p.request_response_information);
  str(kResponseInformation, p.response_information);
  str(kServerReference, p.server_reference);
  str(kReasonString, p.reason_string);
  two(kReceiveMaximum, p.receive_maximum);
  two(kTopicAliasMaximum, p.topic_alias_maximum);
  two(kTopicAlias, p.topic_alias);
  byte(kMaximumQoS, p.maximum_qos);
  byte(kRetainAvailable, p.retain_available);
  four(kMaximumPacketSize, p.maximum_packet_size);
  byte(kWildcardSubscriptionAvailable, p.wildcard_subscription_available);
  byte(kSubscriptionIdentifierAvailable, p.subscription_identifier_available);
  byte(kSharedSubscriptionAvailable, p.shared_subscription_available);
  for (const auto& [k, v] : p.user_properties) {
    w.varint(kUserProperty);
    w.binary(k);
    w.binary(v);
  }
}

template <class W>
void put_properties(W& w, const Properties& p) {
  Counter c;
  put_properties_body(c, p);
  w.varint(static_cast<std::uint32_t>(std::min<std::size_t>(c.size(), kMaxRemainingLength + 1)));
  put_properties_body(w, p);
}

struct BodyWriter {
  ProtocolVersion v;

  bool v5() const { return is_v5(v); }

  template <class W>
  void operator()(W& w, const Connect& c) const {
    if (v == ProtocolVersion::kV31) {
      w.binary("MQIsdp");
    } else {
      w.binary("MQTT");
    }
    w.u8(static_cast<std::uint8_t>(v));
    std::uint8_t flags = 0;
    if (c.clean_start) flags |= 0x02;
    if (c.will) {
      flags |= 0x04 | static_cast<std::uint8_t>(static_cast<unsigned>(c.will->qos) << 3);
      if (c.will->retain) flags |= 0x20;
    }
    if (c.password) flags |= 0x40;
    if (c.username) flags |= 0x80;
    w.u8(flags);
    w.u16(c.keep_alive);
    if (v5()) put_properties(w, c.properties);
    w.binary(c.client_id);
    if (c.will) {
      if (v5()) put_properties(w, c.will->properties);
      w.binary(c.will->topic);
      w.binary(c.will->payload);
    }
    if (c.username) w.binary(*c.username);
    if (c.password) w.binary(*c.password);
  }
  template <class W>
  void operator()(W& w, const Connack& c) const {
    w.u8(c.session_present ? 1 : 0);
    if (v5()) {
      w.u8(static_cast<std::uint8_t>(c.reason));
      put_properties(w, c.properties);
    } else {
      w.u8(v3_connack_return_code(c.reason));
    }
  }
  // Everything but the payload.
  template <class W>
  void operator()(W& w, const Publish& p) const {
    w.binary(p.topic);
    if (p.qos != QoS::kAtMostOnce) w.u16(p.packet_id);
    if (v5()) put_properties(w, p.properties);
  }
  template <class W, PacketType kType>
  void operator()(W& w, const PublishResponse<kType>& p) const {
    w.u16(p.packet_id);
    if (!v5()) return;
    const bool props = !p.properties.empty();
    if (p.reason != ReasonCode::kSuccess || props) w.u8(static_cast<std::uint8_t>(p.reason));
    if (props) put_properties(w, p.properties);
  }
  template <class W>
  void operator()(W& w, const Subscribe& s) const {
    w.u16(s.packet_id);
    if (v5()) put_properties(w, s.properties);
    for (const Subscription& sub : s.subscriptions) {
      w.binary(sub.filter);
      auto opts = static_cast<std::uint8_t>(sub.max_qos);
      if (v5()) {
        if (sub.no_local) opts |= 0x04;
        if (sub.retain_as_published) opts |= 0x08;
        opts |= static_cast<std::uint8_t>(static_cast<unsigned>(sub.retain_handling) << 4);
      }
      w.u8(opts);
    }
  }
  template <class W>
  void operator()(W& w, const Suback& s) const {
    w.u16(s.packet_id);
    if (v5()) put_properties(w, s.properties);
    for (const ReasonCode r : s.reasons) {
      auto b = static_cast<std::uint8_t>(r);
      if (!v5() && b > 2) b = 0x80;
      w.u8(b);
    }
  }
  template <class W>
  void operator()(W& w, const Unsubscribe& u) const {
    w.u16(u.packet_id);
    if (v5()) put_properties(w, u.properties);
    for (const std::string& f : u.filters) w.binary(f);
  }
  template <class W>
  void operator()(W& w, const Unsuback& u) const {
    w.u16(u.packet_id);
    if (!v5()) return;
    put_properties(w, u.properties);
    for (const ReasonCode r : u.reasons) w.u8(static_cast<std::uint8_t>(r));
  }
  template <class W>
  void operator()(W&, const Pingreq&) const {}
  template <class W>
  void operator()(W&, const Pingresp&) const {}
  template <class W>
  void operator()(W& w, const Disconnect& d) const {
    if (!v5()) return;
    const bool props = !d.properties.empty();
    if (d.reason != ReasonCode::kNormalDisconnection || props) {
      w.u8(static_cast<std::uint8_t>(d.reason));
    }
    if (props) put_properties(w, d.properties);
  }
  template <class W>
  void operator()(W& w, const Auth& a) const {
    const bool props = !a.properties.empty();
    if (a.reason != ReasonCode::kSuccess || props) w.u8(static_cast<std::uint8_t>(a.reason));
    if (props) put_properties(w, a.properties);
  }
};

Status encode_error(PacketType t, std::string_view msg) {
  return error(ReasonCode::kProtocolError, what(t, "cannot encode: " + std::string(msg)));
}

// The position of T in Packet, + 1, is its packet type.
template <class T, class V>
struct TypeOf;
template <class T, class... Ts>
struct TypeOf<T, std::variant<Ts...>> {
  static constexpr PacketType value = static_cast<PacketType>([] {
    std::size_t i = 0;
    bool found = false;
    ((found = found || std::is_same_v<T, Ts>, i += found ? 0 : 1), ...);
    return i + 1;
  }());
};
template <class T>
constexpr PacketType kTypeOf = TypeOf<T, Packet>::value;

// What the wire format cannot express; everything else is the caller's business.
Status need_id(PacketType t, std::uint16_t id) {
  if (id == 0) return encode_error(t, "packet identifier must be non-zero");
  return Status::Ok();
}
template <class T>
Status check_encodable(const T&, ProtocolVersion) {
  return Status::Ok();
}
Status check_encodable(const Connect& c, ProtocolVersion v) {
  constexpr auto t = PacketType::kConnect;
  if (c.will && static_cast<unsigned>(c.will->qos) > 2) return encode_error(t, "will QoS > 2");
  if (!is_v5(v) && c.password && !c.username) {
    return encode_error(t, "MQTT 3.1.1 needs a user name with a password");
  }
  return Status::Ok();
}
Status check_encodable(const Publish& p, ProtocolVersion) {
  constexpr auto t = PacketType::kPublish;
  if (static_cast<unsigned>(p.qos) > 2) return encode_error(t, "QoS > 2");
  if (p.qos == QoS::kAtMostOnce && p.dup) return encode_error(t, "DUP set with QoS 0");
  if (p.qos != QoS::kAtMostOnce) return need_id(t, p.packet_id);
  return Status::Ok();
}
template <PacketType kType>
Status check_encodable(const PublishResponse<kType>& p, ProtocolVersion) {
  return need_id(kType, p.packet_id);
}
Status check_encodable(const Subscribe& s, ProtocolVersion) {
  constexpr auto t = PacketType::kSubscribe;
  if (s.subscriptions.empty()) return encode_error(t, "no subscriptions");
  for (const auto& sub : s.subscriptions) {
    if (static_cast<unsigned>(sub.max_qos) > 2) return encode_error(t, "QoS > 2");
    if (static_cast<unsigned>(sub.retain_handling) > 2)
      return encode_error(t, "retain handling > 2");
  }
  return need_id(t, s.packet_id);
}
Status check_encodable(const Suback& s, ProtocolVersion) {
  if (s.reasons.empty()) return encode_error(PacketType::kSuback, "no reason codes");
  return need_id(PacketType::kSuback, s.packet_id);
}
Status check_encodable(const Unsubscribe& u, ProtocolVersion) {
  if (u.filters.empty()) return encode_error(PacketType::kUnsubscribe, "no topic filters");
  return need_id(PacketType::kUnsubscribe, u.packet_id);
}
Status check_encodable(const Unsuback& u, ProtocolVersion v) {
  if (is_v5(v) && u.reasons.empty()) return encode_error(PacketType::kUnsuback, "no reason codes");
  return need_id(PacketType::kUnsuback, u.packet_id);
}
Status check_encodable(const Auth&, ProtocolVersion v) {
  if (!is_v5(v)) return encode_error(PacketType::kAuth, "AUTH does not exist before MQTT 5");
  return Status::Ok();
}

// Fixed header flags: PUBLISH carries DUP/QoS/RETAIN; PUBREL, SUBSCRIBE, UNSUBSCRIBE 0b0010.
template <class T>
std::uint8_t fixed_header_byte(const T& packet) {
  constexpr auto t = static_cast<std::uint8_t>(kTypeOf<T>);
  std::uint8_t flags = 0;
  if constexpr (std::is_same_v<T, Publish>) {
    flags = static_cast<std::uint8_t>((packet.dup ? 0x08 : 0) |
                                      (static_cast<unsigned>(packet.qos) << 1) |
                                      (packet.retain ? 1 : 0));
  } else if constexpr (kTypeOf<T> == PacketType::kPubrel || kTypeOf<T> == PacketType::kSubscribe ||
                       kTypeOf<T> == PacketType::kUnsubscribe) {
    flags = 0x02;
  }
  return static_cast<std::uint8_t>(t << 4 | flags);
}

// Writes fixed header + body (without a PUBLISH payload); `extra` is added to the remaining
// length for the payload the caller appends.
template <class T>
Status encode_without_payload(const T& packet, ProtocolVersion v, std::size_t extra,
                              std::string& out) {
  GANGLION_RETURN_IF_ERROR(check_encodable(packet, v));
  const BodyWriter body{v};
  Counter c;
  body(c, packet);
  if (c.failure()) return encode_error(kTypeOf<T>, c.failure());
  const std::size_t remaining = c.size() + extra;
  if (remaining > kMaxRemainingLength) {
    return encode_error(kTypeOf<T>, "packet exceeds the maximum remaining length");
  }
  out.reserve(out.size() + 5 + remaining);
  Appender a(out);
  a.u8(fixed_header_byte(packet));
  a.varint(static_cast<std::uint32_t>(remaining));
  body(a, packet);
  return Status::Ok();
}

// Parses one packet body into `out`. `version` is updated by CONNECT (also when the rest of
// the CONNECT then fails, so the caller can answer in the right format).
Status parse_packet(std::uint8_t header, const char* body, std::size_t n,
                    std::optional<ProtocolVersion>& version, Role role,
                    std::optional<Packet>& out) {
  const auto type = static_cast<PacketType>(header >> 4);
  Parser parser(version.value_or(ProtocolVersion::kV5), role);
  if (type == PacketType::kConnect) {
    Reader r(body, n, type);
    GANGLION_RETURN_IF_ERROR(parser.connect_version(r));
    version = parser.version();
  } else if (!version) {
    return error(ReasonCode::kProtocolError,
                 what(type, "protocol version unknown: the first packet must be CONNECT"));
  }
  return parser.parse(header, body, n, out);
}

}  // namespace

bool is_valid_mqtt_utf8(std::string_view s) {
  return utf8_ok(reinterpret_cast<const unsigned char*>(s.data()), s.size());
}

// ---------------------------------------------------------------------------------------
// Decoder

// Buffers grown beyond this for a large packet are released once it is consumed.
constexpr std::size_t kKeepBufferBytes = 1 << 20;

Decoder::Decoder(DecoderOptions options)
    : role_(options.role),
      version_(options.version),
      max_packet_size_(options.maximum_packet_size) {}

std::span<char> Decoder::prepare(std::size_t n) {
  if (head_ == end_) {
    head_ = end_ = 0;
  } else if (head_ > 0 && (head_ >= buf_.size() / 2 || end_ + n > buf_.size())) {
    // Move the unconsumed tail to the front instead of growing the buffer.
    std::memmove(buf_.data(), buf_.data() + head_, end_ - head_);
    end_ -= head_;
    head_ = 0;
  }
  if (end_ + n > buf_.size()) buf_.resize(std::max(end_ + n, buf_.size() * 2));
  return {buf_.data() + end_, n};
}

void Decoder::commit(std::size_t n) { end_ = std::min(end_ + n, buf_.size()); }

void Decoder::release_idle_buffer(std::size_t keep) {
  if (head_ != end_ || buf_.capacity() <= std::max<std::size_t>(keep, 15)) return;
  std::string().swap(buf_);
  head_ = end_ = 0;
}

void Decoder::feed(std::string_view bytes) {
  if (bytes.empty()) return;
  const std::span<char> dst = prepare(bytes.size());
  std::memcpy(dst.data(), bytes.data(), bytes.size());
  commit(bytes.size());
}

Result<std::optional<Packet>> Decoder::fail(Status s) {
  error_ = s;
  return s;
}

Result<std::optional<Packet>> Decoder::next() {
  if (!error_.ok()) return error_;
  const std::size_t avail = end_ - head_;
  if (avail < 2) return std::optional<Packet>();
  const auto* p = reinterpret_cast<const unsigned char*>(buf_.data() + head_);
  const std::uint8_t header = p[0];
  const auto type = static_cast<PacketType>(header >> 4);

  // Reject what we can from the first byte, before waiting for the body.
  if (role_ == Role::kServer) {
    if (!seen_connect_ && type != PacketType::kConnect) {
      return fail(error(ReasonCode::kProtocolError,
                        what(type, "the first packet from a client must be CONNECT")));
    }
    if (seen_connect_ && type == PacketType::kConnect) {
      return fail(error(ReasonCode::kProtocolError, "CONNECT: a second CONNECT is not allowed"));
    }
  }
  if (!version_ && type != PacketType::kConnect) {
    return fail(error(ReasonCode::kProtocolError,
                      what(type, "protocol version unknown: the first packet must be CONNECT")));
  }
  if (version_) {
    if (Status s = check_fixed_header(header, *version_); !s.ok()) return fail(std::move(s));
  }

  std::uint32_t remaining;
  auto len_bytes = remaining_length(p + 1, avail - 1, remaining);
  if (!len_bytes.ok()) return fail(len_bytes.status());
  if (*len_bytes == 0) return std::optional<Packet>();
  const std::uint64_t total = 1 + *len_bytes + static_cast<std::uint64_t>(remaining);
  if (total > max_packet_size_) {
    return fail(error(ReasonCode::kPacketTooLarge,
                      what(type, std::to_string(total) + " bytes exceed the maximum packet size " +
                                     std::to_string(max_packet_size_))));
  }
  if (avail < total) return std::optional<Packet>();

  const char* body = buf_.data() + head_ + 1 + *len_bytes;
  if (type == PacketType::kConnect) seen_connect_ = true;
  std::optional<Packet> packet;
  Status status = parse_packet(header, body, remaining, version_, role_, packet);
  head_ += static_cast<std::size_t>(total);
  if (head_ == end_) {
    head_ = end_ = 0;
    // Do not keep a huge buffer alive for one huge packet.
    if (buf_.size() > kKeepBufferBytes) std::string().swap(buf_);
  }
  if (!status.ok()) return fail(std::move(status));
  return packet;
}

Result<Packet> decode_packet(std::string_view bytes, ProtocolVersion version, Role role) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() < 2) return error(ReasonCode::kMalformedPacket, "incomplete packet");
  std::uint32_t remaining;
  GANGLION_ASSIGN_OR_RETURN(std::size_t len_bytes,
                            remaining_length(p + 1, bytes.size() - 1, remaining));
  if (len_bytes == 0 || bytes.size() < 1 + len_bytes + remaining) {
    return error(ReasonCode::kMalformedPacket, "incomplete packet");
  }
  if (bytes.size() > 1 + len_bytes + remaining) {
    return error(ReasonCode::kMalformedPacket, "trailing bytes after the packet");
  }
  std::optional<ProtocolVersion> v = version;
  std::optional<Packet> packet;
  GANGLION_RETURN_IF_ERROR(
      parse_packet(p[0], bytes.data() + 1 + len_bytes, remaining, v, role, packet));
  return std::move(*packet);
}

Status encode(const Packet& packet, ProtocolVersion version, std::string& out) {
  return std::visit(
      [&](const auto& p) -> Status {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, Publish>) {
          GANGLION_RETURN_IF_ERROR(encode_without_payload(p, version, p.payload.size(), out));
          out.append(p.payload.view());
          return Status::Ok();
        } else {
          return encode_without_payload(p, version, 0, out);
        }
      },
      packet);
}

Status encode_publish_header(const Publish& publish, ProtocolVersion version, std::string& out) {
  return encode_without_payload(publish, version, publish.payload.size(), out);
}

}  // namespace ganglion::mqtt
