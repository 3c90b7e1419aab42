#include <utility>  // Boost 1.74's Asio needs this before its headers.

#include "uplink/uplink.h"

#include <spdlog/spdlog.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <future>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "base/timer_scope.h"
#include "broker/inprocess_client.h"
#include "event/json.h"
#include "mqtt/topic.h"
#include "net/http_server.h"
#include "uplink/batch_format.h"
#include "uplink/redelivery_filter.h"

namespace ganglion::uplink {

namespace {

constexpr std::string_view kBatchContentType = "application/vnd.ganglion.uplink-batch.v1";

bool valid_class_name(std::string_view n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  }
  return true;
}

std::vector<std::string> words(std::string_view text) {
  std::istringstream in{std::string(text)};
  std::vector<std::string> w;
  for (std::string s; in >> s;) w.push_back(s);
  return w;
}

// Publishes batches through the MqttClient; completions come back on the uplink's loop.
class MqttTransport final : public BatchTransport {
 public:
  explicit MqttTransport(client::MqttClient& c) : client_(c) {}
  void publish(std::string topic, std::string bytes, Completion done) override {
    mqtt::Publish p;
    p.topic = std::move(topic);
    p.qos = mqtt::QoS::kAtLeastOnce;
    p.payload = mqtt::SharedBytes(std::move(bytes));
    p.properties.content_type = std::string(kBatchContentType);
    client_.publish(std::move(p),
                    [done = std::move(done)](Status s, mqtt::ReasonCode) { done(s); });
  }

 private:
  client::MqttClient& client_;
};

struct Mirror {
  Counter* counter = nullptr;
  std::uint64_t last = 0;
  void set(std::uint64_t v) {
    if (counter && v > last) counter->inc(v - last);
    if (v > last) last = v;
  }
};

}  // namespace

Result<ClassSpec> parse_class_spec(std::string_view text) {
  const auto w = words(text);
  const std::string where = "uplink class \"" + std::string(text) + "\"";
  if (w.empty()) return InvalidArgument(where + ": empty");
  ClassSpec c;
  c.name = w[0];
  if (!valid_class_name(c.name)) return InvalidArgument(where + ": name must be [a-z0-9_-]+");
  for (std::size_t i = 1; i < w.size(); ++i) {
    const auto eq = w[i].find('=');
    if (eq == std::string::npos)
      return InvalidArgument(where + ": expected key=value, got " + w[i]);
    const std::string key = w[i].substr(0, eq), value = w[i].substr(eq + 1);
    if (key == "priority") {
      try {
        c.priority = std::stoi(value);
      } catch (...) {
        return InvalidArgument(where + ": priority must be an integer");
      }
    } else if (key == "ttl" || key == "linger") {
      auto ms = parse_duration_ms(value);
      if (!ms.ok()) return ms.status().with_context(where);
      // Duration counts nanoseconds: beyond ~292 years the conversion would overflow.
      if (*ms > std::chrono::duration_cast<std::chrono::milliseconds>(Duration::max()).count())
        return InvalidArgument(where + ": " + key + " is longer than 292 years");
      (key == "ttl" ? c.ttl : c.linger.emplace()) = std::chrono::milliseconds(*ms);
    } else if (key == "quota") {
      auto b = parse_bytes(value);
      if (!b.ok()) return b.status().with_context(where);
      c.quota = static_cast<std::uint64_t>(*b);
    } else if (key == "full") {
      if (value == "drop-oldest") {
        c.full = log::QuotaPolicy::kDropOldest;
      } else if (value == "refuse-newest") {
        c.full = log::QuotaPolicy::kRefuseNewest;
      } else {
        return InvalidArgument(where + ": full must be drop-oldest or refuse-newest");
      }
    } else {
      return InvalidArgument(where + ": unknown key " + key);
    }
  }
  return c;
}

Result<Route> parse_route(std::string_view text) {
  const auto w = words(text);
  const std::string where = "uplink route \"" + std::string(text) + "\"";
  if (w.size() != 2) return InvalidArgument(where + ": expected \"<topic-filter> <class>\"");
  if (Status s = mqtt::validate_topic_filter(w[0]); !s.ok()) return s.with_context(where);
  if (!valid_class_name(w[1])) return InvalidArgument(where + ": bad class name");
  return Route{w[0], w[1]};
}

