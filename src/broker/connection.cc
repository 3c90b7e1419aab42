#include "broker/connection.h"

#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <random>

#include "base/base64.h"
#include "broker/broker.h"
#include "broker/scram.h"
#include "broker/session.h"
#include "broker/session_store.h"
#include "mqtt/codec.h"
#include "mqtt/topic.h"

namespace ganglion::broker {

using mqtt::ReasonCode;

namespace {

std::int64_t mono_ms(Clock& clock) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock.now().time_since_epoch())
      .count();
}

std::string random_client_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[32];
  std::snprintf(buf, sizeof buf, "ganglion-%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

std::size_t topic_levels(std::string_view topic) {
  return static_cast<std::size_t>(std::count(topic.begin(), topic.end(), '/')) + 1;
}

// The properties of a PUBLISH that travel with the message to subscribers (spec 3.3.2.3).
std::shared_ptr<const mqtt::Properties> forwarded_properties(const mqtt::Properties& in) {
  if (!in.payload_format_indicator && !in.content_type && !in.response_topic &&
      !in.correlation_data && in.user_properties.empty()) {
    return nullptr;
  }
  auto out = std::make_shared<mqtt::Properties>();
  out->payload_format_indicator = in.payload_format_indicator;
  out->content_type = in.content_type;
  out->response_topic = in.response_topic;
  out->correlation_data = in.correlation_data;
  out->user_properties = in.user_properties;
  return out;
}

}  // namespace

// MQTT 5 enhanced authentication state (spec 4.12): the method the client authenticated
// with, the SCRAM exchange in progress (at CONNECT or a re-authentication) and the CONNECT
// that waits for it.
struct Connection::EnhancedAuth {
  std::string method;
  ScramHash hash = ScramHash::kSha512;
  std::unique_ptr<ScramServer> exchange;
  std::unique_ptr<mqtt::Connect> connect;
};

Connection::Connection(Broker& broker, std::shared_ptr<Link> link, TransportInfo info)
    : broker_(broker), link_(std::move(link)), info_(std::move(info)) {
  last_activity_ms_ = mono_ms(broker_.clock());
  keep_alive_entry_.owner = this;
}

Connection::~Connection() { broker_.keep_alive_wheel().disarm(keep_alive_entry_); }

void Connection::on_packet(mqtt::Packet&& packet) {
  if (state_.load() == State::kClosed) return;
  last_activity_ms_ = mono_ms(broker_.clock());
  if (state_.load() == State::kAwaitConnect) {
    if (auto* c = std::get_if<mqtt::Connect>(&packet)) return handle(*c);
    return protocol_error(ReasonCode::kProtocolError);
  }
  if (state_.load() == State::kAuthenticating) {
    // Until the CONNACK the client may only continue the exchange or give up (spec 4.12).
    if (auto* a = std::get_if<mqtt::Auth>(&packet)) return continue_enhanced_auth(*a);
    if (std::holds_alternative<mqtt::Disconnect>(packet)) {
      will_on_close_ = false;
      return link_->close();
    }
    broker_.counters_.protocol_errors->inc();
    return refuse_connect(ReasonCode::kProtocolError);
  }
  std::visit(
      [this](auto& p) {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, mqtt::Publish> || std::is_same_v<T, mqtt::Puback> ||
                      std::is_same_v<T, mqtt::Pubrec> || std::is_same_v<T, mqtt::Pubrel> ||
                      std::is_same_v<T, mqtt::Pubcomp> || std::is_same_v<T, mqtt::Subscribe> ||
                      std::is_same_v<T, mqtt::Unsubscribe> || std::is_same_v<T, mqtt::Disconnect> ||
                      std::is_same_v<T, mqtt::Auth>) {
          handle(p);  // (AUTH once connected: re-authentication)
        } else if constexpr (std::is_same_v<T, mqtt::Pingreq>) {
          link_->send(mqtt::Pingresp{});
        } else {
          protocol_error(ReasonCode::kProtocolError);
        }
      },
      packet);
}

