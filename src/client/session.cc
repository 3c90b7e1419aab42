#include "client/session.h"

#include <algorithm>

#include "mqtt/topic.h"

namespace ganglion::client {

using mqtt::QoS;
using mqtt::ReasonCode;

namespace {

bool failed(ReasonCode r) { return static_cast<std::uint8_t>(r) >= 0x80; }

Status status_of(ReasonCode r, std::string_view what) {
  return failed(r) ? mqtt::error(r, what) : Status::Ok();
}

mqtt::DecoderOptions decoder_options(const SessionOptions& o) {
  return mqtt::DecoderOptions{mqtt::Role::kClient, o.version,
                              o.maximum_packet_size ? o.maximum_packet_size : mqtt::kMaxPacketSize};
}

}  // namespace

ClientSession::ClientSession(SessionOptions options, Clock& clock, SessionHandlers handlers)
    : options_(std::move(options)),
      clock_(clock),
      handlers_(std::move(handlers)),
      decoder_(decoder_options(options_)),
      encoder_(options_.version),
      client_id_(options_.client_id) {}

ClientSession::~ClientSession() = default;

std::string ClientSession::take_output() {
  std::string out;
  out.swap(out_);
  return out;
}

void ClientSession::write(const mqtt::Packet& packet) {
  const std::size_t before = out_.size();
  if (Status s = mqtt::encode(packet, options_.version, out_); !s.ok()) return;
  counters_.bytes_out += out_.size() - before;
  last_write_ = clock_.now();
}

void ClientSession::close_with(Status why, std::optional<ReasonCode> disconnect) {
  if (close_requested_) return;
  if (disconnect && state_ == State::kConnected && options_.version == mqtt::ProtocolVersion::kV5) {
    write(mqtt::Disconnect{*disconnect, {}});
  }
  close_requested_ = true;
  close_reason_ = std::move(why);
  state_ = State::kClosing;
}

void ClientSession::fail(ReasonCode reason, std::string_view what) {
  close_with(mqtt::error(reason, what), reason);
}

// --- transport events ------------------------------------------------------------------------

void ClientSession::on_transport_open() {
  decoder_ = mqtt::Decoder(decoder_options(options_));
  out_.clear();
  close_requested_ = false;
  close_reason_ = Status::Ok();
  inbound_aliases_.clear();
  outbound_aliases_.clear();
  ping_deadline_ = MonoTime::max();
  state_ = State::kAwaitConnack;

  mqtt::Connect c;
  c.version = options_.version;
  c.clean_start = options_.clean_start;
  c.keep_alive = options_.keep_alive;
  c.client_id = options_.client_id;
  c.will = options_.will;
  c.username = options_.username;
  c.password = options_.password;
  if (options_.version == mqtt::ProtocolVersion::kV5) {
    auto& p = c.properties;
    if (options_.session_expiry) p.session_expiry_interval = options_.session_expiry;
    if (options_.receive_maximum != 65535) p.receive_maximum = options_.receive_maximum;
    if (options_.maximum_packet_size) p.maximum_packet_size = options_.maximum_packet_size;
    if (options_.topic_alias_maximum) p.topic_alias_maximum = options_.topic_alias_maximum;
    p.user_properties = options_.connect_user_properties;
  }
  write(c);
  connack_deadline_ = clock_.now() + options_.connack_timeout;
}

void ClientSession::on_transport_closed() {
  state_ = State::kDisconnected;
  out_.clear();
  connack_deadline_ = MonoTime::max();
  ping_deadline_ = MonoTime::max();
  // Unanswered SUBSCRIBE/UNSUBSCRIBE go again on the next connection, before newer ones.
  std::vector<PendingAck> again;
  for (auto& [_, a] : acks_) again.push_back(std::move(a));
  acks_.clear();
  for (auto& a : unsent_acks_) again.push_back(std::move(a));
  unsent_acks_ = std::move(again);
}

void ClientSession::on_bytes(std::string_view bytes) {
  counters_.bytes_in += bytes.size();
  if (close_requested_ || state_ == State::kDisconnected) return;
  decoder_.feed(bytes);
  while (!close_requested_) {
    auto next = decoder_.next();
    if (!next.ok()) {
      const ReasonCode r = mqtt::reason_of(next.status()).value_or(ReasonCode::kMalformedPacket);
      close_with(next.status(), r);
      return;
    }
    if (!*next) return;
    ping_deadline_ = MonoTime::max();  // the server is alive
    handle(**next);
  }
}

std::optional<MonoTime> ClientSession::next_deadline() const {
  MonoTime t = MonoTime::max();
  if (state_ == State::kAwaitConnack) t = std::min(t, connack_deadline_);
  if (state_ == State::kConnected) {
    t = std::min(t, ping_deadline_);
    if (keep_alive_ > 0 && ping_deadline_ == MonoTime::max()) {
      t = std::min(t, last_write_ + std::chrono::seconds(keep_alive_));
    }
  }
  if (t == MonoTime::max()) return std::nullopt;
  return t;
}

void ClientSession::on_timer() {
  const MonoTime now = clock_.now();
  if (state_ == State::kAwaitConnack && now >= connack_deadline_) {
    close_with(Timeout("no CONNACK within the connect timeout"), std::nullopt);
    return;
  }
  if (state_ != State::kConnected) return;
  if (now >= ping_deadline_) {
    close_with(Timeout("keep-alive: no answer from the server"), ReasonCode::kKeepAliveTimeout);
    return;
  }
  if (keep_alive_ > 0 && ping_deadline_ == MonoTime::max() &&
      now >= last_write_ + std::chrono::seconds(keep_alive_)) {
    write(mqtt::Pingreq{});
    ping_deadline_ = now + std::chrono::seconds(keep_alive_);
  }
}

// --- packets from the server -----------------------------------------------------------------

void ClientSession::handle(mqtt::Packet& packet) {
  if (auto* ack = std::get_if<mqtt::Connack>(&packet)) return on_connack(*ack);
  if (state_ != State::kConnected) return fail(ReasonCode::kProtocolError, "packet before CONNACK");
  std::visit(
      [this](auto& p) {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, mqtt::Publish>) {
          on_publish(p);
        } else if constexpr (std::is_same_v<T, mqtt::Puback>) {
          on_puback(p.packet_id, p.reason, false);
        } else if constexpr (std::is_same_v<T, mqtt::Pubcomp>) {
          on_puback(p.packet_id, p.reason, true);
        } else if constexpr (std::is_same_v<T, mqtt::Pubrec>) {
          on_pubrec(p);
        } else if constexpr (std::is_same_v<T, mqtt::Pubrel>) {
          const bool known = inbound_qos2_.erase(p.packet_id) > 0;
          write(mqtt::Pubcomp{p.packet_id,
                              known ? ReasonCode::kSuccess : ReasonCode::kPacketIdentifierNotFound,
                              {}});
        } else if constexpr (std::is_same_v<T, mqtt::Suback> || std::is_same_v<T, mqtt::Unsuback>) {
          on_subscribe_ack(p.packet_id, std::move(p.reasons));
        } else if constexpr (std::is_same_v<T, mqtt::Pingresp>) {
          // liveness is noted for every packet in on_bytes()
        } else if constexpr (std::is_same_v<T, mqtt::Disconnect>) {
          close_with(status_of(p.reason, "server sent DISCONNECT").ok()
                         ? Unavailable("server sent DISCONNECT")
                         : mqtt::error(p.reason, "server sent DISCONNECT"),
                     std::nullopt);
        } else {
          fail(ReasonCode::kProtocolError, "unexpected packet from the server");
        }
      },
      packet);
}

