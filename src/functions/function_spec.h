// FunctionSpec: how a function is defined (by an operator, a manifest or the REST API).
//
// Accepted document (JSON, or YAML already converted to a Value), every key but `name` and
// one of `source`/`file` optional, unknown keys refused:
//
//   name:    "scale-temp"            [A-Za-z0-9_.-], 1..64 characters (it labels metrics)
//   source:  "function handle(e) ... end"
//   file:    "functions/scale.lua"   read through an Env by resolve_source()
//   trigger: "plant/+/temp"          or {filter: "plant/+/temp", qos: 1}
//   limits:  {instruction_budget: 1000000, memory_bytes: 8388608, state_max_keys: 1000,
//             state_max_bytes: 1048576, max_emits: 100, max_emit_bytes: 1048576,
//             log_lines_per_second: 10}
//
// A Kubernetes-shaped manifest ({apiVersion, kind: Function, metadata: {name}, spec: {...}})
// is accepted too: the name comes from metadata, the rest from spec.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/env.h"
#include "base/status.h"
#include "event/value.h"
#include "functions/lua_function.h"
#include "mqtt/packet.h"

namespace ganglion::functions {

struct TriggerSpec {
  std::string filter;  // an MQTT topic filter (wildcards and $share/... allowed)
  mqtt::QoS qos = mqtt::QoS::kAtMostOnce;
  friend bool operator==(const TriggerSpec&, const TriggerSpec&) = default;
};

struct FunctionSpec {
  std::string name;
  std::string source;  // Lua source; empty until resolve_source() when `file` was given
  std::string file;    // where the source is read from; empty when given inline
  std::optional<TriggerSpec> trigger;
  FunctionLimits limits;
  friend bool operator==(const FunctionSpec&, const FunctionSpec&) = default;
};

// Bounds enforced on limits, so a spec cannot ask for an unbounded sandbox.
inline constexpr std::uint64_t kMinInstructionBudget = 1'000;
inline constexpr std::uint64_t kMaxInstructionBudget = 10'000'000'000ULL;
inline constexpr std::size_t kMinMemoryBytes = 256u << 10;
inline constexpr std::size_t kMaxMemoryBytes = 1u << 30;
inline constexpr std::size_t kMaxSourceBytes = 1u << 20;

// Parses a JSON document. Errors: kInvalidArgument naming the offending key
// ("limits.memory_bytes: must be between 262144 and 1073741824") or the JSON error.
Result<FunctionSpec> parse_function_spec(std::string_view json);
// The same from a document already parsed (YAML converted to a Value, a REST body).
Result<FunctionSpec> function_spec_from_value(const Value& doc);

// Checks a function name (also used by the registry).
Status validate_function_name(std::string_view name);

// When the spec names a file and has no inline source, reads it through `env` (at most
// kMaxSourceBytes). Errors from the Env are returned with the file name as context.
Status resolve_source(FunctionSpec& spec, Env& env);

}  // namespace ganglion::functions