void Connection::on_decode_error(const Status& error) {
  if (state_.load() == State::kClosed) return;
  broker_.counters_.protocol_errors->inc();
  const ReasonCode reason = mqtt::reason_of(error).value_or(ReasonCode::kMalformedPacket);
  spdlog::debug("mqtt {}: {}", info_.remote, error.message());
  if (state_.load() == State::kAwaitConnect) {
    // Only a CONNECT whose protocol level we could read gets a CONNACK (spec 3.1.4).
    if (reason == ReasonCode::kUnsupportedProtocolVersion) {
      link_->set_protocol(mqtt::ProtocolVersion::kV311, 0);
      link_->send(mqtt::Connack{false, reason, {}});
    }
    will_on_close_ = false;
    link_->close();
    return;
  }
  if (state_.load() == State::kAuthenticating) return refuse_connect(reason);
  protocol_error(reason);
}

void Connection::protocol_error(ReasonCode reason) {
  broker_.counters_.protocol_errors->inc();
  disconnect(reason);
}

void Connection::disconnect(ReasonCode reason) {
  if (state_.load() == State::kConnected && v5()) {
    link_->send(mqtt::Disconnect{reason, {}});
  }
  link_->close();
}

void Connection::taken_over() {
  // The will of a taken-over connection is published (spec 3.1.4-3) unless delayed: the
  // session lives on in the new connection, which must cancel a delayed will [MQTT-3.1.3-9].
  taken_over_ = true;
  disconnect(ReasonCode::kSessionTakenOver);
}

void Connection::refuse_connect(ReasonCode reason) {
  broker_.counters_.connections_refused->inc();
  link_->send(mqtt::Connack{false, reason, {}});
  will_on_close_ = false;
  link_->close();
}

void Connection::handle(mqtt::Connect& c) {
  version_ = c.version;
  link_->set_protocol(version_, c.properties.maximum_packet_size.value_or(0));
  const BrokerOptions& opt = broker_.options();

  if (broker_.shutting_down_) return refuse_connect(ReasonCode::kServerUnavailable);
  // The node's own parts (rules, uplink, bridge) do not use up the clients' connection limits.
  if (!info_.internal) {
    if (!broker_.take_connect_token()) {
      return refuse_connect(ReasonCode::kConnectionRateExceeded);
    }
    if (broker_.connections_.fetch_add(1) >= opt.max_connections) {
      broker_.connections_.fetch_sub(1);
      return refuse_connect(v5() ? ReasonCode::kQuotaExceeded : ReasonCode::kServerUnavailable);
    }
    counted_ = true;
  }
  if (c.properties.authentication_method) return begin_enhanced_auth(c);

  // Identity: the client certificate's CN when mutual TLS gave one, else the username.
  if (info_.certificate_cn && opt.certificate_cn_as_username) {
    username_ = info_.certificate_cn;
  } else if (c.username) {
    username_ = c.username;
    if (broker_.passwords_ &&
        !broker_.passwords_->verify(*c.username, c.password.value_or(std::string()))) {
      spdlog::info("mqtt {}: bad username or password for user {}", info_.remote, *c.username);
      return refuse_connect(ReasonCode::kBadUserNameOrPassword);
    }
  } else if (!opt.allow_anonymous && !info_.internal) {
    return refuse_connect(ReasonCode::kNotAuthorized);
  }
  if (c.password && !c.username && !v5()) return refuse_connect(ReasonCode::kBadUserNameOrPassword);
  accept_connect(c, std::nullopt);
}

