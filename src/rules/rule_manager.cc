#include "rules/rule_manager.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <future>
#include <map>
#include <set>
#include <unordered_map>

#include "base/timer_scope.h"
#include "broker/broker.h"
#include "broker/inprocess_client.h"
#include "event/json.h"
#include "functions/topic_trigger.h"
#include "rules/rule_runtime.h"
#include "stream/lexer.h"
#include "stream/parser.h"
#include "uplink/uplink.h"

namespace ganglion::rules {
namespace {

constexpr const char* kStreamsFile = "streams.json";
constexpr const char* kRulesFile = "rules.json";
constexpr const char* kFunctionsFile = "functions.json";
constexpr const char* kStoppedManually = "canceled manually.";

// Puts the offending SQL line and a caret under "line L, column C: ..." messages that lack
// them (planner errors carry the position only).
Status positioned(std::string_view sql, const Status& s) {
  if (s.ok() || s.message().find('\n') != std::string::npos) return s;
  int line = 0, column = 0;
  if (std::sscanf(s.message().c_str(), "line %d, column %d: ", &line, &column) != 2) return s;
  const auto colon = s.message().find(": ");
  return Status(s.code(), sql::format_error(sql, sql::SourcePos{line, column},
                                            s.message().substr(colon + 2)));
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string iso_time(std::int64_t ms) {
  if (ms <= 0) return "";
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

Value function_spec_to_value(const functions::FunctionSpec& s) {
  ValueObject o;
  o.append("name", s.name);
  if (!s.file.empty()) o.append("file", s.file);
  o.append("source", s.source);
  if (s.trigger) {
    o.append("trigger", Value(ValueObject{{"filter", s.trigger->filter},
                                          {"qos", static_cast<int>(s.trigger->qos)}}));
  }
  const auto& l = s.limits;
  o.append("limits", Value(ValueObject{
                         {"instruction_budget", static_cast<long long>(l.instruction_budget)},
                         {"memory_bytes", static_cast<long long>(l.memory_bytes)},
                         {"state_max_keys", static_cast<long long>(l.state_max_keys)},
                         {"state_max_bytes", static_cast<long long>(l.state_max_bytes)},
                         {"max_emits", static_cast<long long>(l.max_emits)},
                         {"max_emit_bytes", static_cast<long long>(l.max_emit_bytes)},
                         {"log_lines_per_second", l.log_lines_per_second},
                     }));
  return Value(std::move(o));
}

// A stream or table as the manager keeps it.
struct StreamEntry {
  std::string name;
  bool table = false;
  std::string sql;         // as given (persisted, shown)
  std::string datasource;  // MQTT topic filter
  mqtt::QoS qos = mqtt::QoS::kAtLeastOnce;
  Value description;  // eKuiper's describe document
};

// Where each source filter's messages go: (runtime, index of the source in its query).
struct Routing {
  std::unordered_map<std::string, std::vector<std::pair<std::shared_ptr<RuleRuntime>, std::size_t>>>
      by_filter;
};

// A Prometheus counter fed from a runtime's counter that restarts at 0 with each run.
struct Mirror {
  Counter* counter = nullptr;
  std::uint64_t seen = 0;
  void set(std::uint64_t v) {
    if (v > seen) counter->inc(v - seen);
    seen = v;
  }
};

}  // namespace

struct RuleManager::Rule {
  RuleSpec spec;
  bool running = false;  // wanted state (persisted)
  std::string stop_reason = kStoppedManually;
  std::shared_ptr<RuleRuntime> runtime;  // while running
  // Metrics.
  Mirror in, out, dropped_queue, dropped_decode, dropped_late, dropped_overflow, errors,
      sink_errors, filtered;
  Gauge* running_gauge = nullptr;
  Gauge* queue_gauge = nullptr;
  Gauge* memory_gauge = nullptr;
  Histogram* latency = nullptr;
  void reset_mirrors() {
    for (Mirror* m : {&in, &out, &dropped_queue, &dropped_decode, &dropped_late, &dropped_overflow,
                      &errors, &sink_errors, &filtered}) {
      m->seen = 0;
    }
  }
};

struct RuleManager::Impl : std::enable_shared_from_this<RuleManager::Impl> {
  Impl(RuleManagerParts p, RuleManagerOptions o, functions::FunctionRegistry& f)
      : parts(std::move(p)), options(std::move(o)), functions(f), timers(*parts.clock) {}

  RuleManagerParts parts;
  RuleManagerOptions options;
  functions::FunctionRegistry& functions;

  mutable std::mutex mu;
  bool opened = false;                                              // GUARDED_BY(mu)
  bool stopped = false;                                             // GUARDED_BY(mu)
  stream::Catalog catalog;                                          // GUARDED_BY(mu)
  std::map<std::string, StreamEntry, std::less<>> streams;          // GUARDED_BY(mu)
  std::map<std::string, std::unique_ptr<Rule>, std::less<>> rules;  // GUARDED_BY(mu)
  std::map<std::string, mqtt::QoS> subscribed;                      // GUARDED_BY(mu)
  bool restoring = false;                                           // GUARDED_BY(mu)

  std::unique_ptr<SerialExecutor> source_executor;
  std::unique_ptr<broker::InProcessClient> source_client;
  std::mutex fn_mu;  // guards function_executor against stop() (the registry's listener
                     // runs under the manager's lock during restore, so it cannot take `mu`)
  std::unique_ptr<SerialExecutor> function_executor;  // GUARDED_BY(fn_mu) for posting
  std::unique_ptr<broker::InProcessClient> function_client;
  // Only touched on function_executor (or after it stopped).
  std::map<std::string, std::unique_ptr<functions::TopicTrigger>> triggers;

  mutable std::mutex routing_mu;
  std::shared_ptr<const Routing> routing = std::make_shared<Routing>();  // GUARDED_BY(routing_mu)

  TimerScope timers;

  struct Families {
    Family<Counter>* in;
    Family<Counter>* out;
    Family<Counter>* dropped;
    Family<Counter>* errors;
    Family<Counter>* sink_errors;
    Family<Counter>* filtered;
    Family<Gauge>* running;
    Family<Gauge>* queue;
    Family<Gauge>* memory;
    Family<Histogram>* latency;
  } fam{};

  // --- helpers (REQUIRES: mu held unless said otherwise) ---
  std::shared_ptr<const Routing> current_routing() const {
    std::lock_guard lock(routing_mu);
    return routing;
  }
  void register_metrics();
  Rule& add_rule_entry(RuleSpec spec);
  Result<std::shared_ptr<sql::FunctionRegistry>> sql_functions_for();
  Status validate_rule(const RuleSpec& spec);
  Status start_runtime(Rule& rule);
  // Stops the rule's runtime; `reroute` false when the caller rebuilds the routing itself
  // (a restart keeps the source subscriptions in place).
  void stop_runtime(Rule& rule, std::string reason, bool reroute = true);
  void rebuild_routing();
  void on_message(const std::string& filter, const mqtt::Publish& m);
  std::vector<std::string> rules_reading(std::string_view stream) const;
  Result<StreamEntry> parse_stream(std::string_view sql, bool table) const;
  Status save_streams();
  Status save_rules();
  Status save_functions();
  Status restore();
  void refresh_metrics_locked();
  void schedule_refresh();
  void on_function_changed(const std::string& name, const functions::FunctionSpec* spec);
  std::string status_json(const Rule& rule) const;
};

// ------------------------------------------------------------------------------------------
// Construction and lifecycle

RuleManager::RuleManager(RuleManagerParts parts, RuleManagerOptions options)
    : functions_(*parts.clock, *parts.metrics),
      impl_(std::make_shared<Impl>(std::move(parts), std::move(options), functions_)) {
  impl_->register_metrics();
}

RuleManager::~RuleManager() { stop(); }

void RuleManager::Impl::register_metrics() {
  auto& m = *parts.metrics;
  fam.in = &m.counter("ganglion_rule_records_in_total",
                      "Events offered to the rule by its sources.", {"rule"});
  fam.out = &m.counter("ganglion_rule_records_out_total", "Rows the rule emitted to its sinks.",
                       {"rule"});
  fam.dropped = &m.counter(
      "ganglion_rule_dropped_total",
      "Events the rule skipped, by reason: queue_full (its input queue, bufferLength, was "
      "full), decode (payload not JSON or not fitting the stream's schema), late (older "
      "than the watermark), overflow (window bounds).",
      {"rule", "reason"});
  fam.errors = &m.counter("ganglion_rule_errors_total",
                          "Evaluation errors (type errors, division by zero...).", {"rule"});
  fam.sink_errors = &m.counter("ganglion_rule_sink_errors_total",
                               "Failed sink deliveries (after retries).", {"rule"});
  fam.filtered =
      &m.counter("ganglion_rule_filtered_total", "Rows rejected by WHERE or HAVING.", {"rule"});
  fam.running = &m.gauge("ganglion_rule_running", "1 while the rule runs.", {"rule"});
  fam.queue =
      &m.gauge("ganglion_rule_queue_length", "Events waiting in the rule's input queue.", {"rule"});
  fam.memory =
      &m.gauge("ganglion_rule_memory_bytes",
               "Payload bytes queued for the rule (window state is not counted).", {"rule"});
  fam.latency =
      &m.histogram("ganglion_rule_process_latency_seconds",
                   "Time from an event entering the rule's queue to the end of its processing.",
                   exponential_buckets(1e-5, 4, 10), {"rule"});
}

Status RuleManager::open() {
  auto& impl = *impl_;
  std::weak_ptr<Impl> weak = impl_;
  {
    std::lock_guard lock(impl.mu);
    if (impl.opened) return FailedPrecondition("rule manager already open");
    impl.opened = true;
    if (!impl.options.dir.empty())
      GANGLION_RETURN_IF_ERROR(impl.parts.env->create_dirs(impl.options.dir));

    impl.source_executor = impl.parts.executors("sources");
    broker::ClientOptions so;
    so.client_id = "ganglion-rules";
    so.receive_maximum = 65535;
    impl.source_client = std::make_unique<broker::InProcessClient>(
        *impl.parts.broker, so, impl.source_executor->as_client_executor());
    impl.source_client->connect([](Status s, bool) {
      if (!s.ok()) spdlog::error("rules: the broker refused the sources client: {}", s.message());
    });

    std::lock_guard fn_lock(impl.fn_mu);
    impl.function_executor = impl.parts.executors("functions");
    broker::ClientOptions fo;
    fo.client_id = "ganglion-functions";
    impl.function_client = std::make_unique<broker::InProcessClient>(
        *impl.parts.broker, fo, impl.function_executor->as_client_executor());
    impl.function_client->connect([](Status s, bool) {
      if (!s.ok())
        spdlog::error("functions: the broker refused the triggers client: {}", s.message());
    });
  }
  functions_.set_listener([weak](const std::string& name, const functions::FunctionSpec* spec) {
    if (auto self = weak.lock()) self->on_function_changed(name, spec);
  });
  {
    std::lock_guard lock(impl.mu);
    GANGLION_RETURN_IF_ERROR(impl.restore());
  }
  impl.schedule_refresh();
  return Status::Ok();
}

void RuleManager::stop() {
  auto& impl = *impl_;
  impl.timers.close();  // before the lock: a refresh in progress takes it
  std::lock_guard lock(impl.mu);
  if (impl.stopped) return;
  impl.stopped = true;
  for (auto& [id, rule] : impl.rules) {
    if (rule->runtime) {
      rule->runtime->teardown();
      rule->runtime.reset();
      if (rule->running_gauge) rule->running_gauge->set(0);
    }
  }
  {
    std::lock_guard rlock(impl.routing_mu);
    impl.routing = std::make_shared<Routing>();
  }
  if (impl.source_executor) impl.source_executor->stop();
  impl.source_client.reset();
  impl.source_executor.reset();
  std::lock_guard fn_lock(impl.fn_mu);
  if (impl.function_executor) impl.function_executor->stop();
  impl.triggers.clear();  // the executor runs no more tasks
  impl.function_client.reset();
  impl.function_executor.reset();
}

Result<std::unique_ptr<RuleManager>> RuleManager::start(const Config& config, Env& env,
                                                        Clock& clock, broker::Broker& broker,
                                                        uplink::Uplink* uplink,
                                                        MetricsRegistry& metrics) {
  RuleManagerParts parts;
  parts.env = &env;
  parts.clock = &clock;
  parts.broker = &broker;
  parts.metrics = &metrics;
  parts.executors = [](const std::string& name) { return make_worker_thread(name); };
  parts.http = make_http_sender();
  if (uplink != nullptr) {
    parts.uplink = [uplink](std::string_view cls, const Event& e) {
      return uplink->submit(cls, e);
    };
  }
  RuleManagerOptions options;
  options.dir = join_path(config.str("data.dir"), "rules");
  auto manager = std::make_unique<RuleManager>(std::move(parts), std::move(options));
  GANGLION_RETURN_IF_ERROR(manager->open());
  return manager;
}

// ------------------------------------------------------------------------------------------
// Streams

Result<StreamEntry> RuleManager::Impl::parse_stream(std::string_view sql, bool table) const {
  GANGLION_ASSIGN_OR_RETURN(sql::Statement st, sql::parse_statement(sql));
  auto* create = std::get_if<sql::CreateStreamStatement>(&st);
  const char* what = table ? "CREATE TABLE" : "CREATE STREAM";
  if (create == nullptr)
    return InvalidArgument(sql::format_error(sql, {1, 1}, std::string("expected ") + what));
  if (create->is_table != table) {
    return InvalidArgument(sql::format_error(
        sql, {1, 1}, std::string("expected ") + what + " on /" + (table ? "tables" : "streams")));
  }
  GANGLION_RETURN_IF_ERROR(positioned(sql, stream::make_stream_def(*create).status()));
  StreamEntry e;
  e.name = create->name;
  e.table = table;
  e.sql = std::string(sql);
  const std::string* ds = create->option("DATASOURCE");
  e.datasource = ds != nullptr && !ds->empty() ? *ds : create->name;
  if (const std::string* q = create->option("QOS")) {
    if (*q == "0") {
      e.qos = mqtt::QoS::kAtMostOnce;
    } else if (*q != "1") {
      return InvalidArgument(sql::format_error(sql, create->pos, "QOS must be 0 or 1"));
    }
  }
  ValueObject fields_doc;
  ValueArray fields;
  for (const auto& f : create->fields) {
    fields.push_back(
        Value(ValueObject{{"Name", f.name}, {"FieldType", lower(sql::to_sql(*f.type))}}));
  }
  ValueObject opts;
  for (const auto& [k, v] : create->options) opts.append(k, v);
  e.description = Value(ValueObject{{"Name", e.name},
                                    {"StreamType", table ? 1 : 0},
                                    {"StreamFields", Value(std::move(fields))},
                                    {"Options", Value(std::move(opts))},
                                    {"Statement", e.sql}});
  return e;
}

Status RuleManager::create_stream(std::string_view create_sql, bool table) {
  auto& impl = *impl_;
  std::lock_guard lock(impl.mu);
  GANGLION_ASSIGN_OR_RETURN(StreamEntry e, impl.parse_stream(create_sql, table));
  if (impl.streams.count(e.name) != 0) {
    return AlreadyExists(std::string(table ? "table " : "stream ") + e.name + " already exists");
  }
  GANGLION_RETURN_IF_ERROR(positioned(create_sql, impl.catalog.add_sql(create_sql)));
  impl.streams.emplace(e.name, std::move(e));
  return impl.save_streams();
}

std::vector<std::string> RuleManager::Impl::rules_reading(std::string_view stream) const {
  std::vector<std::string> out;
  for (const auto& [id, rule] : rules) {
    // A rule reads a stream when its SQL plans against it; checking the parsed FROM/JOINs
    // is enough (and works for stopped rules too).
    auto st = sql::parse_statement(rule->spec.sql);
    if (!st.ok()) continue;
    if (auto* sel = std::get_if<sql::SelectStatement>(&*st)) {
      bool uses = sel->from.name == stream;
      for (const auto& j : sel->joins) uses = uses || j.table.name == stream;
      if (uses) out.push_back(id);
    }
  }
  return out;
}

Status RuleManager::update_stream(std::string_view name, std::string_view create_sql, bool table) {
  auto& impl = *impl_;
  std::lock_guard lock(impl.mu);
  auto it = impl.streams.find(name);
  if (it == impl.streams.end() || it->second.table != table) {
    return NotFound(std::string(table ? "table " : "stream ") + std::string(name) + " not found");
  }
  GANGLION_ASSIGN_OR_RETURN(StreamEntry e, impl.parse_stream(create_sql, table));
  if (e.name != name)
    return InvalidArgument("the statement defines " + e.name + ", not " + std::string(name));
  stream::Catalog next = impl.catalog;
  next.drop(name);
  GANGLION_RETURN_IF_ERROR(positioned(create_sql, next.add_sql(create_sql)));
  impl.catalog = std::move(next);
  it->second = std::move(e);
  // Rules reading it restart on the new definition (or stop with the planning error).
  for (const auto& id : impl.rules_reading(name)) {
    Rule& r = *impl.rules.find(id)->second;
    if (!r.runtime) continue;
    impl.stop_runtime(r, kStoppedManually, false);
    if (Status s = impl.start_runtime(r); !s.ok()) r.stop_reason = s.message();
  }
  impl.rebuild_routing();
  return impl.save_streams();
}

Status RuleManager::drop_stream(std::string_view name, bool table) {
  auto& impl = *impl_;
  std::lock_guard lock(impl.mu);
  auto it = impl.streams.find(name);
  if (it == impl.streams.end() || it->second.table != table) {
    return NotFound(std::string(table ? "table " : "stream ") + std::string(name) + " not found");
  }
  if (auto users = impl.rules_reading(name); !users.empty()) {
    std::string list;
    for (const auto& u : users) list += (list.empty() ? "" : ", ") + u;
    return FailedPrecondition(std::string(table ? "table " : "stream ") + std::string(name) +
                              " is used by rules: " + list + " (delete them first)");
  }
  impl.catalog.drop(name);
  impl.streams.erase(it);
  return impl.save_streams();
}

std::vector<std::string> RuleManager::list_streams(bool table) const {
  std::lock_guard lock(impl_->mu);
  std::vector<std::string> out;
  for (const auto& [name, e] : impl_->streams) {
    if (e.table == table) out.push_back(name);
  }
  return out;
}

Result<std::string> RuleManager::describe_stream(std::string_view name, bool table) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->streams.find(name);
  if (it == impl_->streams.end() || it->second.table != table) {
    return NotFound(std::string(table ? "table " : "stream ") + std::string(name) + " not found");
  }
  return to_json(it->second.description);
}

// ------------------------------------------------------------------------------------------
// Rules

Result<std::shared_ptr<sql::FunctionRegistry>> RuleManager::Impl::sql_functions_for() {
  auto infos = functions.list();
  if (infos.empty()) return std::shared_ptr<sql::FunctionRegistry>();
  auto reg = std::make_shared<sql::FunctionRegistry>(sql::FunctionRegistry::builtins());
  for (const auto& info : infos) {
    if (reg->find(info.name) != nullptr) continue;  // builtins win
    sql::FunctionDef def;
    def.name = lower(info.name);
    def.kind = sql::FunctionKind::kScalar;
    def.min_args = 0;
    def.max_args = sql::kVariadic;
    def.handles_null = true;
    def.volatile_result = true;
    // Looked up by name on every call: a redefinition takes effect at once.
    def.closure = [reg_ptr = &functions, name = info.name](
                      const sql::CallContext&, std::span<const Value> args, Value& out) -> Status {
      auto r = reg_ptr->call_scalar(name, args);
      if (!r.ok()) return InvalidArgument(name + ": " + r.status().message());
      out = std::move(*r);
      return Status::Ok();
    };
    (void)reg->add(std::move(def));
  }
  return reg;
}

Status RuleManager::Impl::validate_rule(const RuleSpec& spec) {
  GANGLION_ASSIGN_OR_RETURN(sql::Statement st, sql::parse_statement(spec.sql));
  auto* select = std::get_if<sql::SelectStatement>(&st);
  if (select == nullptr)
    return InvalidArgument(sql::format_error(spec.sql, {1, 1}, "expected a SELECT statement"));
  GANGLION_ASSIGN_OR_RETURN(auto fns, sql_functions_for());
  stream::QueryOptions qo;
  qo.late_tolerance_ms = spec.options.late_tolerance_ms;
  qo.functions = fns.get();
  auto q = stream::plan(*select, catalog, *parts.clock, qo, [](const stream::Emission&) {});
  if (!q.ok()) return positioned(spec.sql, q.status());
  SinkContext ctx;
  ctx.rule_id = spec.id;
  ctx.clock = parts.clock;
  ctx.functions = &functions;
  ctx.uplink = parts.uplink;
  ctx.http = parts.http.get();
  for (std::size_t i = 0; i < spec.actions.size(); ++i) {
    GANGLION_RETURN_IF_ERROR(make_sink(spec.actions[i], i, ctx).status());
  }
  return Status::Ok();
}

RuleManager::Rule& RuleManager::Impl::add_rule_entry(RuleSpec spec) {
  auto rule = std::make_unique<Rule>();
  const std::string id = spec.id;
  rule->spec = std::move(spec);
  rule->in.counter = &fam.in->with({id});
  rule->out.counter = &fam.out->with({id});
  rule->dropped_queue.counter = &fam.dropped->with({id, "queue_full"});
  rule->dropped_decode.counter = &fam.dropped->with({id, "decode"});
  rule->dropped_late.counter = &fam.dropped->with({id, "late"});
  rule->dropped_overflow.counter = &fam.dropped->with({id, "overflow"});
  rule->errors.counter = &fam.errors->with({id});
  rule->sink_errors.counter = &fam.sink_errors->with({id});
  rule->filtered.counter = &fam.filtered->with({id});
  rule->running_gauge = &fam.running->with({id});
  rule->queue_gauge = &fam.queue->with({id});
  rule->memory_gauge = &fam.memory->with({id});
  rule->latency = &fam.latency->with({id});
  Rule& ref = *rule;
  rules[id] = std::move(rule);
  return ref;
}

Status RuleManager::Impl::start_runtime(Rule& rule) {
  if (stopped) return FailedPrecondition("the rule manager is stopped");
  if (rule.runtime) return Status::Ok();
  const RuleSpec& spec = rule.spec;
  auto rt = std::make_shared<RuleRuntime>(spec.id, *parts.clock, spec.options.buffer_length,
                                          rule.latency);
  GANGLION_ASSIGN_OR_RETURN(sql::Statement st, sql::parse_statement(spec.sql));
  auto* select = std::get_if<sql::SelectStatement>(&st);
  if (select == nullptr) return InvalidArgument("expected a SELECT statement");
  GANGLION_ASSIGN_OR_RETURN(rt->sql_functions, sql_functions_for());
  stream::QueryOptions qo;
  qo.late_tolerance_ms = spec.options.late_tolerance_ms;
  qo.functions = rt->sql_functions.get();
  RuleRuntime* raw = rt.get();
  auto q = stream::plan(*select, catalog, *parts.clock, qo,
                        [raw](const stream::Emission& e) { raw->on_emission(e); });
  if (!q.ok()) return positioned(spec.sql, q.status());

  rt->executor = parts.executors(spec.id);
  broker::ClientOptions co;
  co.client_id = "ganglion-rule-" + spec.id;
  rt->client = std::make_unique<broker::InProcessClient>(*parts.broker, co,
                                                         rt->executor->as_client_executor());
  SinkContext ctx;
  ctx.rule_id = spec.id;
  ctx.clock = parts.clock;
  ctx.client = rt->client.get();
  ctx.functions = &functions;
  ctx.uplink = parts.uplink;
  ctx.http = parts.http.get();
  for (std::size_t i = 0; i < spec.actions.size(); ++i) {
    auto sink = make_sink(spec.actions[i], i, ctx);
    if (!sink.ok()) {
      rt->teardown();
      return sink.status();
    }
    rt->sinks.push_back(std::move(*sink));
  }
  rt->query = std::move(*q);
  rt->start();
  rule.reset_mirrors();
  rule.runtime = std::move(rt);
  rule.stop_reason.clear();
  rule.running_gauge->set(1);
  return Status::Ok();
}

void RuleManager::Impl::stop_runtime(Rule& rule, std::string reason, bool reroute) {
  rule.stop_reason = std::move(reason);
  if (!rule.runtime) return;
  refresh_metrics_locked();  // the Prometheus counters keep this run's final counts
  // Out of the routing first, so the sources stop offering to it.
  auto rt = std::move(rule.runtime);
  if (reroute) {
    rebuild_routing();
  } else {
    std::lock_guard lock(routing_mu);
    auto next = std::make_shared<Routing>(*routing);
    for (auto& [filter, targets] : next->by_filter) {
      std::erase_if(targets, [&](const auto& t) { return t.first == rt; });
    }
    routing = next;
  }
  rt->teardown();
  rule.running_gauge->set(0);
  rule.queue_gauge->set(0);
  rule.memory_gauge->set(0);
}

void RuleManager::Impl::rebuild_routing() {
  auto next = std::make_shared<Routing>();
  std::map<std::string, mqtt::QoS> wanted;
  for (const auto& [id, rule] : rules) {
    if (!rule->runtime) continue;
    const auto& sources = rule->runtime->query->sources();
    for (std::size_t i = 0; i < sources.size(); ++i) {
      auto it = streams.find(sources[i]);
      if (it == streams.end()) continue;
      next->by_filter[it->second.datasource].emplace_back(rule->runtime, i);
      auto& q = wanted[it->second.datasource];
      q = std::max(q, it->second.qos);
    }
  }
  {
    std::lock_guard lock(routing_mu);
    routing = next;
  }
  if (!source_client) return;
  std::weak_ptr<Impl> weak = weak_from_this();
  std::vector<std::future<void>> acks;
  for (const auto& [filter, qos] : wanted) {
    auto it = subscribed.find(filter);
    if (it != subscribed.end() && it->second == qos) continue;
    auto acked = std::make_shared<std::promise<void>>();
    acks.push_back(acked->get_future());
    source_client->subscribe(
        filter, qos,
        [weak, filter = filter](const mqtt::Publish& m) {
          if (auto self = weak.lock()) self->on_message(filter, m);
        },
        [filter = filter, acked](Status s, mqtt::ReasonCode reason) {
          if (!s.ok() || static_cast<std::uint8_t>(reason) >= 0x80) {
            spdlog::error("rules: subscribing to {} failed: {} (reason 0x{:02x})", filter,
                          s.ok() ? "refused" : s.message(), static_cast<unsigned>(reason));
          }
          acked->set_value();
        });
    subscribed[filter] = qos;
  }
  for (auto it = subscribed.begin(); it != subscribed.end();) {
    if (wanted.count(it->first) == 0) {
      source_client->unsubscribe(it->first);
      it = subscribed.erase(it);
    } else {
      ++it;
    }
  }
  // So that what is published after a create/start call returns reaches the rule. The
  // SUBACK comes on the sources executor, which never takes `mu`; bounded anyway.
  if (options.subscribe_wait > Duration::zero()) {
    const auto deadline = std::chrono::steady_clock::now() + options.subscribe_wait;
    for (auto& f : acks) {
      if (f.wait_until(deadline) != std::future_status::ready) {
        spdlog::warn(
            "rules: no SUBACK for a stream's source within {} ms",
            std::chrono::duration_cast<std::chrono::milliseconds>(options.subscribe_wait).count());
        break;
      }
    }
  }
}

void RuleManager::Impl::on_message(const std::string& filter, const mqtt::Publish& m) {
  auto r = current_routing();
  auto it = r->by_filter.find(filter);
  if (it == r->by_filter.end()) return;
  EventHeaders h;
  if (m.properties.content_type) h.content_type = *m.properties.content_type;
  h.qos = static_cast<std::uint8_t>(m.qos);
  Event ev(m.topic, parts.clock->wall_ms(),
           m.payload.shared() ? m.payload.shared() : std::make_shared<const std::string>(),
           std::move(h));
  for (const auto& [rt, source] : it->second) rt->offer(source, ev);
}

Status RuleManager::create_rule(RuleSpec spec) {
  auto& impl = *impl_;
  std::lock_guard lock(impl.mu);
  if (impl.rules.count(spec.id) != 0) return AlreadyExists("rule " + spec.id + " already exists");
  GANGLION_RETURN_IF_ERROR(impl.validate_rule(spec));
  const bool start = spec.triggered;
  Rule& rule = impl.add_rule_entry(std::move(spec));
  if (start) {
    rule.running = true;
    if (Status s = impl.start_runtime(rule); !s.ok()) {
      impl.rules.erase(rule.spec.id);
      return s;
    }
    impl.rebuild_routing();
  }
  return impl.save_rules();
}

Status RuleManager::update_rule(RuleSpec spec) {
  auto& impl = *impl_;
  std::lock_guard lock(impl.mu);
  auto it = impl.rules.find(spec.id);
  if (it == impl.rules.end()) return NotFound("rule " + spec.id + " not found");
  GANGLION_RETURN_IF_ERROR(impl.validate_rule(spec));
  Rule& rule = *it->second;
  const bool was_running = rule.running;
  impl.stop_runtime(rule, kStoppedManually, false);
  rule.spec = std::move(spec);
  if (was_running) {
    if (Status s = impl.start_runtime(rule); !s.ok()) rule.stop_reason = s.message();
  }
  impl.rebuild_routing();
  return impl.save_rules();
}

Status RuleManager::delete_rule(std::string_view id) {
  auto& impl = *impl_;
  std::lock_guard lock(impl.mu);
  auto it = impl.rules.find(id);
  if (it == impl.rules.end()) return NotFound("rule " + std::string(id) + " not found");
  impl.stop_runtime(*it->second, kStoppedManually);
  impl.rules.erase(it);
  return impl.save_rules();
}

Status RuleManager::start_rule(std::string_view id) {
  auto& impl = *impl_;
  std::lock_guard lock(impl.mu);
  auto it = impl.rules.find(id);
  if (it == impl.rules.end()) return NotFound("rule " + std::string(id) + " not found");
  Rule& rule = *it->second;
  if (Status s = impl.start_runtime(rule); !s.ok()) {
    rule.stop_reason = s.message();
    return s;
  }
  impl.rebuild_routing();
  if (!rule.running) {
    rule.running = true;
    return impl.save_rules();
  }
  return Status::Ok();
}

Status RuleManager::stop_rule(std::string_view id) {
  auto& impl = *impl_;
  std::lock_guard lock(impl.mu);
  auto it = impl.rules.find(id);
  if (it == impl.rules.end()) return NotFound("rule " + std::string(id) + " not found");
  impl.stop_runtime(*it->second, kStoppedManually);
  it->second->running = false;
  return impl.save_rules();
}

Status RuleManager::restart_rule(std::string_view id) {
  auto& impl = *impl_;
  std::lock_guard lock(impl.mu);
  auto it = impl.rules.find(id);
  if (it == impl.rules.end()) return NotFound("rule " + std::string(id) + " not found");
  Rule& rule = *it->second;
  impl.stop_runtime(rule, kStoppedManually, false);
  if (Status s = impl.start_runtime(rule); !s.ok()) {
    rule.stop_reason = s.message();
    impl.rebuild_routing();
    return s;
  }
  impl.rebuild_routing();
  if (!rule.running) {
    rule.running = true;
    return impl.save_rules();
  }
  return Status::Ok();
}

std::vector<RuleSummary> RuleManager::list_rules() const {
  std::lock_guard lock(impl_->mu);
  std::vector<RuleSummary> out;
  for (const auto& [id, rule] : impl_->rules) {
    out.push_back({id, rule->runtime ? "Running" : "Stopped: " + rule->stop_reason});
  }
  return out;
}

Result<RuleSpec> RuleManager::rule(std::string_view id) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->rules.find(id);
  if (it == impl_->rules.end()) return NotFound("rule " + std::string(id) + " not found");
  return it->second->spec;
}

bool RuleManager::running(std::string_view id) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->rules.find(id);
  return it != impl_->rules.end() && it->second->runtime != nullptr;
}

