// The broker's durable state: journal round trips, torn tails, power loss, full disk, and a
// broker restarted from its store delivering what it acknowledged.
#include "broker/session_store.h"

#include <gtest/gtest.h>

#include <random>

#include "base/fault_env.h"
#include "base/mem_env.h"
#include "broker/broker.h"
#include "broker/connection.h"

namespace ganglion::broker {
namespace {

using mqtt::ProtocolVersion;
using mqtt::QoS;
using mqtt::ReasonCode;

SessionStoreOptions manual_options() {
  SessionStoreOptions o;
  o.dir = "/data/broker";
  o.background = false;  // durability only through flush(): deterministic tests
  return o;
}

MessagePtr message(std::string topic, std::string payload, std::uint8_t qos = 1) {
  auto m = std::make_shared<Message>();
  m->topic = std::move(topic);
  m->payload = mqtt::SharedBytes(std::move(payload));
  m->qos = qos;
  return m;
}

std::size_t queued(SessionStore& store, const std::string& client) {
  std::size_t n = 0;
  store.read([&](const StoreState& s) {
    auto it = s.sessions.find(client);
    n = it == s.sessions.end() ? 0 : it->second.queue.size();
  });
  return n;
}

TEST(SessionStore, SessionsQueuesAndRetainedSurviveReopen) {
  MemEnv env;
  ManualClock clock;
  {
    auto store = SessionStore::open(env, clock, manual_options());
    ASSERT_TRUE(store.ok()) << store.status().to_string();
    std::map<std::string, SubscriptionOptions, std::less<>> subs{{"a/#", SubscriptionOptions{1}}};
    (*store)->put_session("c1", 3600, 0, subs);
    std::uint64_t id = 0;
    auto m = message("a/b", "payload");
    (*store)->enqueue("c1", m, 1, false, {}, id);
    EXPECT_NE(id, 0u);
    (*store)->put_retained(*message("status", "up"));
    ASSERT_TRUE((*store)->flush().ok());
  }
  auto store = SessionStore::open(env, clock, manual_options());
  ASSERT_TRUE(store.ok());
  (*store)->read([](const StoreState& s) {
    ASSERT_EQ(s.sessions.count("c1"), 1u);
    const auto& sess = s.sessions.at("c1");
    EXPECT_EQ(sess.expiry_interval, 3600u);
    EXPECT_EQ(sess.subscriptions.at("a/#").max_qos, 1);
    ASSERT_EQ(sess.queue.size(), 1u);
    EXPECT_EQ(s.messages.at(sess.queue[0].message_id).payload.view(), "payload");
    EXPECT_EQ(s.retained.at("status").payload.view(), "up");
  });
}

TEST(SessionStore, OneMessageQueuedForManySessionsIsWrittenOnce) {
  MemEnv env;
  ManualClock clock;
  auto store = *SessionStore::open(env, clock, manual_options());
  store->put_session("a", 60, 0, {});
  store->put_session("b", 60, 0, {});
  auto m = message("t", std::string(1000, 'x'));
  std::uint64_t ia = 0, ib = 0;
  store->enqueue("a", m, 1, false, {}, ia);
  store->enqueue("b", m, 1, false, {}, ib);
  EXPECT_EQ(ia, ib);
  ASSERT_TRUE(store->flush().ok());
  EXPECT_LT(store->stats().journal_bytes, 1600u);
  store->done("a", ia);
  store->read([&](const StoreState& s) { EXPECT_EQ(s.messages.count(ia), 1u); });
  store->done("b", ib);
  store->read([&](const StoreState& s) { EXPECT_EQ(s.messages.count(ia), 0u); });
}

TEST(SessionStore, DoneAndEndSessionAreDurable) {
  MemEnv env;
  ManualClock clock;
  {
    auto store = *SessionStore::open(env, clock, manual_options());
    store->put_session("a", 60, 0, {});
    store->put_session("b", 60, 0, {});
    std::uint64_t id1 = 0, id2 = 0;
    store->enqueue("a", message("t", "1"), 1, false, {}, id1);
    store->enqueue("a", message("t", "2"), 1, false, {}, id2);
    store->done("a", id1);
    store->end_session("b");
    ASSERT_TRUE(store->flush().ok());
  }
  auto store = *SessionStore::open(env, clock, manual_options());
  EXPECT_EQ(queued(*store, "a"), 1u);
  store->read([](const StoreState& s) { EXPECT_EQ(s.sessions.count("b"), 0u); });
}

TEST(SessionStore, MessageIdsAreNeverReusedAcrossRestarts) {
  // Every open compacts the journal; once every message was delivered nothing live is left
  // to take the next id from. The uplink recognises redeliveries by id, so ids must still grow.
  MemEnv env;
  ManualClock clock;
  std::uint64_t last = 0;
  for (int run = 0; run < 3; ++run) {
    auto store = *SessionStore::open(env, clock, manual_options());
    store->put_session("a", 60, 0, {});
    std::uint64_t id = 0;
    store->enqueue("a", message("t", "x" + std::to_string(run)), 1, false, {}, id);
    EXPECT_GT(id, last) << "run " << run;
    last = id;
    store->done("a", id);
    ASSERT_TRUE(store->flush().ok());
  }
}

TEST(SessionStore, WaitersRunOnlyOnceTheirRecordsAreDurable) {
  MemEnv env;
  ManualClock clock;
  auto store = *SessionStore::open(env, clock, manual_options());
  store->put_session("a", 60, 0, {});
  std::uint64_t id = 0;
  const auto seq = store->enqueue("a", message("t", "x"), 1, false, {}, id);
  bool durable = false;
  store->when_durable(seq, [&](const Status& s) { durable = s.ok(); });
  EXPECT_FALSE(durable);
  ASSERT_TRUE(store->flush().ok());
  EXPECT_TRUE(durable);
  bool immediate = false;
  store->when_durable(seq, [&](const Status& s) { immediate = s.ok(); });
  EXPECT_TRUE(immediate);
}

TEST(SessionStore, PowerLossKeepsFlushedRecordsAndDropsTheRest) {
  MemEnv mem;
  FaultEnv env(mem);
  ManualClock clock;
  {
    auto store = *SessionStore::open(env, clock, manual_options());
    store->put_session("a", 60, 0, {});
    std::uint64_t id = 0;
    store->enqueue("a", message("t", "durable"), 1, false, {}, id);
    ASSERT_TRUE(store->flush().ok());
    store->enqueue("a", message("t", "volatile"), 1, false, {}, id);
    ASSERT_TRUE(env.crash().ok());  // before any flush of the second record
  }
  env.restart();
  auto store = *SessionStore::open(env, clock, manual_options());
  EXPECT_EQ(queued(*store, "a"), 1u);
}

TEST(SessionStore, TornAndCorruptTailIsCutOff) {
  MemEnv env;
  ManualClock clock;
  {
    auto store = *SessionStore::open(env, clock, manual_options());
    store->put_session("a", 60, 0, {});
    ASSERT_TRUE(store->flush().ok());
  }
  {
    auto f = *env.open_writable("/data/broker/journal", OpenMode::kAppend);
    ASSERT_TRUE(f->append(std::string_view("\x30\x00\x00\x00garbage", 11)).ok());
  }
  auto store = SessionStore::open(env, clock, manual_options());
  ASSERT_TRUE(store.ok());
  EXPECT_EQ((*store)->stats().torn_bytes_dropped, 11u);
  (*store)->read([](const StoreState& s) { EXPECT_EQ(s.sessions.count("a"), 1u); });
}

TEST(SessionStore, FullDiskFailsWaitersAndRecoversWhenSpaceReturns) {
  MemEnv mem;
  FaultEnv env(mem);
  ManualClock clock;
  auto store = *SessionStore::open(env, clock, manual_options());
  store->put_session("a", 60, 0, {});
  ASSERT_TRUE(store->flush().ok());
  env.set_no_space(true);
  std::uint64_t id = 0;
  const auto seq = store->enqueue("a", message("t", "x"), 1, false, {}, id);
  Status seen;
  store->when_durable(seq, [&](const Status& s) { seen = s; });
  EXPECT_EQ(store->flush().code(), StatusCode::kNoSpace);
  EXPECT_EQ(seen.code(), StatusCode::kNoSpace);
  EXPECT_EQ(store->health().code(), StatusCode::kNoSpace);

  env.set_no_space(false);
  const auto seq2 = store->enqueue("a", message("t", "y"), 1, false, {}, id);
  bool durable = false;
  store->when_durable(seq2, [&](const Status& s) { durable = s.ok(); });
  ASSERT_TRUE(store->flush().ok());
  EXPECT_TRUE(durable);
  ASSERT_TRUE(env.power_loss().ok());
  auto reopened = *SessionStore::open(env, clock, manual_options());
  EXPECT_EQ(queued(*reopened, "a"), 2u);  // the journal was rewritten from the mirror
}

TEST(SessionStore, CompactionShrinksTheJournal) {
  MemEnv env;
  ManualClock clock;
  auto options = manual_options();
  options.compact_min_bytes = 64 << 10;
  auto store = *SessionStore::open(env, clock, options);
  store->put_session("a", 60, 0, {});
  for (int i = 0; i < 200; ++i) {
    std::uint64_t id = 0;
    store->enqueue("a", message("t", std::string(1000, 'x')), 1, false, {}, id);
    store->done("a", id);
    ASSERT_TRUE(store->flush().ok());
  }
  EXPECT_GE(store->stats().compactions, 2u);  // one at open, at least one while running
  EXPECT_LT(*env.file_size("/data/broker/journal"), 64u << 10);
}

// --- The broker restarted from its store ------------------------------------------------

class FakeLink final : public Link {
 public:
  bool send(const mqtt::Packet& p) override {
    std::lock_guard lock(mu);
    sent.push_back(p);
    return true;
  }
  bool send_publish(const mqtt::Publish& p, std::uint64_t stored_id) override {
    std::lock_guard lock(mu);
    sent.push_back(p);
    stored_ids.push_back(stored_id);
    return true;
  }
  void set_protocol(ProtocolVersion, std::uint32_t) override {}
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
  std::mutex mu;
  std::vector<mqtt::Packet> sent;
  std::vector<std::uint64_t> stored_ids;  // of each PUBLISH, in order
  bool closed = false;
};

struct Node {
  Node(Env& env, ManualClock& clock) {
    BrokerOptions options;
    options.sys_interval = std::chrono::milliseconds(0);
    broker = std::make_unique<Broker>(options, clock, metrics);
    auto store = SessionStore::open(env, clock, manual_options());
    EXPECT_TRUE(store.ok()) << store.status().to_string();
    store_ptr = store->get();
    EXPECT_TRUE(broker->attach_store(std::move(*store)).ok());
  }
  std::pair<std::shared_ptr<FakeLink>, std::shared_ptr<Connection>> connect(const std::string& id,
                                                                            bool clean,
                                                                            std::uint32_t expiry) {
    auto link = std::make_shared<FakeLink>();
    auto conn = broker->accept(link, TransportInfo{"test", id, std::nullopt, false});
    mqtt::Connect c;
    c.client_id = id;
    c.clean_start = clean;
    c.properties.session_expiry_interval = expiry;
    conn->on_packet(c);
    return {link, conn};
  }
  MetricsRegistry metrics;
  std::unique_ptr<Broker> broker;
  SessionStore* store_ptr = nullptr;
};

void subscribe(Connection& conn, std::string filter, QoS qos) {
  mqtt::Subscribe s;
  s.packet_id = 1;
  s.subscriptions.push_back({std::move(filter), qos});
  conn.on_packet(s);
}

mqtt::Publish publish(std::string topic, std::string payload, std::uint16_t id,
                      bool retain = false) {
  mqtt::Publish p;
  p.topic = std::move(topic);
  p.payload = mqtt::SharedBytes(std::move(payload));
  p.qos = QoS::kAtLeastOnce;
  p.packet_id = id;
  p.retain = retain;
  return p;
}

TEST(BrokerRestart, AcknowledgesOnlyDurableMessagesAndDeliversThemAfterRestart) {
  MemEnv mem;
  FaultEnv env(mem);
  ManualClock clock;
  {
    Node node(env, clock);
    auto [sub_link, sub] = node.connect("sub", true, 3600);
    subscribe(*sub, "plant/#", QoS::kAtLeastOnce);
    sub->on_closed();

    auto [pub_link, pub] = node.connect("pub", true, 0);
    pub->on_packet(publish("plant/1", "kept", 10));
    EXPECT_TRUE(pub_link->all<mqtt::Puback>().empty()) << "acknowledged before durable";
    ASSERT_TRUE(node.store_ptr->flush().ok());
    ASSERT_EQ(pub_link->all<mqtt::Puback>().size(), 1u);
    pub->on_packet(publish("plant/2", "never-acknowledged", 11));
    pub->on_packet(publish("plant/state", "retained", 12, /*retain=*/true));
    EXPECT_EQ(pub_link->all<mqtt::Puback>().size(), 1u);
    ASSERT_TRUE(env.crash().ok());
  }
  env.restart();
  Node node(env, clock);
  EXPECT_EQ(node.broker->session_count(), 1u);
  auto [link, conn] = node.connect("sub", false, 3600);
  auto got = link->all<mqtt::Publish>();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload.view(), "kept");
  EXPECT_EQ(node.broker->retained_count(), 0u);
}

TEST(BrokerRestart, ARedeliveryAfterACrashCarriesTheSameStoredId) {
  MemEnv mem;
  FaultEnv env(mem);
  ManualClock clock;
  std::vector<std::uint64_t> first_ids;
  {
    Node node(env, clock);
    auto [sub_link, sub] = node.connect("sub", true, 3600);
    subscribe(*sub, "plant/#", QoS::kAtLeastOnce);
    auto [pub_link, pub] = node.connect("pub", true, 0);
    pub->on_packet(publish("plant/1", "a", 10));
    pub->on_packet(publish("plant/2", "b", 11));
    ASSERT_TRUE(node.store_ptr->flush().ok());
    ASSERT_EQ(sub_link->all<mqtt::Publish>().size(), 2u);
    first_ids = sub_link->stored_ids;
    ASSERT_EQ(first_ids.size(), 2u);
    EXPECT_NE(first_ids[0], 0u);
    EXPECT_NE(first_ids[0], first_ids[1]);
    // The subscriber made both durable and acknowledged the first; the crash comes before the
    // broker journals that.
    sub->on_packet(
        mqtt::Puback{sub_link->all<mqtt::Publish>()[0].packet_id, ReasonCode::kSuccess, {}});
    ASSERT_TRUE(env.crash().ok());
  }
  env.restart();
  Node node(env, clock);
  auto [link, conn] = node.connect("sub", false, 3600);
  ASSERT_EQ(link->all<mqtt::Publish>().size(), 2u);
  EXPECT_EQ(link->stored_ids, first_ids);
  // A new message after the restart gets a new id.
  auto [pub_link, pub] = node.connect("pub", true, 0);
  pub->on_packet(publish("plant/3", "c", 12));
  ASSERT_EQ(link->stored_ids.size(), 3u);
  EXPECT_GT(link->stored_ids[2], std::max(first_ids[0], first_ids[1]));
}

TEST(BrokerRestart, AQos2ResendAfterARestartIsNotRoutedTwice) {
  MemEnv mem;
  FaultEnv env(mem);
  ManualClock clock;
  auto qos2 = [](std::string payload, std::uint16_t id, bool dup = false) {
    mqtt::Publish p = publish("plant/1", std::move(payload), id);
    p.qos = QoS::kExactlyOnce;
    p.dup = dup;
    return p;
  };
  {
    Node node(env, clock);
    auto [sub_link, sub] = node.connect("sub", true, 3600);
    subscribe(*sub, "plant/#", QoS::kExactlyOnce);
    sub->on_closed();
    auto [pub_link, pub] = node.connect("pub", true, 3600);
    pub->on_packet(qos2("once", 5));
    ASSERT_TRUE(node.store_ptr->flush().ok());
    ASSERT_EQ(pub_link->all<mqtt::Pubrec>().size(), 1u);
    // The PUBREC is lost with the crash: the publisher will send the PUBLISH again.
    ASSERT_TRUE(env.crash().ok());
  }
  env.restart();
  Node node(env, clock);
  auto [pub_link, pub] = node.connect("pub", false, 3600);
  pub->on_packet(qos2("once", 5, /*dup=*/true));
  ASSERT_TRUE(node.store_ptr->flush().ok());
  ASSERT_EQ(pub_link->all<mqtt::Pubrec>().size(), 1u);
  pub->on_packet(mqtt::Pubrel{5, ReasonCode::kSuccess, {}});
  EXPECT_TRUE(pub_link->all<mqtt::Pubcomp>().empty()) << "PUBCOMP before the release is durable";
  ASSERT_TRUE(node.store_ptr->flush().ok());
  ASSERT_EQ(pub_link->all<mqtt::Pubcomp>().size(), 1u);
  // Released: the id may carry a new message, which is routed.
  pub->on_packet(qos2("next", 5));
  ASSERT_TRUE(node.store_ptr->flush().ok());
  auto [sub_link, sub] = node.connect("sub", false, 3600);
  std::vector<std::string> got;
  for (const auto& p : sub_link->all<mqtt::Publish>()) got.emplace_back(p.payload.view());
  EXPECT_EQ(got, (std::vector<std::string>{"once", "next"}));
}

TEST(BrokerRestart, AReleasedQos2IdStaysReleasedAfterARestart) {
  MemEnv mem;
  FaultEnv env(mem);
  ManualClock clock;
  {
    Node node(env, clock);
    auto [sub_link, sub] = node.connect("sub", true, 3600);
    subscribe(*sub, "plant/#", QoS::kExactlyOnce);
    sub->on_closed();
    auto [pub_link, pub] = node.connect("pub", true, 3600);
    mqtt::Publish p = publish("plant/1", "first", 9);
    p.qos = QoS::kExactlyOnce;
    pub->on_packet(p);
    pub->on_packet(mqtt::Pubrel{9, ReasonCode::kSuccess, {}});
    ASSERT_TRUE(node.store_ptr->flush().ok());
    ASSERT_EQ(pub_link->all<mqtt::Pubcomp>().size(), 1u);
    ASSERT_TRUE(env.crash().ok());
  }
  env.restart();
  Node node(env, clock);
  auto [pub_link, pub] = node.connect("pub", false, 3600);
  mqtt::Publish p = publish("plant/1", "second", 9);
  p.qos = QoS::kExactlyOnce;
  pub->on_packet(p);
  ASSERT_TRUE(node.store_ptr->flush().ok());
  auto [sub_link, sub] = node.connect("sub", false, 3600);
  std::vector<std::string> got;
  for (const auto& m : sub_link->all<mqtt::Publish>()) got.emplace_back(m.payload.view());
  EXPECT_EQ(got, (std::vector<std::string>{"first", "second"}));
}

TEST(BrokerRestart, RetainedMessagesAndSubscriptionsSurviveARestart) {
  MemEnv env;
  ManualClock clock;
  {
    Node node(env, clock);
    auto [sub_link, sub] = node.connect("sub", true, 3600);
    mqtt::Subscribe s;
    s.packet_id = 1;
    s.subscriptions.push_back({"a/#", QoS::kAtLeastOnce});
    sub->on_packet(s);
    auto [pub_link, pub] = node.connect("pub", true, 0);
    pub->on_packet(publish("a/state", "on", 1, true));
    ASSERT_TRUE(node.store_ptr->flush().ok());
  }
  Node node(env, clock);
  EXPECT_EQ(node.broker->retained_count(), 1u);
  // The restored session still holds its subscription: a new message reaches it offline.
  auto [pub_link, pub] = node.connect("pub", true, 0);
  pub->on_packet(publish("a/x", "while-offline", 2));
  ASSERT_TRUE(node.store_ptr->flush().ok());
  auto [link, conn] = node.connect("sub", false, 3600);
  auto got = link->all<mqtt::Publish>();
  ASSERT_GE(got.size(), 1u);
  EXPECT_EQ(got.back().payload.view(), "while-offline");
}

TEST(BrokerRestart, RandomPowerLossesNeverLoseAnAcknowledgedMessage) {
  std::mt19937 rng(20261129);
  for (int round = 0; round < 20; ++round) {
    MemEnv mem;
    FaultEnv env(mem);
    ManualClock clock;
    std::vector<std::string> acknowledged;
    {
      Node node(env, clock);
      auto [sub_link, sub] = node.connect("sub", true, 86400);
      mqtt::Subscribe s;
      s.packet_id = 1;
      s.subscriptions.push_back({"t", QoS::kAtLeastOnce});
      sub->on_packet(s);
      sub->on_closed();
      auto [pub_link, pub] = node.connect("pub", true, 0);
      const int n = 20 + static_cast<int>(rng() % 60);
      for (int i = 0; i < n; ++i) {
        pub->on_packet(publish("t", "m" + std::to_string(i), static_cast<std::uint16_t>(i + 1)));
        if (rng() % 4 == 0) {
          ASSERT_TRUE(node.store_ptr->flush().ok());
        }
      }
      for (const auto& ack : pub_link->all<mqtt::Puback>()) {
        acknowledged.push_back("m" + std::to_string(ack.packet_id - 1));
      }
      ASSERT_TRUE(env.crash().ok());
    }
    env.restart();
    Node node(env, clock);
    auto [link, conn] = node.connect("sub", false, 86400);
    std::vector<std::string> got;
    for (const auto& p : link->all<mqtt::Publish>()) got.emplace_back(p.payload.view());
    // Every acknowledged message arrives, in publish order, with nothing foreign.
    std::size_t at = 0;
    for (const auto& want : acknowledged) {
      while (at < got.size() && got[at] != want) ++at;
      ASSERT_LT(at, got.size()) << "round " << round << ": lost acknowledged " << want;
    }
    for (const auto& g : got) ASSERT_EQ(g[0], 'm');
  }
}

}  // namespace
}  // namespace ganglion::broker
