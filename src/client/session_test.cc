// ClientSession with no socket: the test plays the server, decoding what the session writes
// and feeding it encoded packets; a ManualClock drives keep-alive and timeouts.
#include "client/session.h"

#include <gtest/gtest.h>

namespace ganglion::client {
namespace {

using mqtt::ProtocolVersion;
using mqtt::QoS;
using mqtt::ReasonCode;
using std::chrono::seconds;

class SessionTest : public ::testing::Test {
 protected:
  void make(SessionOptions o = {}) {
    if (o.client_id.empty()) o.client_id = "c1";
    version = o.version;
    SessionHandlers h;
    h.on_message = [this](const mqtt::Publish& p) { messages.push_back(p); };
    h.on_connected = [this](const mqtt::Connack&) { ++connected; };
    session = std::make_unique<ClientSession>(o, clock, h);
  }

  // Opens a transport and returns the CONNECT the session wrote.
  mqtt::Connect open() {
    server = std::make_unique<mqtt::Decoder>(mqtt::DecoderOptions{mqtt::Role::kServer});
    session->on_transport_open();
    auto packets = written();
    EXPECT_EQ(packets.size(), 1u);
    auto* c = packets.empty() ? nullptr : std::get_if<mqtt::Connect>(&packets[0]);
    return c ? *c : mqtt::Connect{};
  }

  void feed(const mqtt::Packet& p) {
    std::string bytes;
    ASSERT_TRUE(mqtt::encode(p, version, bytes).ok());
    session->on_bytes(bytes);
  }

  void connack(bool present = false, mqtt::Properties props = {}) {
    mqtt::Connack a;
    a.session_present = present;
    a.properties = std::move(props);
    feed(a);
  }

  // Everything the session wrote since the last call, decoded as the server would.
  std::vector<mqtt::Packet> written() {
    server->feed(session->take_output());
    std::vector<mqtt::Packet> out;
    for (;;) {
      auto n = server->next();
      EXPECT_TRUE(n.ok()) << n.status().to_string();
      if (!n.ok() || !*n) break;
      out.push_back(std::move(**n));
    }
    return out;
  }

  template <class T>
  std::vector<T> written_of() {
    std::vector<T> out;
    for (auto& p : written()) {
      if (auto* t = std::get_if<T>(&p)) out.push_back(*t);
    }
    return out;
  }

  static mqtt::Publish msg(std::string topic, std::string payload, QoS qos) {
    mqtt::Publish p;
    p.topic = std::move(topic);
    p.payload = mqtt::SharedBytes(std::move(payload));
    p.qos = qos;
    return p;
  }

  void fire_timers() {
    if (auto d = session->next_deadline()) {
      clock.advance_to(*d);
      session->on_timer();
    }
  }