std::size_t RuleManager::queued(std::string_view id) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->rules.find(id);
  return it != impl_->rules.end() && it->second->runtime ? it->second->runtime->queued() : 0;
}

// ------------------------------------------------------------------------------------------
// Status and metrics

std::string RuleManager::Impl::status_json(const Rule& rule) const {
  ValueObject o;
  const auto& rt = rule.runtime;
  if (!rt) {
    o.append("status", "stopped");
    o.append("message", rule.stop_reason);
    return to_json(Value(std::move(o)));
  }
  const stream::QueryMetrics q = rt->query->metrics();
  const auto& sources = rt->query->sources();
  auto n = [](std::uint64_t v) { return Value(static_cast<long long>(v)); };
  o.append("status", "running");
  for (std::size_t i = 0; i < sources.size(); ++i) {
    const std::string p = "source_" + sources[i] + "_0_";
    const std::uint64_t in = rt->source_in(i);
    o.append(p + "records_in_total", n(in + (i == 0 ? rt->dropped_queue_full() : 0)));
    o.append(p + "records_out_total", n(in));
    o.append(p + "process_latency_us", n(static_cast<std::uint64_t>(rt->last_latency_us())));
    o.append(p + "buffer_length", n(rt->queued()));
    o.append(p + "last_invocation", iso_time(rt->last_invocation_ms()));
    o.append(p + "exceptions_total", n(i == 0 ? q.dropped_decode : 0));
    o.append(p + "last_exception", i == 0 && q.dropped_decode > 0 ? q.last_error : "");
  }
  const std::uint64_t decoded =
      q.records_in - std::min(q.records_in, q.dropped_decode + q.dropped_late);
  o.append("op_1_decode_0_records_in_total", n(q.records_in));
  o.append("op_1_decode_0_records_out_total", n(decoded));
  o.append("op_1_decode_0_exceptions_total", n(q.dropped_decode));
  o.append("op_2_filter_0_records_in_total", n(decoded));
  o.append("op_2_filter_0_records_out_total", n(decoded - std::min(decoded, q.filtered)));
  o.append("op_3_project_0_records_out_total", n(q.records_out));
  o.append("op_3_project_0_exceptions_total", n(q.errors));
  o.append("op_3_project_0_last_exception", q.errors > 0 ? q.last_error : "");
  for (std::size_t i = 0; i < rt->sinks.size(); ++i) {
    const Sink& s = *rt->sinks[i];
    const SinkStats& st = s.stats();
    const std::string p = "sink_" + s.type() + "_" + std::to_string(i) + "_0_";
    o.append(p + "records_in_total", n(st.records_in.load()));
    o.append(p + "records_out_total", n(st.records_out.load()));
    o.append(p + "exceptions_total", n(st.errors.load()));
    o.append(p + "last_exception", st.last_error());
    o.append(p + "last_exception_time", iso_time(st.last_error_ms()));
    o.append(p + "dropped_total", n(st.dropped.load()));
    o.append(p + "retries_total", n(st.retries.load()));
    o.append(p + "buffer_length", Value(static_cast<long long>(st.in_flight.load())));
    o.append(p + "process_latency_us", Value(static_cast<long long>(st.last_latency_us.load())));
  }
  // Rule totals (ours).
  o.append("records_in_total", n(rt->offered()));
  o.append("records_out_total", n(q.records_out));
  o.append("dropped_queue_full_total", n(rt->dropped_queue_full()));
  o.append("dropped_decode_total", n(q.dropped_decode));
  o.append("dropped_late_total", n(q.dropped_late));
  o.append("dropped_overflow_total", n(q.dropped_overflow));
  o.append("filtered_total", n(q.filtered));
  o.append("errors_total", n(q.errors));
  o.append("last_error", q.last_error);
  o.append("memory_bytes", n(rt->queued_bytes()));
  o.append("connect_error", rt->connect_error());
  ValueObject hist;
  for (std::size_t i = 0; i < q.latency_us.size(); ++i) {
    hist.append(i < stream::kLatencyBucketsUs.size()
                    ? "le_" + std::to_string(stream::kLatencyBucketsUs[i])
                    : "le_inf",
                n(q.latency_us[i]));
  }
  o.append("push_latency_us_histogram", Value(std::move(hist)));
  if (rule.latency != nullptr) {
    o.append("process_latency_p50_us",
             rule.latency->count() ? Value(rule.latency->quantile(0.5) * 1e6) : Value(0));
    o.append("process_latency_p99_us",
             rule.latency->count() ? Value(rule.latency->quantile(0.99) * 1e6) : Value(0));
  }
  return to_json(Value(std::move(o)));
}

