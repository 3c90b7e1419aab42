// FunctionRegistry: the node's functions by name, each swapped atomically on redefinition.
//
// define(spec) compiles the new version first (its top-level chunk runs under its limits);
// only when that succeeds does it replace the old one, in one step under the registry lock.
// Callers take a shared_ptr to the current version for the length of a call, so in-flight
// calls finish on the version they started with, and nothing else (other functions, rules,
// triggers, which look the function up by name on every call) is touched. A replacement
// keeps the function's key-value state (FunctionState); remove() drops it.
//
// Metrics (label `function`): ganglion_function_invocations_total, _errors_total (every
// failed call, including the two below), _budget_exceeded_total, _memory_exceeded_total,
// ganglion_function_duration_seconds (histogram, measured with the injected Clock) and
// ganglion_function_memory_bytes (Lua heap after the last call).
//
// Thread: every method is thread-safe. Calls of one function are serialised by that
// function (see LuaFunction); calls of different functions run in parallel. Listeners run
// on the thread that called define()/remove(), after the change, without the lock held.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/metrics.h"
#include "base/status.h"
#include "event/event.h"
#include "functions/function_spec.h"
#include "functions/lua_function.h"

namespace ganglion::functions {

// What describe()/list() report (the shape of the REST API's function resource).
struct FunctionInfo {
  std::string name;
  std::string file;  // empty when the source was given inline
  std::optional<TriggerSpec> trigger;
  FunctionLimits limits;
  std::uint64_t version = 0;  // 1 on first definition, +1 per replacement
  std::uint64_t invocations = 0;
  std::uint64_t errors = 0;
  std::uint64_t budget_exceeded = 0;
  std::uint64_t memory_exceeded = 0;
  std::size_t memory_bytes = 0;  // Lua heap in use now
  std::size_t state_keys = 0;
  std::size_t state_bytes = 0;
};

class FunctionRegistry {
 public:
  // `clock` and `metrics` must outlive the registry.
  FunctionRegistry(Clock& clock, MetricsRegistry& metrics);
  ~FunctionRegistry();
  FunctionRegistry(const FunctionRegistry&) = delete;
  FunctionRegistry& operator=(const FunctionRegistry&) = delete;

  // Defines or replaces `spec.name`. The source must be resolved (resolve_source()).
  // Errors: kInvalidArgument (bad name, compile error with line, no `handle`),
  // kResourceExhausted (the top-level chunk exceeded a limit). On error the previous version,
  // if any, stays in place.
  Status define(FunctionSpec spec);
  // kNotFound when there is no such function. In-flight calls finish normally.
  Status remove(std::string_view name);
  std::vector<FunctionInfo> list() const;  // by name
  Result<FunctionInfo> describe(std::string_view name) const;
  // The spec a function was defined with (with its source), for export.
  Result<FunctionSpec> spec(std::string_view name) const;

  // The current version, or nullptr.
  std::shared_ptr<LuaFunction> find(std::string_view name) const;

  // handle(event) on the current version; counted in the metrics. kNotFound when undefined.
  Result<Invocation> invoke(std::string_view name, const Event& event);
  // handle(event) for a rule sink: the payload is the rule's output row.
  Result<Invocation> invoke(std::string_view name, std::string_view topic, const Value& payload,
                            std::int64_t timestamp_ms);
  // handle(args...) as a SQL scalar function; the first return value.
  Result<Value> call_scalar(std::string_view name, std::span<const Value> args);

  // Told after each successful define (with the new spec) or remove (with nullptr), e.g. to
  // add or drop the function's TopicTrigger. One listener; set it before use.
  using Listener = std::function<void(const std::string& name, const FunctionSpec* spec)>;
  void set_listener(Listener listener);

 private:
  struct Metrics {
    Counter* invocations;
    Counter* errors;
    Counter* budget_exceeded;
    Counter* memory_exceeded;
    Histogram* duration;
    Gauge* memory;
  };
  struct Entry {
    FunctionSpec spec;
    std::shared_ptr<LuaFunction> fn;
    std::uint64_t version = 0;
    Metrics metrics;
  };

  std::shared_ptr<const Entry> entry(std::string_view name) const;
  Metrics metrics_for(const std::string& name);
  template <typename Fn>
  Result<Invocation> measured(std::string_view name, Fn&& fn);
  FunctionInfo info(const Entry& e) const;

  Clock& clock_;
  MetricsRegistry& registry_;
  mutable std::shared_mutex mu_;
  std::map<std::string, std::shared_ptr<const Entry>, std::less<>> entries_;
  std::uint64_t versions_ = 0;  // GUARDED_BY(mu_)
  Listener listener_;
};

}  // namespace ganglion::functions
