#include "stream/query.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "event/json.h"
#include "stream/aggregate.h"
#include "stream/analytic.h"
#include "stream/eval.h"
#include "stream/parser.h"

namespace ganglion::stream {
namespace {

using sql::CompiledExpr;
using sql::Expr;
using sql::ExprKind;
using sql::ExprPtr;
using sql::JoinType;
using sql::WindowKind;

constexpr std::int64_t kNoTime = std::numeric_limits<std::int64_t>::min();

Status at(const sql::SourcePos& pos, std::string message) {
  return InvalidArgument("line " + std::to_string(pos.line) + ", column " +
                         std::to_string(pos.column) + ": " + std::move(message));
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
std::int64_t align_down(std::int64_t t, std::int64_t step) { return floor_div(t, step) * step; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

ExprPtr clone(const Expr& e) {
  auto out = std::make_unique<Expr>();
  out->kind = e.kind;
  out->pos = e.pos;
  out->depth = e.depth;
  out->literal = e.literal;
  out->qualifier = e.qualifier;
  out->name = e.name;
  out->unary_op = e.unary_op;
  out->binary_op = e.binary_op;
  out->negated = e.negated;
  out->star = e.star;
  out->has_operand = e.has_operand;
  out->has_else = e.has_else;
  out->cast_type = e.cast_type;
  for (const auto& a : e.args) out->args.push_back(a ? clone(*a) : nullptr);
  if (e.over) {
    out->over = std::make_unique<sql::OverClause>();
    for (const auto& p : e.over->partition_by) out->over->partition_by.push_back(clone(*p));
    if (e.over->when) out->over->when = clone(*e.over->when);
  }
  return out;
}

// A row flowing through the pipeline: the FROM stream's fields plus one slot per join.
struct Tuple {
  Value fields;               // object, or NULL for the missing side of an outer join
  std::vector<Value> joined;  // per join, in JOIN order; empty when the query has no join
  std::int64_t ts = 0;        // event or processing time, ms
  std::uint8_t side = 0;      // stream joins: 0 the FROM stream, i + 1 join i
  // Values of the analytic calls computed when the event arrived (by slot; post-aggregate
  // slots stay NULL here). Empty when the query has none.
  std::vector<Value> analytics;
  // The event's metadata for meta() ({"topic": ..., "qos": ...}); NULL unless the query
  // calls meta().
  Value meta;
};

struct Group {
  std::vector<Value> key;
  Tuple first;  // non-aggregate columns read the group's first row, as in eKuiper
  std::vector<std::unique_ptr<Accumulator>> accs;
};

// The groups of one pane: open addressing with linear probing over precomputed hashes (a
// probe compares a hash before it compares keys), at most half full.
class GroupTable {
 public:
  static std::size_t hash(const std::vector<Value>& key) {
    std::size_t h = ValuesHash()(key);
    h ^= h >> 31;
    h *= 0x9e3779b97f4a7c15ULL;
    return h ^ (h >> 29);
  }

  Group* find(const std::vector<Value>& key, std::size_t h) const {
    if (slots_.empty()) return nullptr;
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = h & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.group == nullptr) return nullptr;
      if (s.hash == h && s.group->key == key) return s.group;  // numbers by value: 1 == 1.0
    }
  }

  // Precondition: no group with g->key, whose hash is `h`.
  Group* add(std::unique_ptr<Group> g, std::size_t h) {
    if ((owned_.size() + 1) * 2 > slots_.size()) {
      std::vector<Slot> old = std::move(slots_);
      slots_.assign(std::max<std::size_t>(16, old.size() * 2), Slot{});
      for (const Slot& s : old) {
        if (s.group != nullptr) place(s);
      }
    }
    place(Slot{h, g.get()});
    order_.push_back(g.get());
    owned_.push_back(std::move(g));
    return order_.back();
  }

  std::size_t size() const { return order_.size(); }
  const std::vector<Group*>& order() const { return order_; }  // first-seen: deterministic

 private:
  struct Slot {
    std::size_t hash = 0;
    Group* group = nullptr;
  };
  void place(Slot s) {
    const std::size_t mask = slots_.size() - 1;
    std::size_t i = s.hash & mask;
    while (slots_[i].group != nullptr) i = (i + 1) & mask;
    slots_[i] = s;
  }

  std::vector<Slot> slots_;  // size a power of two, or empty
  std::vector<std::unique_ptr<Group>> owned_;
  std::vector<Group*> order_;
};

struct Pane {
  std::deque<Tuple> rows;  // row mode
  GroupTable groups;       // incremental mode
};

struct AggCall {
  std::string key;  // to_sql() of the call: identical calls share a slot
  std::optional<CompiledExpr> arg;
  bool star = false;
  AccumulatorFactory factory;
};

// One distinct analytic call (lag, latest, changed_col, had_changed, acc_*) of the rule and
// its state: one AnalyticState without PARTITION BY, else one per partition key.
struct AnalyticCall {
  std::string key;  // to_sql() of the call: identical calls share a slot and a state
  std::string name;
  ExprPtr expr;
  // True when the call reads an aggregate (`changed_col(true, avg(t))`): computed per
  // output row of a window instead of per event.
  bool post = false;
  std::vector<std::optional<CompiledExpr>> args;  // nullopt: `*`, the whole row
  std::vector<CompiledExpr> partition;
  std::optional<CompiledExpr> when;
  AnalyticFactory factory;
  std::unique_ptr<AnalyticState> global;
  std::unordered_map<std::vector<Value>, std::unique_ptr<AnalyticState>, ValuesHash> partitions;
  std::vector<Value> key_scratch, values;
};

struct JoinSpec {
  JoinType type = JoinType::kInner;
  std::string name;
  std::string qualifier;
  std::shared_ptr<const StreamDef> def;
  std::optional<CompiledExpr> on;
  std::optional<CompiledExpr> probe;  // table joins: ON is `table.KEY = probe`
};

struct TableState {
  std::unordered_map<Value, Value, ValueHash> by_key;
  std::deque<Value> rows;
};

struct Projection {
  enum Kind { kExpr, kAll, kAllOf, kChangedCols } kind = kExpr;
  std::string name;                  // kChangedCols: the prefix
  std::optional<CompiledExpr> expr;  // kChangedCols: ignore_null
  int slot = -1;                     // kAllOf: -1 the FROM stream, else the join index
  // CHANGED_COLS(prefix, ignore_null, x, ...): the columns (nullopt expr: `*`) and the last
  // value each one emitted, by column name.
  std::vector<std::pair<std::string, std::optional<CompiledExpr>>> columns;
  std::unordered_map<std::string, Value> last;
};

struct OrderKey {
  CompiledExpr expr;
  bool desc = false;
};

class Engine : public std::enable_shared_from_this<Engine> {
 public:
  Engine(Clock& clock, QueryOptions options, Sink sink)
      : clock_(clock), options_(options), sink_(std::move(sink)) {}

  Status build(const sql::SelectStatement& s, const Catalog& catalog);

  Status push(std::string_view source, const Event& event) {
    std::lock_guard lock(mu_);
    if (stopped_) return FailedPrecondition("query stopped");
    MonoTime t0 = clock_.now();
    Status st = push_locked(source, event);
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(clock_.now() - t0).count();
    std::size_t b = 0;
    while (b < kLatencyBucketsUs.size() && us > kLatencyBucketsUs[b]) ++b;
    ++metrics_.latency_us[b];
    return st;
  }

  void flush() {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    close_until(event_time_ ? watermark_ : clock_.wall_ms());
    arm_timer();
  }

  void stop() {
    std::lock_guard lock(mu_);
    stopped_ = true;
    if (timer_ != 0) clock_.cancel(timer_);
    timer_ = 0;
  }

  QueryMetrics metrics() const {
    std::lock_guard lock(mu_);
    return metrics_;
  }

  const std::vector<std::string>& sources() const { return sources_; }
  bool windowed() const { return window_.has_value(); }

 private:
  struct WindowSpec {
    WindowKind kind = WindowKind::kTumbling;
    std::int64_t size = 0;                       // ms; count: rows
    std::int64_t hop = 0;                        // ms; count: rows
    std::int64_t delay = 0;                      // sliding
    std::int64_t timeout = 0, max_duration = 0;  // session
    std::int64_t pane = 0;                       // tumbling/hopping: gcd(size, hop)
  };

  // ---- planning helpers ----
  sql::CompileOptions compile_options(bool with_aggregates);
  Result<CompiledExpr> compile(const Expr& e, bool with_aggregates = false);
  Status collect_aggregates(const Expr& e);
  Status collect_analytics(const Expr& e, bool aggregates_allowed, bool& has_aggregate);
  Status compile_analytic(AnalyticCall& c);
  Status plan_changed_cols(const Expr& call, const std::string& alias, Projection& p, int& unnamed);
  const sql::FunctionRegistry& registry() const {
    return options_.functions ? *options_.functions : sql::FunctionRegistry::builtins();
  }
  ExprPtr substitute_aliases(const Expr& e, const sql::SelectStatement& s);
  void note_fields(const CompiledExpr& c);

