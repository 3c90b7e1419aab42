#include "functions/function_registry.h"

#include <chrono>
#include <mutex>

namespace ganglion::functions {

FunctionRegistry::FunctionRegistry(Clock& clock, MetricsRegistry& metrics)
    : clock_(clock), registry_(metrics) {}

FunctionRegistry::~FunctionRegistry() = default;

FunctionRegistry::Metrics FunctionRegistry::metrics_for(const std::string& name) {
  const std::vector<std::string> labels{name};
  Metrics m{};
  m.invocations = &registry_
                       .counter("ganglion_function_invocations_total",
                                "Calls of a Lua function (events, rule sinks, SQL).", {"function"})
                       .with(labels);
  m.errors = &registry_
                  .counter("ganglion_function_errors_total",
                           "Failed calls of a Lua function (any reason).", {"function"})
                  .with(labels);
  m.budget_exceeded = &registry_
                           .counter("ganglion_function_budget_exceeded_total",
                                    "Calls stopped by the instruction budget.", {"function"})
                           .with(labels);
  m.memory_exceeded = &registry_
                           .counter("ganglion_function_memory_exceeded_total",
                                    "Calls stopped by the memory cap.", {"function"})
                           .with(labels);
  m.duration =
      &registry_
           .histogram("ganglion_function_duration_seconds", "Duration of a Lua function call.",
                      exponential_buckets(1e-5, 4, 10), {"function"})
           .with(labels);
  m.memory =
      &registry_
           .gauge("ganglion_function_memory_bytes",
                  "Bytes held by the function's Lua state after its last call.", {"function"})
           .with(labels);
  return m;
}

Status FunctionRegistry::define(FunctionSpec spec) {
  GANGLION_RETURN_IF_ERROR(validate_function_name(spec.name));
  if (spec.source.empty() && !spec.file.empty()) {
    return FailedPrecondition("function '" + spec.name + "': source of " + spec.file +
                              " not read (call resolve_source first)");
  }
  std::shared_ptr<FunctionState> state;
  if (auto old = entry(spec.name)) state = old->fn->state();
  // Compile outside the lock: it runs user code (bounded by the budget).
  GANGLION_ASSIGN_OR_RETURN(
      auto fn, LuaFunction::create(spec.name, spec.source, spec.limits, clock_, std::move(state)));
  auto e = std::make_shared<Entry>();
  e->metrics = metrics_for(spec.name);
  e->metrics.memory->set(static_cast<double>(fn->memory_in_use()));
  e->fn = std::move(fn);
  e->spec = std::move(spec);
  const std::string name = e->spec.name;
  Listener listener;
  {
    std::unique_lock lock(mu_);
    e->version = 1;
    if (auto it = entries_.find(name); it != entries_.end()) e->version = it->second->version + 1;
    entries_[name] = e;
    listener = listener_;
  }
  if (listener) listener(name, &e->spec);
  return Status::Ok();
}

Status FunctionRegistry::remove(std::string_view name) {
  Listener listener;
  std::string key(name);
  {
    std::unique_lock lock(mu_);
    auto it = entries_.find(name);
    if (it == entries_.end()) return NotFound("no function named '" + key + "'");
    entries_.erase(it);
    listener = listener_;
  }
  if (listener) listener(key, nullptr);
  return Status::Ok();
}

std::shared_ptr<const FunctionRegistry::Entry> FunctionRegistry::entry(
    std::string_view name) const {
  std::shared_lock lock(mu_);
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : it->second;
}

std::shared_ptr<LuaFunction> FunctionRegistry::find(std::string_view name) const {
  auto e = entry(name);
  return e ? e->fn : nullptr;
}

FunctionInfo FunctionRegistry::info(const Entry& e) const {
  FunctionInfo i;
  i.name = e.spec.name;
  i.file = e.spec.file;
  i.trigger = e.spec.trigger;
  i.limits = e.spec.limits;
  i.version = e.version;
  i.invocations = e.metrics.invocations->value();
  i.errors = e.metrics.errors->value();
  i.budget_exceeded = e.metrics.budget_exceeded->value();
  i.memory_exceeded = e.metrics.memory_exceeded->value();
  i.memory_bytes = e.fn->memory_in_use();
  i.state_keys = e.fn->state()->size();
  i.state_bytes = e.fn->state()->bytes();
  return i;
}

std::vector<FunctionInfo> FunctionRegistry::list() const {
  std::vector<std::shared_ptr<const Entry>> entries;
  {
    std::shared_lock lock(mu_);
    for (const auto& [name, e] : entries_) entries.push_back(e);
  }
  std::vector<FunctionInfo> out;
  out.reserve(entries.size());
  for (const auto& e : entries) out.push_back(info(*e));
  return out;
}

Result<FunctionInfo> FunctionRegistry::describe(std::string_view name) const {
  auto e = entry(name);
  if (!e) return NotFound("no function named '" + std::string(name) + "'");
  return info(*e);
}

Result<FunctionSpec> FunctionRegistry::spec(std::string_view name) const {
  auto e = entry(name);
  if (!e) return NotFound("no function named '" + std::string(name) + "'");
  return e->spec;
}

template <typename Fn>
Result<Invocation> FunctionRegistry::measured(std::string_view name, Fn&& fn) {
  auto e = entry(name);
  if (!e) return NotFound("no function named '" + std::string(name) + "'");
  const MonoTime start = clock_.now();
  FailureKind failure = FailureKind::kNone;
  Result<Invocation> r = fn(*e->fn, &failure);
  const Metrics& m = e->metrics;
  m.invocations->inc();
  m.duration->observe(std::chrono::duration<double>(clock_.now() - start).count());
  m.memory->set(static_cast<double>(e->fn->memory_in_use()));
  if (!r.ok()) {
    m.errors->inc();
    if (failure == FailureKind::kBudget) m.budget_exceeded->inc();
    if (failure == FailureKind::kMemory) m.memory_exceeded->inc();
  }
  return r;
}

Result<Invocation> FunctionRegistry::invoke(std::string_view name, const Event& event) {
  return measured(name, [&](LuaFunction& fn, FailureKind* f) { return fn.invoke(event, f); });
}

Result<Invocation> FunctionRegistry::invoke(std::string_view name, std::string_view topic,
                                            const Value& payload, std::int64_t timestamp_ms) {
  return measured(name, [&](LuaFunction& fn, FailureKind* f) {
    return fn.invoke(topic, payload, timestamp_ms, f);
  });
}

Result<Value> FunctionRegistry::call_scalar(std::string_view name, std::span<const Value> args) {
  auto r = measured(name, [&](LuaFunction& fn, FailureKind* f) { return fn.call(args, f); });
  if (!r.ok()) return r.status();
  return std::move(r->result);
}

void FunctionRegistry::set_listener(Listener listener) {
  std::unique_lock lock(mu_);
  listener_ = std::move(listener);
}

}  // namespace ganglion::functions
