// The broker core driven without sockets: FakeLinks record what the broker sends, a
// ManualClock drives keep-alive, will delay and expiry.
#include "broker/broker.h"

#include <gtest/gtest.h>

#include "broker/connection.h"
#include "broker/scram.h"
#include "broker/session.h"
#include "mqtt/codec.h"

namespace ganglion::broker {
namespace {

using mqtt::ProtocolVersion;
using mqtt::QoS;
using mqtt::ReasonCode;
using std::chrono::seconds;

class FakeLink final : public Link {
 public:
  bool send(const mqtt::Packet& p) override {
    std::lock_guard lock(mu);
    if (closed) return false;
    sent.push_back(p);
    return true;
  }
  void set_protocol(ProtocolVersion v, std::uint32_t) override { version = v; }
  void close() override { closed = true; }
  std::size_t queued_bytes() const override { return 0; }

  template <class T>
  std::vector<T> all() {
    std::lock_guard lock(mu);
    std::vector<T> out;
    for (auto& p : sent) {
      if (auto* t = std::get_if<T>(&p)) out.push_back(*t);
    }
    return out;
  }
  template <class T>
  T last() {
    auto v = all<T>();
    EXPECT_FALSE(v.empty()) << "no packet of that type was sent";
    return v.empty() ? T{} : v.back();
  }
  void clear() {
    std::lock_guard lock(mu);
    sent.clear();
  }

  std::mutex mu;
  std::vector<mqtt::Packet> sent;
  bool closed = false;
  ProtocolVersion version = ProtocolVersion::kV311;
};

struct Client {
  std::shared_ptr<FakeLink> link;
  std::shared_ptr<Connection> conn;

  void send(mqtt::Packet p) { conn->on_packet(std::move(p)); }
  void drop() { conn->on_closed(); }  // the transport went away
  std::vector<mqtt::Publish> received() { return link->all<mqtt::Publish>(); }
};

class BrokerTest : public ::testing::Test {
 protected:
  BrokerTest() { options.sys_interval = std::chrono::milliseconds(0); }

  Broker& broker() {
    if (!broker_) broker_ = std::make_unique<Broker>(options, clock, metrics);
    return *broker_;
  }

  Client connect(const std::string& id, ProtocolVersion v = ProtocolVersion::kV5, bool clean = true,
                 std::uint32_t expiry = 0, std::uint16_t keep_alive = 0,
                 std::optional<mqtt::Will> will = std::nullopt,
                 std::optional<std::string> user = std::nullopt,
                 std::optional<std::string> password = std::nullopt) {
    Client c;
    c.link = std::make_shared<FakeLink>();
    c.conn = broker().accept(c.link, TransportInfo{"test", id, std::nullopt, false});
    mqtt::Connect p;
    p.version = v;
    p.client_id = id;
    p.clean_start = clean;
    p.keep_alive = keep_alive;
    p.will = std::move(will);
    p.username = std::move(user);
    p.password = std::move(password);
    if (expiry) p.properties.session_expiry_interval = expiry;
    c.send(p);
    return c;
  }

  static mqtt::Publish publish(std::string topic, std::string payload, QoS qos = QoS::kAtMostOnce,
                               std::uint16_t id = 0, bool retain = false) {
    mqtt::Publish p;
    p.topic = std::move(topic);
    p.payload = mqtt::SharedBytes(std::move(payload));
    p.qos = qos;
    p.packet_id = id;
    p.retain = retain;
    return p;
  }

  static mqtt::Subscribe subscribe(std::string filter, QoS qos = QoS::kAtMostOnce,
                                   std::uint16_t id = 1) {
    mqtt::Subscribe s;
    s.packet_id = id;
    mqtt::Subscription sub;
    sub.filter = std::move(filter);
    sub.max_qos = qos;
    s.subscriptions.push_back(sub);
    return s;
  }

  BrokerOptions options;
  ManualClock clock;
  MetricsRegistry metrics;
  std::unique_ptr<Broker> broker_;
};

TEST_F(BrokerTest, ConnackAnnouncesLimitsInMqtt5) {
  auto c = connect("a");
  auto ack = c.link->last<mqtt::Connack>();
  EXPECT_EQ(ack.reason, ReasonCode::kSuccess);
  EXPECT_FALSE(ack.session_present);
  EXPECT_EQ(ack.properties.receive_maximum, options.receive_maximum);
  EXPECT_EQ(ack.properties.maximum_packet_size, options.max_packet_size);
  EXPECT_EQ(ack.properties.topic_alias_maximum, options.topic_alias_maximum);
}

TEST_F(BrokerTest, PacketBeforeConnectIsAProtocolError) {
  auto link = std::make_shared<FakeLink>();
  auto conn = broker().accept(link, TransportInfo{"test", "x", std::nullopt, false});
  conn->on_packet(mqtt::Pingreq{});
  EXPECT_TRUE(link->closed);
}

TEST_F(BrokerTest, EmptyClientIdGetsAnAssignedIdentifier) {
  auto c = connect("");
  auto ack = c.link->last<mqtt::Connack>();
  ASSERT_TRUE(ack.properties.assigned_client_identifier);
  EXPECT_FALSE(ack.properties.assigned_client_identifier->empty());
}

TEST_F(BrokerTest, EmptyClientIdWithoutCleanSessionIsRefusedIn311) {
  auto c = connect("", ProtocolVersion::kV311, /*clean=*/false);
  EXPECT_EQ(c.link->last<mqtt::Connack>().reason, ReasonCode::kClientIdentifierNotValid);
  EXPECT_TRUE(c.link->closed);
}

TEST_F(BrokerTest, RoutesQoS0ToMatchingSubscribers) {
  auto sub = connect("sub");
  sub.send(subscribe("plant/+/temp"));
  EXPECT_EQ(sub.link->last<mqtt::Suback>().reasons,
            std::vector<ReasonCode>{ReasonCode::kGrantedQoS0});
  auto pub = connect("pub");
  pub.send(publish("plant/7/temp", "21.5"));
  pub.send(publish("plant/7/humidity", "40"));
  auto got = sub.received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].topic, "plant/7/temp");
  EXPECT_EQ(got[0].payload.view(), "21.5");
}