Result<UplinkOptions> uplink_options_from_config(const Config& c) {
  UplinkOptions o;
  o.node = c.str("node.id");
  o.dir = join_path(c.str("data.dir"), "uplink");
  o.remote.url = c.str("uplink.url");
  std::string id = c.str("uplink.client_id");
  if (id.empty()) id = o.node + "-uplink";
  o.local_client_id = id;
  auto& s = o.remote.session;
  s.version = mqtt::ProtocolVersion::kV5;
  s.client_id = id;
  if (const auto& u = c.str("uplink.username"); !u.empty()) s.username = u;
  if (const auto& p = c.str("uplink.password"); !p.empty()) s.password = p;
  s.clean_start = false;  // the receiver keeps our in-flight batches across reconnects
  s.session_expiry = 86'400;
  s.keep_alive = static_cast<std::uint16_t>(c.integer("uplink.keep_alive") / 1000);
  o.remote.tls.ca_file = c.str("uplink.tls.ca");
  o.remote.tls.certificate_file = c.str("uplink.tls.certificate");
  o.remote.tls.key_file = c.str("uplink.tls.key");
  o.remote.backoff.initial = std::chrono::milliseconds(c.integer("uplink.reconnect_min"));
  o.remote.backoff.max = std::chrono::milliseconds(c.integer("uplink.reconnect_max"));

  for (const auto& text : c.list("uplink.classes")) {
    GANGLION_ASSIGN_OR_RETURN(auto spec, parse_class_spec(text));
    for (const auto& other : o.classes) {
      if (other.name == spec.name)
        return InvalidArgument("uplink.classes: duplicate class " + spec.name);
    }
    o.classes.push_back(std::move(spec));
  }
  if (o.classes.empty()) return InvalidArgument("uplink.classes: at least one class is needed");
  for (const auto& text : c.list("uplink.routes")) {
    GANGLION_ASSIGN_OR_RETURN(auto route, parse_route(text));
    bool known = false;
    for (const auto& cls : o.classes) known |= cls.name == route.cls;
    if (!known)
      return InvalidArgument("uplink.routes \"" + text + "\": unknown class " + route.cls);
    o.routes.push_back(std::move(route));
  }
  o.disk_budget = static_cast<std::uint64_t>(c.integer("uplink.disk_budget"));
  o.segment_bytes = static_cast<std::uint64_t>(c.integer("uplink.segment_bytes"));
  const auto& fsync = c.str("uplink.fsync");
  o.fsync = fsync == "always"  ? log::FsyncPolicy::kAlways
            : fsync == "never" ? log::FsyncPolicy::kNever
                               : log::FsyncPolicy::kInterval;
  o.fsync_interval = std::chrono::milliseconds(c.integer("uplink.fsync_interval"));

  for (const auto& f : c.list("uplink.policy.local_only")) o.policy.local_only.push_back(f);
  for (const auto& text : c.list("uplink.policy.fields")) {
    GANGLION_ASSIGN_OR_RETURN(auto rule, parse_field_rule(text));
    o.policy.fields.push_back(std::move(rule));
  }
  o.policy.hash_key = c.str("uplink.policy.hash_key");
  o.policy.region = c.str("uplink.policy.region");
  o.policy.allowed_regions = c.list("uplink.policy.allowed_regions");
  o.destination_region = c.str("uplink.destination_region");

  auto& snd = o.sender;
  snd.node = o.node;
  snd.region = o.policy.region;
  snd.batch_max_records = static_cast<std::size_t>(c.integer("uplink.batch_max_records"));
  snd.batch_max_bytes = static_cast<std::size_t>(c.integer("uplink.batch_max_bytes"));
  snd.linger = std::chrono::milliseconds(c.integer("uplink.batch_linger"));
  for (const auto& cls : o.classes) {
    if (cls.linger) snd.class_linger.emplace_back(cls.name, *cls.linger);
  }
  snd.window = static_cast<std::size_t>(c.integer("uplink.window"));
  snd.compression = c.str("uplink.compression") == "none" ? Compression::kNone : Compression::kZstd;
  snd.zstd_level = static_cast<int>(c.integer("uplink.zstd_level"));
  snd.bandwidth = static_cast<std::uint64_t>(c.integer("uplink.bandwidth"));
  snd.burst = static_cast<std::uint64_t>(c.integer("uplink.burst"));
  snd.retry_delay = std::chrono::milliseconds(c.integer("uplink.reconnect_min")) * 5;
  return o;
}

