// Aggregate functions of the streaming SQL (eKuiper names and NULL semantics), as
// incremental accumulators.
//
// One Accumulator holds the state of one aggregate call for one group in one window (or one
// pane of a hopping window). add() folds one row in; merge() folds in another accumulator
// of the same call (hopping windows merge their panes); result() reads the value at window
// close and may be called more than once. count/sum/avg/min/max/stddev(s)/var(s)/last_value
// keep O(1) state; median, percentile_*, collect, merge_agg and deduplicate keep the values.
//
// NULL: every aggregate but collect, deduplicate and last_value(x, false) ignores NULL
// arguments; count(*) counts rows. Over no (non-NULL) value sum/avg/min/max/stddev/var/
// median/percentile return NULL and count returns 0.
// Thread: an Accumulator is used by one thread.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "event/value.h"

namespace ganglion::stream {

class Accumulator {
 public:
  virtual ~Accumulator() = default;
  // Folds one row in. `arg` is the value of the call's first argument for the row (the
  // whole row for `f(*)`); `row` is the row itself (deduplicate returns rows). Errors
  // (kInvalidArgument): a value of the wrong type ("sum: expects a number, got
  // string(a)"); the value is then skipped.
  virtual Status add(const Value& arg, const Value& row) = 0;
  // Folds in `other`, made by the same factory, as if its rows had been added after ours.
  virtual void merge(const Accumulator& other) = 0;
  virtual Value result() const = 0;
};

using AccumulatorFactory = std::function<std::unique_ptr<Accumulator>()>;

// The factory for aggregate `name` (lower-case, as registered in FunctionRegistry::builtins)
// whose arguments after the first are the constants `constant_args` (percentile_cont(x, 0.9):
// {0.9}; deduplicate(x, true): {true}; last_value(x, false): {false}). Errors: unknown
// aggregate, a constant of the wrong type or range (percentile outside [0, 1]). `star` is
// true for `f(*)`: count(*) then counts rows instead of non-NULL values.
Result<AccumulatorFactory> accumulator_factory(std::string_view name,
                                               std::span<const Value> constant_args,
                                               bool star = false);

// A hash consistent with Value's operator== (1 and 1.0 hash alike), for GROUP BY keys and
// table keys.
std::size_t hash_value(const Value& v);

struct ValueHash {
  std::size_t operator()(const Value& v) const { return hash_value(v); }
};
struct ValuesHash {
  std::size_t operator()(const std::vector<Value>& key) const;
};

}  // namespace ganglion::stream
