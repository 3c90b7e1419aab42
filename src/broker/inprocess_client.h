// InProcessClient: an MQTT client of the local Broker for the node's own parts (stream rules,
// functions, uplink, bridge), with no socket in between.
//
// It attaches through the same Connection state machine as a TCP client: the same CONNECT
// checks, ACLs, sessions, QoS flows and routing. Only the transport differs: packets are
// handed over as values (MQTT 5 semantics, no encoding).
//
// Threading. Everything the client does with the broker, and every callback it makes, runs on
// its Executor, one task at a time (an io_context's post, or a test's manual queue). The
// broker's side (Link::send, called with a session lock held, possibly on a publisher's
// thread) only queues the packet and posts one drain task: it never calls back into the
// broker synchronously. Public methods may be called from any thread; they post too, so their
// effects and callbacks happen later, on the executor, in call order.
//
// Lifetime. Destroy the client on its executor's thread, or once the executor runs no more
// tasks (e.g. after IoPool::stop()), and before the Broker: the destructor tells the broker
// the transport closed, synchronously. Tasks already posted keep the internal state alive and
// do nothing afterwards. Destroying does not send DISCONNECT (the will, if any, is published):
// call disconnect() first for a clean end. A persistent session keeps queuing either way.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "mqtt/packet.h"

namespace ganglion::broker {

class Broker;

// Runs a task later, on the client's thread/strand. Must not run it inline.
using Executor = std::function<void(std::function<void()>)>;

struct ClientOptions {
  std::string client_id;                // empty: the broker assigns one
  std::optional<std::string> username;  // checked against the password file and ACLs
  std::optional<std::string> password;
  bool clean_start = true;
  // Seconds the broker keeps the session (and queues QoS 1/2 for it) after a disconnect.
  std::uint32_t session_expiry = 0;
  // QoS 1/2 deliveries the broker may have unacknowledged towards us; the rest queue in the
  // broker's session (bounded by its max_queued_messages). A handler that defers its ack
  // (subscribe_deferred) thus applies back-pressure to the broker.
  std::uint16_t receive_maximum = 1024;
  std::optional<mqtt::Will> will;
};

// The outcome of a QoS 1/2 publish: ok when the broker acknowledged it with a reason below
// 0x80 (0x10 No Matching Subscribers included); otherwise the reason the broker gave
// (e.g. 0x87 Not Authorized) or, when the connection ended first, kUnspecifiedError with an
// kUnavailable status. QoS 0 completes once the broker took the message.
using PublishCompletion = std::function<void(Status status, mqtt::ReasonCode reason)>;
// Receives one message matching the subscription's filter. For QoS 1/2 the acknowledgement
// (PUBACK, or PUBREC/PUBCOMP) goes to the broker once the handler returned.
using MessageHandler = std::function<void(const mqtt::Publish& message)>;

// Acknowledges one deferred delivery. Call it once, from any thread; copies share the state,
// later calls do nothing. If it is never called the message stays unacknowledged in the
// broker's session (and is sent again, DUP, when the session is resumed).
class DeliveryAck {
 public:
  struct State;  // opaque
  DeliveryAck() = default;
  explicit DeliveryAck(std::shared_ptr<State> state) : state_(std::move(state)) {}
  void operator()() const;
  explicit operator bool() const { return static_cast<bool>(state_); }
  // The id under which our persistent session journaled this delivery, 0 when it was not
  // journaled. Stable across broker restarts and never reused: after a crash the broker
  // delivers unacknowledged messages again under the same id, so a handler that made the
  // message durable itself before the crash can recognise it.
  std::uint64_t stored_id() const;

 private:
  std::shared_ptr<State> state_;
};
using DeferredHandler = std::function<void(const mqtt::Publish& message, DeliveryAck ack)>;

// Per-subscription options beyond the filter and QoS.
struct SubscribeOptions {
  bool no_local = false;  // do not receive what this client publishes
  bool retain_as_published = false;
  mqtt::RetainHandling retain_handling = mqtt::RetainHandling::kSendAtSubscribe;
};

// Called with the SUBACK / UNSUBACK reason (granted QoS 0-2, or >= 0x80 when refused), or
// kUnspecifiedError with a non-ok status when the connection is not up.
using SubscribeCompletion = std::function<void(Status status, mqtt::ReasonCode reason)>;
// Called once the CONNACK arrived: ok with session_present, or the refusal reason.
using ConnectCompletion = std::function<void(Status status, bool session_present)>;

class InProcessClient {
 public:
  InProcessClient(Broker& broker, ClientOptions options, Executor post);
  ~InProcessClient();
  InProcessClient(const InProcessClient&) = delete;
  InProcessClient& operator=(const InProcessClient&) = delete;

  // Connects (or reconnects after a disconnect). Subscriptions made on this object before
  // are kept locally; when the broker had no session for us, they are subscribed again.
  void connect(ConnectCompletion done = {});
  // Ends the connection cleanly (DISCONNECT). The broker keeps a persistent session.
  void disconnect();
  // Called on the executor when the broker ends the connection (shutdown, takeover, a limit).
  void on_connection_lost(std::function<void(mqtt::ReasonCode)> fn);

  // Subscribes `filter` (may be "$share/<group>/..."). Each subscription gets its own MQTT 5
  // Subscription Identifier, so a message is handed to exactly the handlers whose filters
  // matched, once each. Re-subscribing the same filter replaces its handler.
  void subscribe(std::string filter, mqtt::QoS qos, MessageHandler handler,
                 SubscribeCompletion done = {}, SubscribeOptions options = {});
  // Like subscribe(), but QoS 1/2 deliveries are acknowledged only when the handler calls
  // the DeliveryAck it was given (e.g. after a remote broker acknowledged a forwarded copy).
  void subscribe_deferred(std::string filter, mqtt::QoS qos, DeferredHandler handler,
                          SubscribeCompletion done = {}, SubscribeOptions options = {});
  void unsubscribe(std::string filter, SubscribeCompletion done = {});

  // Publishes through the broker with this client's identity and ACL. `topic` must be a
  // valid topic name (checked; an invalid one completes with 0x90). Properties as in a
  // PUBLISH (user properties, content type, message expiry, ...).
  void publish(std::string topic, mqtt::SharedBytes payload, mqtt::QoS qos = mqtt::QoS::kAtMostOnce,
               bool retain = false, mqtt::Properties properties = {}, PublishCompletion done = {});

  // Thread-safe snapshots. client_id() is the one the broker assigned when it was empty.
  bool connected() const;
  std::string client_id() const;

 private:
  struct Impl;
  class Pipe;
  std::shared_ptr<Impl> impl_;
};

}  // namespace ganglion::broker
