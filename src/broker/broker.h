// Broker: the MQTT 3.1.1 / 5.0 server core of an edge node. No sockets: listeners hand it a
// Link per connection and feed it decoded packets through the returned Connection.
//
// Routing state (sessions by client id, the subscription tree, retained messages) sits behind
// one mutex held only to match and to update subscriptions; deliveries are made outside it,
// under each session's own lock, so publishers on different event loops run in parallel.
//
// Time comes from the injected Clock (keep-alive, will delay, session and message expiry,
// $SYS updates); with a ManualClock every timer is driven by the test.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "base/metrics.h"
#include "base/timer_scope.h"
#include "broker/acl.h"
#include "broker/keep_alive_wheel.h"
#include "broker/link.h"
#include "broker/message.h"
#include "broker/password_file.h"
#include "broker/retained_store.h"
#include "broker/topic_tree.h"

namespace ganglion::broker {

class Connection;
class Session;
class SessionStore;

enum class QueueFullPolicy { kDropNewest, kDropOldest, kDisconnect };

struct BrokerOptions {
  std::size_t max_connections = 100'000;
  std::uint32_t max_packet_size = 1 << 20;   // announced; larger packets are refused
  std::uint16_t receive_maximum = 1024;      // QoS 1/2 we accept unacknowledged per client
  std::uint16_t max_inflight = 1024;         // QoS 1/2 we send unacknowledged per client
  std::size_t max_queued_messages = 10'000;  // per session, beyond the in-flight window
  std::size_t max_queued_bytes = 64 << 20;   // per session
  QueueFullPolicy queue_full_policy = QueueFullPolicy::kDropNewest;
  std::size_t max_topic_length = 1024;
  std::size_t max_topic_levels = 32;
  std::uint16_t topic_alias_maximum = 64;        // aliases a client may set towards us
  std::uint16_t max_keep_alive = 3600;           // seconds; larger (or 0) is lowered (MQTT 5)
  std::uint32_t max_session_expiry = 7 * 86400;  // seconds; also for 3.1.1 persistent sessions
  std::uint8_t maximum_qos = 2;
  bool retain_available = true;
  bool allow_anonymous = true;
  // MQTT 5 enhanced authentication methods offered (spec 4.12) against the password file;
  // without a password file none is. Only "SCRAM-SHA-512" can be served from the password
  // file's PBKDF2-HMAC-SHA512 hashes; other names are never offered (CONNACK 0x8C).
  std::vector<std::string> authentication_methods = {"SCRAM-SHA-512"};
  // Use the client certificate's CN as the username (mutual TLS identities).
  bool certificate_cn_as_username = true;
  std::size_t max_retained_messages = 100'000;
  std::size_t max_retained_bytes = 256 << 20;
  // Accepted CONNECTs per second across listeners (0 = unlimited), with a burst of twice that.
  std::uint32_t max_connect_rate = 0;
  // Interval of $SYS/broker/... updates; 0 disables them.
  std::chrono::milliseconds sys_interval{10'000};
  std::string version = "ganglion";
};

// Counters the broker keeps; rendered under /metrics and $SYS.
struct BrokerCounters {
  Counter* connections_accepted;
  Counter* connections_refused;
  Counter* messages_received;
  Counter* messages_sent;
  Counter* messages_dropped_queue_full;
  Counter* messages_dropped_no_subscriber;
  Counter* messages_expired;
  Counter* publishes_denied;
  Counter* subscriptions_denied;
  Counter* protocol_errors;
  Counter* bytes_received;
  Counter* bytes_sent;
  Gauge* clients_connected;
  Gauge* sessions;
  Gauge* retained_messages;
  Gauge* subscriptions;
};

class Broker {
 public:
  Broker(BrokerOptions options, Clock& clock, MetricsRegistry& metrics);
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // Authentication and authorisation; without them every client is allowed (when
  // allow_anonymous) and every topic is open. Set before accepting connections.
  void set_password_file(std::shared_ptr<const PasswordFile> passwords);
  // True when a CONNECT may name `method` as its Authentication Method: it is listed in
  // BrokerOptions::authentication_methods, a password file is set, and the file can serve it.
  bool offers_authentication_method(std::string_view method) const;
  void set_acl(std::shared_ptr<const AclPolicy> acl);
  // Refuses a CONNECT (CONNACK 0x87 Not Authorized) when `allow(username)` returns false;
  // `username` is the certificate CN under mutual TLS, else the CONNECT's username ("" when
  // anonymous). Not applied to in-process (internal) clients. Called on listener threads
  // concurrently: `allow` must be thread-safe. Set before accepting connections.
  void set_identity_filter(std::function<bool(const std::string& username)> allow);
  // Ends the live connection of `client_id` (DISCONNECT with `reason` under MQTT 5), or of
  // every client authenticated as `username`. Returns how many were disconnected.
  // Thread-safe.
  std::size_t disconnect_client(const std::string& client_id, mqtt::ReasonCode reason);
  std::size_t disconnect_username(const std::string& username, mqtt::ReasonCode reason);
  // Makes persistent sessions and retained messages durable in `store`, and restores what it
  // holds (sessions offline, with their queues; retained messages). Call before accepting
  // connections.
  Status attach_store(std::unique_ptr<SessionStore> store);
  SessionStore* store() { return store_.get(); }
  // A transport accepted a connection. The returned Connection must be fed every packet read
  // from it, on one thread at a time, and told when the transport closes.
  std::shared_ptr<Connection> accept(std::shared_ptr<Link> link, TransportInfo info);

