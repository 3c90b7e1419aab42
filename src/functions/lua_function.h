// LuaFunction: one user function written in Lua 5.4, compiled once, called many times, in a
// sandbox.
//
// Entry point. The source is a chunk that defines a global function `handle`. The chunk runs
// once, at definition (under the same limits as a call); each invocation then calls
// `handle`:
//   - for an event (topic trigger, rule sink): handle(event), where `event` is a table
//       event.topic      string
//       event.payload    the payload parsed as JSON (object -> table, array -> sequence,
//                        scalars as Lua scalars), or nil when the bytes are not JSON
//       event.raw        the payload bytes as a string
//       event.timestamp  milliseconds since the Unix epoch (integer)
//       event.headers    {source=, sequence=, content_type=, trace_id=, data_class=}
//     Its return values are ignored; output goes through emit().
//   - for a SQL scalar call: handle(arg1, arg2, ...) with the SQL arguments converted as
//     below; the first return value (nil -> NULL) is the SQL result.
//
// API inside Lua (besides the safe standard libraries, see README.md):
//   emit(topic, payload [, qos])  payload: table/number/boolean (sent as JSON) or string
//                                 (sent as is); qos 0..2, default 0. Collected and returned
//                                 to the caller, who publishes them (TopicTrigger does).
//   state.get(key) / state.set(key, value)  a small per-function key-value store, in memory
//                                 only (lost on restart; kept when the function is replaced
//                                 through the registry). set(key, nil) and set(key, null)
//                                 delete; get of a missing key is nil.
//   log.info(msg) / log.warn(msg) / log.error(msg)  spdlog with the function name,
//                                 rate-limited; print(...) is log.info.
//   null                          the JSON null sentinel (see "Conversions").
//
// Conversions between Value and Lua:
//   null <-> `null` (a light userdata, truthy like any value; nil also converts to null). A
//   NULL SQL argument and a null top-level payload are passed as nil. Objects keep their keys
//   in JSON order only one way: a Lua table has no order, so Lua -> object orders keys as
//   Lua iterates them. Arrays become sequences marked with a shared metatable so that an
//   empty array converts back to [] (an unmarked empty table becomes {}). A table whose
//   keys are exactly 1..n is an array; any other table is an object (integer keys become
//   decimal strings). int64 <-> integer, double <-> float, string and bytes -> string
//   (bytes come back as strings). Functions, coroutines and userdata cannot be converted.
//   Nesting is bounded (kMaxDepth); a cyclic table is reported as too deep.
//
// Limits (FunctionLimits): an instruction budget per call (a count hook; once exhausted the
// hook fires on every instruction, so pcall inside the script cannot swallow it) and a byte
// cap on everything the function's Lua state allocates (the allocator refuses, so a memory
// bomb fails the call, never the process). Long C calls the hook cannot see are guarded:
// string.rep, table.move and the pattern functions (find/match/gmatch/gsub) are charged an
// estimate of their worst-case work against the budget before they run.
//
// Errors: define() -> kInvalidArgument with "<name>:<line>: <message>" for compile and
// top-level runtime errors; invoke()/call() -> kResourceExhausted for an exceeded budget or
// memory cap, kInvalidArgument for an error raised by the script or an unconvertible value.
// After any error the function remains usable.
//
// Thread: a lua_State is not thread-safe, so every call on one LuaFunction takes its mutex
// (calls on one function are serialised; different functions run in parallel). A call
// blocks its thread for at most the instruction budget.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "event/event.h"
#include "event/value.h"

struct lua_State;

namespace ganglion::functions {

struct FunctionLimits {
  std::uint64_t instruction_budget = 1'000'000;  // VM instructions per call (and at define)
  std::size_t memory_bytes = 8u << 20;           // all allocations of the function's Lua state
  std::size_t state_max_keys = 1000;             // state.set keys
  std::size_t state_max_bytes = 1u << 20;        // keys + values (as JSON) of state
  std::size_t max_emits = 100;                   // emit() calls per invocation
  std::size_t max_emit_bytes = 1u << 20;         // total payload bytes emitted per invocation
  std::size_t max_log_line = 1024;               // log lines are cut at this many bytes
  double log_lines_per_second = 10;              // log rate (token bucket, burst 5x the rate)
  friend bool operator==(const FunctionLimits&, const FunctionLimits&) = default;
};

// Nesting bound for Value <-> Lua conversions.
inline constexpr int kMaxDepth = 64;

// One emit() of an invocation.
struct Emitted {
  std::string topic;
  std::string payload;
  std::uint8_t qos = 0;
  friend bool operator==(const Emitted&, const Emitted&) = default;
};

struct Invocation {
  std::vector<Emitted> emitted;
  Value result;  // first return value of handle (SQL result); null when none
};

// Why a call failed, for metrics. kNone on success.
enum class FailureKind { kNone, kRuntime, kBudget, kMemory };

// A per-function key-value store that survives replacing the function. Thread-safe.
class FunctionState {
 public:
  // kResourceExhausted when the key count or byte bound would be exceeded.
  Status set(const std::string& key, Value value, std::size_t max_keys, std::size_t max_bytes);
  void erase(const std::string& key);
  Value get(const std::string& key) const;  // null when absent
  std::size_t size() const;
  std::size_t bytes() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::pair<std::string, Value>> entries_;  // small: linear search
  std::vector<std::size_t> sizes_;                      // bytes charged per entry
  std::size_t bytes_ = 0;
};

class LuaFunction {
 public:
  // Compiles `source` and runs its top-level chunk under `limits`. Errors as above.
  // `state` may be shared with a previous version (nullptr: a fresh one). `clock` paces the
  // log rate limit and must outlive the function.
  static Result<std::shared_ptr<LuaFunction>> create(
      std::string name, std::string_view source, FunctionLimits limits, Clock& clock,
      std::shared_ptr<FunctionState> state = nullptr);
  ~LuaFunction();
  LuaFunction(const LuaFunction&) = delete;
  LuaFunction& operator=(const LuaFunction&) = delete;

  // handle(event). `failure` (optional) receives why a failed call failed, for metrics.
  Result<Invocation> invoke(const Event& event, FailureKind* failure = nullptr);
  // handle(event) with a payload that is already a Value (a rule's output row): event.payload
  // is `payload`, event.raw its JSON.
  Result<Invocation> invoke(std::string_view topic, const Value& payload, std::int64_t timestamp_ms,
                            FailureKind* failure = nullptr);
  // handle(args...): a SQL scalar call. The result is Invocation::result.
  Result<Invocation> call(std::span<const Value> args, FailureKind* failure = nullptr);

  const std::string& name() const { return name_; }
  const FunctionLimits& limits() const { return limits_; }
  const std::shared_ptr<FunctionState>& state() const { return state_; }
  // Bytes the Lua state holds now (approximate; read without the call lock).
  std::size_t memory_in_use() const;

  struct Context;  // internal: what the Lua-side API reaches (the state's extra space)
  struct Request;  // internal: one call's input

 private:
  LuaFunction(std::string name, FunctionLimits limits, Clock& clock,
              std::shared_ptr<FunctionState> state);
  Status init(std::string_view source);
  Result<Invocation> run(const Request& request, FailureKind* failure);

  std::string name_;
  FunctionLimits limits_;
  std::shared_ptr<FunctionState> state_;
  std::unique_ptr<Context> ctx_;
  std::mutex mu_;  // serialises every use of L_
  lua_State* L_ = nullptr;
};

}  // namespace ganglion::functions