  ManualClock clock;
  ProtocolVersion version = ProtocolVersion::kV5;
  std::unique_ptr<ClientSession> session;
  std::unique_ptr<mqtt::Decoder> server;
  std::vector<mqtt::Publish> messages;
  int connected = 0;
};

TEST_F(SessionTest, ConnectCarriesTheOptions) {
  SessionOptions o;
  o.client_id = "bridge-1";
  o.username = "u";
  o.password = "p";
  o.clean_start = false;
  o.session_expiry = 3600;
  o.keep_alive = 30;
  o.receive_maximum = 10;
  make(o);
  auto c = open();
  EXPECT_EQ(c.client_id, "bridge-1");
  EXPECT_EQ(c.username, "u");
  EXPECT_EQ(c.password, "p");
  EXPECT_FALSE(c.clean_start);
  EXPECT_EQ(c.keep_alive, 30);
  EXPECT_EQ(c.properties.session_expiry_interval, 3600u);
  EXPECT_EQ(c.properties.receive_maximum, 10);
  EXPECT_EQ(session->state(), ClientSession::State::kAwaitConnack);
  connack();
  EXPECT_EQ(session->state(), ClientSession::State::kConnected);
  EXPECT_EQ(connected, 1);
}

TEST_F(SessionTest, RefusedConnectAsksToCloseWithTheReason) {
  make();
  open();
  feed(mqtt::Connack{false, ReasonCode::kNotAuthorized, {}});
  EXPECT_TRUE(session->close_requested());
  EXPECT_EQ(mqtt::reason_of(session->close_reason()), ReasonCode::kNotAuthorized);
}

TEST_F(SessionTest, NoConnackWithinTheTimeoutAsksToClose) {
  SessionOptions o;
  o.connack_timeout = std::chrono::milliseconds(5000);
  make(o);
  open();
  clock.advance(seconds(4));
  session->on_timer();
  EXPECT_FALSE(session->close_requested());
  fire_timers();
  EXPECT_TRUE(session->close_requested());
  EXPECT_EQ(session->close_reason().code(), StatusCode::kTimeout);
}

TEST_F(SessionTest, PublishesWaitForTheConnectionThenCompleteOnPuback) {
  make();
  std::vector<ReasonCode> done;
  session->publish(msg("a/b", "1", QoS::kAtLeastOnce), [&](Status s, ReasonCode r) {
    EXPECT_TRUE(s.ok());
    done.push_back(r);
  });
  EXPECT_FALSE(session->has_output());  // not connected: nothing to write
  open();
  connack();
  auto pubs = written_of<mqtt::Publish>();
  ASSERT_EQ(pubs.size(), 1u);
  EXPECT_EQ(pubs[0].topic, "a/b");
  EXPECT_NE(pubs[0].packet_id, 0);
  EXPECT_TRUE(done.empty());
  feed(mqtt::Puback{pubs[0].packet_id, ReasonCode::kNoMatchingSubscribers, {}});
  EXPECT_EQ(done, std::vector<ReasonCode>{ReasonCode::kNoMatchingSubscribers});
  EXPECT_EQ(session->inflight(), 0u);
}

TEST_F(SessionTest, FailingPubackReasonIsReported) {
  make();
  open();
  connack();
  std::optional<Status> st;
  session->publish(msg("x", "1", QoS::kAtLeastOnce), [&](Status s, ReasonCode) { st = s; });
  auto pubs = written_of<mqtt::Publish>();
  feed(mqtt::Puback{pubs[0].packet_id, ReasonCode::kNotAuthorized, {}});
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(mqtt::reason_of(*st), ReasonCode::kNotAuthorized);
}

TEST_F(SessionTest, Qos2CompletesOnPubcompAfterPubrel) {
  make();
  open();
  connack();
  int done = 0;
  session->publish(msg("x", "1", QoS::kExactlyOnce), [&](Status s, ReasonCode) {
    EXPECT_TRUE(s.ok());
    ++done;
  });
  auto id = written_of<mqtt::Publish>().at(0).packet_id;
  feed(mqtt::Pubrec{id, ReasonCode::kSuccess, {}});
  auto rel = written_of<mqtt::Pubrel>();
  ASSERT_EQ(rel.size(), 1u);
  EXPECT_EQ(rel[0].packet_id, id);
  EXPECT_EQ(done, 0);
  feed(mqtt::Pubcomp{id, ReasonCode::kSuccess, {}});
  EXPECT_EQ(done, 1);
}

TEST_F(SessionTest, InflightWindowIsTheSmallerOfServerReceiveMaximumAndOurLimit) {
  SessionOptions o;
  o.max_inflight = 5;
  make(o);
  open();
  mqtt::Properties p;
  p.receive_maximum = 2;
  connack(false, p);
  for (int i = 0; i < 4; ++i) session->publish(msg("t", std::to_string(i), QoS::kAtLeastOnce));
  auto first = written_of<mqtt::Publish>();
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(session->queued(), 2u);
  feed(mqtt::Puback{first[0].packet_id, ReasonCode::kSuccess, {}});
  auto next = written_of<mqtt::Publish>();
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].payload.view(), "2");