void Connection::begin_enhanced_auth(mqtt::Connect& c) {
  const std::string& method = *c.properties.authentication_method;
  if (!broker_.offers_authentication_method(method)) {
    spdlog::info("mqtt {}: authentication method '{}' is not offered", info_.remote, method);
    return refuse_connect(ReasonCode::kBadAuthenticationMethod);
  }
  // The password is what SCRAM keeps off the wire; one sent beside it is refused rather
  // than ignored.
  if (c.password) return refuse_connect(ReasonCode::kBadUserNameOrPassword);
  if (!c.properties.authentication_data) {
    spdlog::info("mqtt {}: {} without a client-first-message", info_.remote, method);
    return refuse_connect(ReasonCode::kNotAuthorized);
  }
  auth_ = std::make_unique<EnhancedAuth>();
  auth_->method = method;
  auth_->hash = *parse_scram_method(method);
  auto server_first = scram_server_first(*c.properties.authentication_data);
  if (!server_first.ok()) {
    spdlog::info("mqtt {}: {}", info_.remote, server_first.status().message());
    return refuse_connect(server_first.status().code() == StatusCode::kInternal
                              ? ReasonCode::kUnspecifiedError
                              : ReasonCode::kNotAuthorized);
  }
  // The CONNECT's user name, when given, must be the user that authenticates.
  if (c.username && *c.username != auth_->exchange->username()) {
    spdlog::info("mqtt {}: CONNECT user name {} is not the SCRAM user {}", info_.remote,
                 *c.username, auth_->exchange->username());
    return refuse_connect(ReasonCode::kBadUserNameOrPassword);
  }
  auth_->connect = std::make_unique<mqtt::Connect>(std::move(c));
  state_ = State::kAuthenticating;
  mqtt::Auth challenge;
  challenge.reason = ReasonCode::kContinueAuthentication;
  challenge.properties.authentication_method = auth_->method;
  challenge.properties.authentication_data = std::move(*server_first);
  link_->send(challenge);
}

Result<std::string> Connection::scram_server_first(std::string_view client_first) {
  auth_->exchange = std::make_unique<ScramServer>(auth_->hash);
  GANGLION_ASSIGN_OR_RETURN(std::string user, auth_->exchange->receive_client_first(client_first));
  // Only SCRAM-SHA-512 is offered (Broker::offers_authentication_method): the password
  // file's hashes are its credentials.
  const PasswordFile& passwords = *broker_.passwords_;
  auto credentials = passwords.scram_sha512_credentials(user);
  if (!credentials) {
    credentials = passwords.scram_decoy_credentials(user, broker_.scram_decoy_secret_);
  }
  unsigned char raw[18];
  if (RAND_bytes(raw, sizeof raw) != 1) return Internal("RAND_bytes failed");
  const std::string nonce =
      base64_encode(std::string_view(reinterpret_cast<const char*>(raw), sizeof raw));
  return auth_->exchange->server_first(*credentials, nonce);
}

void Connection::continue_enhanced_auth(mqtt::Auth& a) {
  // Spec 4.12: an AUTH that is not Continue Authentication, or names another method, is a
  // protocol error.
  if (a.reason != ReasonCode::kContinueAuthentication ||
      a.properties.authentication_method != auth_->method || !auth_->exchange) {
    broker_.counters_.protocol_errors->inc();
    return refuse_connect(ReasonCode::kProtocolError);
  }
  auto server_final =
      auth_->exchange->receive_client_final(a.properties.authentication_data.value_or(""));
  std::string user = auth_->exchange->username();
  auth_->exchange.reset();
  if (!server_final.ok()) {
    spdlog::info("mqtt {}: {} authentication failed for user {}: {}", info_.remote, auth_->method,
                 user, server_final.status().message());
    // A wrong proof and an unknown user look the same; a malformed exchange is refused.
    return refuse_connect(server_final.status().code() == StatusCode::kPermissionDenied
                              ? ReasonCode::kBadUserNameOrPassword
                              : ReasonCode::kNotAuthorized);
  }
  // The SCRAM user is the identity (ACL %u), also over mutual TLS.
  username_ = std::move(user);
  std::unique_ptr<mqtt::Connect> c = std::move(auth_->connect);
  accept_connect(*c, std::move(*server_final));
}

