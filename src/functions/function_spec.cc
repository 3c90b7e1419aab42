#include "functions/function_spec.h"

#include <cmath>

#include "event/json.h"
#include "mqtt/topic.h"

namespace ganglion::functions {
namespace {

Status check_keys(const ValueObject& o, std::string_view where,
                  std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : o) {
    bool known = false;
    for (std::string_view a : allowed) known = known || key == a;
    if (!known) {
      return InvalidArgument(std::string(where) + (where.empty() ? "" : ".") + key +
                             ": unknown key");
    }
  }
  return Status::Ok();
}

Result<std::uint64_t> read_count(const Value& v, const std::string& where, std::uint64_t lo,
                                 std::uint64_t hi) {
  std::int64_t n = 0;
  if (v.is_int()) {
    n = v.as_int();
  } else if (v.is_float() && std::floor(v.as_float()) == v.as_float() && v.as_float() >= 0 &&
             v.as_float() < 9.2e18) {
    n = static_cast<std::int64_t>(v.as_float());
  } else {
    return InvalidArgument(where + ": must be an integer");
  }
  if (n < 0 || static_cast<std::uint64_t>(n) < lo || static_cast<std::uint64_t>(n) > hi) {
    return InvalidArgument(where + ": must be between " + std::to_string(lo) + " and " +
                           std::to_string(hi));
  }
  return static_cast<std::uint64_t>(n);
}

Status parse_limits(const Value& v, FunctionLimits& limits) {
  if (!v.is_object()) return InvalidArgument("limits: must be an object");
  GANGLION_RETURN_IF_ERROR(
      check_keys(v.as_object(), "limits",
                 {"instruction_budget", "memory_bytes", "state_max_keys", "state_max_bytes",
                  "max_emits", "max_emit_bytes", "log_lines_per_second"}));
  for (const auto& [key, value] : v.as_object()) {
    const std::string where = "limits." + key;
    if (key == "instruction_budget") {
      GANGLION_ASSIGN_OR_RETURN(
          limits.instruction_budget,
          read_count(value, where, kMinInstructionBudget, kMaxInstructionBudget));
    } else if (key == "memory_bytes") {
      GANGLION_ASSIGN_OR_RETURN(limits.memory_bytes,
                                read_count(value, where, kMinMemoryBytes, kMaxMemoryBytes));
    } else if (key == "state_max_keys") {
      GANGLION_ASSIGN_OR_RETURN(limits.state_max_keys, read_count(value, where, 0, 1'000'000));
    } else if (key == "state_max_bytes") {
      GANGLION_ASSIGN_OR_RETURN(limits.state_max_bytes, read_count(value, where, 0, 1u << 30));
    } else if (key == "max_emits") {
      GANGLION_ASSIGN_OR_RETURN(limits.max_emits, read_count(value, where, 0, 1'000'000));
    } else if (key == "max_emit_bytes") {
      GANGLION_ASSIGN_OR_RETURN(limits.max_emit_bytes, read_count(value, where, 0, 1u << 30));
    } else if (key == "log_lines_per_second") {
      if (!value.is_number() || value.number() < 0 || value.number() > 1e6) {
        return InvalidArgument(where + ": must be a number between 0 and 1000000");
      }
      limits.log_lines_per_second = value.number();
    }
  }
  return Status::Ok();
}

Status parse_trigger(const Value& v, TriggerSpec& t) {
  if (v.is_string()) {
    t.filter = v.as_string();
  } else if (v.is_object()) {
    GANGLION_RETURN_IF_ERROR(check_keys(v.as_object(), "trigger", {"filter", "qos"}));
    const Value* f = v.find("filter");
    if (f == nullptr || !f->is_string()) return InvalidArgument("trigger.filter: must be a string");
    t.filter = f->as_string();
    if (const Value* q = v.find("qos")) {
      GANGLION_ASSIGN_OR_RETURN(auto qos, read_count(*q, "trigger.qos", 0, 2));
      t.qos = static_cast<mqtt::QoS>(qos);
    }
  } else {
    return InvalidArgument("trigger: must be a topic filter or {filter, qos}");
  }
  Status s = mqtt::validate_topic_filter(t.filter);
  if (!s.ok()) return InvalidArgument("trigger.filter: " + s.message());
  return Status::Ok();
}

}  // namespace

