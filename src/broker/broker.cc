#include "broker/broker.h"

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "broker/connection.h"
#include "broker/session.h"
#include "broker/session_store.h"
#include "mqtt/codec.h"

namespace ganglion::broker {

struct Broker::Routing {
  std::mutex mu;
  SubscriptionTree tree;
  RetainedStore retained;
  // Keyed by a view of the session's own client id (Session::client_id() is immutable and
  // lives as long as the session), so the id is not stored twice.
  std::unordered_map<std::string_view, std::shared_ptr<Session>> by_client;
  std::unordered_map<SessionId, std::shared_ptr<Session>> by_id;
  SessionId next_id = 1;

  void set_client(const std::shared_ptr<Session>& session) {
    // A replaced entry would keep the old session's key (a view of a string it owns).
    by_client.erase(session->client_id());
    by_client.emplace(session->client_id(), session);
  }

  explicit Routing(const BrokerOptions& o)
      : retained(RetainedLimits{o.max_retained_messages, o.max_retained_bytes}) {}
};

Broker::Broker(BrokerOptions options, Clock& clock, MetricsRegistry& metrics)
    : options_(std::move(options)),
      clock_(clock),
      keep_alive_(
          timers_, std::chrono::milliseconds(500),
          [this](KeepAliveWheel::Entry& e) {
            auto* c = static_cast<Connection*>(e.owner);
            // Null when the connection is being destroyed (it then disarms itself).
            if (auto self = c->weak_from_this().lock()) keep_alive_due_.push_back(std::move(self));
          },
          [this] {
            auto due = std::move(keep_alive_due_);
            keep_alive_due_.clear();
            for (auto& c : due) c->check_keep_alive();
          }),
      metrics_(metrics),
      routing_(std::make_unique<Routing>(options_)) {
  auto counter = [&](const char* name, const char* help) {
    return &metrics_.counter(name, help).get();
  };
  auto gauge = [&](const char* name, const char* help) {
    return &metrics_.gauge(name, help).get();
  };
  counters_.connections_accepted =
      counter("ganglion_mqtt_connections_accepted_total", "CONNECTs accepted.");
  counters_.connections_refused =
      counter("ganglion_mqtt_connections_refused_total", "CONNECTs refused (auth, limits, rate).");
  counters_.messages_received =
      counter("ganglion_mqtt_messages_received_total", "PUBLISH packets received from clients.");
  counters_.messages_sent =
      counter("ganglion_mqtt_messages_sent_total", "PUBLISH packets sent to clients.");
  counters_.messages_dropped_queue_full =
      counter("ganglion_mqtt_messages_dropped_total",
              "Deliveries dropped: session queue full, or QoS 0 to an offline client.");
  counters_.messages_dropped_no_subscriber =
      counter("ganglion_mqtt_messages_unrouted_total", "Messages that matched no subscription.");
  counters_.messages_expired = counter("ganglion_mqtt_messages_expired_total",
                                       "Deliveries dropped because their Message Expiry passed.");
  counters_.publishes_denied =
      counter("ganglion_mqtt_publishes_denied_total", "PUBLISH packets refused by the ACL.");
  counters_.subscriptions_denied =
      counter("ganglion_mqtt_subscriptions_denied_total", "Subscriptions refused by the ACL.");
  counters_.protocol_errors =
      counter("ganglion_mqtt_protocol_errors_total",
              "Connections ended for a malformed packet or protocol violation.");
  counters_.bytes_received =
      counter("ganglion_mqtt_bytes_received_total", "Bytes read from MQTT connections.");
  counters_.bytes_sent =
      counter("ganglion_mqtt_bytes_sent_total", "Bytes written to MQTT connections.");
  counters_.clients_connected = gauge("ganglion_mqtt_clients_connected", "Clients connected now.");
  counters_.sessions = gauge("ganglion_mqtt_sessions", "Sessions held, connected or not.");
  counters_.retained_messages = gauge("ganglion_mqtt_retained_messages", "Retained messages held.");
  counters_.subscriptions = gauge("ganglion_mqtt_subscriptions", "Subscriptions held.");
  started_ = clock_.now();
  connect_tokens_ = options_.max_connect_rate * 2.0;
  connect_tokens_at_ = clock_.now();
}

Broker::~Broker() {
  shutdown();
  timers_.close();
  if (store_) (void)store_->flush();
}

void Broker::set_password_file(std::shared_ptr<const PasswordFile> passwords) {
  passwords_ = std::move(passwords);
  scram_decoy_secret_.clear();
  if (!passwords_) return;
  // The decoy salts of unknown users must not change across restarts (a real user's salt
  // does not, so a changing one would give the unknown user away), and must not be
  // computable by a client: derived from the file's content, whose hashes are secret.
  const std::string content = "ganglion scram decoy\n" + passwords_->serialize();
  std::string secret(EVP_MAX_MD_SIZE, '\0');
  unsigned int len = 0;
  if (EVP_Digest(content.data(), content.size(), reinterpret_cast<unsigned char*>(secret.data()),
                 &len, EVP_sha512(), nullptr) == 1) {
    secret.resize(len);
    scram_decoy_secret_ = std::move(secret);
  }
}

bool Broker::offers_authentication_method(std::string_view method) const {
  if (!passwords_ || scram_decoy_secret_.empty()) return false;
  // The password file holds PBKDF2-HMAC-SHA512 hashes: only SCRAM-SHA-512 can use them.
  if (parse_scram_method(method) != ScramHash::kSha512) return false;
  const auto& offered = options_.authentication_methods;
  return std::find(offered.begin(), offered.end(), method) != offered.end();
}

void Broker::set_acl(std::shared_ptr<const AclPolicy> acl) { acl_ = std::move(acl); }

void Broker::set_identity_filter(std::function<bool(const std::string&)> allow) {
  identity_filter_ = std::move(allow);
}

namespace {
template <class Match>
std::size_t disconnect_matching(std::mutex& mu,
                                std::unordered_map<SessionId, std::shared_ptr<Session>>& sessions,
                                Match match, mqtt::ReasonCode reason) {
  std::vector<std::shared_ptr<Connection>> hit;
  {
    std::lock_guard lock(mu);
    for (auto& [_, session] : sessions) {
      if (auto c = session->connection.lock(); c && match(*c)) hit.push_back(std::move(c));
    }
  }
  // Outside the routing lock: disconnecting detaches the session, which takes it.
  for (auto& c : hit) c->disconnect(reason);
  return hit.size();
}
}  // namespace

std::size_t Broker::disconnect_client(const std::string& client_id, mqtt::ReasonCode reason) {
  return disconnect_matching(
      routing_->mu, routing_->by_id,
      [&](const Connection& c) { return c.client_id() == client_id; }, reason);
}

std::size_t Broker::disconnect_username(const std::string& username, mqtt::ReasonCode reason) {
  return disconnect_matching(
      routing_->mu, routing_->by_id, [&](const Connection& c) { return c.username() == username; },
      reason);
}

Status Broker::attach_store(std::unique_ptr<SessionStore> store) {
  store_ = std::move(store);
  const std::int64_t wall = clock_.wall_ms();
  const std::int64_t mono = now_ms();
  auto to_mono = [&](std::int64_t expiry_wall) {
    return expiry_wall == 0 ? 0 : mono + (expiry_wall - wall);
  };
  std::size_t sessions = 0, queued = 0, retained = 0;
  std::vector<std::pair<SessionId, std::int64_t>> expiries;  // session, seconds left
  store_->read([&](const StoreState& state) {
    std::lock_guard lock(routing_->mu);
    std::unordered_map<std::uint64_t, MessagePtr> messages;
    for (const auto& [id, m] : state.messages) {
      auto msg = std::make_shared<Message>();
      msg->topic = m.topic;
      msg->payload = m.payload;
      msg->qos = m.qos;
      msg->retain = m.retain;
      msg->properties = decode_properties(m.properties);
      msg->expiry_ms = to_mono(m.expiry_wall_ms);
      messages.emplace(id, std::move(msg));
    }
    for (const auto& [client_id, stored] : state.sessions) {
      const SessionId id = routing_->next_id++;
      auto session = std::make_shared<Session>(id, client_id, clock_, options_, counters_);
      session->set_store(store_.get());
      session->expiry_interval = stored.expiry_interval;
      session->stored = true;
      for (const auto& [filter, o] : stored.subscriptions) {
        std::string_view group, inner = filter;
        if (filter.starts_with("$share/")) {
          const auto slash = filter.find('/', 7);
          if (slash == std::string::npos) continue;
          group = std::string_view(filter).substr(7, slash - 7);
          inner = std::string_view(filter).substr(slash + 1);
        }
        if (routing_->tree.subscribe(inner, group, id, o).ok()) session->subscriptions[filter] = o;
      }
      session->restore_inbound_qos2(stored.inbound_qos2);
      for (const auto& d : stored.queue) {
        auto m = messages.find(d.message_id);
        if (m == messages.end()) continue;
        session->restore(m->second, d.qos, d.retain, d.subscription_ids, d.message_id);
        ++queued;
      }
      routing_->set_client(session);
      routing_->by_id[id] = session;
      // Offline since it was written, or since now when the node died with it connected.
      const std::int64_t since = stored.offline_since_wall_ms ? stored.offline_since_wall_ms : wall;
      const std::int64_t left_ms = std::int64_t{stored.expiry_interval} * 1000 - (wall - since);
      expiries.emplace_back(id, std::max<std::int64_t>(0, left_ms));
      ++sessions;
    }
    for (const auto& [topic, m] : state.retained) {
      RetainedMessage r;
      r.topic = topic;
      r.payload = m.payload.shared();
      r.qos = m.qos;
      r.properties = m.properties;
      r.expiry_ms = to_mono(m.expiry_wall_ms);
      if (routing_->retained.set(std::move(r), mono).ok()) ++retained;
    }
    counters_.sessions->set(static_cast<double>(routing_->by_id.size()));
    counters_.retained_messages->set(static_cast<double>(routing_->retained.count()));
    counters_.subscriptions->set(static_cast<double>(routing_->tree.subscription_count()));
  });
  for (const auto& [id, left_ms] : expiries) {
    const std::uint64_t generation = routing_->by_id[id]->generation();
    timers_.schedule_after(std::chrono::milliseconds(left_ms),
                           [this, id = id, generation] { expire_session(id, generation); });
  }
  spdlog::info(
      "broker store: restored {} sessions with {} queued messages and {} retained messages",
      sessions, queued, retained);
  return Status::Ok();
}

std::int64_t Broker::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now().time_since_epoch())
      .count();
}