Result<std::string> RuleManager::rule_status(std::string_view id) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->rules.find(id);
  if (it == impl_->rules.end()) return NotFound("rule " + std::string(id) + " not found");
  impl_->refresh_metrics_locked();
  return impl_->status_json(*it->second);
}

void RuleManager::Impl::refresh_metrics_locked() {
  for (auto& [id, rule] : rules) {
    const auto& rt = rule->runtime;
    if (!rt) continue;
    const stream::QueryMetrics q = rt->query->metrics();
    rule->in.set(rt->offered());
    rule->out.set(q.records_out);
    rule->dropped_queue.set(rt->dropped_queue_full());
    rule->dropped_decode.set(q.dropped_decode);
    rule->dropped_late.set(q.dropped_late);
    rule->dropped_overflow.set(q.dropped_overflow);
    rule->errors.set(q.errors);
    std::uint64_t sink_errors = 0;
    for (const auto& s : rt->sinks) sink_errors += s->stats().errors.load();
    rule->sink_errors.set(sink_errors);
    rule->filtered.set(q.filtered);
    rule->queue_gauge->set(static_cast<double>(rt->queued()));
    rule->memory_gauge->set(static_cast<double>(rt->queued_bytes()));
  }
}

void RuleManager::refresh_metrics() {
  std::lock_guard lock(impl_->mu);
  impl_->refresh_metrics_locked();
}

