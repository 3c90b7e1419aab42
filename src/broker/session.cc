#include "broker/session.h"

#include <algorithm>

#include "broker/broker.h"
#include "broker/session_store.h"

namespace ganglion::broker {

namespace {

std::int64_t now_ms(Clock& clock) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock.now().time_since_epoch())
      .count();
}

}  // namespace

Session::Session(SessionId id, std::string client_id, Clock& clock, const BrokerOptions& options,
                 const BrokerCounters& counters)
    : id_(id),
      client_id_(std::move(client_id)),
      clock_(clock),
      options_(options),
      counters_(counters) {}

bool Session::expired(const Message& m) const {
  return m.expiry_ms != 0 && m.expiry_ms <= now_ms(clock_);
}

std::uint64_t Session::deliver(const MessagePtr& message, std::uint8_t qos, bool retain_flag,
                               std::span<const std::uint32_t> subscription_ids) {
  std::lock_guard lock(mu_);
  if (acl_ && !acl_->can_receive(message->topic)) return 0;
  if (expired(*message)) {
    counters_.messages_expired->inc();
    return 0;
  }
  if (qos == 0) {
    if (link_) {
      send_publish(*message, 0, retain_flag, subscription_ids, 0, false, 0);
    } else {
      counters_.messages_dropped_queue_full->inc();
    }
    return 0;
  }
  Pending p{message, qos, retain_flag, {subscription_ids.begin(), subscription_ids.end()}, 0};
  std::uint64_t seq = 0;
  if (store_ && expiry_interval.load() > 0) {
    seq = store_->enqueue(client_id_, message, qos, retain_flag, subscription_ids, p.stored_id);
  }
  if (link_ && queue_.empty() && inflight_.size() < limits_.receive_maximum &&
      inflight_.size() < options_.max_inflight) {
    const std::uint16_t id = next_packet_id();
    if (send_publish(p, id, false)) {
      push_inflight(id, std::move(p));
    } else {
      finished(p);
    }
    return seq;
  }
  enqueue(std::move(p));
  return seq;
}

void Session::restore(const MessagePtr& message, std::uint8_t qos, bool retain_flag,
                      std::vector<std::uint32_t> subscription_ids, std::uint64_t stored_id) {
  std::lock_guard lock(mu_);
  Pending p{message, qos, retain_flag, std::move(subscription_ids), stored_id};
  queued_bytes_ += message->bytes();
  queue_.push_back(std::move(p));
}

void Session::finished(const Pending& p) {
  if (store_ && p.stored_id != 0) store_->done(client_id_, p.stored_id);
}

void Session::enqueue(Pending p) {
  const std::size_t bytes = p.message->bytes();
  if (queue_.size() >= options_.max_queued_messages ||
      queued_bytes_ + bytes > options_.max_queued_bytes) {
    switch (options_.queue_full_policy) {
      case QueueFullPolicy::kDropNewest:
        counters_.messages_dropped_queue_full->inc();
        finished(p);
        return;
      case QueueFullPolicy::kDropOldest:
        while (!queue_.empty() && (queue_.size() >= options_.max_queued_messages ||
                                   queued_bytes_ + bytes > options_.max_queued_bytes)) {
          queued_bytes_ -= queue_.front().message->bytes();
          finished(queue_.front());
          queue_.pop_front();
          counters_.messages_dropped_queue_full->inc();
        }
        break;
      case QueueFullPolicy::kDisconnect:
        counters_.messages_dropped_queue_full->inc();
        finished(p);
        if (link_) {
          if (limits_.version == mqtt::ProtocolVersion::kV5) {
            link_->send(mqtt::Disconnect{mqtt::ReasonCode::kQuotaExceeded, {}});
          }
          link_->close();
        }
        return;
    }
  }
  queued_bytes_ += bytes;
  queue_.push_back(std::move(p));
}

void Session::push_inflight(std::uint16_t packet_id, Pending p) {
  const Stage stage = p.qos == 1 ? Stage::kAwaitAck : Stage::kAwaitRec;
  inflight_.push_back({packet_id, stage, ids_assigned_, std::move(p)});
}