void ClientSession::on_connack(const mqtt::Connack& ack) {
  if (state_ != State::kAwaitConnack) return fail(ReasonCode::kProtocolError, "unexpected CONNACK");
  if (failed(ack.reason)) {
    close_with(mqtt::error(ack.reason, "server refused CONNECT"), std::nullopt);
    return;
  }
  state_ = State::kConnected;
  connack_deadline_ = MonoTime::max();
  ++counters_.connects;
  const auto& p = ack.properties;
  server_receive_maximum_ = p.receive_maximum.value_or(65535);
  server_maximum_packet_size_ = p.maximum_packet_size.value_or(0);
  server_topic_alias_maximum_ = p.topic_alias_maximum.value_or(0);
  server_maximum_qos_ = p.maximum_qos.value_or(2);
  server_retain_available_ = p.retain_available.value_or(1) != 0;
  keep_alive_ = p.server_keep_alive.value_or(options_.keep_alive);
  if (p.assigned_client_identifier) client_id_ = *p.assigned_client_identifier;
  last_write_ = clock_.now();

  const bool present = ack.session_present && !options_.clean_start;
  if (present) {
    // Spec 4.4: resend unacknowledged PUBLISH (DUP) and PUBREL, in the original order.
    for (auto it = inflight_.begin(); it != inflight_.end();) {
      Outgoing& o = *it++;
      if (o.stage == Stage::kAwaitComp) {
        write(mqtt::Pubrel{o.publish.packet_id, ReasonCode::kSuccess, {}});
      } else if (Status s = write_publish(o, true); !s.ok()) {
        const std::uint16_t id = o.publish.packet_id;
        complete(o, s, ReasonCode::kUnspecifiedError);
        erase_inflight(id);
      }
    }
  } else {
    // The server has no session: what it received as QoS 2 (PUBREC seen) it has; the rest
    // goes again as new messages, ahead of the queue and in order.
    inbound_qos2_.clear();
    for (auto it = inflight_.rbegin(); it != inflight_.rend(); ++it) {
      Outgoing& o = *it;
      if (o.stage == Stage::kAwaitComp) {
        complete(o, Status::Ok(), ReasonCode::kSuccess);
      } else if (options_.republish_on_new_session) {
        o.stage = Stage::kQueued;
        o.publish.packet_id = 0;
        o.publish.dup = false;
        queue_.push_front(std::move(o));
      } else {
        complete(o, Cancelled("the server lost the session"), ReasonCode::kUnspecifiedError);
      }
    }
    inflight_.clear();
    inflight_by_id_.clear();
    // Restore the subscriptions, except those about to be sent anyway.
    PendingAck again;
    for (const auto& entry : subscriptions_) {
      const auto& filter = entry.first;  // a plain reference: clang 14 cannot capture a binding
      const auto& sub = entry.second;
      const bool pending =
          std::any_of(unsent_acks_.begin(), unsent_acks_.end(), [&](const PendingAck& a) {
            return a.subscribe &&
                   std::any_of(a.subscriptions.begin(), a.subscriptions.end(),
                               [&](const mqtt::Subscription& s) { return s.filter == filter; });
          });
      if (!pending) again.subscriptions.push_back(sub);
    }
    if (!again.subscriptions.empty()) unsent_acks_.insert(unsent_acks_.begin(), std::move(again));
  }
  if (handlers_.on_connected) handlers_.on_connected(ack);
  send_pending_acks();
  pump();
}

