#include "rules/rule_spec.h"

#include <cctype>
#include <cmath>

#include "event/json.h"

namespace ganglion::rules {
namespace {

std::string where_key(std::string_view where, std::string_view key) {
  std::string s(where);
  if (!s.empty()) s += '.';
  s += key;
  return s;
}

}  // namespace

Status validate_rule_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return InvalidArgument("rule id must have 1 to 64 characters");
  for (char c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') {
      return InvalidArgument("rule id '" + std::string(id) +
                             "': only letters, digits, '_', '-' and '.' are allowed");
    }
  }
  return Status::Ok();
}

Result<std::string> string_prop(const Value& props, std::string_view key, std::string_view where,
                                std::string fallback) {
  const Value* v = props.find(key);
  if (v == nullptr || v->is_null()) return fallback;
  if (!v->is_string()) return InvalidArgument(where_key(where, key) + ": expects a string");
  return v->as_string();
}

Result<std::int64_t> int_prop(const Value& props, std::string_view key, std::string_view where,
                              std::int64_t fallback) {
  const Value* v = props.find(key);
  if (v == nullptr || v->is_null()) return fallback;
  if (v->is_int()) return v->as_int();
  // Range first: casting a double outside int64 (1e300) is undefined behaviour.
  if (v->is_float() && v->as_float() >= -9223372036854775808.0 &&
      v->as_float() < 9223372036854775808.0 && v->as_float() == std::floor(v->as_float())) {
    return static_cast<std::int64_t>(v->as_float());
  }
  return InvalidArgument(where_key(where, key) + ": expects an integer");
}

Result<bool> bool_prop(const Value& props, std::string_view key, std::string_view where,
                       bool fallback) {
  const Value* v = props.find(key);
  if (v == nullptr || v->is_null()) return fallback;
  if (!v->is_bool()) return InvalidArgument(where_key(where, key) + ": expects true or false");
  return v->as_bool();
}

Result<RuleSpec> parse_rule_spec(std::string_view json) {
  auto doc = parse_json(json);
  if (!doc.ok()) return doc.status();
  return rule_spec_from_value(*doc);
}

Result<RuleSpec> rule_spec_from_value(const Value& doc) {
  if (!doc.is_object()) return InvalidArgument("a rule is a JSON object");
  RuleSpec spec;
  GANGLION_ASSIGN_OR_RETURN(spec.id, string_prop(doc, "id", ""));
  GANGLION_RETURN_IF_ERROR(validate_rule_id(spec.id));
  GANGLION_ASSIGN_OR_RETURN(spec.name, string_prop(doc, "name", ""));
  GANGLION_ASSIGN_OR_RETURN(spec.sql, string_prop(doc, "sql", ""));
  if (spec.sql.empty()) return InvalidArgument("sql: required");
  GANGLION_ASSIGN_OR_RETURN(spec.triggered, bool_prop(doc, "triggered", "", true));

  const Value* actions = doc.find("actions");
  if (actions == nullptr || !actions->is_array() || actions->as_array().empty()) {
    return InvalidArgument("actions: required, a non-empty array");
  }
  for (std::size_t i = 0; i < actions->as_array().size(); ++i) {
    const Value& a = actions->as_array()[i];
    const std::string where = "actions[" + std::to_string(i) + "]";
    if (!a.is_object() || a.as_object().size() != 1) {
      return InvalidArgument(where + ": an action is an object with one key, the sink type");
    }
    const auto& [type, props] = a.as_object().at(0);
    if (!props.is_object() && !props.is_null()) {
      return InvalidArgument(where + "." + type + ": expects an object of properties");
    }
    spec.actions.push_back({type, props.is_null() ? Value(ValueObject{}) : props});
  }

  if (const Value* o = doc.find("options"); o != nullptr && !o->is_null()) {
    if (!o->is_object()) return InvalidArgument("options: expects an object");
    spec.options_doc = *o;
    GANGLION_ASSIGN_OR_RETURN(spec.options.late_tolerance_ms,
                              int_prop(*o, "lateTolerance", "options", 1000));
    GANGLION_ASSIGN_OR_RETURN(std::int64_t buffer, int_prop(*o, "bufferLength", "options", 1024));
    if (spec.options.late_tolerance_ms < 0)
      return InvalidArgument("options.lateTolerance: must not be negative");
    if (buffer < 1 || buffer > 1'000'000)
      return InvalidArgument("options.bufferLength: must be between 1 and 1000000");
    spec.options.buffer_length = static_cast<std::size_t>(buffer);
    GANGLION_ASSIGN_OR_RETURN(spec.options.is_event_time,
                              bool_prop(*o, "isEventTime", "options", false));
    GANGLION_ASSIGN_OR_RETURN(spec.options.send_meta_to_sink,
                              bool_prop(*o, "sendMetaToSink", "options", false));
  } else {
    spec.options_doc = Value(ValueObject{});
  }
  return spec;
}

Value rule_spec_to_value(const RuleSpec& spec) {
  ValueObject o;
  o.append("id", spec.id);
  if (!spec.name.empty()) o.append("name", spec.name);
  o.append("sql", spec.sql);
  ValueArray actions;
  for (const auto& a : spec.actions) actions.push_back(Value(ValueObject{{a.type, a.props}}));
  o.append("actions", Value(std::move(actions)));
  o.append("options", spec.options_doc.is_null() ? Value(ValueObject{}) : spec.options_doc);
  o.append("triggered", spec.triggered);
  return Value(std::move(o));
}

}  // namespace ganglion::rules