void Connection::handle(mqtt::Auth& a) {
  // Re-authentication (spec 4.12.1): only with the method of the CONNECT, one at a time.
  if (!auth_ || a.properties.authentication_method != auth_->method) {
    return protocol_error(ReasonCode::kProtocolError);
  }
  mqtt::Auth reply;
  reply.properties.authentication_method = auth_->method;
  if (a.reason == ReasonCode::kReAuthenticate && !auth_->exchange) {
    auto server_first = scram_server_first(a.properties.authentication_data.value_or(""));
    if (!server_first.ok()) {
      spdlog::info("mqtt {}: re-authentication of {}: {}", info_.remote, client_id_,
                   server_first.status().message());
      auth_->exchange.reset();
      return disconnect(ReasonCode::kNotAuthorized);
    }
    // Re-authentication confirms the identity; it cannot change it (the ACL is compiled for it).
    if (auth_->exchange->username() != username_.value_or(std::string())) {
      spdlog::info("mqtt {}: re-authentication of {} as another user {}", info_.remote, client_id_,
                   auth_->exchange->username());
      auth_->exchange.reset();
      return disconnect(ReasonCode::kNotAuthorized);
    }
    reply.reason = ReasonCode::kContinueAuthentication;
    reply.properties.authentication_data = std::move(*server_first);
    link_->send(reply);
    return;
  }
  if (a.reason == ReasonCode::kContinueAuthentication && auth_->exchange) {
    auto server_final =
        auth_->exchange->receive_client_final(a.properties.authentication_data.value_or(""));
    auth_->exchange.reset();
    if (!server_final.ok()) {
      spdlog::info("mqtt {}: re-authentication of {} failed: {}", info_.remote, client_id_,
                   server_final.status().message());
      return disconnect(ReasonCode::kNotAuthorized);
    }
    reply.reason = ReasonCode::kSuccess;
    reply.properties.authentication_data = std::move(*server_final);
    link_->send(reply);
    return;
  }
  protocol_error(ReasonCode::kProtocolError);
}

void Connection::accept_connect(mqtt::Connect& c, std::optional<std::string> auth_data) {
  const BrokerOptions& opt = broker_.options();
  if (broker_.identity_filter_ && !info_.internal &&
      !broker_.identity_filter_(username_.value_or(std::string()))) {
    spdlog::info("mqtt {}: identity {} refused", info_.remote, username_.value_or("(anonymous)"));
    return refuse_connect(ReasonCode::kNotAuthorized);
  }

  // Client identifier (spec 3.1.3.1): an empty one gets a generated id, but a 3.1.1 client
  // must then ask for a clean session.
  bool assigned = false;
  client_id_ = c.client_id;
  if (client_id_.empty()) {
    if (!v5() && !c.clean_start) return refuse_connect(ReasonCode::kClientIdentifierNotValid);
    client_id_ = random_client_id();
    assigned = true;
  }

  if (broker_.acl_) acl_ = broker_.acl_->compile(ClientIdentity{username_, client_id_});

  if (c.will) {
    const auto& w = *c.will;
    if (static_cast<std::uint8_t>(w.qos) > opt.maximum_qos)
      return refuse_connect(ReasonCode::kQoSNotSupported);
    if (w.retain && !opt.retain_available) return refuse_connect(ReasonCode::kRetainNotSupported);
    if (w.topic.size() > opt.max_topic_length || topic_levels(w.topic) > opt.max_topic_levels) {
      return refuse_connect(ReasonCode::kTopicNameInvalid);
    }
    if (acl_ && !acl_->can_publish(w.topic)) return refuse_connect(ReasonCode::kNotAuthorized);
    will_ = std::make_unique<mqtt::Will>(std::move(*c.will));
  }

  // Session expiry: MQTT 5 asks; a 3.1.1 persistent session lasts the broker's maximum.
  std::uint32_t expiry = v5() ? c.properties.session_expiry_interval.value_or(0)
                              : (c.clean_start ? 0 : opt.max_session_expiry);
  const bool expiry_lowered = expiry > opt.max_session_expiry;
  expiry = std::min(expiry, opt.max_session_expiry);
  connect_session_expiry_ = expiry;
  problem_information_ = c.properties.request_problem_information.value_or(1) != 0;

  keep_alive_ = c.keep_alive;
  bool keep_alive_changed = false;
  if (v5() && opt.max_keep_alive > 0 && (keep_alive_ == 0 || keep_alive_ > opt.max_keep_alive)) {
    keep_alive_ = opt.max_keep_alive;
    keep_alive_changed = true;
  }

  auto self = shared_from_this();
  Broker::Attach attach = broker_.attach_session(client_id_, c.clean_start, self);
  session_ = attach.session;
  session_->expiry_interval = expiry;
  broker_.persist_session(*session_);

  mqtt::Connack ack;
  ack.session_present = attach.session_present;
  if (v5()) {
    auto& p = ack.properties;
    p.receive_maximum = opt.receive_maximum;
    p.maximum_packet_size = opt.max_packet_size;
    p.topic_alias_maximum = opt.topic_alias_maximum;
    if (opt.maximum_qos < 2) p.maximum_qos = opt.maximum_qos;
    if (!opt.retain_available) p.retain_available = 0;
    if (assigned) p.assigned_client_identifier = client_id_;
    if (keep_alive_changed) p.server_keep_alive = keep_alive_;
    if (expiry_lowered) p.session_expiry_interval = expiry;
    if (auth_) {
      p.authentication_method = auth_->method;
      p.authentication_data = std::move(auth_data);
    }
  }
  state_ = State::kConnected;
  broker_.counters_.connections_accepted->inc();
  broker_.counters_.clients_connected->add(1);
  link_->send(ack);

  ClientLimits limits;
  limits.version = version_;
  limits.receive_maximum = c.properties.receive_maximum.value_or(65535);
  limits.topic_alias_maximum = c.properties.topic_alias_maximum.value_or(0);
  limits.problem_information = problem_information_;
  session_->bind(link_, limits, acl_);
  arm_keep_alive();
}