TEST_F(BrokerTest, QoS1IsAcknowledgedAndDeliveredWithAPacketId) {
  auto sub = connect("sub");
  sub.send(subscribe("t", QoS::kAtLeastOnce));
  auto pub = connect("pub");
  pub.send(publish("t", "m", QoS::kAtLeastOnce, 7));
  EXPECT_EQ(pub.link->last<mqtt::Puback>().packet_id, 7);
  auto got = sub.received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].qos, QoS::kAtLeastOnce);
  EXPECT_NE(got[0].packet_id, 0);
}

TEST_F(BrokerTest, PacketIdStillInFlightIsNotReusedAfterTheIdsWrapAround) {
  auto sub = connect("sub");
  sub.send(subscribe("t", QoS::kAtLeastOnce));
  auto pub = connect("pub");
  pub.send(publish("t", "never acknowledged", QoS::kAtLeastOnce, 1));
  ASSERT_EQ(sub.received().size(), 1u);
  const std::uint16_t stuck = sub.received()[0].packet_id;
  for (int i = 0; i < 70'000; ++i) {  // more than one turn of the 65535 ids
    sub.link->clear();
    pub.link->clear();
    pub.send(publish("t", "m", QoS::kAtLeastOnce, 2));
    auto got = sub.received();
    ASSERT_EQ(got.size(), 1u);
    ASSERT_NE(got[0].packet_id, 0);
    ASSERT_NE(got[0].packet_id, stuck) << "after " << i << " messages";
    sub.send(mqtt::Puback{got[0].packet_id, ReasonCode::kSuccess, {}});
  }
  sub.link->clear();
  sub.send(mqtt::Puback{stuck, ReasonCode::kSuccess, {}});
  pub.send(publish("t", "m", QoS::kAtLeastOnce, 2));
  ASSERT_EQ(sub.received().size(), 1u);
}

TEST(PlainPublishTest, EncodesTheBytesTheCodecEncodes) {
  const std::string topic_long(300, 't');
  for (auto v : {ProtocolVersion::kV311, ProtocolVersion::kV5}) {
    for (std::uint8_t qos : {0, 1, 2}) {
      for (std::size_t size : {0, 1, 60, 122, 123, 124, 125, 16'000, 16'380, 16'400, 3'000'000}) {
        for (const std::string& topic : {std::string("a/b"), topic_long}) {
          const mqtt::SharedBytes payload(std::string(size, 'x'));
          const PublishView view{topic,    payload,  qos,
                                 qos == 1, qos == 2, std::uint16_t(qos ? 0x1234 : 0)};
          mqtt::Publish p;
          p.topic = topic;
          p.payload = payload;
          p.qos = static_cast<QoS>(qos);
          p.retain = view.retain;
          p.dup = view.dup;
          p.packet_id = view.packet_id;
          std::string want;
          ASSERT_TRUE(mqtt::encode(p, v, want).ok());
          std::string got = "prefix";
          const auto remaining = plain_publish_remaining(view, v);
          ASSERT_TRUE(remaining.has_value());
          append_plain_publish(view, v, *remaining, got);
          EXPECT_EQ(got, "prefix" + want) << "qos " << int(qos) << " size " << size;
        }
      }
    }
  }
}

TEST_F(BrokerTest, DeliveryQoSIsTheMinimumOfPublishedAndGranted) {
  auto sub = connect("sub");
  sub.send(subscribe("t", QoS::kAtMostOnce));
  auto pub = connect("pub");
  pub.send(publish("t", "m", QoS::kExactlyOnce, 1));
  ASSERT_EQ(sub.received().size(), 1u);
  EXPECT_EQ(sub.received()[0].qos, QoS::kAtMostOnce);
}

TEST_F(BrokerTest, InboundQoS2IsRoutedOnceEvenWhenResent) {
  auto sub = connect("sub");
  sub.send(subscribe("t", QoS::kExactlyOnce));
  auto pub = connect("pub");
  pub.send(publish("t", "once", QoS::kExactlyOnce, 9));
  auto again = publish("t", "once", QoS::kExactlyOnce, 9);
  again.dup = true;
  pub.send(again);
  EXPECT_EQ(pub.link->all<mqtt::Pubrec>().size(), 2u);
  pub.send(mqtt::Pubrel{9, ReasonCode::kSuccess, {}});
  EXPECT_EQ(pub.link->last<mqtt::Pubcomp>().reason, ReasonCode::kSuccess);
  EXPECT_EQ(sub.received().size(), 1u);
}

TEST_F(BrokerTest, OutboundQoS2CompletesTheFourWayHandshake) {
  auto sub = connect("sub");
  sub.send(subscribe("t", QoS::kExactlyOnce));
  auto pub = connect("pub");
  pub.send(publish("t", "x", QoS::kExactlyOnce, 1));
  auto got = sub.received();
  ASSERT_EQ(got.size(), 1u);
  sub.send(mqtt::Pubrec{got[0].packet_id, ReasonCode::kSuccess, {}});
  EXPECT_EQ(sub.link->last<mqtt::Pubrel>().packet_id, got[0].packet_id);
  sub.send(mqtt::Pubcomp{got[0].packet_id, ReasonCode::kSuccess, {}});
  EXPECT_EQ(broker().session_count(), 2u);
}

TEST_F(BrokerTest, InflightWindowFollowsClientReceiveMaximumAndRefillsOnAck) {
  auto link = std::make_shared<FakeLink>();
  auto conn = broker().accept(link, TransportInfo{"test", "s", std::nullopt, false});
  mqtt::Connect c;
  c.client_id = "s";
  c.properties.receive_maximum = 2;
  conn->on_packet(c);
  conn->on_packet(subscribe("t", QoS::kAtLeastOnce));
  auto pub = connect("pub");
  for (int i = 0; i < 5; ++i) pub.send(publish("t", std::to_string(i), QoS::kAtLeastOnce, 1 + i));
  auto got = link->all<mqtt::Publish>();
  ASSERT_EQ(got.size(), 2u);
  conn->on_packet(mqtt::Puback{got[0].packet_id, ReasonCode::kSuccess, {}});
  got = link->all<mqtt::Publish>();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[2].payload.view(), "2");
}

