#include "mqtt/codec.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <vector>

namespace ganglion::mqtt {
namespace {

constexpr auto kV5 = ProtocolVersion::kV5;
constexpr auto kV311 = ProtocolVersion::kV311;

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int x : b) s.push_back(static_cast<char>(x));
  return s;
}

std::string encoded(const Packet& p, ProtocolVersion v) {
  std::string out;
  const Status s = encode(p, v, out);
  EXPECT_TRUE(s.ok()) << s.to_string();
  return out;
}

Connect minimal_connect(ProtocolVersion v) {
  Connect c;
  c.version = v;
  c.client_id = "c1";
  return c;
}

// A server-side decoder that has already accepted a CONNECT of version `v`.
Decoder connected_server(ProtocolVersion v, std::uint32_t max_packet = kMaxPacketSize) {
  Decoder d({.role = Role::kServer, .maximum_packet_size = max_packet});
  d.feed(encoded(minimal_connect(v), v));
  auto r = d.next();
  EXPECT_TRUE(r.ok() && r->has_value()) << r.status().to_string();
  return d;
}

// The error a server reports for `packet`, sent after a valid CONNECT.
Status server_error(ProtocolVersion v, const std::string& packet) {
  Decoder d = connected_server(v);
  d.feed(packet);
  auto r = d.next();
  if (r.ok()) return Status::Ok();
  return r.status();
}

// The error a decoder of `role` reports for `packet`, with the version known in advance.
Status decode_error(ProtocolVersion v, const std::string& packet, Role role = Role::kAny) {
  auto r = decode_packet(packet, v, role);
  return r.ok() ? Status::Ok() : r.status();
}

#define EXPECT_REASON(status_expr, reason)                  \
  do {                                                      \
    const ::ganglion::Status st_ = (status_expr);           \
    EXPECT_FALSE(st_.ok());                                 \
    EXPECT_EQ(reason_of(st_), (reason)) << st_.to_string(); \
  } while (0)

// ---------------------------------------------------------------------------------------
// Sample packets with every field and property their type allows.

Properties user_props() {
  Properties p;
  p.user_properties = {{"k", "v1"}, {"k", "v2"}, {"region", "eu-west"}};
  return p;
}

