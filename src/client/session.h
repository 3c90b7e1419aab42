// ClientSession: the client side of MQTT 3.1.1 / 5.0 as a sans-I/O state machine.
//
// Bytes and events in (transport opened, bytes read, transport closed, timer due), bytes and
// requests out (take_output(): what to write; close_requested(): end the transport). It owns
// what must survive a reconnect: unacknowledged QoS 1/2 publishes and the subscriptions.
//
//   on_transport_open()   writes CONNECT; the CONNACK timeout starts
//   on_bytes(b)           decodes; CONNACK, acks, messages, PINGRESP, DISCONNECT
//   on_timer()            CONNACK timeout, PINGREQ when idle for keep_alive, ping timeout
//   on_transport_closed() the connection is gone; in-flight publishes wait for the next one
//
// After a CONNACK with Session Present, unacknowledged publishes are sent again in their
// original order with DUP (PUBREL for those already received by the server). When the
// server has no session, the subscriptions are sent again, and unacknowledged publishes are
// republished as new messages (at-least-once across a server that lost its state; set
// republish_on_new_session = false for MQTT's strict "discard" rule, which fails them).
//
// Flow control: at most min(server Receive Maximum, options.max_inflight) QoS 1/2 publishes
// are unacknowledged; the rest wait in a queue bounded by options.max_queued (publish()
// refuses beyond it with kResourceExhausted).
//
// Time: reads clock.now() only; the owner arms one timer at next_deadline() and calls
// on_timer() when it passes (tests use a ManualClock and call on_timer() themselves).
// Thread: not thread-safe; one owner thread (the adapter's event loop).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "mqtt/codec.h"
#include "mqtt/packet.h"

namespace ganglion::client {

struct SessionOptions {
  mqtt::ProtocolVersion version = mqtt::ProtocolVersion::kV5;
  std::string client_id;  // empty: the server assigns one (MQTT 5) - needs clean_start in 3.1.1
  std::optional<std::string> username;
  std::optional<std::string> password;
  // Sent on the first CONNECT and every reconnect. false resumes the server's session.
  bool clean_start = true;
  std::uint32_t session_expiry = 0;  // seconds, MQTT 5 (3.1.1: clean_start=false persists)
  std::uint16_t keep_alive = 60;     // seconds; 0 disables PINGREQ
  std::chrono::milliseconds connack_timeout{10'000};
  std::uint16_t receive_maximum = 1024;         // QoS 1/2 the server may send us unacknowledged
  std::uint16_t max_inflight = 1024;            // our own cap on unacknowledged outbound QoS 1/2
  std::size_t max_queued = 100'000;             // publishes waiting beyond the in-flight window
  std::uint32_t maximum_packet_size = 1 << 20;  // largest packet we accept (MQTT 5 announces)
  // Outbound topic aliases (MQTT 5), used when the server allows them: repeated topics are
  // sent as a two-byte alias.
  bool use_topic_aliases = false;
  // Inbound topic aliases we accept from the server (MQTT 5).
  std::uint16_t topic_alias_maximum = 0;
  bool republish_on_new_session = true;
  std::optional<mqtt::Will> will;
  std::vector<mqtt::UserProperty> connect_user_properties;
};

// Called once per publish: for QoS 1/2 when PUBACK / PUBCOMP (or a failing PUBREC) arrives,
// with its reason code; status is ok for a reason below 0x80. For QoS 0 once the bytes are
// handed to the transport. Errors without a reason from the server: kResourceExhausted
// (queue full), kInvalidArgument (bad topic, too large, QoS above the server's maximum),
// kCancelled (session dropped the message: stop(), or republish_on_new_session == false).
using PublishCompletion = std::function<void(Status status, mqtt::ReasonCode reason)>;
// SUBACK: one reason per filter (granted QoS, or >= 0x80). UNSUBACK: one per filter (MQTT 5),
// empty in 3.1.1. Cancelled when the session was stopped first.
using AckCompletion = std::function<void(Status status, std::vector<mqtt::ReasonCode> reasons)>;

struct SessionHandlers {
  // After every successful CONNACK (first connect and reconnects).
  std::function<void(const mqtt::Connack&)> on_connected;
  // An application message from the server. QoS 1/2 are acknowledged after it returns.
  std::function<void(const mqtt::Publish&)> on_message;
};

struct SessionCounters {
  std::uint64_t connects = 0;           // CONNACKs accepted
  std::uint64_t publishes_sent = 0;     // PUBLISH packets written (resends included)
  std::uint64_t publishes_acked = 0;    // QoS 1/2 completions from the server, any reason
  std::uint64_t messages_received = 0;  // PUBLISH packets delivered to on_message
  std::uint64_t bytes_out = 0;
  std::uint64_t bytes_in = 0;
};

class ClientSession {
 public:
  enum class State : std::uint8_t { kDisconnected, kAwaitConnack, kConnected, kClosing };

  ClientSession(SessionOptions options, Clock& clock, SessionHandlers handlers = {});
  ~ClientSession();