struct Uplink::Impl : std::enable_shared_from_this<Uplink::Impl> {
  Impl(UplinkOptions o, Env& e, Clock& c, broker::Broker* b, MetricsRegistry* m)
      : options(std::move(o)), env(e), clock(c), broker(b), metrics(m), timers(c) {}

  UplinkOptions options;
  Env& env;
  Clock& clock;
  broker::Broker* broker;
  MetricsRegistry* metrics;
  TimerScope timers;

  boost::asio::io_context io;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work;
  std::thread thread;

  std::unique_ptr<log::LogStore> store;
  std::unique_ptr<DataPolicy> policy;
  RedeliveryFilter redeliveries;
  std::unique_ptr<client::MqttClient> remote;
  std::unique_ptr<MqttTransport> transport;
  std::unique_ptr<Sender> sender;
  std::unique_ptr<broker::InProcessClient> local;
  std::atomic<bool> stopped{false};
  std::atomic<bool> routes_subscribed{false};

  struct ClassCounters {
    std::atomic<std::uint64_t> logged{0}, quota{0}, disk{0}, local_only{0}, unparseable{0};
    std::atomic<std::uint64_t> redelivered{0};  // broker redeliveries already logged
  };
  std::map<std::string, std::unique_ptr<ClassCounters>, std::less<>> counters;  // fixed
  struct RouteCounters {
    std::atomic<std::uint64_t> received{0};
  };
  std::vector<std::unique_ptr<RouteCounters>> route_counters;  // fixed
  std::atomic<std::uint64_t> submitted{0}, submit_refused{0};
  std::atomic<std::uint64_t> drop_warnings{0};

  // Metrics (refresh_metrics under metrics_mu).
  std::mutex metrics_mu;
  struct ClassMetrics {
    Gauge *backlog_records, *backlog_bytes, *oldest_age, *eta, *rate;
    Mirror logged, acked, batches_sent, batches_acked, batches_refused, bytes_raw, bytes_sent;
    Mirror quota, disk, oldest, ttl, local_only, unparseable, redelivered;
  };
  std::map<std::string, ClassMetrics> class_metrics;
  Gauge* link_up = nullptr;
  Gauge* disk_bytes = nullptr;
  Mirror reconnects, policy_unparseable;
  std::vector<std::pair<Mirror, Mirror>> policy_mirrors;

  void post(std::function<void()> fn) { boost::asio::post(io, std::move(fn)); }

  Status open();
  void subscribe_routes();
  void on_route_message(std::size_t route, const mqtt::Publish& m, broker::DeliveryAck ack);
  // Policy + append; `on_done` gets the durable status. Immediate errors are returned.
  // `stored_id`: the broker's journal id of the delivery (0: none), see RedeliveryFilter.
  Status log_message(std::string_view cls, std::string_view topic, std::string_view payload,
                     std::uint64_t stored_id, std::function<void(Status)> on_done);
  void count_failure(std::string_view cls, const Status& s);
  void register_metrics();
  void refresh_metrics();
  void schedule_refresh();
  std::string status_json() const;
};

Status Uplink::Impl::open() {
  log::StoreOptions so;
  so.total_budget_bytes = options.disk_budget ? options.disk_budget : UINT64_MAX;
  for (const auto& spec : options.classes) {
    log::ClassOptions co;
    co.name = spec.name;
    co.priority = spec.priority;
    co.log.fsync = options.fsync;
    co.log.sync_interval = options.fsync_interval;
    co.log.ttl = spec.ttl;
    co.log.quota_bytes = spec.quota ? spec.quota : UINT64_MAX;
    co.log.quota_policy = spec.full;
    // Segments small enough that dropping old ones can make room in the total budget.
    co.log.segment_bytes = std::max<std::uint64_t>(
        4096, std::min<std::uint64_t>(options.segment_bytes, so.total_budget_bytes / 4));
    co.log.warn = [name = spec.name](std::string_view line) {
      spdlog::warn("uplink log {}: {}", name, line);
    };
    so.classes.push_back(std::move(co));
    counters.emplace(spec.name, std::make_unique<ClassCounters>());
  }
  for (std::size_t i = 0; i < options.routes.size(); ++i) {
    route_counters.push_back(std::make_unique<RouteCounters>());
  }
  GANGLION_RETURN_IF_ERROR(env.create_dirs(options.dir));
  auto st = log::LogStore::open(env, clock, options.dir, std::move(so));
  if (!st.ok()) return st.status().with_context("uplink log");
  store = std::move(*st);
  // A delivery the broker can still redeliver is at most the in-flight window plus what
  // arrived during one journal commit behind the newest record; read well beyond that.
  GANGLION_RETURN_IF_ERROR(
      redeliveries.scan(*store, 4 * std::uint64_t{options.local_inflight} + 16384));
  GANGLION_ASSIGN_OR_RETURN(policy, DataPolicy::create(options.policy));
  return Status::Ok();
}