TEST_F(BrokerTest, PersistentSessionQueuesWhileOfflineAndResendsUnackedWithDup) {
  auto sub = connect("sub", ProtocolVersion::kV5, true, 3600);
  sub.send(subscribe("t", QoS::kAtLeastOnce));
  auto pub = connect("pub");
  pub.send(publish("t", "first", QoS::kAtLeastOnce, 1));
  ASSERT_EQ(sub.received().size(), 1u);  // delivered, never acknowledged
  sub.drop();
  pub.send(publish("t", "second", QoS::kAtLeastOnce, 2));
  pub.send(publish("t", "lost-qos0", QoS::kAtMostOnce));

  auto back = connect("sub", ProtocolVersion::kV5, /*clean=*/false, 3600);
  EXPECT_TRUE(back.link->last<mqtt::Connack>().session_present);
  auto got = back.received();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].payload.view(), "first");
  EXPECT_TRUE(got[0].dup);
  EXPECT_EQ(got[1].payload.view(), "second");
  EXPECT_FALSE(got[1].dup);
}

TEST_F(BrokerTest, CleanStartDiscardsTheOldSession) {
  auto sub = connect("sub", ProtocolVersion::kV5, true, 3600);
  sub.send(subscribe("t", QoS::kAtLeastOnce));
  sub.drop();
  auto back = connect("sub", ProtocolVersion::kV5, /*clean=*/true, 3600);
  EXPECT_FALSE(back.link->last<mqtt::Connack>().session_present);
  auto pub = connect("pub");
  pub.send(publish("t", "x", QoS::kAtLeastOnce, 1));
  EXPECT_TRUE(back.received().empty());
}

TEST_F(BrokerTest, SessionExpiresAfterItsInterval) {
  auto sub = connect("sub", ProtocolVersion::kV5, true, 60);
  sub.send(subscribe("t", QoS::kAtLeastOnce));
  sub.drop();
  EXPECT_EQ(broker().session_count(), 1u);
  clock.advance(seconds(59));
  EXPECT_EQ(broker().session_count(), 1u);
  clock.advance(seconds(2));
  EXPECT_EQ(broker().session_count(), 0u);
}

TEST_F(BrokerTest, NonPersistentSessionEndsWithTheConnection) {
  auto c = connect("c");
  c.send(subscribe("t"));
  c.drop();
  EXPECT_EQ(broker().session_count(), 0u);
}

TEST_F(BrokerTest, RetainedMessageIsSentToNewSubscribersAndDeletedByEmptyPayload) {
  auto pub = connect("pub");
  pub.send(publish("status/door", "open", QoS::kAtLeastOnce, 1, /*retain=*/true));
  auto sub = connect("sub");
  sub.send(subscribe("status/#", QoS::kAtLeastOnce));
  auto got = sub.received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].retain);
  EXPECT_EQ(got[0].payload.view(), "open");
  // SUBACK precedes the retained message.
  ASSERT_TRUE(std::holds_alternative<mqtt::Suback>(sub.link->sent[1]));

  pub.send(publish("status/door", "", QoS::kAtMostOnce, 0, /*retain=*/true));
  EXPECT_EQ(broker().retained_count(), 0u);
  auto late = connect("late");
  late.send(subscribe("status/#"));
  EXPECT_TRUE(late.received().empty());
}

TEST_F(BrokerTest, LiveDeliveryClearsRetainUnlessRetainAsPublished) {
  auto plain = connect("plain");
  plain.send(subscribe("t"));
  auto rap = connect("rap");
  auto s = subscribe("t");
  s.subscriptions[0].retain_as_published = true;
  rap.send(s);
  auto pub = connect("pub");
  pub.send(publish("t", "v", QoS::kAtMostOnce, 0, true));
  EXPECT_FALSE(plain.received().at(0).retain);
  EXPECT_TRUE(rap.received().at(0).retain);
}

TEST_F(BrokerTest, RetainHandlingTwoSendsNothingAtSubscribe) {
  auto pub = connect("pub");
  pub.send(publish("t", "v", QoS::kAtMostOnce, 0, true));
  auto sub = connect("sub");
  auto s = subscribe("t");
  s.subscriptions[0].retain_handling = mqtt::RetainHandling::kDoNotSend;
  sub.send(s);
  EXPECT_TRUE(sub.received().empty());
}

TEST_F(BrokerTest, WillIsPublishedOnAbnormalCloseOnly) {
  auto watcher = connect("w");
  watcher.send(subscribe("wills/#"));
  mqtt::Will will;
  will.topic = "wills/a";
  will.payload = "gone";
  auto a = connect("a", ProtocolVersion::kV5, true, 0, 0, will);
  a.drop();
  ASSERT_EQ(watcher.received().size(), 1u);
  EXPECT_EQ(watcher.received()[0].payload.view(), "gone");

  will.topic = "wills/b";
  auto b = connect("b", ProtocolVersion::kV5, true, 0, 0, will);
  b.send(mqtt::Disconnect{});
  b.drop();
  EXPECT_EQ(watcher.received().size(), 1u);
}