  // Transport events.
  void on_transport_open();
  void on_bytes(std::string_view bytes);
  void on_transport_closed();
  void on_timer();
  // When on_timer() is next due; nullopt when no timer is needed.
  std::optional<MonoTime> next_deadline() const;

  // Bytes to write, in order; take_output() hands them over and clears the buffer.
  bool has_output() const { return !out_.empty(); }
  std::string take_output();
  // The session wants the transport closed (after writing the output): the server refused
  // CONNECT, broke the protocol, sent DISCONNECT, or keep-alive/CONNACK timed out; also after
  // disconnect(). close_reason() says why (ok after a disconnect() we asked for).
  bool close_requested() const { return close_requested_; }
  const Status& close_reason() const { return close_reason_; }

  // Application requests, in any state: they wait for the connection. Every outcome,
  // errors included, is reported through `done` (possibly before the call returns).
  void publish(mqtt::Publish message, PublishCompletion done = {});
  void subscribe(std::vector<mqtt::Subscription> subscriptions, AckCompletion done = {},
                 mqtt::Properties properties = {});
  void unsubscribe(std::vector<std::string> filters, AckCompletion done = {});
  // Sends DISCONNECT (when connected) and asks to close. The session keeps its state.
  void disconnect(mqtt::ReasonCode reason = mqtt::ReasonCode::kNormalDisconnection);
  // Fails every queued and in-flight publish and pending (un)subscribe with kCancelled.
  void cancel_all(const Status& why);

  State state() const { return state_; }
  const SessionCounters& counters() const { return counters_; }
  std::size_t inflight() const { return inflight_.size(); }
  std::size_t queued() const { return queue_.size(); }
  // What the last CONNACK granted.
  std::uint16_t server_receive_maximum() const { return server_receive_maximum_; }
  const std::string& client_id() const { return client_id_; }

 private:
  enum class Stage : std::uint8_t { kQueued, kAwaitAck, kAwaitRec, kAwaitComp };
  struct Outgoing {
    mqtt::Publish publish;  // packet_id set while in flight
    PublishCompletion done;
    Stage stage = Stage::kQueued;
  };
  struct PendingAck {
    bool subscribe = true;
    std::vector<mqtt::Subscription> subscriptions;  // SUBSCRIBE
    std::vector<std::string> filters;               // UNSUBSCRIBE
    mqtt::Properties properties;
    AckCompletion done;
    bool sent = false;  // on the current connection
  };

  void handle(mqtt::Packet& packet);
  void on_connack(const mqtt::Connack& ack);
  void on_publish(mqtt::Publish& p);
  void on_puback(std::uint16_t id, mqtt::ReasonCode reason, bool comp);
  void on_pubrec(const mqtt::Pubrec& p);
  void on_subscribe_ack(std::uint16_t id, std::vector<mqtt::ReasonCode> reasons);
  void write(const mqtt::Packet& packet);
  Status write_publish(const Outgoing& o, bool dup);
  void send_ack_request(PendingAck a);
  void close_with(Status why, std::optional<mqtt::ReasonCode> disconnect);
  void send_pending_acks();
  void pump();
  void complete(Outgoing& o, Status status, mqtt::ReasonCode reason);
  void fail(mqtt::ReasonCode reason, std::string_view what);
  void erase_inflight(std::uint16_t id);
  std::uint16_t next_packet_id();
  std::size_t window() const;

  SessionOptions options_;
  Clock& clock_;
  SessionHandlers handlers_;
  State state_ = State::kDisconnected;
  mqtt::Decoder decoder_;
  mqtt::Encoder encoder_;
  std::string out_;
  bool close_requested_ = false;
  Status close_reason_;
  std::string client_id_;

  // Server limits from the last CONNACK.
  std::uint16_t server_receive_maximum_ = 65535;
  std::uint32_t server_maximum_packet_size_ = 0;
  std::uint16_t server_topic_alias_maximum_ = 0;
  std::uint8_t server_maximum_qos_ = 2;
  bool server_retain_available_ = true;
  std::uint16_t keep_alive_ = 0;

  std::deque<Outgoing> queue_;
  std::list<Outgoing> inflight_;  // in send order
  std::unordered_map<std::uint16_t, std::list<Outgoing>::iterator> inflight_by_id_;
  std::map<std::uint16_t, PendingAck> acks_;  // SUBSCRIBE / UNSUBSCRIBE awaiting their ack
  std::vector<PendingAck> unsent_acks_;       // requested while not connected
  // Subscriptions to restore when the server has no session: filter -> subscription.
  std::map<std::string, mqtt::Subscription> subscriptions_;
  std::unordered_map<std::uint16_t, bool> inbound_qos2_;  // ids awaiting PUBREL
  std::unordered_map<std::uint16_t, std::string> inbound_aliases_;
  std::unordered_map<std::string, std::uint16_t> outbound_aliases_;
  std::uint16_t last_packet_id_ = 0;

  MonoTime connack_deadline_ = MonoTime::max();
  MonoTime last_write_{};
  MonoTime ping_deadline_ = MonoTime::max();  // PINGRESP (or any packet) due by then
  SessionCounters counters_;
};

}  // namespace ganglion::client