bool Session::send_publish(const Message& m, std::uint8_t qos, bool retain,
                           std::span<const std::uint32_t> subscription_ids, std::uint16_t packet_id,
                           bool dup, std::uint64_t stored_id) {
  const bool v5 = limits_.version == mqtt::ProtocolVersion::kV5;
  if (!v5 || (!m.properties && m.expiry_ms == 0 && subscription_ids.empty() &&
              limits_.topic_alias_maximum == 0)) {
    // The fan-out path: nothing differs per subscriber but the packet id and flags, so no
    // mqtt::Publish (with its ~600-byte Properties and a copy of the topic) is built.
    if (!link_->send_plain_publish(
            PublishView{m.topic, m.payload, qos, retain, dup, packet_id, stored_id})) {
      return false;
    }
    counters_.messages_sent->inc();
    return true;
  }
  mqtt::Publish out;
  out.dup = dup;
  out.qos = static_cast<mqtt::QoS>(qos);
  out.retain = retain;
  out.packet_id = packet_id;
  out.payload = m.payload;
  if (v5) {
    if (m.properties) out.properties = *m.properties;
    out.properties.subscription_identifiers.assign(subscription_ids.begin(),
                                                   subscription_ids.end());
    if (m.expiry_ms != 0) {
      const std::int64_t left = m.expiry_ms - now_ms(clock_);
      out.properties.message_expiry_interval =
          static_cast<std::uint32_t>(std::max<std::int64_t>(1, (left + 999) / 1000));
    }
    if (limits_.topic_alias_maximum > 0) {
      if (!out_aliases_) {
        out_aliases_ = std::make_unique<std::unordered_map<std::string, std::uint16_t>>();
      }
      auto it = out_aliases_->find(m.topic);
      if (it != out_aliases_->end()) {
        out.properties.topic_alias = it->second;
      } else if (out_aliases_->size() < limits_.topic_alias_maximum) {
        const auto alias = static_cast<std::uint16_t>(out_aliases_->size() + 1);
        out_aliases_->emplace(m.topic, alias);
        out.properties.topic_alias = alias;
        out.topic = m.topic;
      }
      if (!out.topic.empty() || !out.properties.topic_alias) out.topic = m.topic;
    } else {
      out.topic = m.topic;
    }
  } else {
    out.topic = m.topic;
  }
  if (!link_->send_publish(out, stored_id)) return false;
  counters_.messages_sent->inc();
  return true;
}

std::uint16_t Session::next_packet_id() {
  // Ids go 1, 2, ..., 65535, 1, ... Everything in flight got its id at most 65534
  // assignments ago unless the oldest one has been waiting for a whole turn of ids: only
  // then can the next id still be in use, and the in-flight window is searched.
  for (;;) {
    ++ids_assigned_;
    const auto id = static_cast<std::uint16_t>((ids_assigned_ - 1) % 65535 + 1);
    if (inflight_.empty() || ids_assigned_ - inflight_.front().serial < 65535) return id;
    const bool in_use = std::any_of(inflight_.begin(), inflight_.end(),
                                    [&](const Inflight& f) { return f.packet_id == id; });
    if (!in_use) return id;
  }
}

LazyDeque<Session::Inflight>::iterator Session::find_inflight(std::uint16_t packet_id) {
  // Acknowledgements mostly arrive in order: the front is the usual hit.
  return std::find_if(inflight_.begin(), inflight_.end(),
                      [&](const Inflight& f) { return f.packet_id == packet_id; });
}

void Session::pump() {
  while (link_ && !queue_.empty() && inflight_.size() < limits_.receive_maximum &&
         inflight_.size() < options_.max_inflight) {
    Pending p = std::move(queue_.front());
    queue_.pop_front();
    queued_bytes_ -= p.message->bytes();
    if (expired(*p.message)) {
      counters_.messages_expired->inc();
      finished(p);
      continue;
    }
    const std::uint16_t id = next_packet_id();
    if (send_publish(p, id, false)) {
      push_inflight(id, std::move(p));
    } else {
      finished(p);
    }
  }
}

void Session::on_puback(std::uint16_t packet_id) {
  std::lock_guard lock(mu_);
  auto it = find_inflight(packet_id);
  if (it == inflight_.end() || it->stage != Stage::kAwaitAck) return;
  finished(it->pending);
  inflight_.erase(it);
  pump();
}

