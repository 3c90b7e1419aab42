// gd_mqtt against an in-memory transport and a manual clock: golden bytes, the bytes the C
// client writes decoded by our C++ codec (a cross-check of two independent encoders), and
// the state machine (CONNACK, in-flight retransmission, keep-alive, backoff). No sockets,
// no sleeping: the fake transport's recv "waits" by advancing the manual clock.
#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "ganglion/device/mqtt.h"
#include "mqtt/codec.h"

namespace {

using namespace ganglion;
using mqtt::ProtocolVersion;

struct FakeBroker {
  std::uint64_t now = 1000;
  bool accept = true;  // next connect succeeds
  bool open = false;
  int connects = 0;
  int closes = 0;
  std::string sent;  // bytes written by the client, not yet taken
  std::deque<std::string> inbox;
  bool drop = false;  // next recv fails (connection lost)
  ProtocolVersion version = ProtocolVersion::kV311;

  static int connect(void* ctx, const char*, uint16_t) {
    auto* b = static_cast<FakeBroker*>(ctx);
    b->connects++;
    if (!b->accept) return -1;
    b->open = true;
    return 0;
  }
  static int send(void* ctx, const uint8_t* data, size_t len) {
    auto* b = static_cast<FakeBroker*>(ctx);
    if (!b->open) return -1;
    b->sent.append(reinterpret_cast<const char*>(data), len);
    return static_cast<int>(len);
  }
  static int recv(void* ctx, uint8_t* buf, size_t cap, uint32_t timeout_ms) {
    auto* b = static_cast<FakeBroker*>(ctx);
    if (!b->open) return -1;
    if (b->drop) {
      b->drop = false;
      return -1;
    }
    if (b->inbox.empty()) {
      b->now += timeout_ms;  // nothing arrives: the wait takes the whole timeout
      return 0;
    }
    std::string& chunk = b->inbox.front();
    size_t n = std::min(cap, chunk.size());
    std::memcpy(buf, chunk.data(), n);
    chunk.erase(0, n);
    if (chunk.empty()) b->inbox.pop_front();
    return static_cast<int>(n);
  }
  static void close(void* ctx) {
    auto* b = static_cast<FakeBroker*>(ctx);
    if (b->open) b->closes++;
    b->open = false;
  }
  static std::uint64_t now_ms(void* ctx) { return static_cast<FakeBroker*>(ctx)->now; }
  static void sleep_ms(void* ctx, uint32_t ms) { static_cast<FakeBroker*>(ctx)->now += ms; }

  gd_transport transport() { return {connect, send, recv, close, this}; }
  gd_clock clock() { return {now_ms, sleep_ms, this}; }

