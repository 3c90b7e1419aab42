#include "rules/sinks.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "base/timer_scope.h"
#include "broker/inprocess_client.h"
#include "event/json.h"
#include "functions/function_registry.h"

namespace ganglion::rules {

void SinkStats::error(std::string message, std::int64_t now_ms) {
  errors.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mu_);
  last_error_ = std::move(message);
  last_error_ms_ = now_ms;
}

std::string SinkStats::last_error() const {
  std::lock_guard lock(mu_);
  return last_error_;
}

std::int64_t SinkStats::last_error_ms() const {
  std::lock_guard lock(mu_);
  return last_error_ms_;
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// One {{ ... }} action: an optional "json" function and a path ".", ".a", ".a.b".
struct TemplateAction {
  bool json = false;
  std::vector<std::string_view> path;  // empty: the whole value
};

Result<TemplateAction> parse_action(std::string_view inner) {
  TemplateAction a;
  inner = trim(inner);
  if (inner.starts_with("json ")) {
    a.json = true;
    inner = trim(inner.substr(5));
  }
  if (inner.empty() || inner[0] != '.') {
    return InvalidArgument("template action '{{" + std::string(inner) +
                           "}}': expected {{.field}} or {{json .field}}");
  }
  inner.remove_prefix(1);
  while (!inner.empty()) {
    const auto dot = inner.find('.');
    std::string_view part = inner.substr(0, dot);
    if (part.empty() || part.find_first_of(" {}") != std::string_view::npos) {
      return InvalidArgument("template action: bad field path");
    }
    a.path.push_back(part);
    if (dot == std::string_view::npos) break;
    inner.remove_prefix(dot + 1);
    if (inner.empty()) return InvalidArgument("template action: bad field path");
  }
  return a;
}

const Value* lookup(const Value& data, const std::vector<std::string_view>& path) {
  const Value* v = &data;
  // A non-single payload is an array of rows: fields read the first row.
  if (!path.empty() && v->is_array()) {
    if (v->as_array().empty()) return nullptr;
    v = &v->as_array()[0];
  }
  for (std::string_view p : path) {
    v = v->find(p);
    if (v == nullptr) return nullptr;
  }
  return v;
}

bool has_template(std::string_view s) { return s.find("{{") != std::string_view::npos; }

}  // namespace

Status check_template(std::string_view tmpl) {
  std::size_t pos = 0;
  while ((pos = tmpl.find("{{", pos)) != std::string_view::npos) {
    const auto end = tmpl.find("}}", pos + 2);
    if (end == std::string_view::npos) return InvalidArgument("template: '{{' without '}}'");
    GANGLION_RETURN_IF_ERROR(parse_action(tmpl.substr(pos + 2, end - pos - 2)).status());
    pos = end + 2;
  }
  return Status::Ok();
}

std::string render_template(std::string_view tmpl, const Value& row) {
  std::string out;
  std::size_t pos = 0;
  for (;;) {
    const auto open = tmpl.find("{{", pos);
    if (open == std::string_view::npos) break;
    const auto close = tmpl.find("}}", open + 2);
    if (close == std::string_view::npos) break;
    out.append(tmpl.substr(pos, open - pos));
    auto action = parse_action(tmpl.substr(open + 2, close - open - 2));
    if (action.ok()) {
      const Value* v = lookup(row, action->path);
      if (v != nullptr) {
        if (v->is_string() && !action->json) {
          out += v->as_string();
        } else if (!v->is_null() || action->json) {
          append_json(*v, out);
        }
      }
    }
    pos = close + 2;
  }
  out.append(tmpl.substr(pos));
  return out;
}