std::shared_ptr<Connection> Broker::accept(std::shared_ptr<Link> link, TransportInfo info) {
  return std::make_shared<Connection>(*this, std::move(link), std::move(info));
}

bool Broker::take_connect_token() {
  if (options_.max_connect_rate == 0) return true;
  std::lock_guard lock(rate_mu_);
  const MonoTime now = clock_.now();
  const double elapsed = std::chrono::duration<double>(now - connect_tokens_at_).count();
  connect_tokens_at_ = now;
  const double burst = options_.max_connect_rate * 2.0;
  connect_tokens_ = std::min(burst, connect_tokens_ + elapsed * options_.max_connect_rate);
  if (connect_tokens_ < 1) return false;
  connect_tokens_ -= 1;
  return true;
}

Broker::Attach Broker::attach_session(const std::string& client_id, bool clean_start,
                                      const std::shared_ptr<Connection>& connection) {
  std::shared_ptr<Connection> previous;
  Attach out;
  {
    std::lock_guard lock(routing_->mu);
    auto it = routing_->by_client.find(client_id);
    if (it != routing_->by_client.end()) {
      auto& session = it->second;
      if (auto c = session->connection.lock()) previous = std::move(c);
      if (session->will_timer) {
        timers_.cancel(session->will_timer);  // the client is back before its will's delay
        session->will_timer = 0;
      }
      if (clean_start) {
        remove_session_locked(session);
      } else {
        out.session = session;
        out.session_present = true;
      }
    }
    if (!out.session) {
      const SessionId id = routing_->next_id++;
      out.session = std::make_shared<Session>(id, client_id, clock_, options_, counters_);
      out.session->set_store(store_.get());
      routing_->set_client(out.session);
      routing_->by_id[id] = out.session;
      counters_.sessions->set(static_cast<double>(routing_->by_id.size()));
    }
    out.session->next_generation();
    out.session->connection = connection;
  }
  if (previous) previous->taken_over();
  return out;
}