  // Splits what the client wrote into packets and decodes each with the C++ codec.
  std::vector<mqtt::Packet> take() {
    std::vector<mqtt::Packet> out;
    size_t pos = 0;
    while (pos < sent.size()) {
      size_t len = 0, mult = 1, hdr = 1;
      for (;;) {
        auto byte = static_cast<std::uint8_t>(sent[pos + hdr++]);
        len += (byte & 0x7F) * mult;
        mult *= 128;
        if (!(byte & 0x80)) break;
      }
      auto p = mqtt::decode_packet(std::string_view(sent).substr(pos, hdr + len), version,
                                   mqtt::Role::kServer);
      EXPECT_TRUE(p.ok()) << p.status().message();
      if (p.ok()) out.push_back(*p);
      pos += hdr + len;
    }
    sent.clear();
    return out;
  }
  std::string take_bytes() {
    std::string s;
    s.swap(sent);
    return s;
  }
  void reply(const mqtt::Packet& p) {
    std::string bytes;
    ASSERT_TRUE(mqtt::encode(p, version, bytes).ok());
    inbox.push_back(bytes);
  }
};

struct Events {
  std::vector<std::pair<gd_mqtt_state, int>> states;
  std::vector<std::uint16_t> acked;
  std::vector<std::pair<std::string, std::string>> messages;
};

void on_state(void* user, gd_mqtt_state s, int status, int) {
  static_cast<Events*>(user)->states.emplace_back(s, status);
}
void on_published(void* user, uint16_t id, int) { static_cast<Events*>(user)->acked.push_back(id); }
void on_message(void* user, const char* topic, size_t tlen, const uint8_t* payload, size_t plen,
                int, int) {
  static_cast<Events*>(user)->messages.emplace_back(
      std::string(topic, tlen), std::string(reinterpret_cast<const char*>(payload), plen));
}

class DeviceMqtt : public ::testing::Test {
 protected:
  gd_mqtt_config config(uint8_t protocol = 4) {
    gd_mqtt_config c{};
    c.host = "edge";
    c.port = 1883;
    c.client_id = "dev1";
    c.protocol = protocol;
    c.keep_alive_s = 60;
    c.clean_start = true;
    c.backoff_initial_ms = 1000;
    c.backoff_max_ms = 8000;
    c.seed = 7;
    c.transport = net.transport();
    c.clock = net.clock();
    c.on_state = on_state;
    c.on_published = on_published;
    c.on_message = on_message;
    c.user = &events;
    net.version = protocol == 5 ? ProtocolVersion::kV5 : ProtocolVersion::kV311;
    return c;
  }
  int init(const gd_mqtt_config& c) { return gd_mqtt_init(&client, &c); }
  // Starts and completes the CONNECT/CONNACK exchange.
  void connect(const gd_mqtt_config& c) {
    ASSERT_EQ(gd_mqtt_init(&client, &c), GD_OK);
    ASSERT_EQ(gd_mqtt_start(&client), GD_OK);
    accept_next();
  }
  void accept_next() {
    net.reply(mqtt::Connack{});
    ASSERT_EQ(gd_mqtt_poll(&client, 0), GD_OK);
    ASSERT_TRUE(gd_mqtt_connected(&client)) << gd_mqtt_state_str(gd_mqtt_get_state(&client));
  }
  std::string publish_bytes(const char* topic, const std::string& payload, int qos) {
    EXPECT_EQ(gd_mqtt_publish(&client, topic, payload.data(), payload.size(), qos, false, nullptr),
              GD_OK);
    return net.take_bytes();
  }

