// InProcessClient against the real Broker core: a manual executor stands for the client's
// event loop (nothing runs until the test drains it), a ManualClock for time, FakeLinks for
// external clients. No sockets, no sleeps.
#include "broker/inprocess_client.h"
#include "base/manual_executor.h"

#include <gtest/gtest.h>

#include <deque>

#include "base/mem_env.h"
#include "broker/broker.h"
#include "broker/connection.h"
#include "broker/session_store.h"

namespace ganglion::broker {
namespace {

using mqtt::QoS;
using mqtt::ReasonCode;

class FakeLink final : public Link {
 public:
  bool send(const mqtt::Packet& p) override {
    std::lock_guard lock(mu);
    if (closed) return false;
    sent.push_back(p);
    return true;
  }
  void set_protocol(mqtt::ProtocolVersion, std::uint32_t) override {}
  void close() override { closed = true; }
  std::size_t queued_bytes() const override { return 0; }
  std::vector<mqtt::Publish> publishes() {
    std::lock_guard lock(mu);
    std::vector<mqtt::Publish> out;
    for (auto& p : sent) {
      if (auto* x = std::get_if<mqtt::Publish>(&p)) out.push_back(*x);
    }
    return out;
  }
  std::mutex mu;
  std::vector<mqtt::Packet> sent;
  bool closed = false;
};

struct External {
  std::shared_ptr<FakeLink> link;
  std::shared_ptr<Connection> conn;
  void send(mqtt::Packet p) { conn->on_packet(std::move(p)); }
};

mqtt::Publish make_publish(std::string topic, std::string payload, QoS qos = QoS::kAtMostOnce,
                           std::uint16_t id = 0) {
  mqtt::Publish p;
  p.topic = std::move(topic);
  p.payload = mqtt::SharedBytes(std::move(payload));
  p.qos = qos;
  p.packet_id = id;
  return p;
}

class InProcessClientTest : public ::testing::Test {
 protected:
  InProcessClientTest() { options.sys_interval = std::chrono::milliseconds(0); }

  Broker& broker() {
    if (!broker_) broker_ = std::make_unique<Broker>(options, clock, metrics);
    return *broker_;
  }

  std::unique_ptr<InProcessClient> client(ClientOptions o = {}) {
    if (o.client_id.empty()) o.client_id = "part";
    return std::make_unique<InProcessClient>(broker(), std::move(o), loop.executor());
  }

  External external(const std::string& id, std::optional<std::string> user = std::nullopt) {
    External e;
    e.link = std::make_shared<FakeLink>();
    e.conn = broker().accept(e.link, TransportInfo{"test", id, std::nullopt, false});
    mqtt::Connect c;
    c.version = mqtt::ProtocolVersion::kV5;
    c.client_id = id;
    c.username = std::move(user);
    e.send(std::move(c));
    return e;
  }