void Broker::remove_session_locked(const std::shared_ptr<Session>& session) {
  if (store_ && session->stored) {
    store_->end_session(session->client_id());
    session->stored = false;
  }
  routing_->tree.remove_subscriber(session->id());
  session->subscriptions.clear();
  session->clear();
  routing_->by_id.erase(session->id());
  session->connection.reset();
  auto it = routing_->by_client.find(session->client_id());
  if (it != routing_->by_client.end() && it->second == session) routing_->by_client.erase(it);
  counters_.sessions->set(static_cast<double>(routing_->by_id.size()));
  counters_.subscriptions->set(static_cast<double>(routing_->tree.subscription_count()));
}

void Broker::detach_session(const std::shared_ptr<Session>& session,
                            const std::shared_ptr<Link>& link) {
  if (!session->bound_to(link)) return;  // taken over: the new connection owns it
  session->unbind(link);
  std::lock_guard lock(routing_->mu);
  session->connection.reset();
  if (session->expiry_interval == 0) {
    if (session->will_timer == 0) remove_session_locked(session);
    return;
  }
  persist_session_locked(*session, /*offline=*/true);
  const std::uint64_t generation = session->generation();
  const SessionId id = session->id();
  timers_.schedule_after(std::chrono::seconds(session->expiry_interval),
                         [this, id, generation] { expire_session(id, generation); });
}

