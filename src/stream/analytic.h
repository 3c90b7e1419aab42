// eKuiper's analytic functions: per-rule state updated by every event, in front of WHERE.
//
//   lag(x[, offset[, default[, ignore_null]]])   latest(x[, default])
//   changed_col(ignore_null, x)                   had_changed(ignore_null, x, ...)
//   acc_sum/acc_min/acc_max/acc_avg/acc_count(x[, on_begin, on_reset])
//
// One AnalyticState holds the state of one call in one partition (`OVER (PARTITION BY k)`
// keeps one per distinct key). The query engine evaluates the call's arguments and its
// `OVER (WHEN cond)` for each event and calls update(): with `valid` false (cond not true)
// the state is not changed and the function returns what eKuiper returns for an event it
// ignores (lag: the value it would return next; latest: the saved value; changed_col: NULL;
// had_changed: false; acc_*: the current accumulation).
//
// Semantics follow eKuiper's implementation (internal/binder/function/funcs_analytic.go and
// funcs_acc.go), except that the acc_* functions skip NULL values instead of failing.
// Thread: not thread-safe; the engine serialises calls under its mutex.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "event/value.h"
#include "stream/ast.h"

namespace ganglion::stream {

inline constexpr std::int64_t kMaxLagOffset = 100'000;

class AnalyticState {
 public:
  virtual ~AnalyticState() = default;
  // `args` are the call's argument values for this event, in call order; an argument written
  // as `*` (had_changed(true, *)) is the whole row (an object).
  // Writes the result to `out`. Errors (kInvalidArgument): an argument of the wrong type
  // ("lag: ignore_null must be a boolean, got string(x)"); the state is then unchanged.
  virtual Status update(std::span<const Value> args, bool valid, Value& out) = 0;
};

using AnalyticFactory = std::function<std::unique_ptr<AnalyticState>()>;

// True for the names above (lower-case).
bool is_analytic_function(std::string_view name);

// A factory for a call of analytic function `name` (lower-case) with `args` (arity already
// checked against the registry). Checks what eKuiper checks when a rule is created: lag's
// offset is an integer constant in [1, kMaxLagOffset]; acc_* take 1 or 3 arguments;
// `*` is allowed only as an argument of had_changed after the first. Errors carry no
// position (the caller adds the call's).
Result<AnalyticFactory> analytic_factory(std::string_view name, std::span<const sql::ExprPtr> args);

}  // namespace ganglion::stream