  BrokerOptions options;
  ManualClock clock;
  MetricsRegistry metrics;
  MemEnv env;  // for a test that attaches a store; outlives the broker
  std::unique_ptr<Broker> broker_;
  ManualExecutor loop;
};

TEST_F(InProcessClientTest, ConnectsThroughTheBrokersConnectionStateMachine) {
  auto c = client();
  std::optional<Status> result;
  bool present = true;
  c->connect([&](Status s, bool session_present) {
    result = s;
    present = session_present;
  });
  EXPECT_FALSE(c->connected());
  loop.drain();
  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(result->ok()) << result->to_string();
  EXPECT_FALSE(present);
  EXPECT_TRUE(c->connected());
  EXPECT_EQ(broker().connected_clients(), 1u);
}

TEST_F(InProcessClientTest, RefusedConnectReportsTheReason) {
  broker().set_password_file(std::make_shared<PasswordFile>());
  ClientOptions o;
  o.username = "nobody";
  o.password = "x";
  auto c = client(o);
  std::optional<Status> result;
  c->connect([&](Status s, bool) { result = s; });
  loop.drain();
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(mqtt::reason_of(*result), ReasonCode::kBadUserNameOrPassword);
  EXPECT_FALSE(c->connected());
}

TEST_F(InProcessClientTest, DeliveriesWaitForTheExecutorNotTheBrokersThread) {
  auto c = client();
  c->connect();
  std::vector<std::string> got;
  c->subscribe("plant/+/temp", QoS::kAtLeastOnce,
               [&](const mqtt::Publish& m) { got.push_back(std::string(m.payload.view())); });
  loop.drain();
  auto dev = external("dev");
  dev.send(make_publish("plant/1/temp", "21.5", QoS::kAtLeastOnce, 7));
  // Link::send ran inside the device's PUBLISH (session lock held): it only queued.
  EXPECT_TRUE(got.empty());
  EXPECT_GT(loop.pending(), 0u);
  loop.drain();
  EXPECT_EQ(got, std::vector<std::string>{"21.5"});
}

TEST_F(InProcessClientTest, AcknowledgesQos1AfterTheHandlerReturns) {
  ClientOptions o;
  o.receive_maximum = 1;  // a second delivery needs the first one acknowledged
  auto c = client(o);
  c->connect();
  int got = 0;
  c->subscribe("t", QoS::kAtLeastOnce, [&](const mqtt::Publish&) { ++got; });
  loop.drain();
  auto dev = external("dev");
  dev.send(make_publish("t", "1", QoS::kAtLeastOnce, 1));
  dev.send(make_publish("t", "2", QoS::kAtLeastOnce, 2));
  dev.send(make_publish("t", "3", QoS::kAtLeastOnce, 3));
  loop.drain();
  EXPECT_EQ(got, 3);
}

TEST_F(InProcessClientTest, DeferredAckHoldsTheBrokersWindowUntilCalled) {
  ClientOptions o;
  o.receive_maximum = 1;
  auto c = client(o);
  c->connect();
  std::vector<DeliveryAck> acks;
  std::vector<std::string> got;
  c->subscribe_deferred("t", QoS::kAtLeastOnce, [&](const mqtt::Publish& m, DeliveryAck ack) {
    got.push_back(std::string(m.payload.view()));
    acks.push_back(ack);
  });
  loop.drain();
  auto dev = external("dev");
  dev.send(make_publish("t", "1", QoS::kAtLeastOnce, 1));
  dev.send(make_publish("t", "2", QoS::kAtLeastOnce, 2));
  loop.drain();
  ASSERT_EQ(got, std::vector<std::string>{"1"});
  acks[0]();
  acks[0]();  // a second call does nothing
  loop.drain();
  EXPECT_EQ(got, (std::vector<std::string>{"1", "2"}));
}

TEST_F(InProcessClientTest, DeferredAckCarriesTheIdOfAJournaledDelivery) {
  SessionStoreOptions so;
  so.dir = "/data/broker";
  so.background = false;
  ASSERT_TRUE(broker().attach_store(std::move(SessionStore::open(env, clock, so)).value()).ok());
  ClientOptions persistent;
  persistent.client_id = "uplink";
  persistent.clean_start = false;
  persistent.session_expiry = 3600;
  auto journaled = client(persistent);
  auto plain = client();
  std::vector<std::uint64_t> ids;
  for (auto* c : {journaled.get(), plain.get()}) {
    c->connect();
    c->subscribe_deferred("t", QoS::kAtLeastOnce, [&](const mqtt::Publish&, DeliveryAck ack) {
      ids.push_back(ack.stored_id());
      ack();
    });
  }
  loop.drain();
  auto dev = external("dev");
  dev.send(make_publish("t", "1", QoS::kAtLeastOnce, 1));
  dev.send(make_publish("t", "2", QoS::kAtLeastOnce, 2));
  loop.drain();
  ASSERT_EQ(ids.size(), 4u);
  std::vector<std::uint64_t> nonzero;
  for (auto id : ids) {
    if (id != 0) nonzero.push_back(id);
  }
  // The persistent session's two deliveries have distinct ids; the clean session's none.
  ASSERT_EQ(nonzero.size(), 2u);
  EXPECT_NE(nonzero[0], nonzero[1]);
}

TEST_F(InProcessClientTest, Qos2DeliveryRunsTheHandlerOnceAndCompletesTheFlow) {
  ClientOptions o;
  o.receive_maximum = 1;
  auto c = client(o);
  c->connect();
  int got = 0;
  c->subscribe("t", QoS::kExactlyOnce, [&](const mqtt::Publish& m) {
    ++got;
    EXPECT_EQ(m.qos, QoS::kExactlyOnce);
  });
  loop.drain();
  auto dev = external("dev");
  dev.send(make_publish("t", "1", QoS::kExactlyOnce, 1));
  dev.send(mqtt::Pubrel{1, ReasonCode::kSuccess, {}});
  dev.send(make_publish("t", "2", QoS::kExactlyOnce, 2));
  dev.send(mqtt::Pubrel{2, ReasonCode::kSuccess, {}});
  loop.drain();
  EXPECT_EQ(got, 2);  // the second came only after PUBREC/PUBREL/PUBCOMP of the first
}

TEST_F(InProcessClientTest, PublishCompletesWithThePubackReason) {
  auto c = client();
  c->connect();
  loop.drain();
  auto sub = external("sub");
  mqtt::Subscribe s;
  s.packet_id = 1;
  s.subscriptions.push_back({"out/#", QoS::kAtLeastOnce});
  sub.send(s);

  std::vector<ReasonCode> reasons;
  c->publish("out/a", mqtt::SharedBytes(std::string("x")), QoS::kAtLeastOnce, false, {},
             [&](Status st, ReasonCode r) {
               EXPECT_TRUE(st.ok());
               reasons.push_back(r);
             });
  c->publish("nobody/listens", mqtt::SharedBytes(std::string("y")), QoS::kAtLeastOnce, false, {},
             [&](Status st, ReasonCode r) {
               EXPECT_TRUE(st.ok());
               reasons.push_back(r);
             });
  c->publish("q2/x", mqtt::SharedBytes(std::string("z")), QoS::kExactlyOnce, false, {},
             [&](Status st, ReasonCode r) {
               EXPECT_TRUE(st.ok());
               reasons.push_back(r);
             });
  loop.drain();
  EXPECT_EQ(reasons,
            (std::vector<ReasonCode>{ReasonCode::kSuccess, ReasonCode::kNoMatchingSubscribers,
                                     ReasonCode::kSuccess}));
  auto got = sub.link->publishes();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].topic, "out/a");
  EXPECT_EQ(got[0].payload.view(), "x");
}