TEST_F(BrokerTest, DisconnectWithWillMessagePublishesTheWill) {
  auto watcher = connect("w");
  watcher.send(subscribe("wills/#"));
  mqtt::Will will;
  will.topic = "wills/a";
  will.payload = "bye";
  auto a = connect("a", ProtocolVersion::kV5, true, 0, 0, will);
  a.send(mqtt::Disconnect{ReasonCode::kDisconnectWithWillMessage, {}});
  a.drop();
  EXPECT_EQ(watcher.received().size(), 1u);
}

TEST_F(BrokerTest, DelayedWillIsCancelledWhenTheClientReturnsInTime) {
  auto watcher = connect("w");
  watcher.send(subscribe("wills/#"));
  mqtt::Will will;
  will.topic = "wills/a";
  will.payload = "gone";
  will.properties.will_delay_interval = 30;
  auto a = connect("a", ProtocolVersion::kV5, true, 3600, 0, will);
  a.drop();
  clock.advance(seconds(10));
  EXPECT_TRUE(watcher.received().empty());
  auto back = connect("a", ProtocolVersion::kV5, false, 3600);
  clock.advance(seconds(60));
  EXPECT_TRUE(watcher.received().empty());

  back.drop();  // no will this time: the new connection had none
  auto c = connect("c", ProtocolVersion::kV5, true, 3600, 0, will);
  c.drop();
  clock.advance(seconds(29));
  EXPECT_TRUE(watcher.received().empty());
  clock.advance(seconds(2));
  EXPECT_EQ(watcher.received().size(), 1u);
}

TEST_F(BrokerTest, KeepAliveTimeoutDisconnectsAfterOneAndAHalfIntervals) {
  auto c = connect("c", ProtocolVersion::kV5, true, 0, /*keep_alive=*/10);
  clock.advance(seconds(9));
  c.send(mqtt::Pingreq{});
  EXPECT_EQ(c.link->all<mqtt::Pingresp>().size(), 1u);
  clock.advance(seconds(14));
  EXPECT_FALSE(c.link->closed);
  clock.advance(seconds(2));
  EXPECT_TRUE(c.link->closed);
  EXPECT_EQ(c.link->last<mqtt::Disconnect>().reason, ReasonCode::kKeepAliveTimeout);
}

TEST_F(BrokerTest, ServerKeepAliveLowersTooLongKeepAlive) {
  options.max_keep_alive = 60;
  auto c = connect("c", ProtocolVersion::kV5, true, 0, /*keep_alive=*/0);
  EXPECT_EQ(c.link->last<mqtt::Connack>().properties.server_keep_alive, 60);
}

TEST_F(BrokerTest, SecondConnectionWithTheSameIdTakesTheSessionOver) {
  auto first = connect("dup", ProtocolVersion::kV5, true, 3600);
  auto second = connect("dup", ProtocolVersion::kV5, false, 3600);
  EXPECT_TRUE(first.link->closed);
  EXPECT_EQ(first.link->last<mqtt::Disconnect>().reason, ReasonCode::kSessionTakenOver);
  EXPECT_TRUE(second.link->last<mqtt::Connack>().session_present);
  first.drop();  // the old transport closing must not end the new connection's session
  auto pub = connect("pub");
  second.send(subscribe("t"));
  pub.send(publish("t", "x"));
  EXPECT_EQ(second.received().size(), 1u);
}

TEST_F(BrokerTest, SharedSubscriptionDeliversEachMessageToOneMember) {
  auto a = connect("a");
  auto b = connect("b");
  a.send(subscribe("$share/workers/jobs/#", QoS::kAtLeastOnce));
  b.send(subscribe("$share/workers/jobs/#", QoS::kAtLeastOnce));
  auto pub = connect("pub");
  for (int i = 0; i < 10; ++i)
    pub.send(publish("jobs/x", std::to_string(i), QoS::kAtLeastOnce, 1 + i));
  EXPECT_EQ(a.received().size() + b.received().size(), 10u);
  EXPECT_EQ(a.received().size(), 5u);
}

TEST_F(BrokerTest, NoLocalSkipsThePublishersOwnMessages) {
  auto c = connect("c");
  auto s = subscribe("chat");
  s.subscriptions[0].no_local = true;
  c.send(s);
  c.send(publish("chat", "me"));
  EXPECT_TRUE(c.received().empty());
  auto other = connect("o");
  other.send(publish("chat", "you"));
  EXPECT_EQ(c.received().size(), 1u);
}

TEST_F(BrokerTest, SubscriptionIdentifiersAreSentWithMatchingMessages) {
  auto c = connect("c");
  auto s = subscribe("a/#");
  s.properties.subscription_identifiers = {42};
  c.send(s);
  auto pub = connect("p");
  pub.send(publish("a/b", "x"));
  EXPECT_EQ(c.received().at(0).properties.subscription_identifiers, std::vector<std::uint32_t>{42});
}

TEST_F(BrokerTest, InboundTopicAliasIsResolved) {
  auto sub = connect("s");
  sub.send(subscribe("long/topic/name"));
  auto pub = connect("p");
  auto first = publish("long/topic/name", "1");
  first.properties.topic_alias = 3;
  pub.send(first);
  auto second = publish("", "2");
  second.properties.topic_alias = 3;
  pub.send(second);
  ASSERT_EQ(sub.received().size(), 2u);
  EXPECT_EQ(sub.received()[1].topic, "long/topic/name");
}

