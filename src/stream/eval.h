// Compiled SQL expressions: an AST expression turned into a tree of evaluator nodes that
// runs against one row at a time.
//
// Compile once per rule, evaluate per row. Field names are resolved at compile time against
// the stream's schema when it is known (an unknown field is a compile error); for
// schemaless streams each field node looks its name up once per row, starting at the slot
// where it found the name in the previous row (rows of one stream usually share a shape,
// so this is O(1)). Simple comparisons, boolean logic, IN, BETWEEN and LIKE with a constant
// pattern do not allocate per row: nodes return pointers into the row, into literals, or
// into a per-node scratch value.
//
// Thread: a CompiledExpr is not thread-safe (nodes keep scratch values); use one per
// operator instance. It must not outlive the FunctionRegistry and Clock it was compiled with.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "event/value.h"
#include "stream/ast.h"
#include "stream/functions.h"

namespace ganglion::sql {

// A joined stream's fields for `stream.field` lookups.
struct NamedRow {
  std::string_view name;          // stream or table name, or its alias
  const Value* fields = nullptr;  // an object; nullptr when the side has no row (outer join)
};

// window_start() / window_end() of the window a row is evaluated in (milliseconds: event
// time when the stream has a TIMESTAMP, else wall-clock time).
struct WindowBounds {
  std::int64_t start = 0;
  std::int64_t end = 0;
};

struct Row {
  const Value* fields = nullptr;     // the FROM stream's object; nullptr reads as all-NULL
  std::span<const NamedRow> joined;  // other streams, looked up by qualifier
  // Results of the aggregate calls of a grouped query, by slot (see
  // CompileOptions::aggregate_slot). Empty outside the aggregation layer.
  std::span<const Value> aggregates = {};
  // nullptr outside a window: window_start()/window_end() then read as NULL.
  const WindowBounds* window = nullptr;
  // Values of the analytic calls (lag, latest, acc_sum...) for this row, by slot (see
  // CompileOptions::analytic_slot). A slot past the end reads as NULL.
  std::span<const Value> analytics = {};
  // The event's metadata for meta(): an object ({"topic": ..., "qos": ...}); nullptr reads
  // as NULL. Set only for queries that call meta() (CompiledExpr::reads_meta()).
  const Value* meta = nullptr;
};

struct CompileOptions {
  std::string stream;  // the FROM stream's name: `stream.field` reads Row::fields
  std::string alias;   // its alias, if any
  // Known field names of the FROM stream; nullptr for a schemaless stream. Referring to a
  // field not listed is a compile error (unqualified or qualified with stream/alias).
  const std::vector<FieldDef>* schema = nullptr;
  const FunctionRegistry* functions = nullptr;  // nullptr: FunctionRegistry::builtins()
  const Clock* clock = nullptr;                 // nullptr: SystemClock::instance()
  // Set by the aggregation layer: for an aggregate call, returns the slot whose result
  // the compiled expression reads from Row::aggregates (the call's arguments are then not
  // compiled here), or -1 to reject the call as "not allowed here".
  std::function<int(const Expr& call)> aggregate_slot;
  // Set by the query engine, which keeps the state of analytic functions: for an analytic
  // call, returns the slot whose value the compiled expression reads from Row::analytics,
  // or -1. Without it (or with -1) an analytic call is a compile error.
  std::function<int(const Expr& call)> analytic_slot;
};

namespace detail {
class Node;
struct EvalState;
}  // namespace detail

class CompiledExpr {
 public:
  CompiledExpr(CompiledExpr&&) noexcept;
  CompiledExpr& operator=(CompiledExpr&&) noexcept;
  ~CompiledExpr();

  // The value of the expression for `row`. Errors: kInvalidArgument for type errors
  // ("invalid operation string(a) > bigint(1)"), division by zero, bad function arguments.
  Result<Value> evaluate(const Row& row);
  // WHERE/HAVING semantics: true only when the value is TRUE; NULL and FALSE are false.
  // A non-boolean value is an error.
  Result<bool> matches(const Row& row);

  // Top-level fields of the FROM stream the expression reads (for parse_json_fields()),
  // and whether it needs every field (it passes the whole row somewhere).
  const std::vector<std::string>& referenced_fields() const { return fields_; }
  // True when the expression calls meta(): the row must then carry Row::meta.
  bool reads_meta() const { return reads_meta_; }

 private:
  friend Result<CompiledExpr> compile(const Expr&, const CompileOptions&);
  CompiledExpr() = default;

  std::unique_ptr<detail::Node> root_;
  std::vector<std::string> fields_;
  bool reads_meta_ = false;
  CallContext ctx_;
};

// Compiles `expr`. Errors carry the line and column of the offending node: unknown
// function, wrong number of arguments, aggregate in a scalar context, analytic call without
// a query, `*` as an argument, unknown field (with a schema), bad LIKE pattern.
Result<CompiledExpr> compile(const Expr& expr, const CompileOptions& options);

// Convenience: parse + compile + evaluate one expression against `fields` (tests, tools).
Result<Value> evaluate_sql(std::string_view expr, const Value& fields,
                           const CompileOptions& options = {});

// SQL LIKE: % matches any run of characters, _ exactly one (UTF-8 aware); a backslash
// escapes the next character.
bool like_match(std::string_view text, std::string_view pattern);

}  // namespace ganglion::sql