  make(o);  // and our own limit when the server allows more
  open();
  connack();
  for (int i = 0; i < 8; ++i) session->publish(msg("t", std::to_string(i), QoS::kAtLeastOnce));
  EXPECT_EQ(written_of<mqtt::Publish>().size(), 5u);
}

TEST_F(SessionTest, ResendsUnacknowledgedWithDupWhenTheSessionIsPresent) {
  SessionOptions o;
  o.clean_start = false;
  o.session_expiry = 600;
  make(o);
  open();
  connack();
  session->publish(msg("t", "1", QoS::kAtLeastOnce));
  session->publish(msg("t", "2", QoS::kExactlyOnce));
  session->publish(msg("t", "3", QoS::kExactlyOnce));
  auto sent = written_of<mqtt::Publish>();
  ASSERT_EQ(sent.size(), 3u);
  feed(mqtt::Pubrec{sent[2].packet_id, ReasonCode::kSuccess, {}});
  written();
  session->on_transport_closed();

  open();
  connack(/*present=*/true);
  auto again = written();
  ASSERT_EQ(again.size(), 3u);
  auto& p1 = std::get<mqtt::Publish>(again[0]);
  auto& p2 = std::get<mqtt::Publish>(again[1]);
  EXPECT_TRUE(p1.dup);
  EXPECT_EQ(p1.packet_id, sent[0].packet_id);
  EXPECT_EQ(p1.payload.view(), "1");
  EXPECT_TRUE(p2.dup);
  EXPECT_EQ(p2.packet_id, sent[1].packet_id);
  ASSERT_TRUE(std::holds_alternative<mqtt::Pubrel>(again[2]));
  EXPECT_EQ(std::get<mqtt::Pubrel>(again[2]).packet_id, sent[2].packet_id);
}

TEST_F(SessionTest, RepublishesAndResubscribesWhenTheServerLostTheSession) {
  SessionOptions o;
  o.clean_start = false;
  o.session_expiry = 600;
  make(o);
  open();
  connack();
  session->subscribe({mqtt::Subscription{"cmd/#", QoS::kAtLeastOnce}});
  auto id = written_of<mqtt::Subscribe>().at(0).packet_id;
  feed(mqtt::Suback{id, {}, {ReasonCode::kGrantedQoS1}});
  int completed = 0;
  session->publish(msg("t", "1", QoS::kAtLeastOnce), [&](Status s, ReasonCode) {
    EXPECT_TRUE(s.ok());
    ++completed;
  });
  session->publish(msg("t", "2", QoS::kAtLeastOnce));
  written();
  session->on_transport_closed();

  open();
  connack(/*present=*/false);  // e.g. the server restarted without persistence
  auto again = written();
  ASSERT_EQ(again.size(), 3u);
  ASSERT_TRUE(std::holds_alternative<mqtt::Subscribe>(again[0]));
  EXPECT_EQ(std::get<mqtt::Subscribe>(again[0]).subscriptions.at(0).filter, "cmd/#");
  auto& p1 = std::get<mqtt::Publish>(again[1]);
  EXPECT_FALSE(p1.dup);
  EXPECT_EQ(p1.payload.view(), "1");
  EXPECT_EQ(std::get<mqtt::Publish>(again[2]).payload.view(), "2");
  feed(mqtt::Puback{p1.packet_id, ReasonCode::kSuccess, {}});
  EXPECT_EQ(completed, 1);
}

TEST_F(SessionTest, StrictModeFailsUnacknowledgedWhenTheSessionIsGone) {
  SessionOptions o;
  o.republish_on_new_session = false;
  make(o);
  open();
  connack();
  std::optional<Status> st;
  session->publish(msg("t", "1", QoS::kAtLeastOnce), [&](Status s, ReasonCode) { st = s; });
  written();
  session->on_transport_closed();
  open();
  connack(false);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->code(), StatusCode::kCancelled);
}