namespace {

// The payloads of an emission: one per row (sendSingle) or one array; with a data template,
// the template rendered against each row or the array.
std::vector<std::pair<std::string, const Value*>> payloads(const stream::Emission& e, bool single,
                                                           const std::string& data_template,
                                                           Value& array_holder) {
  std::vector<std::pair<std::string, const Value*>> out;
  if (single) {
    out.reserve(e.rows.size());
    for (const Value& r : e.rows) {
      out.emplace_back(data_template.empty() ? to_json(r) : render_template(data_template, r), &r);
    }
    return out;
  }
  if (e.rows.empty()) return out;
  if (data_template.empty()) {
    out.emplace_back(stream::sink_payloads(e, false).front(), &e.rows.front());
  } else {
    array_holder = Value(ValueArray(e.rows));
    out.emplace_back(render_template(data_template, array_holder), &e.rows.front());
  }
  return out;
}

class MqttSink final : public Sink {
 public:
  MqttSink(const SinkContext& ctx, std::string topic, mqtt::QoS qos, bool retain, bool single,
           std::string data_template)
      : Sink("mqtt"),
        ctx_(ctx),
        topic_(std::move(topic)),
        templated_(has_template(topic_)),
        qos_(qos),
        retain_(retain),
        single_(single),
        data_template_(std::move(data_template)) {}

  void deliver(const stream::Emission& e) override {
    Value holder;
    for (auto& [payload, row] : payloads(e, single_, data_template_, holder)) {
      stats_->records_in.fetch_add(1, std::memory_order_relaxed);
      std::string topic = templated_ ? render_template(topic_, *row) : topic_;
      mqtt::Properties props;
      props.content_type = "application/json";
      stats_->in_flight.fetch_add(1, std::memory_order_relaxed);
      ctx_.client->publish(std::move(topic), mqtt::SharedBytes(std::move(payload)), qos_, retain_,
                           std::move(props),
                           [stats = stats_, clock = ctx_.clock](Status s, mqtt::ReasonCode reason) {
                             stats->in_flight.fetch_sub(1, std::memory_order_relaxed);
                             const auto code = static_cast<std::uint8_t>(reason);
                             if (s.ok() && code < 0x80) {
                               stats->records_out.fetch_add(1, std::memory_order_relaxed);
                             } else {
                               char hex[8];
                               std::snprintf(hex, sizeof hex, "0x%02x", code);
                               stats->error(s.ok() ? std::string("publish refused: reason ") + hex
                                                   : "publish failed: " + s.message(),
                                            clock->wall_ms());
                             }
                           });
    }
  }

 private:
  SinkContext ctx_;
  std::string topic_;
  bool templated_;
  mqtt::QoS qos_;
  bool retain_;
  bool single_;
  std::string data_template_;
};

class LogSink final : public Sink {
 public:
  LogSink(std::string rule, bool single, std::string data_template)
      : Sink("log"),
        rule_(std::move(rule)),
        single_(single),
        data_template_(std::move(data_template)) {}
  void deliver(const stream::Emission& e) override {
    Value holder;
    for (auto& [payload, row] : payloads(e, single_, data_template_, holder)) {
      stats_->records_in.fetch_add(1, std::memory_order_relaxed);
      spdlog::info("rule {}: {}", rule_, payload);
      stats_->records_out.fetch_add(1, std::memory_order_relaxed);
    }
  }

 private:
  std::string rule_;
  bool single_;
  std::string data_template_;
};

class NopSink final : public Sink {
 public:
  NopSink() : Sink("nop") {}
  void deliver(const stream::Emission& e) override {
    stats_->records_in.fetch_add(1, std::memory_order_relaxed);
    stats_->records_out.fetch_add(e.rows.empty() ? 0 : 1, std::memory_order_relaxed);
  }
};

class RestSink final : public Sink {
 public:
  struct Config {
    std::string url, method;
    std::vector<std::pair<std::string, std::string>> headers;
    bool single = false;
    std::string data_template;
    Duration timeout{};
    int retries = 0;
    Duration retry_interval{};
    std::int64_t buffer = 1024;
  };