void RuleManager::Impl::schedule_refresh() {
  if (options.metrics_interval <= Duration::zero()) return;
  timers.schedule_after(options.metrics_interval, [this] {
    {
      std::lock_guard lock(mu);
      if (stopped) return;
      refresh_metrics_locked();
    }
    schedule_refresh();
  });
}

// ------------------------------------------------------------------------------------------
// Functions

void RuleManager::Impl::on_function_changed(const std::string& name,
                                            const functions::FunctionSpec* spec) {
  std::optional<functions::TriggerSpec> trigger;
  if (spec != nullptr) trigger = spec->trigger;
  std::lock_guard lock(fn_mu);
  if (!function_executor) return;
  // Triggers live on the functions executor (TopicTrigger's threading contract).
  function_executor->post([this, name, trigger] {
    auto it = triggers.find(name);
    if (it != triggers.end() && trigger && it->second->trigger() == *trigger) return;
    triggers.erase(name);
    if (!trigger) return;
    auto t = std::make_unique<functions::TopicTrigger>(functions, *function_client, *parts.clock,
                                                       name, *trigger);
    t->start([name, filter = trigger->filter](Status s, mqtt::ReasonCode reason) {
      if (!s.ok() || static_cast<std::uint8_t>(reason) >= 0x80) {
        spdlog::error("function {}: subscribing its trigger {} failed", name, filter);
      }
    });
    triggers[name] = std::move(t);
  });
}