void Session::on_pubrec(std::uint16_t packet_id, mqtt::ReasonCode reason) {
  std::lock_guard lock(mu_);
  auto it = find_inflight(packet_id);
  if (it == inflight_.end()) {
    if (link_) {
      link_->send(mqtt::Pubrel{packet_id, mqtt::ReasonCode::kPacketIdentifierNotFound, {}});
    }
    return;
  }
  // From PUBREC on the client owns the message: the store forgets it (after a restart only
  // the PUBREL would be missing, which the client's session tolerates).
  finished(it->pending);
  if (static_cast<std::uint8_t>(reason) >= 0x80) {  // the client refused the message
    inflight_.erase(it);
    pump();
    return;
  }
  it->stage = Stage::kAwaitComp;
  it->pending.message.reset();  // only the id matters from here on
  it->pending.stored_id = 0;
  if (link_) link_->send(mqtt::Pubrel{packet_id, mqtt::ReasonCode::kSuccess, {}});
}

void Session::on_pubcomp(std::uint16_t packet_id) {
  std::lock_guard lock(mu_);
  auto it = find_inflight(packet_id);
  if (it == inflight_.end() || it->stage != Stage::kAwaitComp) return;
  inflight_.erase(it);
  pump();
}

Result<bool> Session::begin_inbound_qos2(std::uint16_t packet_id, std::size_t limit) {
  std::lock_guard lock(mu_);
  if (!inbound_qos2_) inbound_qos2_ = std::make_unique<std::unordered_set<std::uint16_t>>();
  if (inbound_qos2_->count(packet_id)) return false;
  if (inbound_qos2_->size() >= limit) {
    return ResourceExhausted("more QoS 2 messages awaiting PUBREL than Receive Maximum");
  }
  inbound_qos2_->insert(packet_id);
  return true;
}

std::uint64_t Session::journal_inbound_qos2(std::uint16_t packet_id) {
  if (!store_ || expiry_interval.load() == 0) return 0;
  return store_->qos2_received(client_id_, packet_id);
}

bool Session::release_inbound_qos2(std::uint16_t packet_id, std::uint64_t& durable_seq) {
  durable_seq = 0;
  std::lock_guard lock(mu_);
  const bool known = inbound_qos2_ && inbound_qos2_->erase(packet_id) > 0;
  if (known && store_ && expiry_interval.load() > 0) {
    durable_seq = store_->qos2_released(client_id_, packet_id);
  }
  return known;
}

void Session::restore_inbound_qos2(const std::set<std::uint16_t>& packet_ids) {
  if (packet_ids.empty()) return;
  std::lock_guard lock(mu_);
  inbound_qos2_ =
      std::make_unique<std::unordered_set<std::uint16_t>>(packet_ids.begin(), packet_ids.end());
}

void Session::bind(std::shared_ptr<Link> link, ClientLimits limits,
                   std::shared_ptr<const IdentityAcl> acl) {
  std::lock_guard lock(mu_);
  link_ = std::move(link);
  limits_ = limits;
  acl_ = std::move(acl);
  out_aliases_.reset();
  online_.store(true, std::memory_order_release);
  // Resend what was in flight, in order (spec 4.4): PUBLISH with DUP, or PUBREL.
  for (auto it = inflight_.begin(); it != inflight_.end();) {
    if (it->stage == Stage::kAwaitComp) {
      link_->send(mqtt::Pubrel{it->packet_id, mqtt::ReasonCode::kSuccess, {}});
      ++it;
    } else if (!send_publish(it->pending, it->packet_id, true)) {
      finished(it->pending);
      it = inflight_.erase(it);
    } else {
      ++it;
    }
  }
  pump();
}

void Session::unbind(const std::shared_ptr<Link>& link) {
  std::lock_guard lock(mu_);
  if (link_ != link) return;
  link_.reset();
  online_.store(false, std::memory_order_release);
}

bool Session::bound_to(const std::shared_ptr<Link>& link) const {
  std::lock_guard lock(mu_);
  return link_ == link;
}

void Session::clear() {
  std::lock_guard lock(mu_);
  inflight_.clear();
  queue_.clear();
  queued_bytes_ = 0;
  inbound_qos2_.reset();
}

std::size_t Session::queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

std::size_t Session::inflight() const {
  std::lock_guard lock(mu_);
  return inflight_.size();
}

}  // namespace ganglion::broker
