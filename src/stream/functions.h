// The SQL function registry: name -> kind, arity and implementation.
//
// Scalar functions map argument values to one value per row. Aggregates and analytic
// functions are registered here too (kind kAggregate / kAnalytic, with their own
// implementation hooks added by the aggregation layer); the expression compiler looks a
// call up once, checks its arity at compile time and reports "function 'abs' expects 1
// argument, got 2" with the call's line and column.
//
// Names are case-insensitive. Functions follow eKuiper's names and NULL behaviour: with a
// NULL argument most functions return NULL (coalesce, isnull, concat handle NULL
// themselves).
#pragma once

#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/clock.h"
#include "base/status.h"
#include "event/value.h"

namespace ganglion::sql {

enum class FunctionKind { kScalar, kAggregate, kAnalytic };

// What a scalar function may use besides its arguments. Never null.
struct CallContext {
  const Clock* clock = nullptr;
};

// Writes the result to `out` (which holds the previous row's result: reuse its storage).
// Returns kInvalidArgument for bad argument values ("sqrt: ...").
using ScalarFn = Status (*)(const CallContext& ctx, std::span<const Value> args, Value& out);
// The same as a closure, for functions defined at run time (user functions called from SQL,
// e.g. Lua: the rule manager registers one per function name in a rule's own registry).
using ScalarClosure =
    std::function<Status(const CallContext& ctx, std::span<const Value> args, Value& out)>;

inline constexpr int kVariadic = -1;

struct FunctionDef {
  std::string name;  // lower-case
  FunctionKind kind = FunctionKind::kScalar;
  int min_args = 0;
  int max_args = 0;           // kVariadic for no upper bound
  ScalarFn scalar = nullptr;  // set for kScalar (or `closure`)
  ScalarClosure closure;      // used when `scalar` is null; called like `scalar`
  // True when the function must see NULL arguments (otherwise NULL in -> NULL out and the
  // function is not called).
  bool handles_null = false;
  // True when the result depends on more than the arguments (now(), rand()): never folded.
  bool volatile_result = false;
};

class FunctionRegistry {
 public:
  // Registers `def`; kAlreadyExists when the name is taken.
  Status add(FunctionDef def);
  // Case-insensitive lookup; nullptr when unknown.
  const FunctionDef* find(std::string_view name) const;
  std::size_t size() const { return by_name_.size(); }

  // The built-in scalar functions. Copy it to add your own.
  static const FunctionRegistry& builtins();

  // "" when `argc` fits, else "function 'abs' expects 1 argument, got 2".
  static std::string arity_error(const FunctionDef& def, int argc);

 private:
  std::unordered_map<std::string, FunctionDef> by_name_;
};

}  // namespace ganglion::sql