void Uplink::Impl::count_failure(std::string_view cls, const Status& s) {
  auto it = counters.find(cls);
  if (it == counters.end()) return;
  if (s.code() == StatusCode::kResourceExhausted) {
    it->second->quota.fetch_add(1);
  } else {
    it->second->disk.fetch_add(1);
  }
  // The first drop, then one line per 1000, so a full disk does not flood the log.
  if (drop_warnings.fetch_add(1) % 1000 == 0) {
    spdlog::warn(
        "uplink: class {} cannot log a message, dropped (counted in "
        "ganglion_uplink_dropped_total): {}",
        cls, s.to_string());
  }
}

Status Uplink::Impl::log_message(std::string_view cls, std::string_view topic,
                                 std::string_view payload, std::uint64_t stored_id,
                                 std::function<void(Status)> on_done) {
  auto cit = counters.find(cls);
  if (cit == counters.end()) return NotFound("uplink: unknown class " + std::string(cls));
  PolicyOutcome out = policy->apply(topic, payload);
  if (out.verdict == Verdict::kLocalOnly) {
    cit->second->local_only.fetch_add(1);
    if (on_done) on_done(Status::Ok());
    return Status::Ok();
  }
  if (out.verdict == Verdict::kUnparseable) {
    cit->second->unparseable.fetch_add(1);
    if (on_done) on_done(Status::Ok());
    return Status::Ok();
  }
  GANGLION_ASSIGN_OR_RETURN(
      std::string record,
      encode_record(topic, out.rewritten ? std::string_view(out.payload) : payload, stored_id));
  if (stored_id != 0 && redeliveries.take(cls, stored_id, record)) {
    cit->second->redelivered.fetch_add(1);
    if (on_done) on_done(Status::Ok());
    return Status::Ok();
  }
  std::weak_ptr<Impl> weak = weak_from_this();
  auto r = store->append_async(
      cls, record, clock.wall_ms(),
      [weak, cls = std::string(cls), on_done = std::move(on_done)](std::uint64_t, const Status& s) {
        auto self = weak.lock();
        if (self) {
          if (s.ok()) {
            self->counters.find(cls)->second->logged.fetch_add(1);
            if (self->sender) self->sender->notify();
          } else {
            self->count_failure(cls, s);
          }
        }
        if (on_done) on_done(s);
      });
  if (!r.ok()) {
    count_failure(cls, r.status());
    return r.status();
  }
  return Status::Ok();
}

void Uplink::Impl::on_route_message(std::size_t route, const mqtt::Publish& m,
                                    broker::DeliveryAck ack) {
  if (stopped) return;  // unacknowledged: the persistent session delivers it again
  route_counters[route]->received.fetch_add(1);
  // Acknowledged to the broker once durable, or once dropped by policy/failure (counted):
  // a full disk must not stall devices and local processing.
  Status s = log_message(options.routes[route].cls, m.topic, m.payload.view(), ack.stored_id(),
                         [ack](Status) { ack(); });
  if (!s.ok()) ack();
}