  RestSink(const SinkContext& ctx, Config config)
      : Sink("rest"),
        state_(std::make_shared<State>(*ctx.clock, *ctx.http, std::move(config), stats_)) {}
  ~RestSink() override { state_->timers.close(); }

  void deliver(const stream::Emission& e) override {
    Value holder;
    for (auto& [payload, row] :
         payloads(e, state_->config.single, state_->config.data_template, holder)) {
      stats_->records_in.fetch_add(1, std::memory_order_relaxed);
      if (stats_->in_flight.load(std::memory_order_relaxed) >= state_->config.buffer) {
        stats_->dropped.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      HttpCall call;
      call.method = state_->config.method;
      call.url = state_->config.url;
      call.headers = state_->config.headers;
      call.body = std::move(payload);
      call.timeout = state_->config.timeout;
      stats_->in_flight.fetch_add(1, std::memory_order_relaxed);
      attempt(state_, std::make_shared<const HttpCall>(std::move(call)), state_->config.retries);
    }
  }

 private:
  struct State {
    State(Clock& c, HttpSender& h, Config cfg, std::shared_ptr<SinkStats> s)
        : clock(c), http(h), config(std::move(cfg)), stats(std::move(s)), timers(c) {}
    Clock& clock;
    HttpSender& http;
    Config config;
    std::shared_ptr<SinkStats> stats;
    TimerScope timers;
  };

  static void attempt(const std::shared_ptr<State>& state, std::shared_ptr<const HttpCall> call,
                      int left) {
    const MonoTime start = state->clock.now();
    state->http.send(*call, [state, call, left, start](Result<HttpReply> r) {
      SinkStats& st = *state->stats;
      const bool ok = r.ok() && r->status >= 200 && r->status < 300;
      if (ok) {
        st.records_out.fetch_add(1, std::memory_order_relaxed);
        st.last_latency_us.store(
            std::chrono::duration_cast<std::chrono::microseconds>(state->clock.now() - start)
                .count(),
            std::memory_order_relaxed);
        st.in_flight.fetch_sub(1, std::memory_order_relaxed);
        return;
      }
      if (left > 0) {
        st.retries.fetch_add(1, std::memory_order_relaxed);
        std::weak_ptr<State> weak = state;
        state->timers.schedule_after(state->config.retry_interval, [weak, call, left] {
          if (auto s = weak.lock()) attempt(s, call, left - 1);
        });
        return;
      }
      st.in_flight.fetch_sub(1, std::memory_order_relaxed);
      st.error(r.ok() ? "webhook " + call->url + " answered " + std::to_string(r->status)
                      : "webhook " + call->url + ": " + r.status().message(),
               state->clock.wall_ms());
    });
  }

  std::shared_ptr<State> state_;
};

class FunctionSink final : public Sink {
 public:
  FunctionSink(const SinkContext& ctx, std::string name)
      : Sink("function"), ctx_(ctx), name_(std::move(name)) {}
  void deliver(const stream::Emission& e) override {
    for (const Value& row : e.rows) {
      stats_->records_in.fetch_add(1, std::memory_order_relaxed);
      auto r = ctx_.functions->invoke(name_, ctx_.rule_id, row, ctx_.clock->wall_ms());
      if (!r.ok()) {
        stats_->error("function " + name_ + ": " + r.status().message(), ctx_.clock->wall_ms());
        continue;
      }
      stats_->records_out.fetch_add(1, std::memory_order_relaxed);
      for (auto& em : r->emitted) {
        ctx_.client->publish(
            std::move(em.topic), mqtt::SharedBytes(std::move(em.payload)),
            static_cast<mqtt::QoS>(std::min<std::uint8_t>(em.qos, 2)), false, {},
            [stats = stats_, clock = ctx_.clock](Status s, mqtt::ReasonCode reason) {
              if (!s.ok() || static_cast<std::uint8_t>(reason) >= 0x80) {
                stats->error(
                    "publishing an emit failed: " + (s.ok() ? std::string("refused") : s.message()),
                    clock->wall_ms());
              }
            });
      }
    }
  }