  FakeBroker net;
  Events events;
  gd_mqtt client;
};

TEST_F(DeviceMqtt, Connect311GoldenBytes) {
  ASSERT_EQ(init(config()), GD_OK);
  ASSERT_EQ(gd_mqtt_start(&client), GD_OK);
  gd_mqtt_poll(&client, 0);
  const std::string golden(
      "\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04"
      "dev1",
      18);
  EXPECT_EQ(net.take_bytes(), golden);
  EXPECT_EQ(gd_mqtt_get_state(&client), GD_MQTT_CONNECTING);
}

TEST_F(DeviceMqtt, Connect5WithWillCredentialsAndSessionExpiryDecodesWithOurCodec) {
  gd_mqtt_config c = config(5);
  c.username = "alice";
  c.password = "s3cret";
  c.session_expiry_s = 3600;
  c.clean_start = false;
  c.will_topic = "sites/a/dev1/status";
  c.will_payload = "offline";
  c.will_len = 7;
  c.will_qos = 1;
  c.will_retain = true;
  c.keep_alive_s = 15;
  ASSERT_EQ(gd_mqtt_init(&client, &c), GD_OK);
  gd_mqtt_start(&client);
  gd_mqtt_poll(&client, 0);
  auto packets = net.take();
  ASSERT_EQ(packets.size(), 1u);
  const auto& connect = std::get<mqtt::Connect>(packets[0]);
  EXPECT_EQ(connect.version, ProtocolVersion::kV5);
  EXPECT_EQ(connect.client_id, "dev1");
  EXPECT_FALSE(connect.clean_start);
  EXPECT_EQ(connect.keep_alive, 15);
  EXPECT_EQ(connect.username, "alice");
  EXPECT_EQ(connect.password, "s3cret");
  EXPECT_EQ(connect.properties.session_expiry_interval, 3600u);
  ASSERT_TRUE(connect.will);
  EXPECT_EQ(connect.will->topic, "sites/a/dev1/status");
  EXPECT_EQ(connect.will->payload, "offline");
  EXPECT_EQ(connect.will->qos, mqtt::QoS::kAtLeastOnce);
  EXPECT_TRUE(connect.will->retain);
}

TEST_F(DeviceMqtt, PublishGoldenBytesQos0AndQos1) {
  connect(config());
  net.take();
  EXPECT_EQ(publish_bytes("a/b", "hi", 0), std::string("\x30\x07\x00\x03"
                                                       "a/bhi",
                                                       9));
  EXPECT_EQ(publish_bytes("a/b", "hi", 1), std::string("\x32\x09\x00\x03"
                                                       "a/b\x00\x01hi",
                                                       11));
}

TEST_F(DeviceMqtt, Publish5HasAnEmptyPropertyBlockAndDecodes) {
  connect(config(5));
  net.take();
  std::string payload(300, 'x');  // two-byte remaining length
  ASSERT_EQ(gd_mqtt_publish(&client, "t/long", payload.data(), payload.size(), 1, true, nullptr),
            GD_OK);
  auto packets = net.take();
  ASSERT_EQ(packets.size(), 1u);
  const auto& p = std::get<mqtt::Publish>(packets[0]);
  EXPECT_EQ(p.topic, "t/long");
  EXPECT_EQ(p.payload.view(), payload);
  EXPECT_EQ(p.qos, mqtt::QoS::kAtLeastOnce);
  EXPECT_TRUE(p.retain);
  EXPECT_FALSE(p.dup);
  EXPECT_NE(p.packet_id, 0);
}

TEST_F(DeviceMqtt, PubackFreesTheSlotAndReportsCompletion) {
  connect(config());
  uint16_t id = 0;
  ASSERT_EQ(gd_mqtt_publish(&client, "t", "1", 1, 1, false, &id), GD_OK);
  EXPECT_EQ(gd_mqtt_inflight_count(&client), 1u);
  net.reply(mqtt::Puback{id});
  gd_mqtt_poll(&client, 0);
  EXPECT_EQ(gd_mqtt_inflight_count(&client), 0u);
  EXPECT_EQ(events.acked, std::vector<std::uint16_t>{id});
}

TEST_F(DeviceMqtt, InflightTableFullRefusesQos1AndQos0NeedsAConnection) {
  ASSERT_EQ(init(config()), GD_OK);
  EXPECT_EQ(gd_mqtt_publish(&client, "t", "x", 1, 0, false, nullptr), GD_ERR_STATE);
  for (int i = 0; i < GD_MQTT_INFLIGHT; ++i)
    ASSERT_EQ(gd_mqtt_publish(&client, "t", "x", 1, 1, false, nullptr), GD_OK);
  EXPECT_EQ(gd_mqtt_publish(&client, "t", "x", 1, 1, false, nullptr), GD_ERR_FULL);
  EXPECT_FALSE(gd_mqtt_can_publish(&client));
  std::string huge(GD_MQTT_MAX_PACKET, 'x');
  EXPECT_EQ(gd_mqtt_publish(&client, "t", huge.data(), huge.size(), 1, false, nullptr), GD_ERR_ARG);
}

TEST_F(DeviceMqtt, PublishesQueuedWhileDisconnectedGoOutInOrderAfterConnackWithoutDup) {
  ASSERT_EQ(init(config()), GD_OK);
  for (const char* p : {"r0", "r1", "r2"})
    ASSERT_EQ(gd_mqtt_publish(&client, "t", p, 2, 1, false, nullptr), GD_OK);
  gd_mqtt_start(&client);
  accept_next();
  auto packets = net.take();
  ASSERT_EQ(packets.size(), 4u);  // CONNECT + 3 PUBLISH
  for (int i = 0; i < 3; ++i) {
    const auto& p = std::get<mqtt::Publish>(packets[i + 1]);
    EXPECT_EQ(p.payload.view(), "r" + std::to_string(i));
    EXPECT_FALSE(p.dup);
  }
}

TEST_F(DeviceMqtt, UnackedPublishesAreRetransmittedInOrderWithDupAfterReconnect) {
  connect(config());
  std::vector<std::uint16_t> ids(4);
  for (int i = 0; i < 4; ++i)
    ASSERT_EQ(gd_mqtt_publish(&client, "t", std::to_string(i).c_str(), 1, 1, false, &ids[i]),
              GD_OK);
  net.reply(mqtt::Puback{ids[1]});  // acked out of order: only 0, 2, 3 remain
  gd_mqtt_poll(&client, 0);
  net.take();
  net.drop = true;
  gd_mqtt_poll(&client, 0);
  EXPECT_EQ(gd_mqtt_get_state(&client), GD_MQTT_BACKOFF);
  ASSERT_EQ(events.states.back().second, GD_ERR_IO);
  // Poll until the client reconnects (sleep_ms advances the manual clock).
  for (int i = 0; i < 10 && !net.open; ++i) gd_mqtt_poll(&client, 1000);
  ASSERT_TRUE(net.open);
  accept_next();
  auto packets = net.take();
  ASSERT_EQ(packets.size(), 4u);
  std::vector<std::string> payloads;
  for (size_t i = 1; i < packets.size(); ++i) {
    const auto& p = std::get<mqtt::Publish>(packets[i]);
    EXPECT_TRUE(p.dup);
    payloads.emplace_back(p.payload.view());
  }
  EXPECT_EQ(payloads, (std::vector<std::string>{"0", "2", "3"}));
  EXPECT_EQ(gd_mqtt_get_stats(&client)->retransmitted, 3u);
}

TEST_F(DeviceMqtt, SendsPingreqWhenIdleAndDropsTheLinkWithoutPingresp) {
  gd_mqtt_config c = config();
  c.keep_alive_s = 10;
  connect(c);
  net.take();
  gd_mqtt_poll(&client, 10'000);  // waits 10 s, then the keep-alive is due
  gd_mqtt_poll(&client, 0);
  auto packets = net.take();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<mqtt::Pingreq>(packets[0]));
  net.reply(mqtt::Pingresp{});
  gd_mqtt_poll(&client, 0);
  EXPECT_TRUE(gd_mqtt_connected(&client));
  // Next ping, never answered: the link is declared dead one keep-alive later.
  for (int i = 0; i < 25 && gd_mqtt_connected(&client); ++i) gd_mqtt_poll(&client, 1000);
  EXPECT_EQ(gd_mqtt_get_state(&client), GD_MQTT_BACKOFF);
  EXPECT_EQ(events.states.back().second, GD_ERR_TIMEOUT);
  EXPECT_EQ(gd_mqtt_get_stats(&client)->pings, 2u);
}

TEST_F(DeviceMqtt, ServerKeepAliveFromConnackOverridesOurs) {
  gd_mqtt_config c = config(5);
  c.keep_alive_s = 60;
  ASSERT_EQ(gd_mqtt_init(&client, &c), GD_OK);
  gd_mqtt_start(&client);
  mqtt::Connack ack;
  ack.properties.server_keep_alive = 5;
  ack.properties.assigned_client_identifier = "x";
  ack.properties.user_properties.emplace_back("k", "v");
  net.reply(ack);
  gd_mqtt_poll(&client, 0);
  ASSERT_TRUE(gd_mqtt_connected(&client));
  net.take();
  gd_mqtt_poll(&client, 5'000);
  gd_mqtt_poll(&client, 0);
  auto packets = net.take();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<mqtt::Pingreq>(packets[0]));
}

TEST_F(DeviceMqtt, BackoffDoublesWithJitterUpToTheCapAndResetsAfterConnack) {
  gd_mqtt_config c = config();
  net.accept = false;
  ASSERT_EQ(gd_mqtt_init(&client, &c), GD_OK);
  gd_mqtt_start(&client);
  std::vector<std::uint64_t> attempts;
  int seen = 0;
  for (int i = 0; i < 400 && attempts.size() < 7; ++i) {
    gd_mqtt_poll(&client, 100);
    if (net.connects != seen) {
      seen = net.connects;
      attempts.push_back(net.now);
    }
  }
  ASSERT_EQ(attempts.size(), 7u);
  const std::uint64_t caps[] = {1000, 2000, 4000, 8000, 8000, 8000};
  for (size_t i = 0; i + 1 < attempts.size(); ++i) {
    std::uint64_t gap = attempts[i + 1] - attempts[i];
    EXPECT_GE(gap, caps[i] / 2) << i;
    EXPECT_LE(gap, caps[i] + 100) << i;  // polls have 100 ms granularity
  }
  net.accept = true;
  for (int i = 0; i < 200 && !net.open; ++i) gd_mqtt_poll(&client, 100);
  accept_next();
  EXPECT_EQ(client.failures, 0u);
}

TEST_F(DeviceMqtt, RefusedConnackBacksOffWithTheReason) {
  ASSERT_EQ(init(config()), GD_OK);
  gd_mqtt_start(&client);
  mqtt::Connack ack;
  ack.reason = mqtt::ReasonCode::kNotAuthorized;
  net.reply(ack);
  gd_mqtt_poll(&client, 0);
  EXPECT_EQ(gd_mqtt_get_state(&client), GD_MQTT_BACKOFF);
  EXPECT_EQ(events.states.back().second, GD_ERR_REFUSED);
  EXPECT_FALSE(net.open);
}

TEST_F(DeviceMqtt, MissingConnackTimesOut) {
  gd_mqtt_config c = config();
  c.connack_timeout_ms = 3000;
  ASSERT_EQ(gd_mqtt_init(&client, &c), GD_OK);
  gd_mqtt_start(&client);
  gd_mqtt_poll(&client, 1000);
  ASSERT_EQ(gd_mqtt_get_state(&client), GD_MQTT_CONNECTING);
  for (int i = 0; i < 5 && gd_mqtt_get_state(&client) == GD_MQTT_CONNECTING; ++i)
    gd_mqtt_poll(&client, 1000);
  EXPECT_EQ(gd_mqtt_get_state(&client), GD_MQTT_BACKOFF);
  EXPECT_EQ(net.now, 4000u);  // connected at 1000, CONNACK timeout 3000
  EXPECT_EQ(events.states.back().second, GD_ERR_TIMEOUT);
}

TEST_F(DeviceMqtt, SubscriptionsAreSentAndRestoredAfterReconnectAndQos1MessagesAcked) {
  connect(config());
  ASSERT_EQ(gd_mqtt_subscribe(&client, "cmd/dev1/#", 1), GD_OK);
  auto packets = net.take();
  ASSERT_EQ(packets.size(), 2u);
  const auto& sub = std::get<mqtt::Subscribe>(packets[1]);
  ASSERT_EQ(sub.subscriptions.size(), 1u);
  EXPECT_EQ(sub.subscriptions[0].filter, "cmd/dev1/#");
  EXPECT_EQ(sub.subscriptions[0].max_qos, mqtt::QoS::kAtLeastOnce);
  net.reply(mqtt::Suback{sub.packet_id, {}, {mqtt::ReasonCode::kGrantedQoS1}});
  mqtt::Publish in;
  in.topic = "cmd/dev1/relay";
  in.qos = mqtt::QoS::kAtLeastOnce;
  in.packet_id = 77;
  in.payload = mqtt::SharedBytes(std::string("open"));
  net.reply(in);
  gd_mqtt_poll(&client, 0);
  gd_mqtt_poll(&client, 0);
  ASSERT_EQ(events.messages.size(), 1u);
  EXPECT_EQ(events.messages[0], (std::pair<std::string, std::string>{"cmd/dev1/relay", "open"}));
  packets = net.take();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(std::get<mqtt::Puback>(packets[0]).packet_id, 77);

  net.drop = true;
  gd_mqtt_poll(&client, 0);
  for (int i = 0; i < 10 && !net.open; ++i) gd_mqtt_poll(&client, 1000);
  accept_next();
  packets = net.take();
  ASSERT_EQ(packets.size(), 2u);
  EXPECT_EQ(std::get<mqtt::Subscribe>(packets[1]).subscriptions[0].filter, "cmd/dev1/#");
}

TEST_F(DeviceMqtt, ByteAtATimeInputAndOversizedPacketsAreHandled) {
  connect(config());
  net.take();
  mqtt::Publish big;
  big.topic = "big";
  big.payload = mqtt::SharedBytes(std::string(3 * GD_MQTT_RX_CAP, 'b'));
  net.reply(big);
  mqtt::Publish small;
  small.topic = "small";
  small.payload = mqtt::SharedBytes(std::string("ok"));
  std::string bytes;
  ASSERT_TRUE(mqtt::encode(small, net.version, bytes).ok());
  for (char ch : bytes) net.inbox.push_back(std::string(1, ch));
  for (int i = 0; i < 100 && !net.inbox.empty(); ++i) gd_mqtt_poll(&client, 0);
  ASSERT_EQ(events.messages.size(), 1u);
  EXPECT_EQ(events.messages[0].first, "small");
  EXPECT_EQ(gd_mqtt_get_stats(&client)->rx_dropped, 1u);
  EXPECT_TRUE(gd_mqtt_connected(&client));
}

TEST_F(DeviceMqtt, ProtocolViolationsCloseTheConnection) {
  connect(config());
  net.inbox.push_back(std::string("\x50\x02\x00\x01", 4));  // PUBREC: we never send QoS 2
  gd_mqtt_poll(&client, 0);
  EXPECT_EQ(gd_mqtt_get_state(&client), GD_MQTT_BACKOFF);
  EXPECT_EQ(events.states.back().second, GD_ERR_PROTOCOL);
  for (int i = 0; i < 10 && !net.open; ++i) gd_mqtt_poll(&client, 1000);
  accept_next();
  net.inbox.push_back(std::string("\x30\xff\xff\xff\xff\x01", 6));  // 5-byte length
  gd_mqtt_poll(&client, 0);
  EXPECT_EQ(gd_mqtt_get_state(&client), GD_MQTT_BACKOFF);
}

TEST_F(DeviceMqtt, StopSendsDisconnectAndPollRefusesAfterwards) {
  connect(config());
  net.take();
  gd_mqtt_stop(&client);
  EXPECT_EQ(net.take_bytes(), std::string("\xe0\x00", 2));
  EXPECT_FALSE(net.open);
  EXPECT_EQ(gd_mqtt_poll(&client, 0), GD_ERR_STATE);
}

TEST_F(DeviceMqtt, InitRejectsIncompleteConfigs) {
  gd_mqtt_config c = config();
  c.client_id = nullptr;
  EXPECT_EQ(gd_mqtt_init(&client, &c), GD_ERR_ARG);
  c = config();
  c.protocol = 3;
  EXPECT_EQ(gd_mqtt_init(&client, &c), GD_ERR_ARG);
  c = config();
  c.transport.recv = nullptr;
  EXPECT_EQ(gd_mqtt_init(&client, &c), GD_ERR_ARG);
}

}  // namespace