Status RuleManager::define_function(functions::FunctionSpec spec) {
  auto& impl = *impl_;
  GANGLION_RETURN_IF_ERROR(functions::resolve_source(spec, *impl.parts.env));
  // Outside the manager's lock: the registry tells its listener, which takes it.
  GANGLION_RETURN_IF_ERROR(functions_.define(std::move(spec)));
  std::lock_guard lock(impl.mu);
  return impl.save_functions();
}

Status RuleManager::remove_function(std::string_view name) {
  auto& impl = *impl_;
  {
    std::lock_guard lock(impl.mu);
    for (const auto& [id, rule] : impl.rules) {
      for (const auto& a : rule->spec.actions) {
        const Value* n = a.props.find("name");
        if (a.type == "function" && n != nullptr && n->is_string() && n->as_string() == name) {
          return FailedPrecondition("function " + std::string(name) + " is used by rule " + id);
        }
      }
    }
  }
  GANGLION_RETURN_IF_ERROR(functions_.remove(name));
  std::lock_guard lock(impl.mu);
  return impl.save_functions();
}

// ------------------------------------------------------------------------------------------
// Persistence

Status RuleManager::Impl::save_streams() {
  if (options.dir.empty() || restoring) return Status::Ok();
  ValueArray a;
  for (const auto& [name, e] : streams) {
    a.push_back(Value(ValueObject{{"name", e.name}, {"table", e.table}, {"sql", e.sql}}));
  }
  return parts.env->write_file_atomic(join_path(options.dir, kStreamsFile),
                                      to_json(Value(std::move(a))) + "\n");
}