void Broker::expire_session(SessionId id, std::uint64_t generation) {
  std::lock_guard lock(routing_->mu);
  auto it = routing_->by_id.find(id);
  if (it == routing_->by_id.end()) return;
  auto session = it->second;
  if (session->generation() != generation || session->online()) return;  // reconnected since
  remove_session_locked(session);
}

void Broker::publish_will(SessionId publisher, mqtt::Will will) {
  auto m = std::make_shared<Message>();
  m->topic = std::move(will.topic);
  m->payload = mqtt::SharedBytes(std::move(will.payload));
  m->qos = static_cast<std::uint8_t>(will.qos);
  m->retain = will.retain;
  m->publisher = publisher;
  const auto& p = will.properties;
  if (p.payload_format_indicator || p.content_type || p.response_topic || p.correlation_data ||
      !p.user_properties.empty()) {
    auto props = std::make_shared<mqtt::Properties>();
    props->payload_format_indicator = p.payload_format_indicator;
    props->content_type = p.content_type;
    props->response_topic = p.response_topic;
    props->correlation_data = p.correlation_data;
    props->user_properties = p.user_properties;
    m->properties = std::move(props);
  }
  if (p.message_expiry_interval) m->expiry_ms = now_ms() + 1000LL * *p.message_expiry_interval;
  route(m);
}

void Broker::schedule_will(const std::shared_ptr<Session>& session, mqtt::Will will,
                           std::uint32_t delay_s, std::shared_ptr<const IdentityAcl>) {
  std::lock_guard lock(routing_->mu);
  const std::uint64_t generation = session->generation();
  const SessionId id = session->id();
  auto w = std::make_shared<mqtt::Will>(std::move(will));
  session->will_timer =
      timers_.schedule_after(std::chrono::seconds(delay_s), [this, id, generation, w] {
        std::shared_ptr<Session> s;
        {
          std::lock_guard lock(routing_->mu);
          auto it = routing_->by_id.find(id);
          if (it == routing_->by_id.end() || it->second->generation() != generation) return;
          s = it->second;
          s->will_timer = 0;
          if (s->expiry_interval == 0) remove_session_locked(s);
        }
        publish_will(id, std::move(*w));
      });
}

void Broker::publish(MessagePtr message) { route(message); }

void Broker::persist_session_locked(Session& session, bool offline) {
  if (!store_) return;
  if (session.expiry_interval == 0) {
    if (session.stored) store_->end_session(session.client_id());
    session.stored = false;
    return;
  }
  store_->put_session(session.client_id(), session.expiry_interval, offline ? clock_.wall_ms() : 0,
                      session.subscriptions);
  session.stored = true;
}