TEST_F(SessionTest, KeepAliveSendsPingreqAndTimesOutWithoutAnswer) {
  SessionOptions o;
  o.keep_alive = 10;
  make(o);
  open();
  connack();
  ASSERT_TRUE(session->next_deadline().has_value());
  EXPECT_EQ(*session->next_deadline(), clock.now() + seconds(10));
  fire_timers();
  EXPECT_EQ(written_of<mqtt::Pingreq>().size(), 1u);
  feed(mqtt::Pingresp{});
  fire_timers();
  EXPECT_EQ(written_of<mqtt::Pingreq>().size(), 1u);
  EXPECT_FALSE(session->close_requested());
  fire_timers();  // no PINGRESP this time
  EXPECT_TRUE(session->close_requested());
  EXPECT_EQ(session->close_reason().code(), StatusCode::kTimeout);
}

TEST_F(SessionTest, ServerKeepAliveOverridesOurs) {
  SessionOptions o;
  o.keep_alive = 60;
  make(o);
  open();
  mqtt::Properties p;
  p.server_keep_alive = 5;
  connack(false, p);
  EXPECT_EQ(*session->next_deadline(), clock.now() + seconds(5));
}

TEST_F(SessionTest, InboundQos1IsAcknowledgedAndQos2DeliveredOnce) {
  make();
  open();
  connack();
  mqtt::Publish in = msg("in/a", "x", QoS::kAtLeastOnce);
  in.packet_id = 9;
  feed(in);
  EXPECT_EQ(written_of<mqtt::Puback>().at(0).packet_id, 9);
  mqtt::Publish two = msg("in/b", "y", QoS::kExactlyOnce);
  two.packet_id = 10;
  feed(two);
  two.dup = true;
  feed(two);  // resent before our PUBREC arrived
  EXPECT_EQ(written_of<mqtt::Pubrec>().size(), 2u);
  feed(mqtt::Pubrel{10, ReasonCode::kSuccess, {}});
  EXPECT_EQ(written_of<mqtt::Pubcomp>().at(0).packet_id, 10);
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[1].topic, "in/b");
}

TEST_F(SessionTest, TopicAliasesShortenRepeatedTopicsWhenAllowed) {
  SessionOptions o;
  o.use_topic_aliases = true;
  make(o);
  open();
  mqtt::Properties p;
  p.topic_alias_maximum = 1;
  connack(false, p);
  session->publish(msg("long/topic", "1", QoS::kAtMostOnce));
  session->publish(msg("long/topic", "2", QoS::kAtMostOnce));
  session->publish(msg("other", "3", QoS::kAtMostOnce));
  auto pubs = written_of<mqtt::Publish>();
  ASSERT_EQ(pubs.size(), 3u);
  EXPECT_EQ(pubs[0].topic, "long/topic");
  EXPECT_EQ(pubs[0].properties.topic_alias, 1);
  EXPECT_EQ(pubs[1].topic, "");
  EXPECT_EQ(pubs[1].properties.topic_alias, 1);
  EXPECT_EQ(pubs[2].topic, "other");
  EXPECT_FALSE(pubs[2].properties.topic_alias.has_value());
}

TEST_F(SessionTest, InboundTopicAliasIsResolved) {
  SessionOptions o;
  o.topic_alias_maximum = 4;
  make(o);
  open();
  connack();
  mqtt::Publish a = msg("x/y", "1", QoS::kAtMostOnce);
  a.properties.topic_alias = 2;
  feed(a);
  mqtt::Publish b = msg("", "2", QoS::kAtMostOnce);
  b.properties.topic_alias = 2;
  feed(b);
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[1].topic, "x/y");
}