void ClientSession::on_publish(mqtt::Publish& p) {
  if (options_.version == mqtt::ProtocolVersion::kV5 && p.properties.topic_alias) {
    const std::uint16_t alias = *p.properties.topic_alias;
    if (alias == 0 || alias > options_.topic_alias_maximum) {
      return fail(ReasonCode::kTopicAliasInvalid, "topic alias out of range");
    }
    if (!p.topic.empty()) {
      inbound_aliases_[alias] = p.topic;
    } else {
      auto it = inbound_aliases_.find(alias);
      if (it == inbound_aliases_.end())
        return fail(ReasonCode::kProtocolError, "unknown topic alias");
      p.topic = it->second;
    }
    p.properties.topic_alias.reset();
  }
  switch (p.qos) {
    case QoS::kAtMostOnce:
      ++counters_.messages_received;
      if (handlers_.on_message) handlers_.on_message(p);
      break;
    case QoS::kAtLeastOnce:
      ++counters_.messages_received;
      if (handlers_.on_message) handlers_.on_message(p);
      write(mqtt::Puback{p.packet_id, ReasonCode::kSuccess, {}});
      break;
    case QoS::kExactlyOnce:
      if (!inbound_qos2_.count(p.packet_id)) {
        if (inbound_qos2_.size() >= options_.receive_maximum) {
          return fail(ReasonCode::kReceiveMaximumExceeded,
                      "more QoS 2 messages than Receive Maximum");
        }
        inbound_qos2_[p.packet_id] = true;
        ++counters_.messages_received;
        if (handlers_.on_message) handlers_.on_message(p);
      }
      write(mqtt::Pubrec{p.packet_id, ReasonCode::kSuccess, {}});
      break;
  }
}

void ClientSession::on_puback(std::uint16_t id, ReasonCode reason, bool comp) {
  auto it = inflight_by_id_.find(id);
  if (it == inflight_by_id_.end()) return;
  Outgoing& o = *it->second;
  if (o.stage != (comp ? Stage::kAwaitComp : Stage::kAwaitAck)) return;
  ++counters_.publishes_acked;
  complete(o, status_of(reason, comp ? "PUBCOMP" : "PUBACK"), reason);
  erase_inflight(id);
  pump();
}