  // Publishes a message from the broker itself (bridges, $SYS, the node's parts without a
  // session). Applies retain and routing like a client's PUBLISH, without ACL checks.
  void publish(MessagePtr message);

  // Starts the periodic $SYS publisher (if enabled). Idempotent.
  void start();
  // Disconnects every client with "server shutting down" and stops timers.
  void shutdown();

  const BrokerOptions& options() const { return options_; }
  Clock& clock() { return clock_; }
  // Timers that must not outlive the broker (every timer the broker and its connections set).
  TimerScope& timers() { return timers_; }
  // Keep-alive deadlines of every connection, behind one timer (500 ms resolution).
  KeepAliveWheel& keep_alive_wheel() { return keep_alive_; }
  const BrokerCounters& counters() const { return counters_; }
  std::size_t connected_clients() const;
  std::size_t session_count() const;
  std::size_t retained_count() const;

 private:
  friend class Connection;
  struct Routing;

  // What a CONNECT resolved to: the session to use and whether it was resumed.
  struct Attach {
    std::shared_ptr<Session> session;
    bool session_present = false;
  };
  // Finds or creates the session of `client_id`, taking it over from a live connection.
  Attach attach_session(const std::string& client_id, bool clean_start,
                        const std::shared_ptr<Connection>& connection);
  // The connection bound to `link` ended: unbinds, then ends the session or arms its expiry.
  void detach_session(const std::shared_ptr<Session>& session, const std::shared_ptr<Link>& link);
  void remove_session_locked(const std::shared_ptr<Session>& session);
  struct Routed {
    std::size_t deliveries = 0;
    std::uint64_t durable_seq = 0;  // store sequence to wait for before acknowledging; 0: none
  };
  // Routes to every matching session.
  Routed route(const MessagePtr& message);
  // Writes the session's record (subscriptions, expiry, offline time) when it is persistent,
  // or removes it when it no longer is. REQUIRES: routing lock held.
  void persist_session_locked(Session& session, bool offline);
  void persist_session(Session& session);
  // True while `session` is the registered session of its client id.
  bool is_current(const Session& session) const;
  // Adds a subscription; returns the SUBACK reason code (the granted QoS) and appends the
  // retained messages due to it (with their delivery QoS) to `retained`.
  mqtt::ReasonCode subscribe(const std::shared_ptr<Session>& session, const std::string& filter,
                             std::string_view group, const SubscriptionOptions& options,
                             std::vector<std::pair<MessagePtr, std::uint8_t>>& retained);
  bool unsubscribe(const std::shared_ptr<Session>& session, const std::string& filter,
                   std::string_view group);
  void publish_will(SessionId publisher, mqtt::Will will);
  void schedule_will(const std::shared_ptr<Session>& session, mqtt::Will will,
                     std::uint32_t delay_s, std::shared_ptr<const IdentityAcl> acl);
  void expire_session(SessionId id, std::uint64_t generation);
  void publish_sys();
  bool take_connect_token();
  std::int64_t now_ms() const;

  BrokerOptions options_;
  Clock& clock_;
  TimerScope timers_{clock_};
  // Filled and emptied by the wheel's callbacks, on the Clock's thread.
  std::vector<std::shared_ptr<Connection>> keep_alive_due_;
  KeepAliveWheel keep_alive_;
  MetricsRegistry& metrics_;
  BrokerCounters counters_{};
  std::unique_ptr<Routing> routing_;
  std::shared_ptr<const PasswordFile> passwords_;
  // Derives the SCRAM salts shown for unknown users (from the password file's content).
  std::string scram_decoy_secret_;
  std::shared_ptr<const AclPolicy> acl_;
  std::function<bool(const std::string&)> identity_filter_;
  std::unique_ptr<SessionStore> store_;
  std::atomic<std::size_t> connections_{0};
  std::atomic<bool> shutting_down_{false};
  TimerId sys_timer_ = 0;
  MonoTime started_{};
  std::mutex rate_mu_;
  double connect_tokens_ = 0;
  MonoTime connect_tokens_at_{};
};

}  // namespace ganglion::broker