TEST_F(SessionTest, QueueBoundRefusesWithResourceExhausted) {
  SessionOptions o;
  o.max_queued = 2;
  make(o);
  std::vector<StatusCode> codes;
  for (int i = 0; i < 3; ++i) {
    session->publish(msg("t", "x", QoS::kAtLeastOnce),
                     [&](Status s, ReasonCode) { codes.push_back(s.code()); });
  }
  EXPECT_EQ(codes, std::vector<StatusCode>{StatusCode::kResourceExhausted});
}

TEST_F(SessionTest, InvalidTopicIsRefused) {
  make();
  std::optional<Status> st;
  session->publish(msg("a/#", "x", QoS::kAtMostOnce), [&](Status s, ReasonCode) { st = s; });
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(mqtt::reason_of(*st), ReasonCode::kTopicNameInvalid);
}

TEST_F(SessionTest, QosAboveTheServersMaximumFails) {
  make();
  open();
  mqtt::Properties p;
  p.maximum_qos = 1;
  connack(false, p);
  std::optional<Status> st;
  session->publish(msg("t", "x", QoS::kExactlyOnce), [&](Status s, ReasonCode) { st = s; });
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(mqtt::reason_of(*st), ReasonCode::kQoSNotSupported);
}

TEST_F(SessionTest, MalformedBytesAskToCloseWithDisconnect) {
  make();
  open();
  connack();
  session->on_bytes(std::string("\xF0\x00", 2));  // AUTH with reserved flags... or worse
  EXPECT_TRUE(session->close_requested());
}

TEST_F(SessionTest, ServerDisconnectAsksToClose) {
  make();
  open();
  connack();
  feed(mqtt::Disconnect{ReasonCode::kServerShuttingDown, {}});
  EXPECT_TRUE(session->close_requested());
  EXPECT_EQ(mqtt::reason_of(session->close_reason()), ReasonCode::kServerShuttingDown);
}

TEST_F(SessionTest, SubscribeWhileDisconnectedIsSentAfterConnack) {
  make();
  std::vector<ReasonCode> granted;
  session->subscribe({mqtt::Subscription{"a/+", QoS::kExactlyOnce}},
                     [&](Status, std::vector<ReasonCode> r) { granted = r; });
  open();
  connack();
  auto subs = written_of<mqtt::Subscribe>();
  ASSERT_EQ(subs.size(), 1u);
  feed(mqtt::Suback{subs[0].packet_id, {}, {ReasonCode::kGrantedQoS2}});
  EXPECT_EQ(granted, std::vector<ReasonCode>{ReasonCode::kGrantedQoS2});
}

TEST_F(SessionTest, Mqtt311WorksWithoutProperties) {
  SessionOptions o;
  o.version = ProtocolVersion::kV311;
  o.clean_start = false;
  make(o);
  auto c = open();
  EXPECT_EQ(c.version, ProtocolVersion::kV311);
  connack(true);
  int done = 0;
  session->publish(msg("t", "1", QoS::kAtLeastOnce), [&](Status s, ReasonCode) {
    EXPECT_TRUE(s.ok());
    ++done;
  });
  auto p = written_of<mqtt::Publish>();
  feed(mqtt::Puback{p.at(0).packet_id, ReasonCode::kSuccess, {}});
  EXPECT_EQ(done, 1);
}

TEST_F(SessionTest, CancelAllFailsEverythingPending) {
  make();
  std::vector<StatusCode> codes;
  session->publish(msg("t", "1", QoS::kAtLeastOnce),
                   [&](Status s, ReasonCode) { codes.push_back(s.code()); });
  session->subscribe({mqtt::Subscription{"a", QoS::kAtMostOnce}},
                     [&](Status s, std::vector<ReasonCode>) { codes.push_back(s.code()); });
  session->cancel_all(Cancelled("stop"));
  EXPECT_EQ(codes, (std::vector<StatusCode>{StatusCode::kCancelled, StatusCode::kCancelled}));
}

}  // namespace
}  // namespace ganglion::client