 private:
  SinkContext ctx_;
  std::string name_;
};

class UplinkSink final : public Sink {
 public:
  UplinkSink(const SinkContext& ctx, std::string cls, std::string topic, bool single)
      : Sink("uplink"),
        ctx_(ctx),
        cls_(std::move(cls)),
        topic_(std::move(topic)),
        single_(single) {}
  void deliver(const stream::Emission& e) override {
    Value holder;
    for (auto& [payload, row] : payloads(e, single_, "", holder)) {
      stats_->records_in.fetch_add(1, std::memory_order_relaxed);
      EventHeaders h;
      h.source = "rule:" + ctx_.rule_id;
      h.content_type = "application/json";
      h.data_class = cls_;
      std::string topic = has_template(topic_) ? render_template(topic_, *row) : topic_;
      Event ev(std::move(topic), ctx_.clock->wall_ms(),
               std::make_shared<const std::string>(std::move(payload)), std::move(h));
      if (Status s = ctx_.uplink(cls_, ev); s.ok()) {
        stats_->records_out.fetch_add(1, std::memory_order_relaxed);
      } else {
        stats_->error("uplink " + cls_ + ": " + s.message(), ctx_.clock->wall_ms());
      }
    }
  }

 private:
  SinkContext ctx_;
  std::string cls_, topic_;
  bool single_;
};

}  // namespace

Result<std::unique_ptr<Sink>> make_sink(const ActionSpec& action, std::size_t index,
                                        const SinkContext& ctx) {
  const std::string where = "actions[" + std::to_string(index) + "]." + action.type;
  const Value& p = action.props;
  GANGLION_ASSIGN_OR_RETURN(std::string data_template, string_prop(p, "dataTemplate", where));
  GANGLION_RETURN_IF_ERROR(check_template(data_template));
  if (action.type == "mqtt") {
    GANGLION_ASSIGN_OR_RETURN(std::string topic, string_prop(p, "topic", where));
    if (topic.empty()) return InvalidArgument(where + ".topic: required");
    if (Status s = check_template(topic); !s.ok())
      return InvalidArgument(where + ".topic: " + s.message());
    if (!has_template(topic) && topic.find_first_of("+#") != std::string::npos) {
      return InvalidArgument(where + ".topic: a topic name may not contain '+' or '#'");
    }
    GANGLION_ASSIGN_OR_RETURN(std::int64_t qos, int_prop(p, "qos", where, 0));
    if (qos < 0 || qos > 2) return InvalidArgument(where + ".qos: must be 0, 1 or 2");
    GANGLION_ASSIGN_OR_RETURN(bool retain, bool_prop(p, "retained", where, false));
    GANGLION_ASSIGN_OR_RETURN(bool single, bool_prop(p, "sendSingle", where, false));
    return std::unique_ptr<Sink>(std::make_unique<MqttSink>(ctx, std::move(topic),
                                                            static_cast<mqtt::QoS>(qos), retain,
                                                            single, std::move(data_template)));
  }
  if (action.type == "log") {
    GANGLION_ASSIGN_OR_RETURN(bool single, bool_prop(p, "sendSingle", where, false));
    return std::unique_ptr<Sink>(
        std::make_unique<LogSink>(ctx.rule_id, single, std::move(data_template)));
  }
  if (action.type == "nop") return std::unique_ptr<Sink>(std::make_unique<NopSink>());
  if (action.type == "rest") {
    RestSink::Config c;
    GANGLION_ASSIGN_OR_RETURN(c.url, string_prop(p, "url", where));
    if (c.url.empty()) return InvalidArgument(where + ".url: required");
    if (auto u = parse_http_url(c.url); !u.ok())
      return InvalidArgument(where + ".url: " + u.status().message());
    GANGLION_ASSIGN_OR_RETURN(c.method, string_prop(p, "method", where, "post"));
    for (char& ch : c.method) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    static constexpr std::string_view kMethods[] = {"POST", "PUT", "PATCH", "GET", "DELETE"};
    if (std::find(std::begin(kMethods), std::end(kMethods), c.method) == std::end(kMethods)) {
      return InvalidArgument(where + ".method: expects post, put, patch, get or delete");
    }
    if (const Value* h = p.find("headers"); h != nullptr && !h->is_null()) {
      if (!h->is_object()) return InvalidArgument(where + ".headers: expects an object");
      for (const auto& [k, v] : h->as_object()) c.headers.emplace_back(k, v.to_display_string());
    }
    GANGLION_ASSIGN_OR_RETURN(c.single, bool_prop(p, "sendSingle", where, false));
    GANGLION_ASSIGN_OR_RETURN(std::int64_t timeout, int_prop(p, "timeout", where, 5000));
    if (timeout < 1 || timeout > 600'000)
      return InvalidArgument(where + ".timeout: must be between 1 and 600000 ms");
    c.timeout = std::chrono::milliseconds(timeout);
    GANGLION_ASSIGN_OR_RETURN(std::int64_t retries, int_prop(p, "retryCount", where, 0));
    if (retries < 0 || retries > 100)
      return InvalidArgument(where + ".retryCount: must be between 0 and 100");
    c.retries = static_cast<int>(retries);
    GANGLION_ASSIGN_OR_RETURN(std::int64_t interval, int_prop(p, "retryInterval", where, 1000));
    if (interval < 0 || interval > 3'600'000)
      return InvalidArgument(where + ".retryInterval: must be between 0 and 3600000 ms");
    c.retry_interval = std::chrono::milliseconds(interval);
    GANGLION_ASSIGN_OR_RETURN(c.buffer, int_prop(p, "bufferLength", where, 1024));
    if (c.buffer < 1) return InvalidArgument(where + ".bufferLength: must be positive");
    c.data_template = std::move(data_template);
    if (ctx.http == nullptr) return FailedPrecondition(where + ": no HTTP client");
    return std::unique_ptr<Sink>(std::make_unique<RestSink>(ctx, std::move(c)));
  }
  if (action.type == "function") {
    GANGLION_ASSIGN_OR_RETURN(std::string name, string_prop(p, "name", where));
    if (name.empty()) return InvalidArgument(where + ".name: required");
    if (ctx.functions == nullptr || ctx.functions->find(name) == nullptr) {
      return InvalidArgument(where + ".name: function '" + name +
                             "' is not defined (POST /functions first)");
    }
    return std::unique_ptr<Sink>(std::make_unique<FunctionSink>(ctx, std::move(name)));
  }
  if (action.type == "uplink") {
    GANGLION_ASSIGN_OR_RETURN(std::string cls, string_prop(p, "class", where));
    if (cls.empty()) return InvalidArgument(where + ".class: required");
    GANGLION_ASSIGN_OR_RETURN(std::string topic,
                              string_prop(p, "topic", where, "rules/" + ctx.rule_id));
    if (Status s = check_template(topic); !s.ok())
      return InvalidArgument(where + ".topic: " + s.message());
    GANGLION_ASSIGN_OR_RETURN(bool single, bool_prop(p, "sendSingle", where, false));
    if (!ctx.uplink)
      return InvalidArgument(where + ": the uplink is not enabled on this node (uplink.url)");
    return std::unique_ptr<Sink>(
        std::make_unique<UplinkSink>(ctx, std::move(cls), std::move(topic), single));
  }
  return InvalidArgument("actions[" + std::to_string(index) + "]: unknown sink type '" +
                         action.type + "' (mqtt, log, rest, function, uplink, nop)");
}

}  // namespace ganglion::rules