void Uplink::Impl::subscribe_routes() {
  broker::ClientOptions lo;
  lo.client_id = options.local_client_id;
  lo.clean_start = false;
  lo.session_expiry = options.local_session_expiry;
  lo.receive_maximum = options.local_inflight;
  local = std::make_unique<broker::InProcessClient>(
      *broker, lo, [this](std::function<void()> fn) { post(std::move(fn)); });
  local->connect([](Status s, bool present) {
    if (!s.ok()) {
      spdlog::error("uplink: local connection refused: {}", s.message());
    } else {
      spdlog::debug("uplink: local session {}", present ? "resumed" : "new");
    }
  });
  std::weak_ptr<Impl> weak = weak_from_this();
  auto remaining = std::make_shared<std::atomic<std::size_t>>(options.routes.size());
  for (std::size_t i = 0; i < options.routes.size(); ++i) {
    local->subscribe_deferred(
        options.routes[i].filter, mqtt::QoS::kAtLeastOnce,
        [weak, i](const mqtt::Publish& m, broker::DeliveryAck ack) {
          if (auto self = weak.lock()) self->on_route_message(i, m, std::move(ack));
        },
        [weak, remaining, filter = options.routes[i].filter](Status s, mqtt::ReasonCode reason) {
          if (!s.ok() || static_cast<std::uint8_t>(reason) >= 0x80) {
            spdlog::error("uplink: local subscription {} refused: {} ({})", filter, s.message(),
                          mqtt::to_string(reason));
            return;
          }
          if (remaining->fetch_sub(1) == 1) {
            if (auto self = weak.lock()) self->routes_subscribed = true;
          }
        });
  }
  if (options.routes.empty()) routes_subscribed = true;
}

void Uplink::Impl::register_metrics() {
  if (!metrics) return;
  auto& m = *metrics;
  auto& backlog = m.gauge("ganglion_uplink_backlog_records",
                          "Records logged and not yet acknowledged upstream.", {"class"});
  auto& backlog_bytes =
      m.gauge("ganglion_uplink_backlog_bytes", "Approximate disk bytes of the backlog.", {"class"});
  auto& age = m.gauge("ganglion_uplink_oldest_record_age_seconds",
                      "Approximate age of the oldest unacknowledged record.", {"class"});
  auto& eta = m.gauge(
      "ganglion_uplink_drain_eta_seconds",
      "Backlog divided by the recent send rate; -1 when nothing is being acknowledged.", {"class"});
  auto& rate = m.gauge("ganglion_uplink_send_rate_records",
                       "Records acknowledged upstream per second, recent average.", {"class"});
  auto& logged = m.counter("ganglion_uplink_records_logged_total",
                           "Records made durable in the uplink log.", {"class"});
  auto& acked = m.counter("ganglion_uplink_records_acked_total",
                          "Records acknowledged by the receiver.", {"class"});
  auto& bsent = m.counter("ganglion_uplink_batches_sent_total",
                          "Batches published (first attempts).", {"class"});
  auto& backed =
      m.counter("ganglion_uplink_batches_acked_total", "Batches acknowledged (PUBACK).", {"class"});
  auto& brefused = m.counter("ganglion_uplink_batches_refused_total",
                             "Batches the receiver refused (published again later).", {"class"});
  auto& raw = m.counter("ganglion_uplink_bytes_raw_total",
                        "Batch bytes before compression (acknowledged batches).", {"class"});
  auto& comp = m.counter("ganglion_uplink_bytes_sent_total",
                         "Batch bytes after compression (acknowledged batches).", {"class"});
  auto& dropped = m.counter(
      "ganglion_uplink_dropped_total",
      "Messages not uplinked, by class and reason: quota (refused by the class quota or the disk "
      "budget), disk (write failed), oldest (unsent records deleted by drop-oldest), ttl (unsent "
      "records expired), local_only and unparseable (data policy), redelivered (the broker "
      "delivered again after a crash a message that was already logged).",
      {"class", "reason"});
  for (const auto& spec : options.classes) {
    const std::string& n = spec.name;
    ClassMetrics cm{&backlog.with({n}),
                    &backlog_bytes.with({n}),
                    &age.with({n}),
                    &eta.with({n}),
                    &rate.with({n}),
                    {&logged.with({n})},
                    {&acked.with({n})},
                    {&bsent.with({n})},
                    {&backed.with({n})},
                    {&brefused.with({n})},
                    {&raw.with({n})},
                    {&comp.with({n})},
                    {&dropped.with({n, "quota"})},
                    {&dropped.with({n, "disk"})},
                    {&dropped.with({n, "oldest"})},
                    {&dropped.with({n, "ttl"})},
                    {&dropped.with({n, "local_only"})},
                    {&dropped.with({n, "unparseable"})},
                    {&dropped.with({n, "redelivered"})}};
    class_metrics.emplace(n, cm);
  }
  link_up = &m.gauge("ganglion_uplink_link_up", "1 while connected to the uplink receiver.").get();
  disk_bytes = &m.gauge("ganglion_uplink_disk_bytes", "Disk bytes of the uplink log.").get();
  reconnects.counter =
      &m.counter("ganglion_uplink_reconnects_total", "Reconnect attempts to the receiver.").get();
  auto& pm =
      m.counter("ganglion_uplink_policy_matched_total",
                "Messages whose topic matched a data-policy entry.", {"kind", "filter", "path"});
  auto& pa = m.counter("ganglion_uplink_policy_applied_total",
                       "Messages dropped (local_only) or fields changed by a data-policy entry.",
                       {"kind", "filter", "path"});
  for (const auto& e : policy->stats()) {
    policy_mirrors.emplace_back(Mirror{&pm.with({e.kind, e.filter, e.path})},
                                Mirror{&pa.with({e.kind, e.filter, e.path})});
  }
  policy_unparseable.counter =
      &m.counter(
            "ganglion_uplink_policy_unparseable_total",
            "Messages a field rule applied to whose payload was not a JSON object (not uplinked).")
           .get();
}