void ClientSession::on_pubrec(const mqtt::Pubrec& p) {
  auto it = inflight_by_id_.find(p.packet_id);
  if (it == inflight_by_id_.end()) {
    write(mqtt::Pubrel{p.packet_id, ReasonCode::kPacketIdentifierNotFound, {}});
    return;
  }
  Outgoing& o = *it->second;
  if (o.stage == Stage::kAwaitRec) {
    if (failed(p.reason)) {
      ++counters_.publishes_acked;
      complete(o, status_of(p.reason, "PUBREC"), p.reason);
      erase_inflight(p.packet_id);
      pump();
      return;
    }
    o.stage = Stage::kAwaitComp;
    o.publish.payload = mqtt::SharedBytes();  // only the id matters from here on
  }
  if (o.stage == Stage::kAwaitComp) write(mqtt::Pubrel{p.packet_id, ReasonCode::kSuccess, {}});
}

void ClientSession::on_subscribe_ack(std::uint16_t id, std::vector<ReasonCode> reasons) {
  auto it = acks_.find(id);
  if (it == acks_.end()) return;
  PendingAck a = std::move(it->second);
  acks_.erase(it);
  if (a.subscribe) {
    // A refused filter is not restored on reconnect.
    for (std::size_t i = 0; i < a.subscriptions.size() && i < reasons.size(); ++i) {
      if (failed(reasons[i])) subscriptions_.erase(a.subscriptions[i].filter);
    }
  }
  if (a.done) a.done(Status::Ok(), std::move(reasons));
}

// --- application requests --------------------------------------------------------------------

void ClientSession::publish(mqtt::Publish message, PublishCompletion done) {
  if (Status s = mqtt::validate_topic_name(message.topic); !s.ok()) {
    if (done) done(s, ReasonCode::kTopicNameInvalid);
    return;
  }
  if (queue_.size() >= options_.max_queued) {
    if (done) done(ResourceExhausted("client publish queue full"), ReasonCode::kUnspecifiedError);
    return;
  }
  message.packet_id = 0;
  message.dup = false;
  message.properties.topic_alias.reset();
  queue_.push_back(Outgoing{std::move(message), std::move(done), Stage::kQueued});
  pump();
}

void ClientSession::subscribe(std::vector<mqtt::Subscription> subscriptions, AckCompletion done,
                              mqtt::Properties properties) {
  for (const auto& s : subscriptions) {
    if (Status st = mqtt::validate_topic_filter(s.filter); !st.ok()) {
      if (done) done(st, {});
      return;
    }
  }
  if (subscriptions.empty()) {
    if (done) done(InvalidArgument("SUBSCRIBE needs at least one filter"), {});
    return;
  }
  for (const auto& s : subscriptions) subscriptions_[s.filter] = s;
  PendingAck a;
  a.subscribe = true;
  a.subscriptions = std::move(subscriptions);
  a.properties = std::move(properties);
  a.done = std::move(done);
  if (state_ == State::kConnected) {
    send_ack_request(std::move(a));
  } else {
    unsent_acks_.push_back(std::move(a));
  }
}

void ClientSession::unsubscribe(std::vector<std::string> filters, AckCompletion done) {
  if (filters.empty()) {
    if (done) done(InvalidArgument("UNSUBSCRIBE needs at least one filter"), {});
    return;
  }
  for (const auto& f : filters) subscriptions_.erase(f);
  PendingAck a;
  a.subscribe = false;
  a.filters = std::move(filters);
  a.done = std::move(done);
  if (state_ == State::kConnected) {
    send_ack_request(std::move(a));
  } else {
    unsent_acks_.push_back(std::move(a));
  }
}

void ClientSession::disconnect(ReasonCode reason) {
  if (state_ == State::kConnected) write(mqtt::Disconnect{reason, {}});
  close_requested_ = true;
  close_reason_ = Status::Ok();
  if (state_ != State::kDisconnected) state_ = State::kClosing;
}

void ClientSession::cancel_all(const Status& why) {
  auto queue = std::move(queue_);
  auto inflight = std::move(inflight_);
  queue_.clear();
  inflight_.clear();
  inflight_by_id_.clear();
  for (auto& o : inflight) complete(o, why, ReasonCode::kUnspecifiedError);
  for (auto& o : queue) complete(o, why, ReasonCode::kUnspecifiedError);
  auto acks = std::move(acks_);
  auto unsent = std::move(unsent_acks_);
  acks_.clear();
  unsent_acks_.clear();
  for (auto& [_, a] : acks) {
    if (a.done) a.done(why, {});
  }
  for (auto& a : unsent) {
    if (a.done) a.done(why, {});
  }
}

// --- internals -------------------------------------------------------------------------------