bool Broker::is_current(const Session& session) const {
  std::lock_guard lock(routing_->mu);
  auto it = routing_->by_client.find(session.client_id());
  return it != routing_->by_client.end() && it->second.get() == &session;
}

void Broker::persist_session(Session& session) {
  std::lock_guard lock(routing_->mu);
  persist_session_locked(session, /*offline=*/false);
}

Broker::Routed Broker::route(const MessagePtr& message) {
  struct Target {
    std::shared_ptr<Session> session;
    std::uint8_t qos;
    bool retain;
    std::uint32_t ids_offset;
    std::uint32_t ids_count;
  };
  thread_local MergedMatches matches;
  thread_local std::vector<Target> targets;
  thread_local std::vector<std::uint32_t> ids;
  targets.clear();
  ids.clear();
  Routed routed;
  // $SYS statistics are regenerated after a restart: never journaled.
  const bool is_sys = message->topic.starts_with("$SYS/");
  {
    std::lock_guard lock(routing_->mu);
    if (message->retain) {
      if (message->payload.empty()) {
        routing_->retained.erase(message->topic);
        if (store_ && !is_sys) routed.durable_seq = store_->erase_retained(message->topic);
      } else {
        if (store_ && !is_sys) routed.durable_seq = store_->put_retained(*message);
        RetainedMessage r;
        r.topic = message->topic;
        r.payload = message->payload.shared();
        r.qos = message->qos;
        r.properties = encode_properties(message->properties.get());
        r.expiry_ms = message->expiry_ms;
        if (Status s = routing_->retained.set(std::move(r), now_ms()); !s.ok()) {
          spdlog::warn("mqtt: retained message on {} not kept: {}", message->topic, s.message());
        }
      }
      counters_.retained_messages->set(static_cast<double>(routing_->retained.count()));
    }
    matches.clear();
    routing_->tree.match_merged(message->topic, message->publisher, matches);
    for (const auto& d : matches.deliveries()) {
      auto it = routing_->by_id.find(d.subscriber);
      if (it == routing_->by_id.end()) continue;
      const auto sub_ids = matches.subscription_ids(d);
      targets.push_back({it->second, d.qos, d.retain_as_published,
                         static_cast<std::uint32_t>(ids.size()),
                         static_cast<std::uint32_t>(sub_ids.size())});
      ids.insert(ids.end(), sub_ids.begin(), sub_ids.end());
    }
    for (SharedGroup* group : matches.groups()) {
      const Subscription* member = group->pick([&](SubscriberId id) {
        auto it = routing_->by_id.find(id);
        return it != routing_->by_id.end() && it->second->online();
      });
      if (!member) member = group->pick();  // nobody online: queue on the next member
      if (!member) continue;
      auto it = routing_->by_id.find(member->subscriber);
      if (it == routing_->by_id.end()) continue;
      targets.push_back({it->second, member->options.max_qos, member->options.retain_as_published,
                         static_cast<std::uint32_t>(ids.size()),
                         member->options.subscription_id ? 1u : 0u});
      if (member->options.subscription_id) ids.push_back(member->options.subscription_id);
    }
  }
  if (targets.empty()) counters_.messages_dropped_no_subscriber->inc();
  // Delivered outside the routing lock: each session has its own.
  for (const auto& t : targets) {
    const std::uint8_t qos = std::min(t.qos, message->qos);
    const std::uint64_t seq =
        t.session->deliver(message, qos, t.retain && message->retain,
                           std::span<const std::uint32_t>(ids).subspan(t.ids_offset, t.ids_count));
    routed.durable_seq = std::max(routed.durable_seq, seq);
  }
  routed.deliveries = targets.size();
  targets.clear();  // drop session references now, not at the next publish
  return routed;
}