std::vector<Packet> sample_packets(ProtocolVersion v) {
  const bool v5 = v == kV5;
  std::vector<Packet> out;

  Connect c = minimal_connect(v);
  c.clean_start = false;
  c.keep_alive = 60;
  c.username = "user";
  c.password = std::string("p\0ss", 4);
  Will w;
  w.topic = "clients/c1/status";
  w.payload = std::string("off\xff", 4);
  w.qos = QoS::kAtLeastOnce;
  w.retain = true;
  if (v5) {
    c.properties = user_props();
    c.properties.session_expiry_interval = 3600;
    c.properties.receive_maximum = 20;
    c.properties.maximum_packet_size = 1 << 20;
    c.properties.topic_alias_maximum = 10;
    c.properties.request_response_information = 1;
    c.properties.request_problem_information = 0;
    c.properties.authentication_method = "SCRAM-SHA-1";
    c.properties.authentication_data = std::string("\x00\x01", 2);
    w.properties.will_delay_interval = 5;
    w.properties.payload_format_indicator = 0;
    w.properties.message_expiry_interval = 100;
    w.properties.content_type = "text/plain";
    w.properties.response_topic = "replies/c1";
    w.properties.correlation_data = "corr";
    w.properties.user_properties = {{"a", "b"}};
  }
  c.will = w;
  out.emplace_back(c);
  out.emplace_back(minimal_connect(v));

  Connack ca;
  ca.session_present = true;
  if (v5) {
    Properties& p = ca.properties;
    p.session_expiry_interval = 10;
    p.assigned_client_identifier = "auto-1";
    p.server_keep_alive = 30;
    p.authentication_method = "m";
    p.authentication_data = "d";
    p.response_information = "resp/";
    p.server_reference = "other:1883";
    p.reason_string = "welcome";
    p.receive_maximum = 100;
    p.topic_alias_maximum = 5;
    p.maximum_qos = 1;
    p.retain_available = 1;
    p.maximum_packet_size = 65536;
    p.wildcard_subscription_available = 1;
    p.subscription_identifier_available = 0;
    p.shared_subscription_available = 1;
    p.user_properties = {{"x", "y"}};
  }
  out.emplace_back(ca);
  Connack refused;
  refused.reason = ReasonCode::kBadUserNameOrPassword;
  out.emplace_back(refused);

  Publish pub;
  pub.topic = "sensors/t1/temp";
  pub.payload = SharedBytes(std::string("21.5"));
  out.emplace_back(pub);
  Publish pub2;
  pub2.topic = "a/b";
  pub2.qos = QoS::kExactlyOnce;
  pub2.dup = true;
  pub2.retain = true;
  pub2.packet_id = 65535;
  pub2.payload = SharedBytes(std::string(300, 'x'));
  if (v5) {
    Properties& p = pub2.properties;
    p.payload_format_indicator = 1;
    p.message_expiry_interval = 60;
    p.content_type = "application/json";
    p.response_topic = "r/t";
    p.correlation_data = std::string("\x01\x02\x00", 3);
    p.subscription_identifiers = {1, 268435455};
    p.topic_alias = 3;
    p.user_properties = {{"a", "1"}, {"a", "2"}};
  }
  out.emplace_back(pub2);
  if (v5) {
    Publish aliased;
    aliased.qos = QoS::kAtLeastOnce;
    aliased.packet_id = 7;
    aliased.properties.topic_alias = 3;
    out.emplace_back(aliased);
  }

  Puback pa{.packet_id = 1};
  out.emplace_back(pa);
  Pubrec prec{.packet_id = 2};
  Pubrel prel{.packet_id = 3};
  Pubcomp pcomp{.packet_id = 4};
  if (v5) {
    pa.reason = ReasonCode::kNoMatchingSubscribers;
    out.emplace_back(pa);
    prec.reason = ReasonCode::kQuotaExceeded;
    prec.properties.reason_string = "full";
    prel.reason = ReasonCode::kPacketIdentifierNotFound;
    pcomp.properties = user_props();
  }
  out.emplace_back(prec);
  out.emplace_back(prel);
  out.emplace_back(pcomp);

  Subscribe sub;
  sub.packet_id = 10;
  sub.subscriptions.push_back({.filter = "sensors/+/temp", .max_qos = QoS::kAtLeastOnce});
  sub.subscriptions.push_back({.filter = "#", .max_qos = QoS::kExactlyOnce});
  sub.subscriptions.push_back({.filter = "$share/g1/jobs/#"});
  if (v5) {
    sub.properties.subscription_identifiers = {42};
    sub.properties.user_properties = {{"u", "p"}};
    sub.subscriptions[0].no_local = true;
    sub.subscriptions[0].retain_as_published = true;
    sub.subscriptions[1].retain_handling = RetainHandling::kDoNotSend;
    sub.subscriptions[2].retain_handling = RetainHandling::kSendAtSubscribeIfNew;
  }
  out.emplace_back(sub);

  Suback sa;
  sa.packet_id = 10;
  sa.reasons = {ReasonCode::kGrantedQoS1, ReasonCode::kGrantedQoS2, ReasonCode::kUnspecifiedError};
  if (v5) {
    sa.reasons.push_back(ReasonCode::kSharedSubscriptionsNotSupported);
    sa.properties.reason_string = "partial";
  }
  out.emplace_back(sa);

  Unsubscribe un;
  un.packet_id = 11;
  un.filters = {"a/b", "$share/g/x/+"};
  if (v5) un.properties = user_props();
  out.emplace_back(un);

  Unsuback ua;
  ua.packet_id = 11;
  if (v5) {
    ua.reasons = {ReasonCode::kSuccess, ReasonCode::kNoSubscriptionExisted};
    ua.properties.reason_string = "ok";
  }
  out.emplace_back(ua);

  out.emplace_back(Pingreq{});
  out.emplace_back(Pingresp{});
  out.emplace_back(Disconnect{});
  if (v5) {
    Disconnect d;
    d.reason = ReasonCode::kDisconnectWithWillMessage;
    out.emplace_back(d);
    d.reason = ReasonCode::kServerMoved;
    d.properties.server_reference = "b:1883";
    d.properties.session_expiry_interval = 0;
    d.properties.reason_string = "moved";
    out.emplace_back(d);

    out.emplace_back(Auth{});
    Auth a;
    a.reason = ReasonCode::kContinueAuthentication;
    a.properties.authentication_method = "SCRAM-SHA-1";
    a.properties.authentication_data = "challenge";
    a.properties.reason_string = "more";
    out.emplace_back(a);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Round trips

void expect_round_trip(ProtocolVersion v) {
  for (const Packet& p : sample_packets(v)) {
    const std::string wire = encoded(p, v);
    auto back = decode_packet(wire, v, Role::kAny);
    ASSERT_TRUE(back.ok()) << to_string(type_of(p)) << ": " << back.status().to_string();
    EXPECT_TRUE(*back == p) << "round trip changed " << to_string(type_of(p));
    // Encoding the decoded packet gives the same bytes.
    EXPECT_EQ(encoded(*back, v), wire) << to_string(type_of(p));
  }
}

TEST(CodecTest, RoundTripsEveryPacketTypeInMqtt5) { expect_round_trip(kV5); }
TEST(CodecTest, RoundTripsEveryPacketTypeInMqtt311) { expect_round_trip(kV311); }
TEST(CodecTest, RoundTripsEveryPacketTypeInMqtt31) { expect_round_trip(ProtocolVersion::kV31); }

TEST(CodecTest, Mqtt311EncoderDropsPropertiesAndMapsReasonCodes) {
  Connack ca;
  ca.reason = ReasonCode::kNotAuthorized;
  ca.properties.reason_string = "no";
  EXPECT_EQ(encoded(ca, kV311), bytes({0x20, 0x02, 0x00, 0x05}));
  ca.reason = ReasonCode::kUnsupportedProtocolVersion;
  EXPECT_EQ(encoded(ca, kV311), bytes({0x20, 0x02, 0x00, 0x01}));
  ca.reason = ReasonCode::kServerBusy;
  EXPECT_EQ(encoded(ca, kV311), bytes({0x20, 0x02, 0x00, 0x03}));

  Suback sa{.packet_id = 1,
            .reasons = {ReasonCode::kGrantedQoS0, ReasonCode::kQuotaExceeded,
                        ReasonCode::kTopicFilterInvalid}};
  EXPECT_EQ(encoded(sa, kV311), bytes({0x90, 0x05, 0x00, 0x01, 0x00, 0x80, 0x80}));

  Puback pa{.packet_id = 0x1234, .reason = ReasonCode::kQuotaExceeded};
  EXPECT_EQ(encoded(pa, kV311), bytes({0x40, 0x02, 0x12, 0x34}));
  Disconnect d{.reason = ReasonCode::kServerShuttingDown};
  EXPECT_EQ(encoded(d, kV311), bytes({0xE0, 0x00}));
}

TEST(CodecTest, AuthCannotBeEncodedInMqtt311) {
  std::string out;
  EXPECT_REASON(encode(Auth{}, kV311, out), ReasonCode::kProtocolError);
  EXPECT_TRUE(out.empty());
}

TEST(CodecTest, EncoderRejectsZeroPacketIdentifier) {
  std::string out;
  Publish p;
  p.topic = "t";
  p.qos = QoS::kAtLeastOnce;
  EXPECT_FALSE(encode(p, kV5, out).ok());
  EXPECT_FALSE(encode(Puback{}, kV5, out).ok());
  EXPECT_TRUE(out.empty());
}

TEST(CodecTest, EncoderRejectsOverlongStrings) {
  Publish p;
  p.topic = std::string(70000, 'a');
  std::string out;
  EXPECT_FALSE(encode(p, kV5, out).ok());
}

TEST(CodecTest, PublishHeaderPlusPayloadEqualsWholePacket) {
  Publish p;
  p.topic = "a/b";
  p.qos = QoS::kAtLeastOnce;
  p.packet_id = 9;
  p.payload = SharedBytes(std::string(200, 'z'));
  std::string header;
  ASSERT_TRUE(encode_publish_header(p, kV5, header).ok());
  EXPECT_EQ(header + std::string(p.payload.view()), encoded(p, kV5));
}

TEST(CodecTest, DecodedPayloadIsSharedNotCopiedOnFanOut) {
  Publish p;
  p.topic = "a";
  p.payload = SharedBytes(std::string("data"));
  auto back = decode_packet(encoded(p, kV5), kV5);
  ASSERT_TRUE(back.ok());
  const Publish copy = std::get<Publish>(*back);
  EXPECT_EQ(copy.payload.view().data(), std::get<Publish>(*back).payload.view().data());
}

// ---------------------------------------------------------------------------------------
// Golden bytes from the specifications

TEST(CodecTest, EncodesConnectLikeTheSpec311Example) {
  Connect c;
  c.client_id = "abc";
  c.keep_alive = 60;
  c.clean_start = true;
  EXPECT_EQ(encoded(c, kV311), bytes({0x10, 0x0F, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0x00, 0x3C, 0,
                                      3, 'a', 'b', 'c'}));
}

TEST(CodecTest, DecodesTheMqtt5ConnectVariableHeaderExample) {
  // Spec 5.0 figure 3-6: protocol name, version 5, flags 0xC2 (user name, password, clean
  // start), keep alive 10, properties: session expiry interval 10.
  std::string body = bytes({0, 4, 'M', 'Q', 'T', 'T', 5, 0xC2, 0, 10, 5, 0x11, 0, 0, 0, 10});
  body += bytes({0, 2, 'i', 'd', 0, 1, 'u', 0, 1, 'p'});
  const std::string wire = bytes({0x10, static_cast<int>(body.size())}) + body;
  Decoder d;
  d.feed(wire);
  auto r = d.next();
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const auto& c = std::get<Connect>(**r);
  EXPECT_EQ(c.version, kV5);
  EXPECT_EQ(d.version(), kV5);
  EXPECT_TRUE(c.clean_start);
  EXPECT_EQ(c.keep_alive, 10);
  EXPECT_EQ(c.properties.session_expiry_interval, 10u);
  EXPECT_EQ(c.client_id, "id");
  EXPECT_EQ(c.username, "u");
  EXPECT_EQ(c.password, "p");
  EXPECT_EQ(encoded(c, kV5), wire);
}

TEST(CodecTest, EncodesPingAndDisconnectAsTwoBytes) {
  EXPECT_EQ(encoded(Pingreq{}, kV5), bytes({0xC0, 0x00}));
  EXPECT_EQ(encoded(Pingresp{}, kV311), bytes({0xD0, 0x00}));
  EXPECT_EQ(encoded(Disconnect{}, kV5), bytes({0xE0, 0x00}));
  EXPECT_EQ(encoded(Auth{}, kV5), bytes({0xF0, 0x00}));
}

TEST(CodecTest, EncodesRemainingLengthLikeTheSpecTable) {
  // Spec 1.5.5 table: boundaries of 1, 2, 3 and 4 byte lengths.
  struct Case {
    std::size_t remaining;
    std::string length_bytes;
  };
  const Case cases[] = {{0, bytes({0x00})},
                        {127, bytes({0x7F})},
                        {128, bytes({0x80, 0x01})},
                        {16383, bytes({0xFF, 0x7F})},
                        {16384, bytes({0x80, 0x80, 0x01})},
                        {2097151, bytes({0xFF, 0xFF, 0x7F})},
                        {2097152, bytes({0x80, 0x80, 0x80, 0x01})}};
  for (const Case& c : cases) {
    // A QoS 0 PUBLISH with topic "t": 3 bytes of topic, the rest payload.
    Publish p;
    p.topic = "t";
    if (c.remaining < 3) continue;
    p.payload = SharedBytes(std::string(c.remaining - 3, 'x'));
    std::string header;
    ASSERT_TRUE(encode_publish_header(p, kV311, header).ok());
    EXPECT_EQ(header.substr(1, c.length_bytes.size()), c.length_bytes) << c.remaining;
  }
}

TEST(CodecTest, DecodesPublishQos1FromBytes) {
  // 0x32 = PUBLISH, QoS 1; topic "a/b"; packet id 10; payload "hi".
  auto r = decode_packet(bytes({0x32, 0x09, 0, 3, 'a', '/', 'b', 0, 10, 'h', 'i'}), kV311);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const auto& p = std::get<Publish>(*r);
  EXPECT_EQ(p.qos, QoS::kAtLeastOnce);
  EXPECT_EQ(p.topic, "a/b");
  EXPECT_EQ(p.packet_id, 10);
  EXPECT_EQ(p.payload.view(), "hi");
}

TEST(CodecTest, DecodesMqtt311ConnackReturnCodesAsReasonCodes) {
  auto r = decode_packet(bytes({0x20, 0x02, 0x00, 0x04}), kV311, Role::kClient);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(std::get<Connack>(*r).reason, ReasonCode::kBadUserNameOrPassword);
}

TEST(CodecTest, DecodesShortFormAcksInMqtt5) {
  // PUBACK with only a packet id: reason Success.
  auto r = decode_packet(bytes({0x40, 0x02, 0x00, 0x05}), kV5);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(std::get<Puback>(*r).reason, ReasonCode::kSuccess);
  // PUBACK with a reason code and no property length.
  r = decode_packet(bytes({0x40, 0x03, 0x00, 0x05, 0x10}), kV5);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(std::get<Puback>(*r).reason, ReasonCode::kNoMatchingSubscribers);
  // DISCONNECT with a reason code only.
  r = decode_packet(bytes({0xE0, 0x01, 0x8E}), kV5);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(std::get<Disconnect>(*r).reason, ReasonCode::kSessionTakenOver);
}

// ---------------------------------------------------------------------------------------
// Incremental decoding

std::string stream_of(ProtocolVersion v, std::vector<Packet>& packets) {
  packets = sample_packets(v);
  // A server sees CONNECT first; other packets follow in any order for Role::kAny.
  std::string all;
  for (const Packet& p : packets) all += encoded(p, v);
  return all;
}

std::vector<Packet> drain(Decoder& d) {
  std::vector<Packet> got;
  for (;;) {
    auto r = d.next();
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    if (!r.ok() || !r->has_value()) break;
    got.push_back(std::move(**r));
  }
  return got;
}

TEST(DecoderTest, DecodesByteByByte) {
  for (const ProtocolVersion v : {kV311, kV5}) {
    std::vector<Packet> packets;
    const std::string all = stream_of(v, packets);
    Decoder d({.role = Role::kAny});
    std::vector<Packet> got;
    for (const char c : all) {
      d.feed(std::string_view(&c, 1));
      for (Packet& p : drain(d)) got.push_back(std::move(p));
    }
    ASSERT_EQ(got.size(), packets.size());
    for (std::size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(got[i] == packets[i]) << i;
    EXPECT_EQ(d.buffered(), 0u);
  }
}

TEST(DecoderTest, DecodesSeveralPacketsFromOneChunk) {
  std::vector<Packet> packets;
  const std::string all = stream_of(kV5, packets);
  Decoder d({.role = Role::kAny});
  d.feed(all);
  const std::vector<Packet> got = drain(d);
  ASSERT_EQ(got.size(), packets.size());
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(got[i] == packets[i]) << i;
}

TEST(DecoderTest, DecodesChunksSplitAtEveryOffset) {
  std::vector<Packet> packets;
  const std::string all = stream_of(kV5, packets);
  for (std::size_t cut = 1; cut < all.size(); cut += 7) {
    Decoder d({.role = Role::kAny});
    d.feed(std::string_view(all).substr(0, cut));
    std::vector<Packet> got = drain(d);
    d.feed(std::string_view(all).substr(cut));
    for (Packet& p : drain(d)) got.push_back(std::move(p));
    ASSERT_EQ(got.size(), packets.size()) << cut;
  }
}

TEST(DecoderTest, ReadsStraightIntoPreparedBuffer) {
  Publish p;
  p.topic = "x";
  p.payload = SharedBytes(std::string("hello"));
  const std::string wire = encoded(p, kV5);
  Decoder d({.role = Role::kAny, .version = kV5});
  auto span = d.prepare(4096);
  ASSERT_GE(span.size(), wire.size());
  std::copy(wire.begin(), wire.end(), span.begin());
  d.commit(wire.size());
  auto r = d.next();
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_TRUE(**r == Packet(p));
}

TEST(DecoderTest, LearnsProtocolVersionFromConnect) {
  Decoder d;
  EXPECT_FALSE(d.version().has_value());
  d.feed(encoded(minimal_connect(kV311), kV311));
  auto r = d.next();
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ(d.version(), kV311);
  // A 3.1.1 PUBACK is two bytes; a v5 reason code would be trailing garbage now.
  d.feed(bytes({0x40, 0x03, 0x00, 0x01, 0x00}));
  EXPECT_REASON(d.next().status(), ReasonCode::kMalformedPacket);
}

TEST(DecoderTest, AcceptsMqtt31Connect) {
  Connect c = minimal_connect(ProtocolVersion::kV31);
  Decoder d;
  d.feed(encoded(c, ProtocolVersion::kV31));
  auto r = d.next();
  ASSERT_TRUE(r.ok() && r->has_value()) << r.status().to_string();
  EXPECT_EQ(d.version(), ProtocolVersion::kV31);
  EXPECT_EQ(encoded(c, ProtocolVersion::kV31).substr(2, 8),
            bytes({0, 6, 'M', 'Q', 'I', 's', 'd', 'p'}));
}

TEST(DecoderTest, StaysFailedAfterAnError) {
  Decoder d = connected_server(kV5);
  d.feed(bytes({0x00, 0x00}));
  EXPECT_FALSE(d.next().ok());
  EXPECT_TRUE(d.failed());
  d.feed(encoded(Pingreq{}, kV5));
  EXPECT_REASON(d.next().status(), ReasonCode::kMalformedPacket);
}

// ---------------------------------------------------------------------------------------
// Malformed input, as a server receives it

TEST(MalformedTest, RejectsPacketsLargerThanMaximumBeforeBufferingTheBody) {
  Decoder d = connected_server(kV5, 100);
  // Fixed header announcing 200 bytes; no body yet.
  d.feed(bytes({0x30, 0xC8, 0x01}));
  EXPECT_REASON(d.next().status(), ReasonCode::kPacketTooLarge);
}

TEST(MalformedTest, AcceptsPacketOfExactlyMaximumSize) {
  Decoder d = connected_server(kV5);
  d.set_maximum_packet_size(10);
  d.feed(bytes({0x30, 0x08, 0, 1, 't', 0, 'a', 'b', 'c', 'd'}));
  auto r = d.next();
  EXPECT_TRUE(r.ok() && r->has_value()) << r.status().to_string();
}

TEST(MalformedTest, RejectsRemainingLengthLongerThanFourBytes) {
  EXPECT_REASON(server_error(kV5, bytes({0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F})),
                ReasonCode::kMalformedPacket);
}

TEST(MalformedTest, RejectsNonMinimalRemainingLength) {
  EXPECT_REASON(server_error(kV5, bytes({0xC0, 0x80, 0x00})), ReasonCode::kMalformedPacket);
}

TEST(MalformedTest, RejectsReservedPacketTypeZero) {
  EXPECT_REASON(server_error(kV5, bytes({0x00, 0x00})), ReasonCode::kMalformedPacket);
}

TEST(MalformedTest, RejectsAuthInMqtt311) {
  EXPECT_REASON(server_error(kV311, bytes({0xF0, 0x00})), ReasonCode::kMalformedPacket);
}

TEST(MalformedTest, RejectsReservedFixedHeaderFlags) {
  EXPECT_REASON(server_error(kV5, bytes({0xC1, 0x00})), ReasonCode::kMalformedPacket);  // PINGREQ
  EXPECT_REASON(server_error(kV5, bytes({0x60, 0x02, 0, 1})),
                ReasonCode::kMalformedPacket);  // PUBREL
  EXPECT_REASON(server_error(kV5, bytes({0x80, 0x06, 0, 1, 0, 0, 1, 'a', 0})),
                ReasonCode::kMalformedPacket);  // SUBSCRIBE without 0b0010
  EXPECT_REASON(server_error(kV5, bytes({0xA0, 0x05, 0, 1, 0, 0, 0})),
                ReasonCode::kMalformedPacket);  // UNSUBSCRIBE without 0b0010
}

TEST(MalformedTest, RejectsPublishWithQos3) {
  EXPECT_REASON(server_error(kV311, bytes({0x36, 0x05, 0, 1, 't', 0, 1})),
                ReasonCode::kMalformedPacket);
}

TEST(MalformedTest, RejectsDupFlagOnQos0Publish) {
  EXPECT_REASON(server_error(kV311, bytes({0x38, 0x03, 0, 1, 't'})), ReasonCode::kMalformedPacket);
}

TEST(MalformedTest, RejectsZeroPacketIdentifier) {
  EXPECT_REASON(server_error(kV311, bytes({0x32, 0x05, 0, 1, 't', 0, 0})),
                ReasonCode::kMalformedPacket);
  EXPECT_REASON(server_error(kV311, bytes({0x40, 0x02, 0, 0})), ReasonCode::kMalformedPacket);
  EXPECT_REASON(server_error(kV311, bytes({0x82, 0x06, 0, 0, 0, 1, 'a', 0})),
                ReasonCode::kMalformedPacket);
  EXPECT_REASON(server_error(kV311, bytes({0xA2, 0x05, 0, 0, 0, 1, 'a'})),
                ReasonCode::kMalformedPacket);
}

TEST(MalformedTest, RejectsWildcardInPublishTopic) {
  EXPECT_REASON(server_error(kV311, bytes({0x30, 0x05, 0, 3, 'a', '/', '+'})),
                ReasonCode::kTopicNameInvalid);
  EXPECT_REASON(server_error(kV5, bytes({0x30, 0x04, 0, 1, '#', 0})),
                ReasonCode::kTopicNameInvalid);
}

TEST(MalformedTest, RejectsEmptyTopicWithoutTopicAlias) {
  EXPECT_REASON(server_error(kV5, bytes({0x30, 0x03, 0, 0, 0})), ReasonCode::kProtocolError);
  EXPECT_REASON(server_error(kV311, bytes({0x30, 0x02, 0, 0})), ReasonCode::kProtocolError);
}

TEST(MalformedTest, AcceptsEmptyTopicWithTopicAliasInMqtt5) {
  EXPECT_TRUE(server_error(kV5, bytes({0x30, 0x06, 0, 0, 3, 0x23, 0, 1})).ok());
}

TEST(MalformedTest, RejectsTopicAliasZero) {
  EXPECT_REASON(server_error(kV5, bytes({0x30, 0x07, 0, 1, 't', 3, 0x23, 0, 0})),
                ReasonCode::kTopicAliasInvalid);
}

TEST(MalformedTest, RejectsIllFormedUtf8) {
  auto publish_with_topic = [](const std::string& topic) {
    std::string body = bytes({0, static_cast<int>(topic.size())}) + topic;
    return bytes({0x30, static_cast<int>(body.size())}) + body;
  };
  const std::string bad[] = {
      std::string("a\0b", 3),  // U+0000
      "\xC0\xAF",              // overlong '/'
      "\xE0\x80\xAF",          // overlong 3-byte
      "\xED\xA0\x80",          // surrogate U+D800
      "\xF4\x90\x80\x80",      // above U+10FFFF
      "\x80",                  // lone continuation byte
      "\xE2\x82",              // truncated sequence
      "\xFF",
  };
  for (const std::string& t : bad) {
    EXPECT_REASON(server_error(kV311, publish_with_topic(t)), ReasonCode::kMalformedPacket);
  }
  EXPECT_TRUE(server_error(kV311, publish_with_topic("caf\xC3\xA9/\xF0\x9F\x98\x80")).ok());
}

TEST(MalformedTest, Utf8ValidatorFollowsMqttRules) {
  EXPECT_TRUE(is_valid_mqtt_utf8("plain ascii string that is long enough for the fast path"));
  EXPECT_TRUE(is_valid_mqtt_utf8("\xEF\xBF\xBF"));  // U+FFFF is allowed (SHOULD NOT only)
  EXPECT_FALSE(is_valid_mqtt_utf8(std::string("0123456789\0abc", 14)));
  EXPECT_FALSE(is_valid_mqtt_utf8("\xED\xBF\xBF"));  // U+DFFF
}

TEST(MalformedTest, RejectsStringRunningPastTheEnd) {
  EXPECT_REASON(server_error(kV311, bytes({0x30, 0x03, 0, 5, 'a'})), ReasonCode::kMalformedPacket);
}

TEST(MalformedTest, RejectsInvalidTopicFilters) {
  // SUBSCRIBE id 1, filter "a/#/b", QoS 0.
  EXPECT_REASON(server_error(kV311, bytes({0x82, 0x0A, 0, 1, 0, 5, 'a', '/', '#', '/', 'b', 0})),
                ReasonCode::kTopicFilterInvalid);
  // "a+" in UNSUBSCRIBE.
  EXPECT_REASON(server_error(kV311, bytes({0xA2, 0x06, 0, 1, 0, 2, 'a', '+'})),
                ReasonCode::kTopicFilterInvalid);
}

TEST(MalformedTest, RejectsSubscribeWithoutFilters) {
  EXPECT_REASON(server_error(kV5, bytes({0x82, 0x03, 0, 1, 0})), ReasonCode::kProtocolError);
  EXPECT_REASON(server_error(kV311, bytes({0x82, 0x02, 0, 1})), ReasonCode::kProtocolError);
  EXPECT_REASON(server_error(kV311, bytes({0xA2, 0x02, 0, 1})), ReasonCode::kProtocolError);
}

TEST(MalformedTest, RejectsReservedSubscriptionOptionBits) {
  EXPECT_REASON(server_error(kV5, bytes({0x82, 0x07, 0, 1, 0, 0, 1, 'a', 0x40})),
                ReasonCode::kMalformedPacket);
  EXPECT_REASON(server_error(kV311, bytes({0x82, 0x06, 0, 1, 0, 1, 'a', 0x04})),
                ReasonCode::kMalformedPacket);
  EXPECT_REASON(server_error(kV5, bytes({0x82, 0x07, 0, 1, 0, 0, 1, 'a', 0x03})),
                ReasonCode::kMalformedPacket);  // QoS 3
  EXPECT_REASON(server_error(kV5, bytes({0x82, 0x07, 0, 1, 0, 0, 1, 'a', 0x30})),
                ReasonCode::kProtocolError);  // retain handling 3
}

TEST(MalformedTest, RejectsNoLocalOnSharedSubscription) {
  std::string body = bytes({0, 1, 0, 0, 10}) + "$share/g/a" + bytes({0x04});
  EXPECT_REASON(server_error(kV5, bytes({0x82, static_cast<int>(body.size())}) + body),
                ReasonCode::kProtocolError);
}

TEST(MalformedTest, RejectsPropertyNotAllowedInPacket) {
  // PUBLISH carrying Session Expiry Interval (a CONNECT property).
  EXPECT_REASON(server_error(kV5, bytes({0x30, 0x0A, 0, 1, 't', 5, 0x11, 0, 0, 0, 1, 'x'})),
                ReasonCode::kMalformedPacket);
}

TEST(MalformedTest, RejectsUnknownPropertyIdentifier) {
  EXPECT_REASON(server_error(kV5, bytes({0x30, 0x06, 0, 1, 't', 2, 0x7F, 0})),
                ReasonCode::kMalformedPacket);
}

TEST(MalformedTest, RejectsDuplicatedProperty) {
  EXPECT_REASON(server_error(kV5, bytes({0x30, 0x08, 0, 1, 't', 4, 0x01, 0, 0x01, 0})),
                ReasonCode::kProtocolError);
}

TEST(MalformedTest, AllowsRepeatedUserProperties) {
  EXPECT_TRUE(server_error(kV5, bytes({0x30, 0x11, 0, 1, 't', 13, 0x26, 0, 1, 'k', 0, 1, 'v', 0x26,
                                       0, 1, 'k', 0, 0}))
                  .ok());
}

TEST(MalformedTest, RejectsPropertyLengthPastTheEnd) {
  EXPECT_REASON(server_error(kV5, bytes({0x30, 0x06, 0, 1, 't', 9, 0x01, 0})),
                ReasonCode::kMalformedPacket);
  // A property value cut by the property length.
  EXPECT_REASON(server_error(kV5, bytes({0x30, 0x08, 0, 1, 't', 2, 0x02, 0, 0, 1})),
                ReasonCode::kMalformedPacket);
}

TEST(MalformedTest, RejectsOutOfRangePropertyValues) {
  // Payload format indicator 2.
  EXPECT_REASON(server_error(kV5, bytes({0x30, 0x06, 0, 1, 't', 2, 0x01, 2})),
                ReasonCode::kProtocolError);
  // Subscription identifier 0 in SUBSCRIBE.
  EXPECT_REASON(server_error(kV5, bytes({0x82, 0x09, 0, 1, 2, 0x0B, 0, 0, 1, 'a', 0})),
                ReasonCode::kProtocolError);
  // Subscription identifier as a 5-byte variable byte integer.
  EXPECT_REASON(server_error(kV5, bytes({0x82, 0x0D, 0, 1, 6, 0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0,
                                         1, 'a', 0})),
                ReasonCode::kMalformedPacket);
}

TEST(MalformedTest, RejectsSubscriptionIdentifierFromClientPublish) {
  EXPECT_REASON(server_error(kV5, bytes({0x30, 0x06, 0, 1, 't', 2, 0x0B, 1})),
                ReasonCode::kProtocolError);
}

TEST(MalformedTest, RejectsTwoSubscriptionIdentifiersInSubscribe) {
  EXPECT_REASON(server_error(kV5, bytes({0x82, 0x0A, 0, 1, 4, 0x0B, 1, 0x0B, 2, 0, 1, 'a', 0})),
                ReasonCode::kProtocolError);
}

TEST(MalformedTest, RejectsInvalidReasonCodeForPacket) {
  // PUBREL may only carry 0x00 or 0x92.
  EXPECT_REASON(server_error(kV5, bytes({0x62, 0x03, 0, 1, 0x10})), ReasonCode::kMalformedPacket);
  // DISCONNECT with 0x18 (an AUTH reason).
  EXPECT_REASON(server_error(kV5, bytes({0xE0, 0x01, 0x18})), ReasonCode::kMalformedPacket);
}

TEST(MalformedTest, RejectsTrailingBytes) {
  EXPECT_REASON(server_error(kV311, bytes({0xE0, 0x01, 0x00})), ReasonCode::kMalformedPacket);
  EXPECT_REASON(server_error(kV311, bytes({0xC0, 0x01, 0x00})), ReasonCode::kMalformedPacket);
  EXPECT_REASON(server_error(kV5, bytes({0x40, 0x05, 0, 1, 0, 0, 0})),
                ReasonCode::kMalformedPacket);
}

TEST(MalformedTest, RejectsPacketsOnlyAServerSends) {
  EXPECT_REASON(server_error(kV5, bytes({0x20, 0x03, 0, 0, 0})), ReasonCode::kProtocolError);
  EXPECT_REASON(server_error(kV5, bytes({0xD0, 0x00})), ReasonCode::kProtocolError);
  EXPECT_REASON(decode_error(kV5, bytes({0xC0, 0x00}), Role::kClient), ReasonCode::kProtocolError);
}

// ---------------------------------------------------------------------------------------
// CONNECT

std::string connect_with_flags(int level, int flags, const std::string& payload) {
  std::string body = bytes({0, 4, 'M', 'Q', 'T', 'T', level, flags, 0, 60});
  if (level == 5) body += bytes({0});
  body += payload;
  return bytes({0x10, static_cast<int>(body.size())}) + body;
}

Status first_packet_error(const std::string& wire) {
  Decoder d;
  d.feed(wire);
  auto r = d.next();
  return r.ok() ? Status::Ok() : r.status();
}

TEST(ConnectTest, RequiresConnectFirst) {
  EXPECT_REASON(first_packet_error(bytes({0xC0, 0x00})), ReasonCode::kProtocolError);
}

TEST(ConnectTest, RejectsSecondConnect) {
  Decoder d = connected_server(kV5);
  d.feed(encoded(minimal_connect(kV5), kV5));
  EXPECT_REASON(d.next().status(), ReasonCode::kProtocolError);
}

TEST(ConnectTest, RejectsUnsupportedProtocolLevel) {
  Decoder d;
  d.feed(connect_with_flags(6, 0x02, bytes({0, 1, 'c'})));
  EXPECT_REASON(d.next().status(), ReasonCode::kUnsupportedProtocolVersion);
  EXPECT_FALSE(d.version().has_value());  // answer with a 3.1.1 CONNACK
  std::string wrong_name = bytes({0x10, 0x0D, 0, 4, 'M', 'Q', 'T', 'X', 4, 2, 0, 60, 0, 1, 'c'});
  EXPECT_REASON(first_packet_error(wrong_name), ReasonCode::kUnsupportedProtocolVersion);
}

TEST(ConnectTest, RejectsReservedConnectFlag) {
  EXPECT_REASON(first_packet_error(connect_with_flags(4, 0x03, bytes({0, 1, 'c'}))),
                ReasonCode::kMalformedPacket);
}

TEST(ConnectTest, RejectsWillQosOrRetainWithoutWillFlag) {
  EXPECT_REASON(first_packet_error(connect_with_flags(4, 0x0A, bytes({0, 1, 'c'}))),
                ReasonCode::kMalformedPacket);
  EXPECT_REASON(first_packet_error(connect_with_flags(5, 0x22, bytes({0, 1, 'c'}))),
                ReasonCode::kMalformedPacket);
}

TEST(ConnectTest, RejectsWillQos3) {
  EXPECT_REASON(
      first_packet_error(connect_with_flags(4, 0x1E, bytes({0, 1, 'c', 0, 1, 't', 0, 0}))),
      ReasonCode::kMalformedPacket);
}

TEST(ConnectTest, RejectsWildcardInWillTopic) {
  EXPECT_REASON(
      first_packet_error(connect_with_flags(4, 0x06, bytes({0, 1, 'c', 0, 1, '#', 0, 0}))),
      ReasonCode::kTopicNameInvalid);
}

TEST(ConnectTest, RejectsPasswordWithoutUserNameIn311ButNotIn5) {
  EXPECT_REASON(first_packet_error(connect_with_flags(4, 0x42, bytes({0, 1, 'c', 0, 1, 'p'}))),
                ReasonCode::kMalformedPacket);
  EXPECT_TRUE(first_packet_error(connect_with_flags(5, 0x42, bytes({0, 1, 'c', 0, 1, 'p'}))).ok());
}

TEST(ConnectTest, RejectsEmptyClientIdWithoutCleanSessionIn311) {
  EXPECT_REASON(first_packet_error(connect_with_flags(4, 0x00, bytes({0, 0}))),
                ReasonCode::kClientIdentifierNotValid);
  EXPECT_TRUE(first_packet_error(connect_with_flags(4, 0x02, bytes({0, 0}))).ok());
  EXPECT_TRUE(first_packet_error(connect_with_flags(5, 0x00, bytes({0, 0}))).ok());
}

TEST(ConnectTest, RejectsAuthenticationDataWithoutMethod) {
  std::string body =
      bytes({0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, 4, 0x16, 0, 1, 'x', 0, 1, 'c'});
  EXPECT_REASON(first_packet_error(bytes({0x10, static_cast<int>(body.size())}) + body),
                ReasonCode::kProtocolError);
}

TEST(ConnectTest, RejectsWillPropertyOutsideWill) {
  // Will Delay Interval (0x18) in the CONNECT properties.
  std::string body =
      bytes({0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, 5, 0x18, 0, 0, 0, 1, 0, 1, 'c'});
  EXPECT_REASON(first_packet_error(bytes({0x10, static_cast<int>(body.size())}) + body),
                ReasonCode::kMalformedPacket);
}

TEST(ConnectTest, ReasonCodeSurvivesAddedContext) {
  const Status s = error(ReasonCode::kPacketTooLarge, "too big").with_context("conn 7");
  EXPECT_EQ(reason_of(s), ReasonCode::kPacketTooLarge);
  EXPECT_EQ(reason_of(InvalidArgument("plain")), std::nullopt);
}

}  // namespace
}  // namespace ganglion::mqtt