void Connection::arm_keep_alive() {
  if (keep_alive_ == 0) return;
  // Spec 3.1.2.10: one and a half times the keep alive without a packet ends the connection.
  // Packets do not move the deadline (that would take the wheel's lock per packet): when it
  // comes, check_keep_alive() looks at the last activity and re-arms.
  const std::int64_t limit_ms = keep_alive_ * 1500LL;
  broker_.keep_alive_wheel().arm(keep_alive_entry_, last_activity_ms_.load() + limit_ms);
}

void Connection::check_keep_alive() {
  if (state_.load() != State::kConnected) return;
  const std::int64_t limit_ms = keep_alive_ * 1500LL;
  const std::int64_t idle = mono_ms(broker_.clock()) - last_activity_ms_.load();
  if (idle >= limit_ms) {
    spdlog::debug("mqtt {}: keep-alive timeout for {}", info_.remote, client_id_);
    disconnect(ReasonCode::kKeepAliveTimeout);
  } else {
    arm_keep_alive();
  }
}

void Connection::handle(mqtt::Publish& p) {
  const BrokerOptions& opt = broker_.options();
  broker_.counters_.messages_received->inc();
  if (v5() && p.properties.topic_alias) {
    const std::uint16_t alias = *p.properties.topic_alias;
    if (alias == 0 || alias > opt.topic_alias_maximum)
      return protocol_error(ReasonCode::kTopicAliasInvalid);
    if (!p.topic.empty()) {
      if (!inbound_aliases_) {
        inbound_aliases_ = std::make_unique<std::unordered_map<std::uint16_t, std::string>>();
      }
      (*inbound_aliases_)[alias] = p.topic;
    } else {
      if (!inbound_aliases_) return protocol_error(ReasonCode::kProtocolError);
      auto it = inbound_aliases_->find(alias);
      if (it == inbound_aliases_->end()) return protocol_error(ReasonCode::kProtocolError);
      p.topic = it->second;
    }
  }
  const auto qos = static_cast<std::uint8_t>(p.qos);
  if (qos > opt.maximum_qos) return protocol_error(ReasonCode::kQoSNotSupported);
  if (p.retain && !opt.retain_available) return protocol_error(ReasonCode::kRetainNotSupported);

  auto ack = [&](ReasonCode reason) {
    if (qos == 1) link_->send(mqtt::Puback{p.packet_id, reason, {}});
    if (qos == 2) link_->send(mqtt::Pubrec{p.packet_id, reason, {}});
  };
  if (p.topic.size() > opt.max_topic_length || topic_levels(p.topic) > opt.max_topic_levels) {
    if (!v5()) return disconnect(ReasonCode::kTopicNameInvalid);
    return ack(ReasonCode::kTopicNameInvalid);
  }
  if (p.topic.starts_with("$") && !info_.internal) {
    // Clients may not publish into the broker's own $SYS tree.
    if (p.topic.starts_with("$SYS")) {
      broker_.counters_.publishes_denied->inc();
      return ack(v5() ? ReasonCode::kNotAuthorized : ReasonCode::kSuccess);
    }
  }
  if (acl_ && !acl_->can_publish(p.topic)) {
    broker_.counters_.publishes_denied->inc();
    // 3.1.1 has no way to refuse a PUBLISH: acknowledge and drop, as Mosquitto does.
    return ack(v5() ? ReasonCode::kNotAuthorized : ReasonCode::kSuccess);
  }
  if (qos == 2) {
    auto fresh = session_->begin_inbound_qos2(p.packet_id, opt.receive_maximum);
    if (!fresh.ok()) return protocol_error(ReasonCode::kReceiveMaximumExceeded);
    if (!*fresh) return ack(ReasonCode::kSuccess);  // a resend: routed the first time
  }

  auto m = std::make_shared<Message>();
  m->topic = std::move(p.topic);
  m->payload = std::move(p.payload);
  m->qos = qos;
  m->retain = p.retain;
  m->publisher = session_->id();
  if (v5()) {
    m->properties = forwarded_properties(p.properties);
    if (p.properties.message_expiry_interval) {
      m->expiry_ms = mono_ms(broker_.clock()) + 1000LL * *p.properties.message_expiry_interval;
    }
  }
  const Broker::Routed routed = broker_.route(m);
  const ReasonCode reason =
      v5() && routed.deliveries == 0 ? ReasonCode::kNoMatchingSubscribers : ReasonCode::kSuccess;
  // After the routing's records, so that the id is never durable without them.
  const std::uint64_t qos2_seq = qos == 2 ? session_->journal_inbound_qos2(p.packet_id) : 0;
  const std::uint64_t durable_seq = std::max(routed.durable_seq, qos2_seq);
  if (qos == 0 || durable_seq == 0 || !broker_.store_) return ack(reason);
  // Acknowledge only once the message is durable in every persistent session it was queued
  // for (and the retained store): that is what "nothing acknowledged is lost" rests on.
  const bool version5 = v5();
  broker_.store_->when_durable(durable_seq, [link = link_, qos, id = p.packet_id, reason,
                                             version5](const Status& s) {
    if (!s.ok()) {
      // Not durable: refuse (MQTT 5) or close without acknowledging (3.1.1), so the
      // client sends it again.
      if (!version5) return link->close();
      const ReasonCode failed = s.code() == StatusCode::kNoSpace ? ReasonCode::kQuotaExceeded
                                                                 : ReasonCode::kUnspecifiedError;
      if (qos == 1) link->send(mqtt::Puback{id, failed, {}});
      if (qos == 2) link->send(mqtt::Pubrec{id, failed, {}});
      return;
    }
    if (qos == 1) link->send(mqtt::Puback{id, reason, {}});
    if (qos == 2) link->send(mqtt::Pubrec{id, reason, {}});
  });
}

