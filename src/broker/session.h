// Session: the MQTT session state of one client id, online or not.
//
// Outbound (broker -> client): QoS 1/2 deliveries get packet ids and wait in the in-flight
// window (the client's Receive Maximum, capped by BrokerOptions::max_inflight) until
// acknowledged; beyond it they wait in a bounded queue. On reconnect the in-flight ones are
// sent again (DUP) in their original order, then the queue drains.
// Inbound (client -> broker): packet ids of QoS 2 messages awaiting PUBREL, so a resent
// PUBLISH is not routed twice.
//
// Thread safety: deliveries come from any publisher's thread; acks from the connection's
// thread. All state is guarded by mu_. Lock order: Broker routing lock before a Session lock;
// Link::send is called with the session lock held, so Links must not call back into the
// broker synchronously.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "base/clock.h"
#include "broker/acl.h"
#include "broker/link.h"
#include "broker/message.h"
#include "broker/topic_tree.h"

// (SessionStore is optional: sessions of a broker without a store live in memory only.)

namespace ganglion::broker {

struct BrokerCounters;
struct BrokerOptions;
class Connection;
class SessionStore;

// What the client announced in CONNECT that shapes what we send it.
struct ClientLimits {
  mqtt::ProtocolVersion version = mqtt::ProtocolVersion::kV311;
  std::uint16_t receive_maximum = 65535;
  std::uint16_t topic_alias_maximum = 0;
  bool problem_information = true;
};

// A deque that allocates nothing until the first element: most sessions are idle, and an
// empty std::deque already holds a 512-byte block.
template <class T>
class LazyDeque {
 public:
  using iterator = typename std::deque<T>::iterator;
  bool empty() const { return !d_ || d_->empty(); }
  std::size_t size() const { return d_ ? d_->size() : 0; }
  T& front() { return d_->front(); }
  void pop_front() { d_->pop_front(); }
  void push_back(T v) {
    if (!d_) d_ = std::make_unique<std::deque<T>>();
    d_->push_back(std::move(v));
  }
  iterator begin() { return d_ ? d_->begin() : iterator(); }
  iterator end() { return d_ ? d_->end() : iterator(); }
  iterator erase(iterator it) { return d_->erase(it); }
  void clear() { d_.reset(); }

 private:
  std::unique_ptr<std::deque<T>> d_;
};

class Session {
 public:
  Session(SessionId id, std::string client_id, Clock& clock, const BrokerOptions& options,
          const BrokerCounters& counters);

  SessionId id() const { return id_; }
  const std::string& client_id() const { return client_id_; }
  bool online() const { return online_.load(std::memory_order_acquire); }

  // Queues one delivery. `qos` is already min(published, granted). Drops expired messages,
  // messages the client's ACL may not receive, and QoS 0 while offline. For a persistent
  // session with a store, a QoS 1/2 delivery is journaled: the return value is the store
  // sequence after which it is durable (0 when nothing was journaled).
  std::uint64_t deliver(const MessagePtr& message, std::uint8_t qos, bool retain_flag,
                        std::span<const std::uint32_t> subscription_ids);
  // Puts a delivery recovered from the store at the end of the queue (start-up only).
  void restore(const MessagePtr& message, std::uint8_t qos, bool retain_flag,
               std::vector<std::uint32_t> subscription_ids, std::uint64_t stored_id);
  // Journals this session's deliveries in `store` while expiry_interval > 0.
  void set_store(SessionStore* store) { store_ = store; }

  // Outbound acknowledgements from the client.
  void on_puback(std::uint16_t packet_id);
  void on_pubrec(std::uint16_t packet_id, mqtt::ReasonCode reason);
  void on_pubcomp(std::uint16_t packet_id);

  // Inbound QoS 2: true when `packet_id` is new (route the message), false for a resend.
  // Errors with kResourceExhausted when more than `limit` are awaiting PUBREL.
  Result<bool> begin_inbound_qos2(std::uint16_t packet_id, std::size_t limit);
  // After routing a new QoS 2 message: a persistent session journals its packet id, so that a
  // resend after a broker restart is not routed twice. Returns the store sequence to wait
  // for before the PUBREC (0 when nothing was journaled).
  std::uint64_t journal_inbound_qos2(std::uint16_t packet_id);
  // True when the id was awaiting PUBREL. `durable_seq` is set to the store sequence to wait
  // for before the PUBCOMP (0 when nothing was journaled).
  bool release_inbound_qos2(std::uint16_t packet_id, std::uint64_t& durable_seq);
  // Packet ids awaiting PUBREL recovered from the store (start-up only).
  void restore_inbound_qos2(const std::set<std::uint16_t>& packet_ids);