TEST_F(BrokerTest, UnknownTopicAliasIsAProtocolError) {
  auto pub = connect("p");
  auto p = publish("", "x");
  p.properties.topic_alias = 5;
  pub.send(p);
  EXPECT_TRUE(pub.link->closed);
  EXPECT_EQ(pub.link->last<mqtt::Disconnect>().reason, ReasonCode::kProtocolError);
}

TEST_F(BrokerTest, MessageExpiryDropsStaleQueuedMessages) {
  auto sub = connect("s", ProtocolVersion::kV5, true, 3600);
  sub.send(subscribe("t", QoS::kAtLeastOnce));
  sub.drop();
  auto pub = connect("p");
  auto p = publish("t", "short-lived", QoS::kAtLeastOnce, 1);
  p.properties.message_expiry_interval = 5;
  pub.send(p);
  clock.advance(seconds(6));
  auto back = connect("s", ProtocolVersion::kV5, false, 3600);
  EXPECT_TRUE(back.received().empty());
}

TEST_F(BrokerTest, FullQueueDropsNewestAndCounts) {
  options.max_queued_messages = 2;
  auto sub = connect("s", ProtocolVersion::kV5, true, 3600);
  sub.send(subscribe("t", QoS::kAtLeastOnce));
  sub.drop();
  auto pub = connect("p");
  for (int i = 0; i < 5; ++i) pub.send(publish("t", std::to_string(i), QoS::kAtLeastOnce, 1 + i));
  EXPECT_EQ(broker().counters().messages_dropped_queue_full->value(), 3u);
  auto back = connect("s", ProtocolVersion::kV5, false, 3600);
  ASSERT_EQ(back.received().size(), 2u);
  EXPECT_EQ(back.received()[0].payload.view(), "0");
}

TEST_F(BrokerTest, MaxConnectionsRefusesTheExtraClient) {
  options.max_connections = 1;
  auto a = connect("a");
  auto b = connect("b");
  EXPECT_EQ(b.link->last<mqtt::Connack>().reason, ReasonCode::kQuotaExceeded);
  a.drop();
  auto c = connect("c");
  EXPECT_EQ(c.link->last<mqtt::Connack>().reason, ReasonCode::kSuccess);
}

TEST_F(BrokerTest, PasswordsAreChecked) {
  PasswordFile passwords;
  ASSERT_TRUE(passwords.add_user("alice", "s3cret", 1000).ok());
  broker().set_password_file(std::make_shared<PasswordFile>(passwords));
  auto good = connect("a", ProtocolVersion::kV5, true, 0, 0, std::nullopt, "alice", "s3cret");
  EXPECT_EQ(good.link->last<mqtt::Connack>().reason, ReasonCode::kSuccess);
  auto bad = connect("b", ProtocolVersion::kV5, true, 0, 0, std::nullopt, "alice", "guess");
  EXPECT_EQ(bad.link->last<mqtt::Connack>().reason, ReasonCode::kBadUserNameOrPassword);
  EXPECT_TRUE(bad.link->closed);
}

TEST_F(BrokerTest, AnonymousClientsRefusedWhenNotAllowed) {
  options.allow_anonymous = false;
  auto c = connect("c");
  EXPECT_EQ(c.link->last<mqtt::Connack>().reason, ReasonCode::kNotAuthorized);
}

// MQTT 5 enhanced authentication (spec 4.12): SCRAM-SHA-512 against the password file.
class EnhancedAuthTest : public BrokerTest {
 protected:
  static constexpr const char* kMethod = "SCRAM-SHA-512";

  void use_passwords() {
    PasswordFile passwords;
    ASSERT_TRUE(passwords.add_user("alice", "s3cret", 1000).ok());
    ASSERT_TRUE(passwords.add_user("bob", "hunter2", 1000).ok());
    broker().set_password_file(std::make_shared<PasswordFile>(passwords));
  }

  // Sends a CONNECT naming `method` with `data` as its Authentication Data.
  Client begin(const std::string& id, std::optional<std::string> method,
               std::optional<std::string> data, std::optional<std::string> user = std::nullopt) {
    Client c;
    c.link = std::make_shared<FakeLink>();
    c.conn = broker().accept(c.link, TransportInfo{"test", id, std::nullopt, false});
    mqtt::Connect p;
    p.version = ProtocolVersion::kV5;
    p.client_id = id;
    p.username = std::move(user);
    p.properties.authentication_method = std::move(method);
    p.properties.authentication_data = std::move(data);
    c.send(p);
    return c;
  }

  static mqtt::Auth auth(ReasonCode reason, std::string data, std::string method = kMethod) {
    mqtt::Auth a;
    a.reason = reason;
    a.properties.authentication_method = std::move(method);
    a.properties.authentication_data = std::move(data);
    return a;
  }

  // The whole exchange; returns the client with the CONNACK (or refusal) in its link.
  Client login(const std::string& id, const std::string& user, const std::string& password,
               ScramClient* out = nullptr) {
    ScramClient scram(ScramHash::kSha512, user, password, "clientnonce" + id);
    Client c = begin(id, kMethod, scram.client_first());
    const auto challenge = c.link->last<mqtt::Auth>();
    EXPECT_EQ(challenge.reason, ReasonCode::kContinueAuthentication);
    EXPECT_EQ(challenge.properties.authentication_method, kMethod);
    EXPECT_TRUE(c.link->all<mqtt::Connack>().empty());
    EXPECT_FALSE(c.conn->connected());  // the listener's connect timeout still runs
    auto final = scram.receive_server_first(challenge.properties.authentication_data.value_or(""));
    EXPECT_TRUE(final.ok()) << final.status().to_string();
    c.send(auth(ReasonCode::kContinueAuthentication, final.ok() ? *final : ""));
    if (out) *out = scram;
    return c;
  }
};