void ClientSession::send_ack_request(PendingAck a) {
  const std::uint16_t id = next_packet_id();
  if (a.subscribe) {
    mqtt::Subscribe s;
    s.packet_id = id;
    s.properties = a.properties;
    s.subscriptions = a.subscriptions;
    write(s);
  } else {
    mqtt::Unsubscribe u;
    u.packet_id = id;
    u.filters = a.filters;
    write(u);
  }
  a.sent = true;
  acks_.emplace(id, std::move(a));
}

void ClientSession::send_pending_acks() {
  auto pending = std::move(unsent_acks_);
  unsent_acks_.clear();
  for (auto& a : pending) send_ack_request(std::move(a));
}

std::size_t ClientSession::window() const {
  return std::max<std::size_t>(
      1, std::min<std::size_t>(server_receive_maximum_, options_.max_inflight));
}

std::uint16_t ClientSession::next_packet_id() {
  for (;;) {
    last_packet_id_ =
        static_cast<std::uint16_t>(last_packet_id_ == 65535 ? 1 : last_packet_id_ + 1);
    if (!inflight_by_id_.count(last_packet_id_) && !acks_.count(last_packet_id_))
      return last_packet_id_;
  }
}

void ClientSession::complete(Outgoing& o, Status status, ReasonCode reason) {
  auto done = std::move(o.done);
  o.done = nullptr;
  if (done) done(std::move(status), reason);
}

void ClientSession::erase_inflight(std::uint16_t id) {
  auto it = inflight_by_id_.find(id);
  if (it == inflight_by_id_.end()) return;
  inflight_.erase(it->second);
  inflight_by_id_.erase(it);
}

Status ClientSession::write_publish(const Outgoing& o, bool dup) {
  mqtt::Publish p = o.publish;
  p.dup = dup && p.qos != QoS::kAtMostOnce;
  if (options_.version == mqtt::ProtocolVersion::kV5 && options_.use_topic_aliases &&
      server_topic_alias_maximum_ > 0) {
    auto it = outbound_aliases_.find(p.topic);
    if (it != outbound_aliases_.end()) {
      p.properties.topic_alias = it->second;
      p.topic.clear();
    } else if (outbound_aliases_.size() < server_topic_alias_maximum_) {
      const auto alias = static_cast<std::uint16_t>(outbound_aliases_.size() + 1);
      outbound_aliases_.emplace(p.topic, alias);
      p.properties.topic_alias = alias;
    }
  }
  const std::size_t before = out_.size();
  if (Status s = mqtt::encode(p, options_.version, out_); !s.ok()) return s;
  if (server_maximum_packet_size_ != 0 && out_.size() - before > server_maximum_packet_size_) {
    out_.resize(before);
    if (p.properties.topic_alias && !p.topic.empty()) outbound_aliases_.erase(p.topic);
    return mqtt::error(ReasonCode::kPacketTooLarge,
                       "PUBLISH exceeds the server's Maximum Packet Size");
  }
  counters_.bytes_out += out_.size() - before;
  ++counters_.publishes_sent;
  last_write_ = clock_.now();
  return Status::Ok();
}

void ClientSession::pump() {
  while (state_ == State::kConnected && !close_requested_ && !queue_.empty()) {
    Outgoing& front = queue_.front();
    const auto qos = static_cast<std::uint8_t>(front.publish.qos);
    if (qos > server_maximum_qos_ || (front.publish.retain && !server_retain_available_)) {
      Outgoing o = std::move(front);
      queue_.pop_front();
      complete(o,
               mqtt::error(qos > server_maximum_qos_ ? ReasonCode::kQoSNotSupported
                                                     : ReasonCode::kRetainNotSupported,
                           "the server does not accept this publish"),
               ReasonCode::kUnspecifiedError);
      continue;
    }
    if (qos == 0) {
      Outgoing o = std::move(front);
      queue_.pop_front();
      Status s = write_publish(o, false);
      complete(o, s, s.ok() ? ReasonCode::kSuccess : ReasonCode::kUnspecifiedError);
      continue;
    }
    if (inflight_.size() >= window()) return;
    Outgoing o = std::move(front);
    queue_.pop_front();
    o.publish.packet_id = next_packet_id();
    o.stage = qos == 1 ? Stage::kAwaitAck : Stage::kAwaitRec;
    if (Status s = write_publish(o, false); !s.ok()) {
      complete(o, s, ReasonCode::kUnspecifiedError);
      continue;
    }
    const std::uint16_t id = o.publish.packet_id;
    inflight_.push_back(std::move(o));
    inflight_by_id_[id] = std::prev(inflight_.end());
  }
}

}  // namespace ganglion::client
