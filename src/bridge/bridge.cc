#include <utility>  // Boost 1.74's Asio needs this before its headers.

#include "bridge/bridge.h"

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <deque>
#include <functional>
#include <sstream>

#include "broker/inprocess_client.h"
#include "mqtt/topic.h"

namespace ganglion::broker {

using mqtt::QoS;
using mqtt::ReasonCode;

namespace {

constexpr std::string_view kMarker = "ganglion-bridge";
constexpr std::size_t kEchoMemory = 1024;

}  // namespace

Result<BridgeRule> parse_bridge_rule(std::string_view text, BridgeRule::Direction direction) {
  std::istringstream in{std::string(text)};
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  const std::string where = "bridge rule \"" + std::string(text) + "\"";
  if (words.empty() || words.size() > 4) {
    return InvalidArgument(where +
                           ": expected \"<filter> [<qos>] [<remote-prefix>] [<local-prefix>]\"");
  }
  BridgeRule r;
  r.direction = direction;
  r.filter = words[0];
  if (words.size() > 1) {
    if (words[1] != "0" && words[1] != "1" && words[1] != "2") {
      return InvalidArgument(where + ": qos must be 0, 1 or 2");
    }
    r.qos = static_cast<QoS>(words[1][0] - '0');
  }
  if (words.size() > 2 && words[2] != "-") r.remote_prefix = words[2];
  if (words.size() > 3 && words[3] != "-") r.local_prefix = words[3];
  for (const std::string* f : {&r.filter}) {
    if (Status s = mqtt::validate_topic_filter(*f); !s.ok()) return s.with_context(where);
  }
  for (const std::string* p : {&r.remote_prefix, &r.local_prefix}) {
    if (p->find_first_of("+#") != std::string::npos) {
      return InvalidArgument(where + ": a prefix may not contain wildcards");
    }
  }
  if (Status s = mqtt::validate_topic_filter(r.local_prefix + r.filter); !s.ok())
    return s.with_context(where);
  if (Status s = mqtt::validate_topic_filter(r.remote_prefix + r.filter); !s.ok())
    return s.with_context(where);
  return r;
}

struct Bridge::Impl : std::enable_shared_from_this<Bridge::Impl> {
  Impl(Broker& b, boost::asio::io_context& l, Clock& c, BridgeOptions o)
      : broker(b), loop(l), clock(c), options(std::move(o)) {}

  Broker& broker;
  boost::asio::io_context& loop;
  Clock& clock;
  BridgeOptions options;
  std::unique_ptr<InProcessClient> local;
  std::unique_ptr<client::MqttClient> remote;
  bool v5 = true;
  std::atomic<bool> stopped{false};
  std::deque<std::pair<std::string, std::size_t>> recent_out;  // 3.1.1 echo suppression (loop only)
  std::atomic<std::uint64_t> forwarded_out{0}, forwarded_in{0}, refused_out{0}, loops_dropped{0};

  static bool wants(const BridgeRule& r, BridgeRule::Direction d) {
    return r.direction == d || r.direction == BridgeRule::Direction::kBoth;
  }