TEST_F(EnhancedAuthTest, ScramSha512ConnectsAndTheServerSignatureVerifies) {
  use_passwords();
  ScramClient scram(ScramHash::kSha512, "", "", "");
  auto c = login("a", "alice", "s3cret", &scram);
  const auto ack = c.link->last<mqtt::Connack>();
  EXPECT_EQ(ack.reason, ReasonCode::kSuccess);
  EXPECT_EQ(ack.properties.authentication_method, kMethod);
  ASSERT_TRUE(ack.properties.authentication_data.has_value());
  EXPECT_TRUE(scram.receive_server_final(*ack.properties.authentication_data).ok());
  EXPECT_TRUE(c.conn->connected());
  EXPECT_EQ(c.conn->username(), "alice");
}

TEST_F(EnhancedAuthTest, WrongPasswordIsRefusedWithBadUserNameOrPassword) {
  use_passwords();
  auto c = login("a", "alice", "guess");
  EXPECT_EQ(c.link->last<mqtt::Connack>().reason, ReasonCode::kBadUserNameOrPassword);
  EXPECT_TRUE(c.link->closed);
  EXPECT_FALSE(c.conn->connected());
}

TEST_F(EnhancedAuthTest, UnknownUserGetsAChallengeAndTheSameRefusal) {
  use_passwords();
  auto c = login("a", "mallory", "s3cret");
  EXPECT_EQ(c.link->last<mqtt::Connack>().reason, ReasonCode::kBadUserNameOrPassword);
}

TEST_F(EnhancedAuthTest, MethodsThatAreNotOfferedGetBadAuthenticationMethod) {
  use_passwords();
  ScramClient scram(ScramHash::kSha256, "alice", "s3cret", "n1");
  // SCRAM-SHA-256 cannot be served from PBKDF2-HMAC-SHA512 hashes.
  auto c256 = begin("a", "SCRAM-SHA-256", scram.client_first());
  EXPECT_EQ(c256.link->last<mqtt::Connack>().reason, ReasonCode::kBadAuthenticationMethod);
  auto plain = begin("b", "PLAIN", std::string("\0alice\0s3cret", 13));
  EXPECT_EQ(plain.link->last<mqtt::Connack>().reason, ReasonCode::kBadAuthenticationMethod);
  EXPECT_TRUE(plain.link->closed);
}

TEST_F(EnhancedAuthTest, NoMethodIsOfferedWithoutAPasswordFile) {
  auto c = begin("a", kMethod, "n,,n=alice,r=abc");
  EXPECT_EQ(c.link->last<mqtt::Connack>().reason, ReasonCode::kBadAuthenticationMethod);
}

TEST_F(EnhancedAuthTest, MethodsCanBeSwitchedOff) {
  options.authentication_methods.clear();
  use_passwords();
  auto c = begin("a", kMethod, "n,,n=alice,r=abc");
  EXPECT_EQ(c.link->last<mqtt::Connack>().reason, ReasonCode::kBadAuthenticationMethod);
  // Plain passwords still work.
  auto plain = connect("b", ProtocolVersion::kV5, true, 0, 0, std::nullopt, "alice", "s3cret");
  EXPECT_EQ(plain.link->last<mqtt::Connack>().reason, ReasonCode::kSuccess);
}

TEST_F(EnhancedAuthTest, AuthWithAnotherMethodIsAProtocolError) {
  use_passwords();
  auto c = begin("a", kMethod, "n,,n=alice,r=abc");
  ASSERT_EQ(c.link->last<mqtt::Auth>().reason, ReasonCode::kContinueAuthentication);
  c.send(auth(ReasonCode::kContinueAuthentication, "c=biws,r=abc,p=AAAA", "SCRAM-SHA-256"));
  EXPECT_EQ(c.link->last<mqtt::Connack>().reason, ReasonCode::kProtocolError);
  EXPECT_TRUE(c.link->closed);
}

TEST_F(EnhancedAuthTest, OtherPacketsBeforeTheConnackAreAProtocolError) {
  use_passwords();
  auto c = begin("a", kMethod, "n,,n=alice,r=abc");
  c.send(publish("t", "x"));
  EXPECT_EQ(c.link->last<mqtt::Connack>().reason, ReasonCode::kProtocolError);
  EXPECT_TRUE(c.link->closed);
  EXPECT_EQ(broker().connected_clients(), 0u);
}

TEST_F(EnhancedAuthTest, MalformedScramMessagesAreNotAuthorized) {
  use_passwords();
  auto binding = begin("a", kMethod, "p=tls-unique,,n=alice,r=abc");
  EXPECT_EQ(binding.link->last<mqtt::Connack>().reason, ReasonCode::kNotAuthorized);
  auto no_data = begin("b", kMethod, std::nullopt);
  EXPECT_EQ(no_data.link->last<mqtt::Connack>().reason, ReasonCode::kNotAuthorized);
  auto bad_final = begin("c", kMethod, "n,,n=alice,r=abc");
  bad_final.send(auth(ReasonCode::kContinueAuthentication, "c=biws,r=wrongnonce,p=AAAA"));
  EXPECT_EQ(bad_final.link->last<mqtt::Connack>().reason, ReasonCode::kNotAuthorized);
  EXPECT_TRUE(bad_final.link->closed);
}

TEST_F(EnhancedAuthTest, ConnectUserNameMustBeTheScramUser) {
  use_passwords();
  auto c = begin("a", kMethod, "n,,n=alice,r=abc", "bob");
  EXPECT_EQ(c.link->last<mqtt::Connack>().reason, ReasonCode::kBadUserNameOrPassword);
  EXPECT_TRUE(c.link->all<mqtt::Auth>().empty());
}