TEST_F(InProcessClientTest, AclAppliesToInProcessClientsLikeExternalOnes) {
  auto acl = AclPolicy::parse("user rules\ntopic readwrite rules/#\n");
  ASSERT_TRUE(acl.ok()) << acl.status().to_string();
  broker().set_acl(std::make_shared<AclPolicy>(std::move(*acl)));
  ClientOptions o;
  o.username = "rules";
  auto c = client(o);
  c->connect();
  std::vector<ReasonCode> reasons;
  auto done = [&](Status, ReasonCode r) { reasons.push_back(r); };
  c->publish("rules/out", mqtt::SharedBytes(std::string("1")), QoS::kAtLeastOnce, false, {}, done);
  c->publish("plant/valve", mqtt::SharedBytes(std::string("1")), QoS::kAtLeastOnce, false, {},
             done);
  c->subscribe(
      "plant/#", QoS::kAtLeastOnce, [](const mqtt::Publish&) {}, done);
  loop.drain();
  EXPECT_EQ(reasons,
            (std::vector<ReasonCode>{ReasonCode::kNoMatchingSubscribers, ReasonCode::kNotAuthorized,
                                     ReasonCode::kNotAuthorized}));
}

TEST_F(InProcessClientTest, OverlappingSubscriptionsEachGetTheMessageOnce) {
  auto c = client();
  c->connect();
  int a = 0, b = 0;
  c->subscribe("x/#", QoS::kAtLeastOnce, [&](const mqtt::Publish&) { ++a; });
  c->subscribe("x/+", QoS::kAtMostOnce, [&](const mqtt::Publish&) { ++b; });
  loop.drain();
  auto dev = external("dev");
  dev.send(make_publish("x/1", "v", QoS::kAtLeastOnce, 1));
  loop.drain();
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 1);
}