void Connection::handle(mqtt::Puback& p) { session_->on_puback(p.packet_id); }
void Connection::handle(mqtt::Pubrec& p) { session_->on_pubrec(p.packet_id, p.reason); }
void Connection::handle(mqtt::Pubcomp& p) { session_->on_pubcomp(p.packet_id); }

void Connection::handle(mqtt::Pubrel& p) {
  std::uint64_t durable_seq = 0;
  const bool known = session_->release_inbound_qos2(p.packet_id, durable_seq);
  mqtt::Pubcomp done{p.packet_id,
                     known || !v5() ? ReasonCode::kSuccess : ReasonCode::kPacketIdentifierNotFound,
                     {}};
  if (durable_seq == 0 || !broker_.store_) return (void)link_->send(done);
  // A persistent session: PUBCOMP only once the release is durable, or after a crash the id
  // would still look in use and a new message reusing it would be taken for a resend. When
  // it cannot be written, close instead: the client sends the PUBREL again.
  broker_.store_->when_durable(durable_seq, [link = link_, done](const Status& s) {
    if (!s.ok()) return link->close();
    link->send(done);
  });
}

void Connection::handle(mqtt::Subscribe& s) {
  const BrokerOptions& opt = broker_.options();
  mqtt::Suback ack;
  ack.packet_id = s.packet_id;
  std::vector<std::pair<MessagePtr, std::uint8_t>> retained;
  std::uint32_t sub_id = 0;
  if (!s.properties.subscription_identifiers.empty())
    sub_id = s.properties.subscription_identifiers[0];
  for (const auto& sub : s.subscriptions) {
    auto shared = mqtt::parse_shared_subscription(sub.filter);
    if (!shared.ok()) {
      ack.reasons.push_back(ReasonCode::kTopicFilterInvalid);
      continue;
    }
    std::string_view group;
    std::string_view filter = sub.filter;
    if (*shared) {
      if (sub.no_local) return protocol_error(ReasonCode::kProtocolError);  // spec 3.8.3.1
      group = (*shared)->group;
      filter = (*shared)->filter;
    }
    if (filter.size() > opt.max_topic_length || topic_levels(filter) > opt.max_topic_levels) {
      ack.reasons.push_back(ReasonCode::kTopicFilterInvalid);
      continue;
    }
    if (acl_ && !acl_->can_subscribe(filter)) {
      broker_.counters_.subscriptions_denied->inc();
      ack.reasons.push_back(ReasonCode::kNotAuthorized);
      continue;
    }
    SubscriptionOptions o;
    o.max_qos = std::min<std::uint8_t>(static_cast<std::uint8_t>(sub.max_qos), opt.maximum_qos);
    o.no_local = sub.no_local;
    o.retain_as_published = sub.retain_as_published;
    o.retain_handling = static_cast<std::uint8_t>(sub.retain_handling);
    o.subscription_id = sub_id;
    ack.reasons.push_back(broker_.subscribe(session_, sub.filter, group, o, retained));
  }
  link_->send(ack);
  // Retained messages go out after the SUBACK (spec 3.8.4), flagged RETAIN.
  const std::span<const std::uint32_t> ids =
      sub_id ? std::span<const std::uint32_t>(&sub_id, 1) : std::span<const std::uint32_t>();
  for (const auto& [message, qos] : retained) session_->deliver(message, qos, true, ids);
}