  // ---- data path ----
  Status push_locked(std::string_view source, const Event& event);
  Result<Value> decode(const StreamDef& def, const Event& event, bool projected);
  void update_table(std::size_t join, Value row);
  bool lookup_tables(Tuple base, std::vector<Tuple>& out);
  bool where_ok(const Tuple& t) { return where_ok(make_row(t)); }
  bool where_ok(const sql::Row& row);
  void compute_analytics(Tuple& t);
  void eval_analytic(AnalyticCall& c, const sql::Row& row, Value& out);
  void on_tuple(Tuple t);
  void add_to_window(Tuple t);
  void close_until(std::int64_t t);
  std::int64_t next_deadline() const;
  void arm_timer();
  void on_timer();

  // ---- emission ----
  sql::Row make_row(const Tuple& t, std::span<const Value> aggs = {},
                    const sql::WindowBounds* w = nullptr,
                    const std::vector<Value>* analytics = nullptr);
  void accumulate(GroupTable& gt, const Tuple& t);
  void emit_rows(const std::vector<const Tuple*>& rows, sql::WindowBounds b);
  void emit_groups(const GroupTable& gt, sql::WindowBounds b);
  struct Out {
    const Tuple* tuple = nullptr;
    std::vector<Value> aggs;
    std::vector<Value> analytics;  // with post-aggregate analytic calls: all slots, else empty
    const std::vector<Value>* analytics_or_null() const {
      return analytics.empty() ? nullptr : &analytics;
    }
  };
  void finish(std::vector<Out>& outs, const sql::WindowBounds* b);
  std::vector<Tuple> join_streams(const std::vector<const Tuple*>& rows);
  std::optional<Value> project(const Out& o, const sql::WindowBounds* b);
  void record_error(const Status& s) {
    ++metrics_.errors;
    metrics_.last_error = s.message();
  }
  void drop(std::uint64_t& counter, std::string reason) {
    ++counter;
    metrics_.last_error = std::move(reason);
  }

  Clock& clock_;
  QueryOptions options_;
  Sink sink_;
  mutable std::mutex mu_;
  bool stopped_ = false;
  QueryMetrics metrics_;

  // plan
  std::string from_name_, from_qualifier_;
  std::shared_ptr<const StreamDef> from_def_;
  std::vector<JoinSpec> joins_;
  std::vector<TableState> tables_;  // per join (used by table joins)
  bool stream_join_ = false;
  bool table_join_ = false;
  std::vector<AnalyticCall> analytics_;  // inner calls before the calls that read them
  bool post_analytics_ = false;          // some call reads aggregates
  bool changed_cols_ = false;            // a CHANGED_COLS column: rows without columns drop
  std::vector<std::string> sources_;
  std::vector<std::string> decode_fields_;
  bool decode_all_ = false;
  bool selective_ = false;   // see QueryOptions::selective_decode
  bool reads_meta_ = false;  // some expression calls meta(): tuples carry Tuple::meta
  std::vector<std::string> where_fields_;
  std::optional<CompiledExpr> where_;
  bool where_after_join_ = false;
  std::optional<WindowSpec> window_;
  std::optional<CompiledExpr> trigger_;
  bool event_time_ = false;
  std::vector<CompiledExpr> group_keys_;
  std::vector<AggCall> aggs_;
  bool aggregate_query_ = false;
  bool incremental_ = false;
  std::optional<CompiledExpr> having_;
  std::vector<OrderKey> order_;
  std::optional<std::int64_t> limit_;
  std::vector<Projection> projections_;
  bool passthrough_ = false;  // SELECT * from one stream: the row is the output
  // SELECT * ... WHERE without a window on a schemaless JSON stream, decoded selectively:
  // a kept event's row is its payload bytes (EmissionRows::push_json), never converted here.
  bool json_rows_ = false;
  Emission scratch_;  // reused per event by the json_rows_ path (keeps its capacity)
  std::vector<sql::NamedRow> named_;