TEST_F(InProcessClientTest, NoLocalSkipsOwnPublishes) {
  auto c = client();
  c->connect();
  int got = 0;
  c->subscribe(
      "loop/#", QoS::kAtLeastOnce, [&](const mqtt::Publish&) { ++got; }, {},
      SubscribeOptions{.no_local = true});
  loop.drain();
  c->publish("loop/a", mqtt::SharedBytes(std::string("mine")), QoS::kAtLeastOnce);
  loop.drain();
  EXPECT_EQ(got, 0);
  auto dev = external("dev");
  dev.send(make_publish("loop/a", "theirs"));
  loop.drain();
  EXPECT_EQ(got, 1);
}

TEST_F(InProcessClientTest, PersistentSessionQueuesWhileDisconnected) {
  ClientOptions o;
  o.clean_start = false;
  o.session_expiry = 3600;
  auto c = client(o);
  c->connect();
  std::vector<std::string> got;
  c->subscribe("q/#", QoS::kAtLeastOnce,
               [&](const mqtt::Publish& m) { got.push_back(std::string(m.payload.view())); });
  loop.drain();
  c->disconnect();
  loop.drain();
  EXPECT_FALSE(c->connected());
  auto dev = external("dev");
  for (int i = 0; i < 3; ++i) {
    dev.send(make_publish("q/x", std::to_string(i), QoS::kAtLeastOnce,
                          static_cast<std::uint16_t>(i + 1)));
  }
  loop.drain();
  EXPECT_TRUE(got.empty());
  bool present = false;
  c->connect([&](Status, bool p) { present = p; });
  loop.drain();
  EXPECT_TRUE(present);
  EXPECT_EQ(got, (std::vector<std::string>{"0", "1", "2"}));
}

TEST_F(InProcessClientTest, SubscriptionsAreRestoredWhenTheSessionIsNew) {
  auto c = client();  // clean start: each connection starts a new session
  c->connect();
  int got = 0;
  c->subscribe("r", QoS::kAtMostOnce, [&](const mqtt::Publish&) { ++got; });
  loop.drain();
  c->disconnect();
  loop.drain();
  c->connect();
  loop.drain();
  auto dev = external("dev");
  dev.send(make_publish("r", "v"));
  loop.drain();
  EXPECT_EQ(got, 1);
}

TEST_F(InProcessClientTest, BrokerShutdownIsReportedAndPendingPublishesFail) {
  auto c = client();
  std::optional<ReasonCode> lost;
  c->on_connection_lost([&](ReasonCode r) { lost = r; });
  c->connect();
  loop.drain();
  broker().shutdown();
  loop.drain();
  EXPECT_EQ(lost, ReasonCode::kServerShuttingDown);
  EXPECT_FALSE(c->connected());
  std::optional<Status> st;
  c->publish("a", mqtt::SharedBytes(std::string("b")), QoS::kAtLeastOnce, false, {},
             [&](Status s, ReasonCode) { st = s; });
  loop.drain();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->code(), StatusCode::kUnavailable);
}

TEST_F(InProcessClientTest, PingsWithinTheServerKeepAlive) {
  options.max_keep_alive = 10;  // the broker lowers our keep-alive of 0 to 10 s
  auto c = client();
  c->connect();
  loop.drain();
  for (int i = 0; i < 10; ++i) {
    clock.advance(std::chrono::seconds(5));
    loop.drain();
  }
  EXPECT_TRUE(c->connected());
  EXPECT_EQ(broker().connected_clients(), 1u);
}

TEST_F(InProcessClientTest, InvalidTopicIsRefusedLocally) {
  auto c = client();
  c->connect();
  std::optional<ReasonCode> r;
  c->publish("a/+", mqtt::SharedBytes(std::string("b")), QoS::kAtLeastOnce, false, {},
             [&](Status, ReasonCode rc) { r = rc; });
  loop.drain();
  EXPECT_EQ(r, ReasonCode::kTopicNameInvalid);
}

TEST_F(InProcessClientTest, DestroyingTheClientDetachesItFromTheBroker) {
  auto c = client();
  c->connect();
  loop.drain();
  EXPECT_EQ(broker().connected_clients(), 1u);
  c.reset();
  loop.drain();
  EXPECT_EQ(broker().connected_clients(), 0u);
}

}  // namespace
}  // namespace ganglion::broker