void Uplink::Impl::refresh_metrics() {
  if (!metrics || !sender) return;
  std::lock_guard lock(metrics_mu);
  const SenderStats ss = sender->stats();
  for (const auto& c : ss.classes) {
    auto it = class_metrics.find(c.name);
    if (it == class_metrics.end()) continue;
    auto& cm = it->second;
    const auto& cc = *counters.at(c.name);
    cm.backlog_records->set(static_cast<double>(c.backlog_records));
    cm.backlog_bytes->set(static_cast<double>(c.backlog_bytes));
    cm.oldest_age->set(c.oldest_age_seconds);
    cm.eta->set(c.drain_eta_seconds);
    cm.rate->set(c.send_rate);
    cm.logged.set(cc.logged.load());
    cm.acked.set(c.records_acked);
    cm.batches_sent.set(c.batches_sent);
    cm.batches_acked.set(c.batches_acked);
    cm.batches_refused.set(c.batches_refused);
    cm.bytes_raw.set(c.bytes_raw);
    cm.bytes_sent.set(c.bytes_sent);
    cm.quota.set(cc.quota.load());
    cm.disk.set(cc.disk.load());
    cm.oldest.set(c.dropped_by_quota);
    cm.ttl.set(c.expired);
    cm.local_only.set(cc.local_only.load());
    cm.unparseable.set(cc.unparseable.load());
    cm.redelivered.set(cc.redelivered.load());
  }
  link_up->set(ss.link_up ? 1 : 0);
  disk_bytes->set(static_cast<double>(store->disk_bytes()));
  if (remote) reconnects.set(remote->stats().reconnects);
  const auto ps = policy->stats();
  for (std::size_t i = 0; i < ps.size() && i < policy_mirrors.size(); ++i) {
    policy_mirrors[i].first.set(ps[i].matched);
    policy_mirrors[i].second.set(ps[i].applied);
  }
  policy_unparseable.set(policy->unparseable());
}

void Uplink::Impl::schedule_refresh() {
  std::weak_ptr<Impl> weak = weak_from_this();
  timers.schedule_after(std::chrono::seconds(1), [weak] {
    auto self = weak.lock();
    if (!self || self->stopped) return;
    self->post([weak] {
      if (auto s = weak.lock(); s && !s->stopped) s->refresh_metrics();
    });
    self->schedule_refresh();
  });
}