TEST_F(EnhancedAuthTest, UnknownUserSeesTheSameSaltAfterARestart) {
  PasswordFile passwords;
  ASSERT_TRUE(passwords.add_user("alice", "s3cret", 1000).ok());
  auto file = std::make_shared<PasswordFile>(passwords);
  auto salt_for = [&](Broker& b, const std::string& user) {
    auto link = std::make_shared<FakeLink>();
    auto conn = b.accept(link, TransportInfo{"test", "x", std::nullopt, false});
    mqtt::Connect p;
    p.version = ProtocolVersion::kV5;
    p.client_id = "x";
    p.properties.authentication_method = kMethod;
    p.properties.authentication_data = "n,,n=" + user + ",r=abc";
    conn->on_packet(p);
    const std::string first = link->last<mqtt::Auth>().properties.authentication_data.value_or("");
    conn->on_closed();
    const auto s = first.find(",s=");
    return first.substr(s, first.find(",i=") - s);
  };
  Broker one(options, clock, metrics);
  one.set_password_file(file);
  MetricsRegistry metrics2;
  Broker two(options, clock, metrics2);
  two.set_password_file(file);
  EXPECT_EQ(salt_for(one, "mallory"), salt_for(two, "mallory"));
  EXPECT_NE(salt_for(one, "mallory"), salt_for(one, "eve"));
  EXPECT_EQ(salt_for(one, "alice"), salt_for(two, "alice"));
}

TEST_F(EnhancedAuthTest, PasswordBesideTheMethodIsRefused) {
  use_passwords();
  Client c;
  c.link = std::make_shared<FakeLink>();
  c.conn = broker().accept(c.link, TransportInfo{"test", "a", std::nullopt, false});
  mqtt::Connect p;
  p.version = ProtocolVersion::kV5;
  p.client_id = "a";
  p.username = "alice";
  p.password = "s3cret";
  p.properties.authentication_method = kMethod;
  p.properties.authentication_data = "n,,n=alice,r=abc";
  c.send(p);
  EXPECT_EQ(c.link->last<mqtt::Connack>().reason, ReasonCode::kBadUserNameOrPassword);
  EXPECT_TRUE(c.link->all<mqtt::Auth>().empty());
}

TEST_F(EnhancedAuthTest, DisconnectDuringTheExchangeClosesWithoutConnack) {
  use_passwords();
  auto c = begin("a", kMethod, "n,,n=alice,r=abc");
  c.send(mqtt::Disconnect{});
  EXPECT_TRUE(c.link->closed);
  EXPECT_TRUE(c.link->all<mqtt::Connack>().empty());
  c.drop();
  EXPECT_EQ(broker().connected_clients(), 0u);
}

TEST_F(EnhancedAuthTest, AclIdentityIsTheScramUser) {
  auto acl = AclPolicy::parse("user alice\ntopic readwrite alice/#\n");
  ASSERT_TRUE(acl.ok()) << acl.status().to_string();
  broker().set_acl(std::make_shared<AclPolicy>(std::move(*acl)));
  use_passwords();
  auto c = login("a", "alice", "s3cret");
  ASSERT_EQ(c.link->last<mqtt::Connack>().reason, ReasonCode::kSuccess);
  auto s = subscribe("alice/#");
  mqtt::Subscription denied;
  denied.filter = "bob/#";
  s.subscriptions.push_back(denied);
  c.send(s);
  EXPECT_EQ(c.link->last<mqtt::Suback>().reasons,
            (std::vector<ReasonCode>{ReasonCode::kGrantedQoS0, ReasonCode::kNotAuthorized}));
}

TEST_F(EnhancedAuthTest, ReAuthenticationWithTheSameMethodSucceeds) {
  use_passwords();
  auto c = login("a", "alice", "s3cret");
  ASSERT_EQ(c.link->last<mqtt::Connack>().reason, ReasonCode::kSuccess);
  c.link->clear();
  ScramClient again(ScramHash::kSha512, "alice", "s3cret", "second");
  c.send(auth(ReasonCode::kReAuthenticate, again.client_first()));
  const auto challenge = c.link->last<mqtt::Auth>();
  ASSERT_EQ(challenge.reason, ReasonCode::kContinueAuthentication);
  // Traffic goes on during a re-authentication.
  c.send(subscribe("t"));
  EXPECT_EQ(c.link->all<mqtt::Suback>().size(), 1u);
  auto final = again.receive_server_first(challenge.properties.authentication_data.value_or(""));
  ASSERT_TRUE(final.ok()) << final.status().to_string();
  c.send(auth(ReasonCode::kContinueAuthentication, *final));
  const auto done = c.link->last<mqtt::Auth>();
  EXPECT_EQ(done.reason, ReasonCode::kSuccess);
  EXPECT_EQ(done.properties.authentication_method, kMethod);
  EXPECT_TRUE(again.receive_server_final(done.properties.authentication_data.value_or("")).ok());
  EXPECT_FALSE(c.link->closed);
  EXPECT_TRUE(c.conn->connected());
}

TEST_F(EnhancedAuthTest, FailedReAuthenticationDisconnectsWithNotAuthorized) {
  use_passwords();
  auto c = login("a", "alice", "s3cret");
  ScramClient again(ScramHash::kSha512, "alice", "guess", "second");
  c.send(auth(ReasonCode::kReAuthenticate, again.client_first()));
  auto final = again.receive_server_first(
      c.link->last<mqtt::Auth>().properties.authentication_data.value_or(""));
  ASSERT_TRUE(final.ok());
  c.send(auth(ReasonCode::kContinueAuthentication, *final));
  EXPECT_EQ(c.link->last<mqtt::Disconnect>().reason, ReasonCode::kNotAuthorized);
  EXPECT_TRUE(c.link->closed);
}