  void forward_out(const BridgeRule& rule, const mqtt::Publish& m, DeliveryAck ack);
  void forward_in(const mqtt::Publish& m);
};

void Bridge::Impl::forward_out(const BridgeRule& rule, const mqtt::Publish& m, DeliveryAck ack) {
  mqtt::Publish out;
  out.topic =
      rule.remote_prefix + m.topic.substr(std::min(rule.local_prefix.size(), m.topic.size()));
  out.payload = m.payload;
  out.qos = m.qos;  // already min(published, rule's QoS) by the local broker
  out.retain = m.retain;
  if (v5) {
    out.properties.payload_format_indicator = m.properties.payload_format_indicator;
    out.properties.content_type = m.properties.content_type;
    out.properties.response_topic = m.properties.response_topic;
    out.properties.correlation_data = m.properties.correlation_data;
    out.properties.message_expiry_interval = m.properties.message_expiry_interval;
    out.properties.user_properties = m.properties.user_properties;
    out.properties.user_properties.emplace_back(std::string(kMarker), options.local_client_id);
  } else {
    recent_out.emplace_back(out.topic, std::hash<std::string_view>{}(out.payload.view()));
    if (recent_out.size() > kEchoMemory) recent_out.pop_front();
  }
  std::weak_ptr<Impl> weak = weak_from_this();
  remote->publish(std::move(out), [weak, ack, topic = m.topic](Status s, ReasonCode reason) {
    auto self = weak.lock();
    if (!self) return;
    if (s.code() == StatusCode::kCancelled) return;  // stopping: the local session keeps it
    if (s.ok()) {
      self->forwarded_out.fetch_add(1);
    } else {
      // Refused upstream (ACL, size, quota): retrying would block the link forever.
      self->refused_out.fetch_add(1);
      spdlog::warn("bridge: upstream refused {}: {} ({})", topic, s.message(),
                   mqtt::to_string(reason));
    }
    ack();
  });
}

void Bridge::Impl::forward_in(const mqtt::Publish& m) {
  if (v5) {
    for (const auto& [k, v] : m.properties.user_properties) {
      if (k == kMarker && v == options.local_client_id) {
        loops_dropped.fetch_add(1);
        return;
      }
    }
  } else {
    const std::size_t h = std::hash<std::string_view>{}(m.payload.view());
    for (auto it = recent_out.begin(); it != recent_out.end(); ++it) {
      if (it->second == h && it->first == m.topic) {
        recent_out.erase(it);
        loops_dropped.fetch_add(1);
        return;
      }
    }
  }
  for (const auto& rule : options.rules) {
    if (!wants(rule, BridgeRule::Direction::kIn)) continue;
    if (!m.topic.starts_with(rule.remote_prefix)) continue;
    if (!mqtt::matches(rule.remote_prefix + rule.filter, m.topic)) continue;
    std::string topic = rule.local_prefix + m.topic.substr(rule.remote_prefix.size());
    mqtt::Properties props;
    props.payload_format_indicator = m.properties.payload_format_indicator;
    props.content_type = m.properties.content_type;
    props.response_topic = m.properties.response_topic;
    props.correlation_data = m.properties.correlation_data;
    props.message_expiry_interval = m.properties.message_expiry_interval;
    props.user_properties = m.properties.user_properties;
    const QoS qos = std::min(m.qos, rule.qos);
    std::weak_ptr<Impl> weak = weak_from_this();
    local->publish(std::move(topic), m.payload, qos, m.retain, std::move(props),
                   [weak, t = m.topic](Status s, ReasonCode) {
                     auto self = weak.lock();
                     if (!self) return;
                     if (s.ok()) {
                       self->forwarded_in.fetch_add(1);
                     } else {
                       spdlog::warn("bridge: local publish of {} failed: {}", t, s.message());
                     }
                   });
    return;  // the first matching rule decides
  }
}

Bridge::Bridge(Broker& broker, boost::asio::io_context& loop, Clock& clock, BridgeOptions options)
    : impl_(std::make_shared<Impl>(broker, loop, clock, std::move(options))) {}

Bridge::~Bridge() {
  stop();
  // The clients' own destructors detach them; their posted tasks hold their own state.
  impl_->remote.reset();
  impl_->local.reset();
}

Status Bridge::start() {
  auto& o = impl_->options;
  if (o.rules.empty()) return InvalidArgument("bridge: no rules (bridge.out / bridge.in)");
  for (const auto& r : o.rules) {
    GANGLION_RETURN_IF_ERROR(
        mqtt::validate_topic_filter(r.local_prefix + r.filter).with_context("bridge rule"));
    GANGLION_RETURN_IF_ERROR(
        mqtt::validate_topic_filter(r.remote_prefix + r.filter).with_context("bridge rule"));
  }
  impl_->v5 = o.remote.session.version == mqtt::ProtocolVersion::kV5;

  auto& loop = impl_->loop;
  ClientOptions local;
  local.client_id = o.local_client_id;
  local.clean_start = false;
  local.session_expiry = o.local_session_expiry;
  local.receive_maximum = o.local_inflight;
  impl_->local = std::make_unique<InProcessClient>(
      impl_->broker, local,
      [&loop](std::function<void()> fn) { boost::asio::post(loop, std::move(fn)); });
  impl_->remote = std::make_unique<client::MqttClient>(loop, impl_->clock, o.remote);

  std::weak_ptr<Impl> weak = impl_;
  impl_->remote->on_message([weak](const mqtt::Publish& m) {
    if (auto self = weak.lock(); self && !self->stopped) self->forward_in(m);
  });
  impl_->remote->on_state([url = o.remote.url](client::ConnectionState s, const Status& why) {
    if (s == client::ConnectionState::kConnected) spdlog::info("bridge: connected to {}", url);
    if (s == client::ConnectionState::kBackingOff) {
      spdlog::warn("bridge: upstream {} unavailable: {}", url, why.message());
    }
  });

  // Upstream subscriptions for "in" rules, restored by the client when a session is lost.
  std::vector<mqtt::Subscription> remote_subs;
  for (const auto& r : o.rules) {
    if (!Impl::wants(r, BridgeRule::Direction::kIn)) continue;
    mqtt::Subscription s;
    s.filter = r.remote_prefix + r.filter;
    s.max_qos = r.qos;
    s.no_local = impl_->v5;
    s.retain_as_published = true;
    remote_subs.push_back(std::move(s));
  }
  GANGLION_RETURN_IF_ERROR(impl_->remote->start());
  if (!remote_subs.empty()) {
    impl_->remote->subscribe(std::move(remote_subs), [](Status s, std::vector<ReasonCode> reasons) {
      if (!s.ok()) return;
      for (auto r : reasons) {
        if (static_cast<std::uint8_t>(r) >= 0x80) {
          spdlog::warn("bridge: upstream refused a subscription: {}", mqtt::to_string(r));
        }
      }
    });
  }

  impl_->local->connect([url = o.remote.url](Status s, bool present) {
    if (!s.ok()) {
      spdlog::error("bridge: local connection refused: {}", s.message());
    } else {
      spdlog::debug("bridge to {}: local session {}", url, present ? "resumed" : "new");
    }
  });
  for (std::size_t i = 0; i < o.rules.size(); ++i) {
    const BridgeRule& r = o.rules[i];
    if (!Impl::wants(r, BridgeRule::Direction::kOut)) continue;
    impl_->local->subscribe_deferred(
        r.local_prefix + r.filter, r.qos,
        [weak, i](const mqtt::Publish& m, DeliveryAck ack) {
          auto self = weak.lock();
          if (!self || self->stopped) return;  // unacknowledged: the session keeps it
          self->forward_out(self->options.rules[i], m, std::move(ack));
        },
        [filter = r.local_prefix + r.filter](Status s, ReasonCode) {
          if (!s.ok())
            spdlog::error("bridge: local subscription {} refused: {}", filter, s.message());
        },
        SubscribeOptions{.no_local = true, .retain_as_published = true});
  }
  return Status::Ok();
}

void Bridge::stop() {
  if (impl_->stopped.exchange(true)) return;
  if (impl_->remote) impl_->remote->stop();
  if (impl_->local) impl_->local->disconnect();
}

client::ConnectionState Bridge::remote_state() const {
  return impl_->remote ? impl_->remote->state() : client::ConnectionState::kIdle;
}

BridgeStats Bridge::stats() const {
  BridgeStats s;
  s.forwarded_out = impl_->forwarded_out.load();
  s.forwarded_in = impl_->forwarded_in.load();
  s.refused_out = impl_->refused_out.load();
  s.loops_dropped = impl_->loops_dropped.load();
  if (impl_->remote) s.remote = impl_->remote->stats();
  return s;
}

Result<std::unique_ptr<Bridge>> start_bridge(const Config& config, Broker& broker,
                                             boost::asio::io_context& loop, Clock& clock) {
  const std::string& url = config.str("bridge.url");
  if (url.empty()) return std::unique_ptr<Bridge>();
  BridgeOptions o;
  o.remote.url = url;
  o.remote.tls.ca_file = config.str("bridge.tls.ca");
  o.remote.tls.certificate_file = config.str("bridge.tls.certificate");
  o.remote.tls.key_file = config.str("bridge.tls.key");
  std::string id = config.str("bridge.client_id");
  if (id.empty()) id = config.str("node.id") + "-bridge";
  auto& s = o.remote.session;
  s.version = config.str("bridge.version") == "311" ? mqtt::ProtocolVersion::kV311
                                                    : mqtt::ProtocolVersion::kV5;
  s.client_id = id;
  if (const auto& u = config.str("bridge.username"); !u.empty()) s.username = u;
  if (const auto& p = config.str("bridge.password"); !p.empty()) s.password = p;
  s.clean_start = false;  // the upstream broker keeps our subscriptions and queues for us
  s.session_expiry = 86'400;
  s.keep_alive = static_cast<std::uint16_t>(config.integer("bridge.keep_alive") / 1000);
  o.remote.backoff.initial = std::chrono::milliseconds(config.integer("bridge.reconnect_min"));
  o.remote.backoff.max = std::chrono::milliseconds(config.integer("bridge.reconnect_max"));
  o.local_client_id = id;
  for (const auto& text : config.list("bridge.out")) {
    GANGLION_ASSIGN_OR_RETURN(auto rule, parse_bridge_rule(text, BridgeRule::Direction::kOut));
    o.rules.push_back(std::move(rule));
  }
  for (const auto& text : config.list("bridge.in")) {
    GANGLION_ASSIGN_OR_RETURN(auto rule, parse_bridge_rule(text, BridgeRule::Direction::kIn));
    o.rules.push_back(std::move(rule));
  }
  auto bridge = std::make_unique<Bridge>(broker, loop, clock, std::move(o));
  GANGLION_RETURN_IF_ERROR(bridge->start());
  spdlog::info("bridge to {} as {}: {} out, {} in", url, id, config.list("bridge.out").size(),
               config.list("bridge.in").size());
  return bridge;
}

}  // namespace ganglion::broker