std::string Uplink::Impl::status_json() const {
  const SenderStats ss = sender ? sender->stats() : SenderStats{};
  const client::ClientStats ls = remote ? remote->stats() : client::ClientStats{};
  std::string o = "{\"enabled\":true,\"node\":";
  append_json_string(options.node, o);
  o += ",\"url\":";
  append_json_string(options.remote.url, o);
  o += ",\"link\":";
  append_json_string(client::to_string(ls.state), o);
  o += ",\"connects\":" + std::to_string(ls.connects) +
       ",\"reconnects\":" + std::to_string(ls.reconnects);
  o += ",\"last_error\":";
  append_json_string(ls.last_error, o);
  o += ",\"blocked\":" + std::string(ss.blocked ? "true" : "false") + ",\"blocked_reason\":";
  append_json_string(ss.blocked_reason, o);
  o += ",\"region\":";
  append_json_string(options.policy.region, o);
  o += ",\"destination_region\":";
  append_json_string(options.destination_region, o);
  o += ",\"routes_subscribed\":" + std::string(routes_subscribed ? "true" : "false");
  o += ",\"disk_bytes\":" + std::to_string(store ? store->disk_bytes() : 0);
  o += ",\"disk_budget\":" + std::to_string(options.disk_budget);
  o += ",\"refused_by_budget\":" + std::to_string(store ? store->refused_by_budget() : 0);
  o += ",\"commit_failures\":" + std::to_string(ss.commit_failures);
  o += ",\"submitted\":" + std::to_string(submitted.load());
  o += ",\"submit_refused\":" + std::to_string(submit_refused.load());
  o += ",\"routes\":[";
  for (std::size_t i = 0; i < options.routes.size(); ++i) {
    if (i) o += ',';
    o += "{\"filter\":";
    append_json_string(options.routes[i].filter, o);
    o += ",\"class\":";
    append_json_string(options.routes[i].cls, o);
    o += ",\"received\":" + std::to_string(route_counters[i]->received.load()) + "}";
  }
  o += "],\"classes\":[";
  bool first = true;
  for (const auto& c : ss.classes) {
    if (!first) o += ',';
    first = false;
    const ClassSpec* spec = nullptr;
    for (const auto& s : options.classes) {
      if (s.name == c.name) spec = &s;
    }
    const auto& cc = *counters.at(c.name);
    char num[64];
    o += "{\"name\":";
    append_json_string(c.name, o);
    o += ",\"priority\":" + std::to_string(spec ? spec->priority : 0);
    o += ",\"backlog_records\":" + std::to_string(c.backlog_records);
    o += ",\"backlog_bytes\":" + std::to_string(c.backlog_bytes);
    std::snprintf(num, sizeof num, "%.3f", c.oldest_age_seconds);
    o += ",\"oldest_age_seconds\":" + std::string(num);
    std::snprintf(num, sizeof num, "%.1f", c.send_rate);
    o += ",\"send_rate\":" + std::string(num);
    std::snprintf(num, sizeof num, "%.1f", c.drain_eta_seconds);
    o += ",\"drain_eta_seconds\":" + std::string(num);
    o += ",\"consumer_offset\":" + std::to_string(c.consumer_offset);
    o += ",\"end_offset\":" + std::to_string(c.end_offset);
    o += ",\"inflight\":" + std::to_string(c.inflight);
    o += ",\"logged\":" + std::to_string(cc.logged.load());
    o += ",\"records_acked\":" + std::to_string(c.records_acked);
    o += ",\"batches_sent\":" + std::to_string(c.batches_sent);
    o += ",\"batches_acked\":" + std::to_string(c.batches_acked);
    o += ",\"batches_refused\":" + std::to_string(c.batches_refused);
    o += ",\"bytes_raw\":" + std::to_string(c.bytes_raw);
    o += ",\"bytes_sent\":" + std::to_string(c.bytes_sent);
    o += ",\"dropped\":{\"quota\":" + std::to_string(cc.quota.load()) +
         ",\"disk\":" + std::to_string(cc.disk.load()) +
         ",\"oldest\":" + std::to_string(c.dropped_by_quota) +
         ",\"ttl\":" + std::to_string(c.expired) +
         ",\"local_only\":" + std::to_string(cc.local_only.load()) +
         ",\"unparseable\":" + std::to_string(cc.unparseable.load()) +
         ",\"redelivered\":" + std::to_string(cc.redelivered.load()) + "}}";
  }
  o += "]}";
  return o;
}