TEST_F(EnhancedAuthTest, ReAuthenticationCannotChangeTheUser) {
  use_passwords();
  auto c = login("a", "alice", "s3cret");
  ScramClient bob(ScramHash::kSha512, "bob", "hunter2", "second");
  c.send(auth(ReasonCode::kReAuthenticate, bob.client_first()));
  EXPECT_EQ(c.link->last<mqtt::Disconnect>().reason, ReasonCode::kNotAuthorized);
  EXPECT_TRUE(c.link->closed);
}

TEST_F(EnhancedAuthTest, ReAuthenticationOutOfTurnIsAProtocolError) {
  use_passwords();
  auto other_method = login("a", "alice", "s3cret");
  other_method.send(auth(ReasonCode::kReAuthenticate, "n,,n=alice,r=x", "SCRAM-SHA-256"));
  EXPECT_EQ(other_method.link->last<mqtt::Disconnect>().reason, ReasonCode::kProtocolError);

  auto unasked = login("b", "alice", "s3cret");
  unasked.send(auth(ReasonCode::kContinueAuthentication, "c=biws,r=x,p=AAAA"));
  EXPECT_EQ(unasked.link->last<mqtt::Disconnect>().reason, ReasonCode::kProtocolError);

  // A client that connected without enhanced authentication cannot re-authenticate.
  auto plain = connect("c", ProtocolVersion::kV5, true, 0, 0, std::nullopt, "alice", "s3cret");
  plain.send(auth(ReasonCode::kReAuthenticate, "n,,n=alice,r=x"));
  EXPECT_EQ(plain.link->last<mqtt::Disconnect>().reason, ReasonCode::kProtocolError);
  EXPECT_TRUE(plain.link->closed);
}

TEST_F(BrokerTest, AclDeniesPublishAndSubscribe) {
  auto acl = AclPolicy::parse("pattern readwrite plant/%c/#\nuser alice\ntopic read shared/#\n");
  ASSERT_TRUE(acl.ok()) << acl.status().to_string();
  broker().set_acl(std::make_shared<AclPolicy>(std::move(*acl)));
  auto watcher_acl_free = connect("w", ProtocolVersion::kV5, true, 0, 0, std::nullopt, "alice");
  auto sub = watcher_acl_free;
  auto s = subscribe("plant/w/#");
  mqtt::Subscription denied;
  denied.filter = "secret/#";
  s.subscriptions.push_back(denied);
  sub.send(s);
  EXPECT_EQ(sub.link->last<mqtt::Suback>().reasons,
            (std::vector<ReasonCode>{ReasonCode::kGrantedQoS0, ReasonCode::kNotAuthorized}));
  sub.send(publish("shared/x", "nope", QoS::kAtLeastOnce, 4));
  EXPECT_EQ(sub.link->last<mqtt::Puback>().reason, ReasonCode::kNotAuthorized);
  EXPECT_EQ(broker().counters().publishes_denied->value(), 1u);
}

TEST_F(BrokerTest, ClientsCannotPublishIntoSys) {
  auto sub = connect("s");
  sub.send(subscribe("$SYS/#"));
  auto pub = connect("p");
  pub.send(publish("$SYS/broker/version", "fake"));
  EXPECT_TRUE(sub.received().empty());
}

TEST_F(BrokerTest, SysTopicsArePublishedPeriodicallyAndNotMatchedByHash) {
  options.sys_interval = std::chrono::milliseconds(1000);
  auto all = connect("all");
  all.send(subscribe("#"));
  auto sys = connect("sys");
  sys.send(subscribe("$SYS/broker/clients/connected"));
  broker().start();
  clock.advance(seconds(1));
  EXPECT_TRUE(all.received().empty());
  ASSERT_FALSE(sys.received().empty());
  EXPECT_EQ(sys.received().back().payload.view(), "2");
}

TEST_F(BrokerTest, ShutdownDisconnectsClientsWithServerShuttingDown) {
  auto c = connect("c");
  broker().shutdown();
  EXPECT_TRUE(c.link->closed);
  EXPECT_EQ(c.link->last<mqtt::Disconnect>().reason, ReasonCode::kServerShuttingDown);
}

TEST_F(BrokerTest, Mqtt311ClientsGetNoProperties) {
  auto sub = connect("s", ProtocolVersion::kV311);
  sub.send(subscribe("t"));
  auto pub = connect("p");
  auto p = publish("t", "x");
  p.properties.user_properties = {{"k", "v"}};
  pub.send(p);
  EXPECT_EQ(sub.received().size(), 1u);
  EXPECT_EQ(sub.link->version, ProtocolVersion::kV311);
}

}  // namespace
}  // namespace ganglion::broker

namespace ganglion::broker {
namespace {

TEST_F(BrokerTest, TakeoverWithinWillDelayDoesNotPublishTheWill) {
  auto watcher = connect("w");
  watcher.send(subscribe("wills/#"));
  mqtt::Will will;
  will.topic = "wills/a";
  will.payload = "gone";
  will.properties.will_delay_interval = 5;
  auto first = connect("a", ProtocolVersion::kV5, true, 3600, 0, will);
  auto second = connect("a", ProtocolVersion::kV5, /*clean=*/false, 3600);
  first.drop();  // the old transport closes after the takeover
  clock.advance(seconds(10));
  EXPECT_TRUE(watcher.received().empty());
}

TEST_F(BrokerTest, TakeoverWithCleanStartEndsTheSessionAndSendsTheDelayedWill) {
  auto watcher = connect("w");
  watcher.send(subscribe("wills/#"));
  mqtt::Will will;
  will.topic = "wills/a";
  will.payload = "gone";
  will.properties.will_delay_interval = 5;
  auto first = connect("a", ProtocolVersion::kV5, true, 3600, 0, will);
  auto second = connect("a", ProtocolVersion::kV5, /*clean=*/true, 3600);
  first.drop();
  EXPECT_EQ(watcher.received().size(), 1u);
}

}  // namespace
}  // namespace ganglion::broker