Status validate_function_name(std::string_view name) {
  if (name.empty() || name.size() > 64) {
    return InvalidArgument("name: must be 1 to 64 characters");
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok) return InvalidArgument("name: only letters, digits, '_', '-' and '.' are allowed");
  }
  return Status::Ok();
}

Result<FunctionSpec> function_spec_from_value(const Value& doc) {
  if (!doc.is_object()) return InvalidArgument("function spec: must be an object");
  const Value* body = &doc;
  FunctionSpec spec;
  if (doc.find("spec") != nullptr || doc.find("metadata") != nullptr) {
    GANGLION_RETURN_IF_ERROR(
        check_keys(doc.as_object(), "", {"apiVersion", "kind", "metadata", "spec"}));
    if (const Value* kind = doc.find("kind");
        kind != nullptr && (!kind->is_string() || kind->as_string() != "Function")) {
      return InvalidArgument("kind: must be \"Function\"");
    }
    const Value* meta = doc.find("metadata");
    const Value* name = meta != nullptr ? meta->find("name") : nullptr;
    if (name == nullptr || !name->is_string()) {
      return InvalidArgument("metadata.name: must be a string");
    }
    spec.name = name->as_string();
    body = doc.find("spec");
    if (body == nullptr || !body->is_object()) return InvalidArgument("spec: must be an object");
    GANGLION_RETURN_IF_ERROR(
        check_keys(body->as_object(), "spec", {"source", "file", "trigger", "limits"}));
  } else {
    GANGLION_RETURN_IF_ERROR(
        check_keys(doc.as_object(), "", {"name", "source", "file", "trigger", "limits"}));
    const Value* name = doc.find("name");
    if (name == nullptr || !name->is_string()) return InvalidArgument("name: must be a string");
    spec.name = name->as_string();
  }
  GANGLION_RETURN_IF_ERROR(validate_function_name(spec.name));

  const Value* source = body->find("source");
  const Value* file = body->find("file");
  if ((source == nullptr) == (file == nullptr)) {
    return InvalidArgument("exactly one of source and file must be given");
  }
  if (source != nullptr) {
    if (!source->is_string()) return InvalidArgument("source: must be a string");
    if (source->as_string().size() > kMaxSourceBytes) {
      return InvalidArgument("source: longer than " + std::to_string(kMaxSourceBytes) + " bytes");
    }
    spec.source = source->as_string();
  } else {
    if (!file->is_string() || file->as_string().empty()) {
      return InvalidArgument("file: must be a non-empty string");
    }
    spec.file = file->as_string();
  }
  if (const Value* t = body->find("trigger"); t != nullptr && !t->is_null()) {
    TriggerSpec trigger;
    GANGLION_RETURN_IF_ERROR(parse_trigger(*t, trigger));
    spec.trigger = std::move(trigger);
  }
  if (const Value* l = body->find("limits"); l != nullptr && !l->is_null()) {
    GANGLION_RETURN_IF_ERROR(parse_limits(*l, spec.limits));
  }
  return spec;
}

Result<FunctionSpec> parse_function_spec(std::string_view json) {
  GANGLION_ASSIGN_OR_RETURN(Value doc, parse_json(json));
  return function_spec_from_value(doc);
}

Status resolve_source(FunctionSpec& spec, Env& env) {
  if (!spec.source.empty() || spec.file.empty()) return Status::Ok();
  auto file = env.open_readable(spec.file);
  if (!file.ok()) return file.status().with_context("function '" + spec.name + "': " + spec.file);
  auto size = (*file)->size();
  if (!size.ok()) return size.status().with_context("function '" + spec.name + "': " + spec.file);
  if (*size > kMaxSourceBytes) {
    return InvalidArgument("function '" + spec.name + "': " + spec.file + " is longer than " +
                           std::to_string(kMaxSourceBytes) + " bytes");
  }
  std::string text;
  Status s = (*file)->read_at(0, static_cast<std::size_t>(*size), text);
  if (!s.ok()) return s.with_context("function '" + spec.name + "': " + spec.file);
  spec.source = std::move(text);
  return Status::Ok();
}

}  // namespace ganglion::functions