  // state
  std::map<std::int64_t, Pane> panes_;  // tumbling/hopping, by pane start
  std::size_t pane_rows_ = 0;
  std::int64_t last_end_ = kNoTime;    // end of the last emitted time window
  std::deque<Tuple> buffer_;           // sliding, session, count
  std::deque<std::int64_t> triggers_;  // sliding: pending trigger times
  std::int64_t session_start_ = kNoTime, session_last_ = kNoTime;
  std::int64_t count_since_emit_ = 0;
  std::int64_t max_event_time_ = kNoTime;
  std::int64_t watermark_ = kNoTime;
  TimerId timer_ = 0;
  std::int64_t timer_at_ = kNoTime;
  std::vector<Value> key_scratch_;
};

// ---------------------------------------------------------------- planning

sql::CompileOptions Engine::compile_options(bool with_aggregates) {
  sql::CompileOptions o;
  o.stream = from_name_;
  o.alias = from_qualifier_ == from_name_ ? "" : from_qualifier_;
  o.schema = joins_.empty() ? from_def_->schema() : nullptr;
  o.functions = options_.functions;
  o.clock = &clock_;
  if (with_aggregates) {
    o.aggregate_slot = [this](const Expr& call) {
      std::string k = sql::to_sql(call);
      for (std::size_t i = 0; i < aggs_.size(); ++i) {
        if (aggs_[i].key == k) return static_cast<int>(i);
      }
      return -1;
    };
  }
  if (!analytics_.empty()) {
    o.analytic_slot = [this](const Expr& call) {
      std::string k = sql::to_sql(call);
      for (std::size_t i = 0; i < analytics_.size(); ++i) {
        if (analytics_[i].key == k) return static_cast<int>(i);
      }
      return -1;
    };
  }
  return o;
}

Result<CompiledExpr> Engine::compile(const Expr& e, bool with_aggregates) {
  GANGLION_ASSIGN_OR_RETURN(CompiledExpr c, sql::compile(e, compile_options(with_aggregates)));
  note_fields(c);
  return c;
}

void Engine::note_fields(const CompiledExpr& c) {
  if (c.reads_meta()) reads_meta_ = true;
  for (const auto& f : c.referenced_fields()) {
    if (std::find(decode_fields_.begin(), decode_fields_.end(), f) == decode_fields_.end()) {
      decode_fields_.push_back(f);
    }
  }
}

// Finds aggregate calls (not descending into their arguments) and gives each distinct one
// a slot.
Status Engine::collect_aggregates(const Expr& e) {
  if (e.kind == ExprKind::kCall) {
    const auto& reg = options_.functions ? *options_.functions : sql::FunctionRegistry::builtins();
    const sql::FunctionDef* def = reg.find(e.name);
    if (def != nullptr && def->kind == sql::FunctionKind::kAggregate) {
      std::string key = sql::to_sql(e);
      for (const auto& a : aggs_) {
        if (a.key == key) return Status::Ok();
      }
      std::string arity = sql::FunctionRegistry::arity_error(*def, static_cast<int>(e.args.size()));
      if (!arity.empty()) return at(e.pos, arity);
      if (e.over)
        return at(e.pos, "OVER is not supported for aggregate function '" + def->name + "'");
      AggCall call;
      call.key = key;
      call.star = e.star;
      if (!e.star && e.args.empty() && def->name != "count") {
        return at(e.pos, "function '" + def->name + "' expects an argument or *");
      }
      if (!e.args.empty()) {
        GANGLION_ASSIGN_OR_RETURN(CompiledExpr arg, compile(*e.args[0]));
        call.arg = std::move(arg);
      }
      // Aggregates over the whole row need every field; count(*) needs none.
      if ((e.star && def->name != "count") || def->name == "deduplicate") decode_all_ = true;
      std::vector<Value> constants;
      for (std::size_t i = 1; i < e.args.size(); ++i) {
        if (e.args[i]->kind != ExprKind::kLiteral) {
          return at(e.args[i]->pos, "function '" + def->name + "': argument " +
                                        std::to_string(i + 1) + " must be a constant");
        }
        constants.push_back(e.args[i]->literal);
      }
      auto factory = accumulator_factory(def->name, constants, e.star || e.args.empty());
      if (!factory.ok()) return at(e.pos, factory.status().message());
      call.factory = std::move(factory).value();
      aggs_.push_back(std::move(call));
      return Status::Ok();
    }
  }
  for (const auto& a : e.args) {
    if (a) GANGLION_RETURN_IF_ERROR(collect_aggregates(*a));
  }
  if (e.over) {
    for (const auto& p : e.over->partition_by) GANGLION_RETURN_IF_ERROR(collect_aggregates(*p));
    if (e.over->when) GANGLION_RETURN_IF_ERROR(collect_aggregates(*e.over->when));
  }
  return Status::Ok();
}

// Finds the analytic calls of `e` and gives each distinct one a slot, inner calls first (an
// argument or the OVER clause may call an analytic function itself: `lag(ts) OVER (WHEN
// had_changed(true, s))`), so evaluating the slots in order sees inner values first. Sets
// `has_aggregate` when `e` contains an aggregate call.
Status Engine::collect_analytics(const Expr& e, bool aggregates_allowed, bool& has_aggregate) {
  bool inner = false;
  for (const auto& a : e.args) {
    if (a) GANGLION_RETURN_IF_ERROR(collect_analytics(*a, aggregates_allowed, inner));
  }
  if (e.over) {
    for (const auto& p : e.over->partition_by) {
      GANGLION_RETURN_IF_ERROR(collect_analytics(*p, aggregates_allowed, inner));
    }
    if (e.over->when) {
      GANGLION_RETURN_IF_ERROR(collect_analytics(*e.over->when, aggregates_allowed, inner));
    }
  }
  if (inner) has_aggregate = true;
  if (e.kind != ExprKind::kCall) return Status::Ok();
  const sql::FunctionDef* def = registry().find(e.name);
  if (def == nullptr) return Status::Ok();
  if (def->kind == sql::FunctionKind::kAggregate) {
    has_aggregate = true;
    return Status::Ok();
  }
  if (def->kind != sql::FunctionKind::kAnalytic) return Status::Ok();
  if (def->name == "changed_cols") {
    return at(e.pos, "changed_cols is only allowed as a column of the SELECT list");
  }
  std::string key = sql::to_sql(e);
  bool post = inner;
  for (const auto& c : analytics_) {
    if (c.key == key) post = c.post;
  }
  if (post && !aggregates_allowed) {
    return at(e.pos, "analytic function '" + def->name +
                         "' over an aggregate is only allowed in SELECT, HAVING and ORDER BY");
  }
  for (const auto& c : analytics_) {
    if (c.key == key) return Status::Ok();
  }
  if (e.star) return at(e.pos, "function '" + def->name + "' does not take '*' alone");
  std::string arity = sql::FunctionRegistry::arity_error(*def, static_cast<int>(e.args.size()));
  if (!arity.empty()) return at(e.pos, arity);
  auto factory = analytic_factory(def->name, e.args);
  if (!factory.ok()) return at(e.pos, factory.status().message());
  AnalyticCall call;
  call.key = std::move(key);
  call.name = def->name;
  call.expr = clone(e);
  call.post = post;
  call.factory = std::move(factory).value();
  analytics_.push_back(std::move(call));
  return Status::Ok();
}

Status Engine::compile_analytic(AnalyticCall& c) {
  const Expr& e = *c.expr;
  for (const auto& a : e.args) {
    if (a->kind == ExprKind::kWildcard) {
      decode_all_ = true;
      c.args.emplace_back();
      continue;
    }
    GANGLION_ASSIGN_OR_RETURN(CompiledExpr x, compile(*a, c.post));
    c.args.emplace_back(std::move(x));
  }
  if (e.over) {
    for (const auto& p : e.over->partition_by) {
      GANGLION_ASSIGN_OR_RETURN(CompiledExpr x, compile(*p, c.post));
      c.partition.push_back(std::move(x));
    }
    if (e.over->when) {
      GANGLION_ASSIGN_OR_RETURN(CompiledExpr x, compile(*e.over->when, c.post));
      c.when = std::move(x);
    }
  }
  return Status::Ok();
}

// CHANGED_COLS(prefix, ignore_null, x, ...) as a SELECT column.
Status Engine::plan_changed_cols(const Expr& call, const std::string& alias, Projection& p,
                                 int& unnamed) {
  if (!alias.empty()) {
    return at(call.pos, "changed_cols takes no alias: its first argument is the column prefix");
  }
  std::string arity = sql::FunctionRegistry::arity_error(*registry().find("changed_cols"),
                                                         static_cast<int>(call.args.size()));
  if (!arity.empty()) return at(call.pos, arity);
  if (call.over) return at(call.pos, "OVER is not supported for changed_cols");
  const Expr& prefix = *call.args[0];
  if (prefix.kind != ExprKind::kLiteral || !prefix.literal.is_string()) {
    return at(prefix.pos, "changed_cols: the prefix must be a string constant");
  }
  p.kind = Projection::kChangedCols;
  p.name = prefix.literal.as_string();
  if (call.args[1]->kind == ExprKind::kWildcard) {
    return at(call.args[1]->pos, "changed_cols: '*' is not allowed as ignore_null");
  }
  GANGLION_ASSIGN_OR_RETURN(CompiledExpr ignore, compile(*call.args[1], true));
  p.expr = std::move(ignore);
  for (std::size_t i = 2; i < call.args.size(); ++i) {
    const Expr& a = *call.args[i];
    if (a.kind == ExprKind::kWildcard) {
      decode_all_ = true;
      p.columns.emplace_back("", std::nullopt);
      continue;
    }
    GANGLION_ASSIGN_OR_RETURN(CompiledExpr x, compile(a, true));
    std::string name;
    if (a.kind == ExprKind::kField || a.kind == ExprKind::kArrow) {
      name = a.name;
    } else if (a.kind == ExprKind::kCall) {
      name = lower(a.name);
    } else {
      name = "kuiper_field_" + std::to_string(unnamed++);
    }
    p.columns.emplace_back(std::move(name), std::move(x));
  }
  changed_cols_ = true;
  return Status::Ok();
}

bool is_changed_cols(const sql::SelectField& f) {
  return f.expr && f.expr->kind == ExprKind::kCall && lower(f.expr->name) == "changed_cols";
}

// HAVING and ORDER BY may name a SELECT alias (`ORDER BY a` for `avg(t) AS a`).
ExprPtr Engine::substitute_aliases(const Expr& e, const sql::SelectStatement& s) {
  if (e.kind == ExprKind::kField && e.qualifier.empty()) {
    for (const auto& f : s.fields) {
      if (f.expr && f.alias == e.name &&
          !(f.expr->kind == ExprKind::kField && f.expr->name == e.name)) {
        return clone(*f.expr);
      }
    }
  }
  ExprPtr out = clone(e);
  for (auto& a : out->args) {
    if (a) a = substitute_aliases(*a, s);
  }
  return out;
}

std::int64_t gcd(std::int64_t a, std::int64_t b) {
  while (b != 0) {
    std::int64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

Status Engine::build(const sql::SelectStatement& s, const Catalog& catalog) {
  from_def_ = catalog.find(s.from.name);
  if (!from_def_) return at(s.from.pos, "unknown stream '" + s.from.name + "'");
  if (from_def_->is_table)
    return at(s.from.pos, "FROM must name a stream, '" + s.from.name + "' is a table");
  from_name_ = s.from.name;
  from_qualifier_ = s.from.alias.empty() ? s.from.name : s.from.alias;
  sources_.push_back(from_name_);
  event_time_ = !from_def_->timestamp_field.empty();
  if (event_time_) decode_fields_.push_back(from_def_->timestamp_field);

  bool table_join = false;
  for (const auto& j : s.joins) {
    JoinSpec spec;
    spec.type = j.type;
    spec.name = j.table.name;
    spec.qualifier = j.table.alias.empty() ? j.table.name : j.table.alias;
    spec.def = catalog.find(j.table.name);
    if (!spec.def) return at(j.table.pos, "unknown stream or table '" + j.table.name + "'");
    if (spec.def->is_table) {
      table_join = true;
      if (j.type != JoinType::kInner && j.type != JoinType::kLeft) {
        return at(j.table.pos, "a join with table '" + j.table.name + "' must be INNER or LEFT");
      }
    } else {
      stream_join_ = true;
    }
    if (std::find(sources_.begin(), sources_.end(), spec.name) != sources_.end()) {
      return at(j.table.pos, "'" + spec.name + "' is joined twice");
    }
    sources_.push_back(spec.name);
    joins_.push_back(std::move(spec));
  }
  table_join_ = table_join;
  if (stream_join_ && !s.window)
    return at(s.from.pos, "a join of streams needs a window (GROUP BY ...WINDOW(...))");
  tables_.resize(joins_.size());
  for (const auto& j : joins_) named_.push_back(sql::NamedRow{j.qualifier, nullptr});

  // Analytic calls, anywhere in the statement, before anything is compiled (compiled
  // expressions read their slots). HAVING and ORDER BY may name SELECT aliases.
  std::vector<ExprPtr> having_order;
  if (s.having) having_order.push_back(substitute_aliases(*s.having, s));
  for (const auto& o : s.order_by) having_order.push_back(substitute_aliases(*o.expr, s));
  {
    bool agg = false;
    for (const auto& j : s.joins) {
      if (j.on) GANGLION_RETURN_IF_ERROR(collect_analytics(*j.on, false, agg));
    }
    if (s.window && s.window->trigger) {
      GANGLION_RETURN_IF_ERROR(collect_analytics(*s.window->trigger, false, agg));
    }
    if (s.where) GANGLION_RETURN_IF_ERROR(collect_analytics(*s.where, false, agg));
    for (const auto& g : s.group_by) GANGLION_RETURN_IF_ERROR(collect_analytics(*g, false, agg));
    for (const auto& f : s.fields) {
      if (!f.expr) continue;
      if (is_changed_cols(f)) {
        for (const auto& a : f.expr->args) {
          if (a) GANGLION_RETURN_IF_ERROR(collect_analytics(*a, true, agg));
        }
      } else {
        GANGLION_RETURN_IF_ERROR(collect_analytics(*f.expr, true, agg));
      }
    }
    for (const auto& e : having_order) GANGLION_RETURN_IF_ERROR(collect_analytics(*e, true, agg));
    for (auto& c : analytics_) {
      if (c.post) {
        post_analytics_ = true;
      } else {
        GANGLION_RETURN_IF_ERROR(compile_analytic(c));
      }
    }
  }
  for (std::size_t i = 0; i < joins_.size(); ++i) {
    const auto& j = s.joins[i];
    if (!j.on) continue;
    GANGLION_ASSIGN_OR_RETURN(CompiledExpr on, compile(*j.on));
    joins_[i].on = std::move(on);
    // Key lookup: ON table.KEY = <expr not reading the table>.
    const StreamDef& def = *joins_[i].def;
    if (def.is_table && !def.key.empty() && j.on->kind == ExprKind::kBinary &&
        j.on->binary_op == sql::BinaryOp::kEq) {
      for (int side = 0; side < 2; ++side) {
        const Expr& k = *j.on->args[side];
        const Expr& other = *j.on->args[1 - side];
        bool is_key =
            k.kind == ExprKind::kField && k.name == def.key && k.qualifier == joins_[i].qualifier;
        bool reads_table = sql::to_sql(other).find(joins_[i].qualifier + ".") != std::string::npos;
        if (is_key && !reads_table) {
          GANGLION_ASSIGN_OR_RETURN(CompiledExpr probe, compile(other));
          joins_[i].probe = std::move(probe);
          break;
        }
      }
    }
  }

  // Window.
  if (s.window) {
    const sql::Window& w = *s.window;
    WindowSpec spec;
    spec.kind = w.kind;
    const std::int64_t unit = w.unit_ms();
    auto arg = [&](std::size_t i) { return i < w.args.size() ? w.args[i] : 0; };
    for (std::int64_t a : w.args) {
      if (a <= 0) return at(w.pos, "window arguments must be positive");
      if (a > std::numeric_limits<std::int64_t>::max() / unit)
        return at(w.pos, "window argument too large");
    }
    switch (w.kind) {
      case WindowKind::kTumbling:
        spec.size = spec.hop = arg(0) * unit;
        break;
      case WindowKind::kHopping:
        if (w.args.size() < 2) return at(w.pos, "HOPPINGWINDOW needs a size and a hop");
        spec.size = arg(0) * unit;
        spec.hop = arg(1) * unit;
        break;
      case WindowKind::kSliding:
        spec.size = arg(0) * unit;
        spec.delay = arg(1) * unit;
        break;
      case WindowKind::kSession:
        if (w.args.size() < 2)
          return at(w.pos, "SESSIONWINDOW needs a maximum duration and a timeout");
        spec.max_duration = arg(0) * unit;
        spec.timeout = arg(1) * unit;
        break;
      case WindowKind::kCount:
        spec.size = arg(0);
        spec.hop = w.args.size() > 1 ? arg(1) : arg(0);
        if (spec.hop > spec.size) return at(w.pos, "COUNTWINDOW hop must not exceed the count");
        break;
    }
    if (spec.kind == WindowKind::kTumbling || spec.kind == WindowKind::kHopping) {
      spec.pane = gcd(spec.size, spec.hop);
    }
    if (w.trigger) {
      if (w.kind != WindowKind::kSliding)
        return at(w.pos, "OVER (WHEN ...) is only allowed on SLIDINGWINDOW");
      GANGLION_ASSIGN_OR_RETURN(CompiledExpr trig, compile(*w.trigger));
      trigger_ = std::move(trig);
    }
    if (w.kind == WindowKind::kCount && event_time_) {
      event_time_ = false;  // count windows ignore time
    }
    window_ = spec;
  }

  if (s.where) {
    GANGLION_ASSIGN_OR_RETURN(CompiledExpr where, compile(*s.where));
    where_ = std::move(where);
    where_after_join_ = stream_join_;
  }

  // Aggregates in SELECT, HAVING and ORDER BY (aliases resolved first).
  for (const auto& f : s.fields) {
    if (f.expr) GANGLION_RETURN_IF_ERROR(collect_aggregates(*f.expr));
  }
  for (const auto& e : having_order) GANGLION_RETURN_IF_ERROR(collect_aggregates(*e));
  aggregate_query_ = !aggs_.empty() || !s.group_by.empty();
  if (!s.window && !s.group_by.empty()) {
    return at(s.group_by.front()->pos,
              "GROUP BY needs a window (eKuiper: dimensions are only allowed with a window)");
  }
  if (!s.window && !aggs_.empty()) {
    return InvalidArgument("aggregate functions need a window (GROUP BY ...WINDOW(...))");
  }
  if (s.having && !aggregate_query_)
    return at(s.having->pos, "HAVING needs GROUP BY or an aggregate function");
  for (const auto& g : s.group_by) {
    GANGLION_ASSIGN_OR_RETURN(CompiledExpr k, compile(*g));
    group_keys_.push_back(std::move(k));
  }
  key_scratch_.resize(group_keys_.size());
  for (auto& c : analytics_) {
    if (c.post) GANGLION_RETURN_IF_ERROR(compile_analytic(c));
  }
  incremental_ = aggregate_query_ && !stream_join_ && window_ &&
                 (window_->kind == WindowKind::kTumbling || window_->kind == WindowKind::kHopping);

  std::size_t idx = 0;
  if (s.having) {
    GANGLION_ASSIGN_OR_RETURN(CompiledExpr h, compile(*having_order[idx++], true));
    having_ = std::move(h);
  }
  for (std::size_t i = 0; i < s.order_by.size(); ++i) {
    GANGLION_ASSIGN_OR_RETURN(CompiledExpr k, compile(*having_order[idx++], true));
    order_.push_back(OrderKey{std::move(k), s.order_by[i].descending});
  }
  if (s.limit) {
    if (*s.limit < 0) return InvalidArgument("LIMIT must not be negative");
    limit_ = *s.limit;
  }

  // Projection.
  int unnamed = 0;
  for (const auto& f : s.fields) {
    Projection p;
    if (f.wildcard) {
      decode_all_ = true;
      if (f.wildcard_qualifier.empty()) {
        p.kind = Projection::kAll;
      } else {
        p.kind = Projection::kAllOf;
        if (f.wildcard_qualifier == from_qualifier_ || f.wildcard_qualifier == from_name_) {
          p.slot = -1;
        } else {
          auto it = std::find_if(joins_.begin(), joins_.end(), [&](const JoinSpec& j) {
            return j.qualifier == f.wildcard_qualifier || j.name == f.wildcard_qualifier;
          });
          if (it == joins_.end())
            return InvalidArgument("unknown stream '" + f.wildcard_qualifier + "' in " +
                                   f.wildcard_qualifier + ".*");
          p.slot = static_cast<int>(it - joins_.begin());
        }
      }
      projections_.push_back(std::move(p));
      continue;
    }
    if (is_changed_cols(f)) {
      GANGLION_RETURN_IF_ERROR(plan_changed_cols(*f.expr, f.alias, p, unnamed));
      projections_.push_back(std::move(p));
      continue;
    }
    GANGLION_ASSIGN_OR_RETURN(CompiledExpr c, compile(*f.expr, true));
    p.expr = std::move(c);
    if (!f.alias.empty()) {
      p.name = f.alias;
    } else if (f.expr->kind == ExprKind::kField || f.expr->kind == ExprKind::kArrow) {
      p.name = f.expr->name;
    } else if (f.expr->kind == ExprKind::kCall) {
      p.name = lower(f.expr->name);
    } else {
      p.name = "kuiper_field_" + std::to_string(unnamed++);
    }
    projections_.push_back(std::move(p));
  }
  passthrough_ =
      projections_.size() == 1 && projections_[0].kind == Projection::kAll && joins_.empty();
  if (decode_all_ || decode_fields_.empty()) decode_fields_.clear();
  // Analytic functions see every event, also those WHERE rejects: no early filtering.
  if (options_.selective_decode && analytics_.empty() && where_ && !where_after_join_ &&
      joins_.empty() && from_def_->schemaless() && from_def_->format == "json" &&
      decode_fields_.empty() && !where_->referenced_fields().empty()) {
    selective_ = true;
    where_fields_ = where_->referenced_fields();
  }
  json_rows_ = selective_ && passthrough_ && !window_ && from_def_->timestamp_field.empty() &&
               from_def_->format == "json";
  if (!from_def_->schemaless()) {
    // A schema stream is checked whole (a mismatch in a field the rule does not read still
    // rejects the payload, as in eKuiper); parsing stops at the declared fields.
    decode_fields_.clear();
    for (const auto& f : from_def_->fields) decode_fields_.push_back(f.name);
  }
  return Status::Ok();
}

// ---------------------------------------------------------------- data path

Result<Value> Engine::decode(const StreamDef& def, const Event& event, bool projected) {
  if (def.format == "binary") return binary_row(def, event.payload());
  if (!projected || decode_fields_.empty()) {
    const Result<Value>& parsed = event.fields();  // parsed once, shared by every rule
    if (!parsed.ok()) return parsed.status();
    return conform_row(def, *parsed);
  }
  return decode_row(def, event.payload(), decode_fields_);
}

Status Engine::push_locked(std::string_view source, const Event& event) {
  std::size_t side = 0;
  if (source != from_name_) {
    auto it = std::find_if(joins_.begin(), joins_.end(),
                           [&](const JoinSpec& j) { return j.name == source; });
    if (it == joins_.end()) return NotFound("query does not read '" + std::string(source) + "'");
    side = static_cast<std::size_t>(it - joins_.begin()) + 1;
  }
  const StreamDef& def = side == 0 ? *from_def_ : *joins_[side - 1].def;
  if (def.is_table)
    ++metrics_.table_updates;
  else
    ++metrics_.records_in;

  bool where_done = false;
  Result<Value> row = Value();
  // eKuiper's MQTT source metadata, for queries that call meta().
  Value meta;
  if (reads_meta_) {
    meta = Value(ValueObject{{"topic", Value(event.topic())},
                             {"qos", Value(static_cast<std::int64_t>(event.headers().qos))}});
  }
  if (side == 0 && selective_ && !event.fields_parsed()) {
    struct Probe {
      Engine* self;
      const Value* meta;
    } ctx{this, &meta};
    // The selective path has no join and no analytic call: the row is the partial fields
    // (and the metadata), with no Tuple built for it.
    auto keep = [](void* c, const Value& partial) {
      const auto* probe = static_cast<const Probe*>(c);
      sql::Row row;
      row.fields = &partial;
      row.meta = probe->meta->is_null() ? nullptr : probe->meta;
      return probe->self->where_ok(row);
    };
    auto r = parse_json_filtered(event.payload(), where_fields_, keep, &ctx, !json_rows_);
    if (!r.ok()) {
      row = r.status();
    } else if (!r->partial.is_object()) {
      row = InvalidArgument("payload is not a JSON object");
    } else if (!r->kept) {
      return Status::Ok();  // counted by where_ok()
    } else if (json_rows_) {
      // The output row is the payload itself (validated by parse_json_filtered()): the sink
      // builds a Value from it only if it reads the row.
      scratch_.rows.clear();
      scratch_.rows.push_json(event.shared_payload());
      ++metrics_.records_out;
      ++metrics_.emissions;
      sink_(scratch_);
      scratch_.rows.clear();
      return Status::Ok();
    } else {
      event.share_fields(r->whole);
      row = std::move(r->whole);
      where_done = true;
    }
  } else {
    row = decode(def, event, side == 0);
  }
  if (!row.ok()) {
    drop(metrics_.dropped_decode, source == from_name_
                                      ? row.status().message()
                                      : std::string(source) + ": " + row.status().message());
    return Status::Ok();
  }
  if (def.is_table) {
    update_table(side - 1, std::move(row).value());
    return Status::Ok();
  }

  Tuple t;
  t.side = static_cast<std::uint8_t>(side);
  t.meta = std::move(meta);
  if (!joins_.empty()) t.joined.resize(joins_.size());
  if (side == 0) {
    t.fields = std::move(row).value();
  } else {
    t.joined[side - 1] = std::move(row).value();
  }
  const Value& own = side == 0 ? t.fields : t.joined[side - 1];
  // Analytic functions run first, for every event of every stream the rule reads (eKuiper:
  // not affected by WHERE, computed before the window and the join; a joined row reads the
  // values of its FROM stream's row).
  if (!analytics_.empty()) compute_analytics(t);

  if (window_ && window_->kind == WindowKind::kCount) {
    t.ts = clock_.wall_ms();
  } else if (!def.timestamp_field.empty() && event_time_) {
    const Value* ts = own.find(def.timestamp_field);
    // Milliseconds, or a string in TIMESTAMP_FORMAT (RFC 3339 without one).
    const std::optional<std::int64_t> ms =
        ts == nullptr ? std::nullopt : datetime_ms(*ts, def.timestamp_format);
    if (!ms) {
      drop(metrics_.dropped_decode,
           "TIMESTAMP field '" + def.timestamp_field + "' is missing or not a datetime" +
               (def.timestamp_format.empty() ? std::string()
                                             : " in the format '" + def.timestamp_format + "'"));
      return Status::Ok();
    }
    t.ts = *ms;
    if (watermark_ != kNoTime && t.ts < watermark_) {
      drop(metrics_.dropped_late, "late event at " + std::to_string(t.ts) + " behind watermark " +
                                      std::to_string(watermark_));
      return Status::Ok();
    }
  } else {
    t.ts = clock_.wall_ms();
  }

  if (side == 0 && !joins_.empty() && !stream_join_) {
    std::vector<Tuple> looked_up;
    if (!lookup_tables(std::move(t), looked_up)) return Status::Ok();
    if (!window_) {
      Emission e;
      for (Tuple& x : looked_up) {
        if (!where_ok(x)) continue;
        Out o{&x, {}};
        if (auto r = project(o, nullptr)) e.rows.push_back(std::move(*r));
      }
      if (!e.rows.empty()) {
        metrics_.records_out += e.rows.size();
        ++metrics_.emissions;
        sink_(e);
      }
      return Status::Ok();
    }
    for (Tuple& x : looked_up) {
      if (where_ok(x)) on_tuple(std::move(x));
    }
  } else {
    if (!where_after_join_ && !where_done && !where_ok(t)) return Status::Ok();
    if (!window_) {
      Out o{&t, {}};
      auto r = project(o, nullptr);
      if (!r) return Status::Ok();
      Emission e;
      e.rows.push_back(std::move(*r));
      ++metrics_.records_out;
      ++metrics_.emissions;
      sink_(e);
      return Status::Ok();
    }
    on_tuple(std::move(t));
  }
  if (event_time_) {
    close_until(watermark_);
  }
  arm_timer();
  return Status::Ok();
}

void Engine::update_table(std::size_t join, Value row) {
  const StreamDef& def = *joins_[join].def;
  TableState& table = tables_[join];
  if (!def.key.empty()) {
    const Value* k = row.find(def.key);
    if (k == nullptr || k->is_null()) {
      drop(metrics_.dropped_decode,
           "table '" + def.name + "': KEY field '" + def.key + "' is missing");
      return;
    }
    Value key = *k;
    table.by_key.insert_or_assign(std::move(key), std::move(row));
    return;
  }
  table.rows.push_back(std::move(row));
  if (table.rows.size() > options_.max_table_rows) {
    table.rows.pop_front();
    drop(metrics_.dropped_overflow, "table '" + def.name + "' holds at most " +
                                        std::to_string(options_.max_table_rows) + " rows");
  }
}

bool Engine::lookup_tables(Tuple base, std::vector<Tuple>& out) {
  out.clear();
  out.push_back(std::move(base));
  std::vector<Tuple> next;
  for (std::size_t j = 0; j < joins_.size(); ++j) {
    JoinSpec& spec = joins_[j];
    if (!spec.def->is_table) continue;  // stream joins happen at window close
    TableState& table = tables_[j];
    next.clear();
    for (Tuple& l : out) {
      bool matched = false;
      auto try_row = [&](const Value& r) {
        l.joined[j] = r;
        if (spec.on) {
          auto m = spec.on->matches(make_row(l));
          if (!m.ok()) {
            record_error(m.status());
            return;
          }
          if (!*m) return;
        }
        matched = true;
        next.push_back(l);
      };
      if (spec.probe) {
        auto k = spec.probe->evaluate(make_row(l));
        if (!k.ok()) {
          record_error(k.status());
        } else if (auto it = table.by_key.find(*k); it != table.by_key.end()) {
          try_row(it->second);
        }
      } else if (!spec.def->key.empty()) {
        for (const auto& [k, r] : table.by_key) try_row(r);
      } else {
        for (const Value& r : table.rows) try_row(r);
      }
      if (!matched && spec.type == JoinType::kLeft) {
        l.joined[j] = Value();
        next.push_back(std::move(l));
      }
    }
    std::swap(out, next);
  }
  return !out.empty();
}

void Engine::compute_analytics(Tuple& t) {
  t.analytics.assign(analytics_.size(), Value());
  for (std::size_t i = 0; i < analytics_.size(); ++i) {
    if (analytics_[i].post) continue;
    eval_analytic(analytics_[i], make_row(t), t.analytics[i]);
  }
}

// An error (in an argument, the partition key, WHEN, or the function) leaves the state as
// it was and the call reads NULL for this row.
void Engine::eval_analytic(AnalyticCall& c, const sql::Row& row, Value& out) {
  out = Value();
  AnalyticState* state = nullptr;
  if (c.partition.empty()) {
    if (!c.global) c.global = c.factory();
    state = c.global.get();
  } else {
    c.key_scratch.resize(c.partition.size());
    for (std::size_t i = 0; i < c.partition.size(); ++i) {
      auto v = c.partition[i].evaluate(row);
      if (!v.ok()) {
        record_error(v.status());
        return;
      }
      c.key_scratch[i] = std::move(v).value();
    }
    auto it = c.partitions.find(c.key_scratch);
    if (it == c.partitions.end()) {
      if (c.partitions.size() >= options_.max_analytic_partitions) {
        drop(metrics_.dropped_overflow, c.name + ": at most " +
                                            std::to_string(options_.max_analytic_partitions) +
                                            " partitions are kept");
        return;
      }
      it = c.partitions.emplace(c.key_scratch, c.factory()).first;
    }
    state = it->second.get();
  }
  bool valid = true;
  if (c.when) {
    auto m = c.when->matches(row);
    if (!m.ok()) {
      record_error(m.status());
      return;
    }
    valid = *m;
  }
  c.values.resize(c.args.size());
  for (std::size_t i = 0; i < c.args.size(); ++i) {
    if (!c.args[i]) {
      c.values[i] = row.fields != nullptr ? *row.fields : Value();
      continue;
    }
    auto v = c.args[i]->evaluate(row);
    if (!v.ok()) {
      record_error(v.status());
      return;
    }
    c.values[i] = std::move(v).value();
  }
  Status s = state->update(c.values, valid, out);
  if (!s.ok()) {
    record_error(s);
    out = Value();
  }
}

bool Engine::where_ok(const sql::Row& row) {
  if (!where_) return true;
  auto m = where_->matches(row);
  if (!m.ok()) {
    record_error(m.status());
    return false;
  }
  if (!*m) ++metrics_.filtered;
  return *m;
}

void Engine::on_tuple(Tuple t) {
  if (event_time_) {
    if (max_event_time_ == kNoTime || t.ts > max_event_time_) max_event_time_ = t.ts;
    std::int64_t wm = max_event_time_ - options_.late_tolerance_ms;
    if (watermark_ == kNoTime || wm > watermark_) watermark_ = wm;
  }
  add_to_window(std::move(t));
}

void Engine::add_to_window(Tuple t) {
  const WindowSpec& w = *window_;
  switch (w.kind) {
    case WindowKind::kTumbling:
    case WindowKind::kHopping: {
      std::int64_t p = align_down(t.ts, w.pane);
      if (last_end_ != kNoTime && p + w.pane <= last_end_ + w.hop - w.size) {
        // Only in windows already emitted (a processing-time push racing its timer).
        drop(metrics_.dropped_late, "row behind the last closed window");
        return;
      }
      Pane& pane = panes_[p];
      if (incremental_) {
        accumulate(pane.groups, t);
        return;
      }
      pane.rows.push_back(std::move(t));
      if (++pane_rows_ > options_.max_window_rows) {
        for (auto& [start, pn] : panes_) {
          if (pn.rows.empty()) continue;
          pn.rows.pop_front();
          break;
        }
        --pane_rows_;
        drop(metrics_.dropped_overflow,
             "window holds at most " + std::to_string(options_.max_window_rows) + " rows");
      }
      return;
    }
    case WindowKind::kSliding: {
      bool fire = true;
      if (trigger_ && t.side == 0) {
        auto m = trigger_->matches(make_row(t));
        if (!m.ok()) record_error(m.status());
        fire = m.ok() && *m;
      } else if (trigger_) {
        fire = false;
      }
      std::int64_t ts = t.ts;
      auto pos = std::upper_bound(buffer_.begin(), buffer_.end(), ts,
                                  [](std::int64_t v, const Tuple& x) { return v < x.ts; });
      buffer_.insert(pos, std::move(t));
      if (buffer_.size() > options_.max_window_rows) {
        buffer_.pop_front();
        drop(metrics_.dropped_overflow,
             "window holds at most " + std::to_string(options_.max_window_rows) + " rows");
      }
      if (fire) {
        triggers_.insert(std::upper_bound(triggers_.begin(), triggers_.end(), ts), ts);
        if (!event_time_ && w.delay == 0) close_until(ts);
      }
      // Rows no pending or future trigger can reach.
      std::int64_t now = event_time_ ? watermark_ : ts;
      std::int64_t horizon = triggers_.empty() ? now : std::min(now, triggers_.front());
      while (!buffer_.empty() && buffer_.front().ts <= horizon - w.size) buffer_.pop_front();
      return;
    }
    case WindowKind::kSession: {
      if (session_start_ != kNoTime && t.ts >= next_deadline()) {
        close_until(next_deadline());
      }
      if (session_start_ == kNoTime) session_start_ = session_last_ = t.ts;
      session_last_ = std::max(session_last_, t.ts);
      buffer_.push_back(std::move(t));
      if (buffer_.size() > options_.max_window_rows) {
        buffer_.pop_front();
        drop(metrics_.dropped_overflow,
             "window holds at most " + std::to_string(options_.max_window_rows) + " rows");
      }
      return;
    }
    case WindowKind::kCount: {
      buffer_.push_back(std::move(t));
      if (static_cast<std::int64_t>(buffer_.size()) > w.size) buffer_.pop_front();
      ++count_since_emit_;
      if (count_since_emit_ >= w.hop && static_cast<std::int64_t>(buffer_.size()) >= w.size) {
        count_since_emit_ = 0;
        std::vector<const Tuple*> rows;
        for (const Tuple& x : buffer_) rows.push_back(&x);
        emit_rows(rows, sql::WindowBounds{buffer_.front().ts, buffer_.back().ts});
        if (w.hop == w.size) buffer_.clear();
      }
      return;
    }
  }
}

// The time at which the next window closes, or kNoTime when nothing is pending.
std::int64_t Engine::next_deadline() const {
  if (!window_) return kNoTime;
  const WindowSpec& w = *window_;
  switch (w.kind) {
    case WindowKind::kTumbling:
    case WindowKind::kHopping: {
      if (panes_.empty()) return kNoTime;
      std::int64_t p0 = panes_.begin()->first;
      std::int64_t end = align_down(p0, w.hop) + w.hop;
      if (last_end_ != kNoTime) end = std::max(end, last_end_ + w.hop);
      return end;
    }
    case WindowKind::kSliding:
      return triggers_.empty() ? kNoTime : triggers_.front() + w.delay;
    case WindowKind::kSession: {
      if (session_start_ == kNoTime) return kNoTime;
      std::int64_t cap = align_down(session_start_, w.max_duration) + w.max_duration;
      return std::min(session_last_ + w.timeout, cap);
    }
    case WindowKind::kCount:
      return kNoTime;
  }
  return kNoTime;
}

void Engine::close_until(std::int64_t now) {
  if (!window_ || now == kNoTime) return;
  const WindowSpec& w = *window_;
  switch (w.kind) {
    case WindowKind::kTumbling:
    case WindowKind::kHopping: {
      while (!panes_.empty()) {
        std::int64_t end = next_deadline();
        if (end > now) break;
        std::int64_t start = end - w.size;
        // Panes before this window's start belong to no window still open (hop > size).
        while (!panes_.empty() && panes_.begin()->first < start) {
          pane_rows_ -= panes_.begin()->second.rows.size();
          panes_.erase(panes_.begin());
        }
        sql::WindowBounds b{start, end};
        if (incremental_) {
          auto first = panes_.lower_bound(start);
          auto last = panes_.lower_bound(end);
          if (first != last && std::next(first) == last) {
            emit_groups(first->second.groups, b);
          } else if (first != last) {
            GroupTable merged;
            for (auto it = first; it != last; ++it) {
              for (Group* g : it->second.groups.order()) {
                const std::size_t h = GroupTable::hash(g->key);
                Group* slot = merged.find(g->key, h);
                if (slot == nullptr) {
                  auto ng = std::make_unique<Group>();
                  ng->key = g->key;
                  ng->first = g->first;
                  for (const auto& a : aggs_) ng->accs.push_back(a.factory());
                  slot = merged.add(std::move(ng), h);
                }
                for (std::size_t i = 0; i < aggs_.size(); ++i) slot->accs[i]->merge(*g->accs[i]);
              }
            }
            emit_groups(merged, b);
          }
        } else {
          std::vector<const Tuple*> rows;
          for (auto it = panes_.lower_bound(start); it != panes_.end() && it->first < end; ++it) {
            for (const Tuple& t : it->second.rows) rows.push_back(&t);
          }
          if (!rows.empty()) emit_rows(rows, b);
        }
        last_end_ = end;
        std::int64_t next_start = end + w.hop - w.size;
        while (!panes_.empty() && panes_.begin()->first < next_start) {
          pane_rows_ -= panes_.begin()->second.rows.size();
          panes_.erase(panes_.begin());
        }
      }
      return;
    }
    case WindowKind::kSliding: {
      while (!triggers_.empty() && triggers_.front() + w.delay <= now) {
        std::int64_t t = triggers_.front();
        triggers_.pop_front();
        sql::WindowBounds b{t - w.size, t + w.delay};
        std::vector<const Tuple*> rows;
        for (const Tuple& x : buffer_) {
          if (x.ts > b.start && x.ts <= b.end) rows.push_back(&x);
        }
        if (!rows.empty()) emit_rows(rows, b);
      }
      // Keep what a pending or future trigger may still need.
      std::int64_t horizon = triggers_.empty() ? now : std::min(now, triggers_.front());
      while (!buffer_.empty() && buffer_.front().ts <= horizon - w.size) buffer_.pop_front();
      return;
    }
    case WindowKind::kSession: {
      std::int64_t end = next_deadline();
      if (end == kNoTime || end > now) return;
      std::vector<const Tuple*> rows;
      for (const Tuple& x : buffer_) rows.push_back(&x);
      if (!rows.empty()) emit_rows(rows, sql::WindowBounds{session_start_, end});
      buffer_.clear();
      session_start_ = session_last_ = kNoTime;
      return;
    }
    case WindowKind::kCount:
      return;
  }
}

void Engine::arm_timer() {
  if (event_time_ || stopped_) return;
  std::int64_t at = next_deadline();
  if (at == kNoTime) return;
  if (timer_ != 0) {
    if (timer_at_ == at) return;
    clock_.cancel(timer_);
    timer_ = 0;
  }
  std::int64_t delay = std::max<std::int64_t>(0, at - clock_.wall_ms());
  timer_at_ = at;
  std::weak_ptr<Engine> weak = weak_from_this();
  timer_ = clock_.schedule_after(std::chrono::milliseconds(delay), [weak] {
    if (auto self = weak.lock()) self->on_timer();
  });
}

void Engine::on_timer() {
  std::lock_guard lock(mu_);
  if (stopped_) return;
  timer_ = 0;
  // The timer may fire a little before the wall clock reaches the deadline (steady and
  // system clocks drift apart); close what it was armed for.
  close_until(std::max(clock_.wall_ms(), timer_at_));
  arm_timer();
}

// ---------------------------------------------------------------- emission

sql::Row Engine::make_row(const Tuple& t, std::span<const Value> aggs, const sql::WindowBounds* w,
                          const std::vector<Value>* analytics) {
  for (std::size_t i = 0; i < named_.size(); ++i) {
    named_[i].fields = i < t.joined.size() ? &t.joined[i] : nullptr;
  }
  sql::Row row;
  row.fields = &t.fields;
  row.meta = t.meta.is_null() ? nullptr : &t.meta;
  row.joined = named_;
  row.aggregates = aggs;
  row.window = w;
  row.analytics = analytics != nullptr ? *analytics : t.analytics;
  return row;
}

void Engine::accumulate(GroupTable& gt, const Tuple& t) {
  sql::Row row = make_row(t);
  for (std::size_t i = 0; i < group_keys_.size(); ++i) {
    auto v = group_keys_[i].evaluate(row);
    if (!v.ok()) {
      record_error(v.status());
      return;
    }
    key_scratch_[i] = std::move(v).value();
  }
  const std::size_t h = GroupTable::hash(key_scratch_);
  Group* g = gt.find(key_scratch_, h);
  if (g == nullptr) {
    if (gt.size() >= options_.max_window_rows) {
      drop(metrics_.dropped_overflow,
           "window holds at most " + std::to_string(options_.max_window_rows) + " groups");
      return;
    }
    auto ng = std::make_unique<Group>();
    ng->key = key_scratch_;
    ng->first = t;
    ng->accs.reserve(aggs_.size());
    for (const auto& a : aggs_) ng->accs.push_back(a.factory());
    g = gt.add(std::move(ng), h);
  }
  for (std::size_t i = 0; i < aggs_.size(); ++i) {
    AggCall& a = aggs_[i];
    Status s;
    if (a.star || !a.arg) {
      s = g->accs[i]->add(t.fields, t.fields);
    } else {
      auto v = a.arg->evaluate(row);
      if (!v.ok()) {
        record_error(v.status());
        continue;
      }
      s = g->accs[i]->add(*v, t.fields);
    }
    if (!s.ok()) record_error(s);
  }
}

std::vector<Tuple> Engine::join_streams(const std::vector<const Tuple*>& rows) {
  std::vector<Tuple> acc;
  for (const Tuple* r : rows) {
    if (r->side == 0) acc.push_back(*r);
  }
  for (std::size_t j = 0; j < joins_.size(); ++j) {
    JoinSpec& spec = joins_[j];
    if (spec.def->is_table) continue;  // looked up after the stream joins
    std::vector<const Tuple*> right;
    for (const Tuple* r : rows) {
      if (r->side == j + 1) right.push_back(r);
    }
    std::vector<Tuple> next;
    std::vector<bool> right_matched(right.size(), false);
    for (Tuple& l : acc) {
      bool matched = false;
      for (std::size_t i = 0; i < right.size(); ++i) {
        Tuple c = l;
        c.joined[j] = right[i]->joined[j];
        if (spec.on) {
          auto m = spec.on->matches(make_row(c));
          if (!m.ok()) {
            record_error(m.status());
            continue;
          }
          if (!*m) continue;
        }
        matched = true;
        right_matched[i] = true;
        next.push_back(std::move(c));
      }
      if (!matched && (spec.type == JoinType::kLeft || spec.type == JoinType::kFull)) {
        next.push_back(std::move(l));
      }
    }
    if (spec.type == JoinType::kRight || spec.type == JoinType::kFull) {
      for (std::size_t i = 0; i < right.size(); ++i) {
        if (right_matched[i]) continue;
        Tuple c;
        c.joined.resize(joins_.size());
        c.joined[j] = right[i]->joined[j];
        c.ts = right[i]->ts;
        c.analytics = right[i]->analytics;  // no FROM row: the joined event's values
        next.push_back(std::move(c));
      }
    }
    acc = std::move(next);
  }
  return acc;
}

void Engine::emit_rows(const std::vector<const Tuple*>& rows, sql::WindowBounds b) {
  std::vector<Tuple> joined;
  std::vector<const Tuple*> units;
  if (stream_join_) {
    joined = join_streams(rows);
    if (table_join_) {
      // Streams joined within the window, then each joined row looks the tables up.
      std::vector<Tuple> looked_up, all;
      for (Tuple& t : joined) {
        if (!lookup_tables(std::move(t), looked_up)) continue;
        for (Tuple& x : looked_up) all.push_back(std::move(x));
      }
      joined = std::move(all);
    }
    for (const Tuple& t : joined) {
      if (!where_after_join_ || where_ok(t)) units.push_back(&t);
    }
  } else {
    units = rows;
  }
  if (aggregate_query_) {
    GroupTable gt;
    for (const Tuple* t : units) accumulate(gt, *t);
    emit_groups(gt, b);
    return;
  }
  std::vector<Out> outs;
  outs.reserve(units.size());
  for (const Tuple* t : units) outs.push_back(Out{t, {}});
  finish(outs, &b);
}

void Engine::emit_groups(const GroupTable& gt, sql::WindowBounds b) {
  std::vector<Out> outs;
  outs.reserve(gt.size());
  for (const Group* g : gt.order()) {
    Out o;
    o.tuple = &g->first;
    o.aggs.reserve(g->accs.size());
    for (const auto& a : g->accs) o.aggs.push_back(a->result());
    outs.push_back(std::move(o));
  }
  finish(outs, &b);
}

void Engine::finish(std::vector<Out>& outs, const sql::WindowBounds* b) {
  if (post_analytics_) {
    // Analytic calls over aggregates: once per output row, in emission order.
    for (Out& o : outs) {
      o.analytics = o.tuple->analytics;
      o.analytics.resize(analytics_.size());
      for (std::size_t i = 0; i < analytics_.size(); ++i) {
        if (!analytics_[i].post) continue;
        Value v;
        eval_analytic(analytics_[i], make_row(*o.tuple, o.aggs, b, &o.analytics), v);
        o.analytics[i] = std::move(v);
      }
    }
  }
  if (having_) {
    std::vector<Out> kept;
    for (Out& o : outs) {
      auto m = having_->matches(make_row(*o.tuple, o.aggs, b, o.analytics_or_null()));
      if (!m.ok()) {
        record_error(m.status());
        continue;
      }
      if (*m)
        kept.push_back(std::move(o));
      else
        ++metrics_.filtered;
    }
    outs = std::move(kept);
  }
  if (!order_.empty() && outs.size() > 1) {
    std::vector<std::pair<std::vector<Value>, std::size_t>> keyed;
    keyed.reserve(outs.size());
    for (std::size_t i = 0; i < outs.size(); ++i) {
      std::vector<Value> k;
      for (auto& ok : order_) {
        auto v = ok.expr.evaluate(
            make_row(*outs[i].tuple, outs[i].aggs, b, outs[i].analytics_or_null()));
        if (!v.ok()) record_error(v.status());
        k.push_back(v.ok() ? std::move(v).value() : Value());
      }
      keyed.emplace_back(std::move(k), i);
    }
    std::stable_sort(keyed.begin(), keyed.end(), [this](const auto& x, const auto& y) {
      for (std::size_t i = 0; i < order_.size(); ++i) {
        const Value& a = x.first[i];
        const Value& c = y.first[i];
        int r;
        if (a.is_null() || c.is_null()) {
          r = a.is_null() == c.is_null() ? 0 : (a.is_null() ? -1 : 1);  // NULL sorts first
        } else {
          auto o = compare(a, c);
          r = o < 0 ? -1 : (o > 0 ? 1 : 0);
        }
        if (r != 0) return order_[i].desc ? r > 0 : r < 0;
      }
      return false;
    });
    std::vector<Out> sorted;
    sorted.reserve(outs.size());
    for (auto& [k, i] : keyed) sorted.push_back(std::move(outs[i]));
    outs = std::move(sorted);
  }
  if (limit_ && outs.size() > static_cast<std::size_t>(*limit_))
    outs.resize(static_cast<std::size_t>(*limit_));
  Emission e;
  e.rows.reserve(outs.size());
  for (const Out& o : outs) {
    if (auto r = project(o, b)) e.rows.push_back(std::move(*r));
  }
  if (e.rows.empty()) return;
  if (b != nullptr) {
    e.window_start = b->start;
    e.window_end = b->end;
  }
  metrics_.records_out += e.rows.size();
  ++metrics_.emissions;
  sink_(e);
}

std::optional<Value> Engine::project(const Out& o, const sql::WindowBounds* b) {
  const Tuple& t = *o.tuple;
  if (passthrough_) return t.fields;
  ValueObject out;
  auto put = [&out](const std::string& name, Value v) {
    if (out.empty())
      out.append(name, std::move(v));
    else
      out.set(name, std::move(v));
  };
  auto add_all = [&out](const Value& v) {
    if (!v.is_object()) return;
    if (out.empty()) {
      out.reserve(v.as_object().size());
      for (const auto& [k, x] : v.as_object()) out.append(k, x);
    } else {
      for (const auto& [k, x] : v.as_object()) out.set(k, x);
    }
  };
  for (auto& p : projections_) {
    switch (p.kind) {
      case Projection::kAll:
        add_all(t.fields);
        for (const Value& j : t.joined) add_all(j);
        break;
      case Projection::kAllOf:
        add_all(p.slot < 0 ? t.fields : t.joined[static_cast<std::size_t>(p.slot)]);
        break;
      case Projection::kExpr: {
        auto v = p.expr->evaluate(make_row(t, o.aggs, b, o.analytics_or_null()));
        if (!v.ok()) {
          record_error(v.status());
          return std::nullopt;
        }
        put(p.name, std::move(v).value());
        break;
      }
      case Projection::kChangedCols: {
        // eKuiper: each column compared with the value it had in the last emitted row.
        sql::Row row = make_row(t, o.aggs, b, o.analytics_or_null());
        auto ignore = p.expr->evaluate(row);
        if (ignore.ok() && !ignore->is_bool()) {
          ignore = InvalidArgument("changed_cols: ignore_null must be a boolean, got " +
                                   std::string(ignore->type_name()));
        }
        if (!ignore.ok()) {
          record_error(ignore.status());
          return std::nullopt;
        }
        auto check = [&](const std::string& name, const Value& v) {
          if (ignore->as_bool() && v.is_null()) return;
          Value& last = p.last[name];
          if (v == last) return;
          last = v;
          put(p.name + name, v);
        };
        for (auto& [name, expr] : p.columns) {
          if (!expr) {
            std::vector<const Value*> objects{&t.fields};
            for (const Value& j : t.joined) objects.push_back(&j);
            for (const Value* obj : objects) {
              if (!obj->is_object()) continue;
              for (const auto& [k, x] : obj->as_object()) check(std::string(k), x);
            }
            continue;
          }
          auto v = expr->evaluate(row);
          if (!v.ok()) {
            record_error(v.status());
            return std::nullopt;
          }
          check(name, *v);
        }
        break;
      }
    }
  }
  if (changed_cols_ && out.empty()) return std::nullopt;  // nothing changed: no row
  return Value(std::move(out));
}

class QueryImpl final : public Query {
 public:
  explicit QueryImpl(std::shared_ptr<Engine> engine) : engine_(std::move(engine)) {}
  ~QueryImpl() override { engine_->stop(); }

  Status push(std::string_view source, const Event& event) override {
    return engine_->push(source, event);
  }
  void flush() override { engine_->flush(); }
  QueryMetrics metrics() const override { return engine_->metrics(); }
  const std::vector<std::string>& sources() const override { return engine_->sources(); }
  bool windowed() const override { return engine_->windowed(); }

 private:
  std::shared_ptr<Engine> engine_;
};

}  // namespace

Result<std::unique_ptr<Query>> plan(const sql::SelectStatement& select, const Catalog& catalog,
                                    Clock& clock, QueryOptions options, Sink sink) {
  if (!sink) sink = [](const Emission&) {};
  auto engine = std::make_shared<Engine>(clock, options, std::move(sink));
  GANGLION_RETURN_IF_ERROR(engine->build(select, catalog));
  return std::unique_ptr<Query>(new QueryImpl(std::move(engine)));
}

Result<std::unique_ptr<Query>> plan_sql(std::string_view select_sql, const Catalog& catalog,
                                        Clock& clock, QueryOptions options, Sink sink) {
  GANGLION_ASSIGN_OR_RETURN(sql::Statement st, sql::parse_statement(select_sql));
  auto* select = std::get_if<sql::SelectStatement>(&st);
  if (select == nullptr) return InvalidArgument("expected a SELECT statement");
  return plan(*select, catalog, clock, options, std::move(sink));
}

void EmissionRows::push_back(Value row) {
  values_.push_back(std::move(row));
  if (!json_.empty()) json_.emplace_back();
}

void EmissionRows::push_json(std::shared_ptr<const std::string> json) {
  if (json_.size() < values_.size()) json_.resize(values_.size());
  values_.emplace_back();
  json_.push_back(std::move(json));
  pending_ = true;
}

void EmissionRows::clear() {
  values_.clear();
  json_.clear();
  pending_ = false;
}

void EmissionRows::build() const {
  pending_ = false;
  for (std::size_t i = 0; i < json_.size(); ++i) {
    if (!json_[i] || !values_[i].is_null()) continue;  // a JSON row is an object once built
    auto v = parse_json(*json_[i]);  // validated when the row was made: cannot fail
    values_[i] = v.ok() ? std::move(v).value() : Value();
  }
}

namespace {

// Row `i` as JSON: its bytes when they are what append_json() would write, else encoded.
void append_row(const EmissionRows& rows, std::size_t i, std::string& out) {
  const std::string* json = rows.json(i);
  if (json != nullptr && is_canonical_json(*json)) {
    out += *json;
  } else {
    append_json(rows[i], out);
  }
}

}  // namespace

std::vector<std::string> sink_payloads(const Emission& emission, bool send_single) {
  std::vector<std::string> out;
  if (send_single) {
    out.reserve(emission.rows.size());
    for (std::size_t i = 0; i < emission.rows.size(); ++i) {
      std::string s;
      append_row(emission.rows, i, s);
      out.push_back(std::move(s));
    }
    return out;
  }
  std::string s = "[";
  for (std::size_t i = 0; i < emission.rows.size(); ++i) {
    if (i != 0) s += ',';
    append_row(emission.rows, i, s);
  }
  s += ']';
  out.push_back(std::move(s));
  return out;
}

}  // namespace ganglion::stream