Status RuleManager::Impl::save_rules() {
  if (options.dir.empty() || restoring) return Status::Ok();
  ValueArray a;
  for (const auto& [id, rule] : rules) {
    a.push_back(
        Value(ValueObject{{"rule", rule_spec_to_value(rule->spec)}, {"running", rule->running}}));
  }
  return parts.env->write_file_atomic(join_path(options.dir, kRulesFile),
                                      to_json(Value(std::move(a))) + "\n");
}

Status RuleManager::Impl::save_functions() {
  if (options.dir.empty() || restoring) return Status::Ok();
  ValueArray a;
  for (const auto& info : functions.list()) {
    auto spec = functions.spec(info.name);
    if (spec.ok()) a.push_back(function_spec_to_value(*spec));
  }
  return parts.env->write_file_atomic(join_path(options.dir, kFunctionsFile),
                                      to_json(Value(std::move(a))) + "\n");
}

Status RuleManager::Impl::restore() {
  if (options.dir.empty()) return Status::Ok();
  auto load = [&](const char* file) -> Result<Value> {
    const std::string path = join_path(options.dir, file);
    if (!parts.env->exists(path)) return Value(ValueArray{});
    GANGLION_ASSIGN_OR_RETURN(std::string text, parts.env->read_file(path));
    auto doc = parse_json(text);
    if (!doc.ok() || !doc->is_array()) {
      return Corruption(path + ": not a JSON array" +
                        (doc.ok() ? "" : ": " + doc.status().message()));
    }
    return *doc;
  };
  restoring = true;
  struct Done {
    bool& flag;
    ~Done() { flag = false; }
  } done{restoring};

  GANGLION_ASSIGN_OR_RETURN(Value streams_doc, load(kStreamsFile));
  for (const Value& s : streams_doc.as_array()) {
    const Value* sql = s.find("sql");
    const Value* table = s.find("table");
    if (sql == nullptr || !sql->is_string()) continue;
    auto e =
        parse_stream(sql->as_string(), table != nullptr && table->is_bool() && table->as_bool());
    if (!e.ok() || !catalog.add_sql(sql->as_string()).ok()) {
      spdlog::error("rules: stored stream not restored: {}",
                    e.ok() ? "duplicate" : e.status().message());
      continue;
    }
    streams.emplace(e->name, std::move(*e));
  }

  GANGLION_ASSIGN_OR_RETURN(Value functions_doc, load(kFunctionsFile));
  for (const Value& f : functions_doc.as_array()) {
    auto spec = functions::function_spec_from_value(f);
    Status s = spec.ok() ? functions.define(std::move(*spec)) : spec.status();
    // define() told the listener, which posted the trigger.
    if (!s.ok()) spdlog::error("rules: stored function not restored: {}", s.message());
  }

  GANGLION_ASSIGN_OR_RETURN(Value rules_doc, load(kRulesFile));
  for (const Value& r : rules_doc.as_array()) {
    const Value* doc = r.find("rule");
    const Value* running = r.find("running");
    if (doc == nullptr) continue;
    auto spec = rule_spec_from_value(*doc);
    if (!spec.ok() || rules.count(spec->id) != 0) {
      spdlog::error("rules: stored rule not restored: {}",
                    spec.ok() ? "duplicate id" : spec.status().message());
      continue;
    }
    Rule& rule = add_rule_entry(std::move(*spec));
    rule.running = running != nullptr && running->is_bool() && running->as_bool();
    if (rule.running) {
      if (Status s = start_runtime(rule); !s.ok()) {
        spdlog::error("rules: rule {} not started after restart: {}", rule.spec.id, s.message());
        rule.stop_reason = s.message();
      }
    }
  }
  rebuild_routing();
  spdlog::info("rules: restored {} streams/tables, {} functions, {} rules", streams.size(),
               functions.list().size(), rules.size());
  return Status::Ok();
}

}  // namespace ganglion::rules