mqtt::ReasonCode Broker::subscribe(const std::shared_ptr<Session>& session,
                                   const std::string& filter, std::string_view group,
                                   const SubscriptionOptions& options,
                                   std::vector<std::pair<MessagePtr, std::uint8_t>>& retained) {
  std::lock_guard lock(routing_->mu);
  const std::string_view inner =
      group.empty() ? std::string_view(filter)
                    : std::string_view(filter).substr(7 + group.size() + 1);  // "$share/<g>/"
  auto outcome = routing_->tree.subscribe(inner, group, session->id(), options);
  if (!outcome.ok()) return mqtt::ReasonCode::kTopicFilterInvalid;
  session->subscriptions[filter] = options;
  if (session->expiry_interval > 0) persist_session_locked(*session, false);
  counters_.subscriptions->set(static_cast<double>(routing_->tree.subscription_count()));
  const bool is_new = *outcome == SubscriptionTree::SubscribeOutcome::kNew;
  // Shared subscriptions never receive retained messages on subscribe (spec 4.8.2).
  const bool send_retained =
      group.empty() && (options.retain_handling == 0 || (options.retain_handling == 1 && is_new));
  if (send_retained) {
    routing_->retained.match(inner, now_ms(), [&](const RetainedMessage& r) {
      auto m = std::make_shared<Message>();
      m->topic = r.topic;
      m->payload = mqtt::SharedBytes(r.payload);
      m->qos = r.qos;
      m->retain = true;
      m->expiry_ms = r.expiry_ms;
      m->properties = decode_properties(r.properties);
      retained.emplace_back(std::move(m), std::min(r.qos, options.max_qos));
    });
  }
  return static_cast<mqtt::ReasonCode>(options.max_qos);
}

bool Broker::unsubscribe(const std::shared_ptr<Session>& session, const std::string& filter,
                         std::string_view group) {
  std::lock_guard lock(routing_->mu);
  const std::string_view inner = group.empty()
                                     ? std::string_view(filter)
                                     : std::string_view(filter).substr(7 + group.size() + 1);
  const bool existed = routing_->tree.unsubscribe(inner, group, session->id());
  session->subscriptions.erase(filter);
  if (session->stored) persist_session_locked(*session, false);
  counters_.subscriptions->set(static_cast<double>(routing_->tree.subscription_count()));
  return existed;
}

void Broker::start() {
  if (options_.sys_interval.count() <= 0 || sys_timer_ != 0) return;
  publish_sys();
}

void Broker::publish_sys() {
  const auto uptime =
      std::chrono::duration_cast<std::chrono::seconds>(clock_.now() - started_).count();
  auto sys = [this](const std::string& topic, std::string value) {
    auto m = std::make_shared<Message>();
    m->topic = "$SYS/broker/" + topic;
    m->payload = mqtt::SharedBytes(std::move(value));
    m->retain = true;
    route(m);
  };
  sys("version", options_.version);
  sys("uptime", std::to_string(uptime) + " seconds");
  sys("clients/connected", std::to_string(connected_clients()));
  sys("clients/total", std::to_string(session_count()));
  sys("messages/received", std::to_string(counters_.messages_received->value()));
  sys("messages/sent", std::to_string(counters_.messages_sent->value()));
  sys("messages/dropped", std::to_string(counters_.messages_dropped_queue_full->value()));
  sys("retained messages/count", std::to_string(retained_count()));
  sys("subscriptions/count",
      std::to_string(static_cast<std::uint64_t>(counters_.subscriptions->value())));
  sys("load/bytes/received", std::to_string(counters_.bytes_received->value()));
  sys("load/bytes/sent", std::to_string(counters_.bytes_sent->value()));
  if (!shutting_down_) {
    sys_timer_ = timers_.schedule_after(options_.sys_interval, [this] { publish_sys(); });
  }
}

void Broker::shutdown() {
  if (shutting_down_.exchange(true)) return;
  if (sys_timer_) timers_.cancel(sys_timer_);
  std::vector<std::shared_ptr<Connection>> live;
  {
    std::lock_guard lock(routing_->mu);
    for (auto& [_, session] : routing_->by_id) {
      if (auto c = session->connection.lock()) live.push_back(std::move(c));
    }
  }
  for (auto& c : live) c->disconnect(mqtt::ReasonCode::kServerShuttingDown);
}

std::size_t Broker::connected_clients() const {
  return static_cast<std::size_t>(std::max(0.0, counters_.clients_connected->value()));
}

std::size_t Broker::session_count() const {
  std::lock_guard lock(routing_->mu);
  return routing_->by_id.size();
}

std::size_t Broker::retained_count() const {
  std::lock_guard lock(routing_->mu);
  return routing_->retained.count();
}

}  // namespace ganglion::broker