  // A connection took the session: sends the in-flight again, then drains the queue.
  void bind(std::shared_ptr<Link> link, ClientLimits limits,
            std::shared_ptr<const IdentityAcl> acl);
  // The connection went away; deliveries queue from now on (QoS 1/2 only).
  void unbind(const std::shared_ptr<Link>& link);
  // True when `link` is the one bound.
  bool bound_to(const std::shared_ptr<Link>& link) const;
  // Drops every queued and in-flight message (clean start, expiry).
  void clear();

  // Generation of the current attachment; timers for expiry or will delay compare it.
  std::uint64_t generation() const { return generation_.load(); }
  std::uint64_t next_generation() { return ++generation_; }

  // Session Expiry Interval in seconds (0 = ends with the connection).
  std::atomic<std::uint32_t> expiry_interval{0};
  // True once the store holds a record of this session. Guarded by the routing lock.
  bool stored = false;
  // Subscriptions of this session by full filter ("$share/g/f" included), for removal and
  // persistence. Guarded by the broker's routing lock, not mu_.
  std::map<std::string, SubscriptionOptions, std::less<>> subscriptions;
  // A will waiting for its delay to pass (set when the connection dropped), and its timer.
  TimerId will_timer = 0;
  // The live connection using this session (for takeover, disconnect_client, shutdown).
  // Guarded by the broker's routing lock.
  std::weak_ptr<Connection> connection;

  std::size_t queued() const;
  std::size_t inflight() const;

 private:
  enum class Stage : std::uint8_t { kAwaitAck, kAwaitRec, kAwaitComp };
  struct Pending {
    MessagePtr message;
    std::uint8_t qos = 0;
    bool retain = false;
    std::vector<std::uint32_t> subscription_ids;
    std::uint64_t stored_id = 0;  // message id in the store; 0 when not journaled
  };
  struct Inflight {
    std::uint16_t packet_id = 0;
    Stage stage = Stage::kAwaitAck;
    std::uint64_t serial = 0;  // ids_assigned_ when its packet id was assigned
    Pending pending;
  };

  // REQUIRES: mu_ held.
  bool send_publish(const Message& m, std::uint8_t qos, bool retain,
                    std::span<const std::uint32_t> subscription_ids, std::uint16_t packet_id,
                    bool dup, std::uint64_t stored_id);
  bool send_publish(const Pending& p, std::uint16_t packet_id, bool dup) {
    return send_publish(*p.message, p.qos, p.retain, p.subscription_ids, packet_id, dup,
                        p.stored_id);
  }
  void push_inflight(std::uint16_t packet_id, Pending p);
  void pump();
  std::uint16_t next_packet_id();
  LazyDeque<Inflight>::iterator find_inflight(std::uint16_t packet_id);
  bool expired(const Message& m) const;
  void enqueue(Pending p);
  // The delivery is over (acknowledged, dropped or expired): tell the store.
  void finished(const Pending& p);

  const SessionId id_;
  const std::string client_id_;
  Clock& clock_;
  const BrokerOptions& options_;
  const BrokerCounters& counters_;
  SessionStore* store_ = nullptr;
  std::atomic<bool> online_{false};
  std::atomic<std::uint64_t> generation_{0};

  mutable std::mutex mu_;
  std::shared_ptr<Link> link_;
  ClientLimits limits_;
  std::shared_ptr<const IdentityAcl> acl_;
  // In packet-id assignment order (ids_assigned_ grows from front to back), which is what
  // lets next_packet_id() skip the search for an id in use in the usual case.
  LazyDeque<Inflight> inflight_;
  LazyDeque<Pending> queue_;
  std::size_t queued_bytes_ = 0;
  std::uint64_t ids_assigned_ = 0;  // packet ids handed out so far
  // Created on first use: most sessions never see QoS 2 or topic aliases.
  std::unique_ptr<std::unordered_set<std::uint16_t>> inbound_qos2_;
  std::unique_ptr<std::unordered_map<std::string, std::uint16_t>> out_aliases_;
};

}  // namespace ganglion::broker