Uplink::Uplink(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<Uplink>> Uplink::start(UplinkOptions options, Env& env, Clock& clock,
                                              broker::Broker* broker, MetricsRegistry* metrics) {
  if (options.classes.empty()) return InvalidArgument("uplink: no classes");
  for (const auto& r : options.routes) {
    bool known = false;
    for (const auto& c : options.classes) known |= c.name == r.cls;
    if (!known) return InvalidArgument("uplink route " + r.filter + ": unknown class " + r.cls);
  }
  auto impl = std::make_shared<Impl>(std::move(options), env, clock, broker, metrics);
  GANGLION_RETURN_IF_ERROR(impl->open());
  auto& o = impl->options;

  impl->remote = std::make_unique<client::MqttClient>(impl->io, clock, o.remote);
  impl->transport = std::make_unique<MqttTransport>(*impl->remote);
  Impl* raw = impl.get();
  impl->sender = std::make_unique<Sender>(
      *impl->store, *impl->transport, clock,
      [raw](std::function<void()> fn) { raw->post(std::move(fn)); }, o.sender);
  Sender* sender = impl->sender.get();
  impl->remote->on_state(
      [sender, url = o.remote.url](client::ConnectionState s, const Status& why) {
        sender->on_link(s == client::ConnectionState::kConnected);
        if (s == client::ConnectionState::kConnected) spdlog::info("uplink: connected to {}", url);
        if (s == client::ConnectionState::kBackingOff) {
          spdlog::warn("uplink: receiver {} unavailable: {}", url, why.message());
        }
      });
  if (Status s = impl->remote->start(); !s.ok()) {
    impl->store->close().ok();
    return s.with_context("uplink.url");
  }
  if (Status s = impl->policy->check_destination(o.destination_region); !s.ok()) {
    spdlog::error("uplink: not sending: {}", s.message());
    impl->sender->block(s.message());
  }
  impl->register_metrics();
  impl->work.emplace(impl->io.get_executor());
  impl->thread = std::thread([raw] { raw->io.run(); });
  impl->sender->start();
  if (broker) impl->post([raw] { raw->subscribe_routes(); });
  impl->schedule_refresh();
  spdlog::info("uplink to {} as {}: {} routes, {} classes, log in {}", o.remote.url,
               o.local_client_id, o.routes.size(), o.classes.size(), o.dir);
  return std::unique_ptr<Uplink>(new Uplink(std::move(impl)));
}

Uplink::~Uplink() { stop(); }

void Uplink::stop() {
  Impl& i = *impl_;
  if (i.stopped.exchange(true)) return;
  i.timers.close();
  if (i.sender) i.sender->stop();
  if (i.thread.joinable()) {
    // Upstream DISCONNECT and local DISCONNECT on the loop, then wait for them briefly.
    auto done = std::make_shared<std::promise<void>>();
    auto fut = done->get_future();
    i.post([&i, done] {
      if (i.remote) i.remote->stop();
      if (i.local) i.local->disconnect();
      boost::asio::post(i.io, [done] { done->set_value(); });
    });
    fut.wait_for(std::chrono::seconds(2));
    i.work.reset();
    i.io.stop();
    i.thread.join();
  }
  i.local.reset();  // before the broker goes
  if (i.store) {
    if (Status s = i.store->close(); !s.ok())
      spdlog::warn("uplink: closing the log: {}", s.message());
  }
}

Status Uplink::submit(std::string_view cls, const Event& event, std::function<void(Status)> done) {
  Impl& i = *impl_;
  if (i.stopped) return FailedPrecondition("uplink stopped");
  Status s = i.log_message(cls, event.topic(), event.payload(), 0, std::move(done));
  if (s.ok()) {
    i.submitted.fetch_add(1);
  } else {
    i.submit_refused.fetch_add(1);
  }
  return s;
}

void Uplink::add_http_routes(net::HttpRouter& router) {
  std::weak_ptr<Impl> weak = impl_;
  router.add("GET", "/uplink", [weak](const net::HttpRequest&) {
    auto self = weak.lock();
    if (!self) return net::HttpResponse::error(503, "uplink stopped");
    return net::HttpResponse::json(200, self->status_json());
  });
  router.add("GET", "/uplink/policy", [weak](const net::HttpRequest&) {
    auto self = weak.lock();
    if (!self) return net::HttpResponse::error(503, "uplink stopped");
    return net::HttpResponse::json(200, self->policy->to_json());
  });
}

std::string Uplink::status_json() const { return impl_->status_json(); }
std::string Uplink::policy_json() const { return impl_->policy->to_json(); }
SenderStats Uplink::sender_stats() const { return impl_->sender->stats(); }
client::ClientStats Uplink::link_stats() const { return impl_->remote->stats(); }
void Uplink::refresh_metrics() { impl_->refresh_metrics(); }

DropCounts Uplink::drops(std::string_view cls) const {
  DropCounts d;
  auto it = impl_->counters.find(cls);
  if (it == impl_->counters.end()) return d;
  d.quota = it->second->quota.load();
  d.disk = it->second->disk.load();
  d.local_only = it->second->local_only.load();
  d.unparseable = it->second->unparseable.load();
  return d;
}

}  // namespace ganglion::uplink