void Connection::handle(mqtt::Unsubscribe& u) {
  mqtt::Unsuback ack;
  ack.packet_id = u.packet_id;
  for (const auto& filter : u.filters) {
    auto shared = mqtt::parse_shared_subscription(filter);
    std::string_view group;
    if (shared.ok() && *shared) group = (*shared)->group;
    const bool existed = broker_.unsubscribe(session_, filter, group);
    ack.reasons.push_back(existed ? ReasonCode::kSuccess : ReasonCode::kNoSubscriptionExisted);
  }
  link_->send(ack);
}

void Connection::handle(mqtt::Disconnect& d) {
  if (v5()) {
    if (d.properties.session_expiry_interval) {
      if (connect_session_expiry_ == 0 && *d.properties.session_expiry_interval != 0) {
        return protocol_error(ReasonCode::kProtocolError);  // spec 3.14.2.2.2
      }
      session_->expiry_interval =
          std::min(*d.properties.session_expiry_interval, broker_.options().max_session_expiry);
    }
    will_on_close_ = d.reason == ReasonCode::kDisconnectWithWillMessage;
  } else {
    will_on_close_ = false;
  }
  link_->close();
}

void Connection::on_closed() {
  const State was = state_.exchange(State::kClosed);
  if (was == State::kClosed) return;
  broker_.keep_alive_wheel().disarm(keep_alive_entry_);
  if (counted_) broker_.connections_.fetch_sub(1);
  if (was != State::kConnected) return;
  broker_.counters_.clients_connected->add(-1);
  if (will_on_close_ && will_) {
    const std::uint32_t delay = will_->properties.will_delay_interval.value_or(0);
    if (delay == 0 || session_->expiry_interval == 0) {
      publish_will_now();
    } else if (taken_over_) {
      // Resumed by the new connection within the delay: no will. Ended by a clean start:
      // the session is over, so the will goes now.
      if (broker_.is_current(*session_)) {
        will_.reset();
      } else {
        publish_will_now();
      }
    } else {
      broker_.schedule_will(session_, std::move(*will_),
                            std::min(delay, session_->expiry_interval.load()), acl_);
    }
  }
  broker_.detach_session(session_, link_);
}

void Connection::publish_will_now() {
  if (!will_) return;
  broker_.publish_will(session_->id(), std::move(*will_));
  will_.reset();
}

}  // namespace ganglion::broker
