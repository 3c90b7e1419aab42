#include "event/json.h"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <cmath>

namespace ganglion {
namespace {

simdjson::dom::parser& thread_parser() {
  // One parser per thread: simdjson parsers are not thread-safe, and reusing one keeps its
  // buffers allocated between documents.
  thread_local simdjson::dom::parser parser;
  return parser;
}

Value convert(simdjson::dom::element e) {
  using simdjson::dom::element_type;
  switch (e.type()) {
    case element_type::ARRAY: {
      simdjson::dom::array a = e.get_array().value_unsafe();
      ValueArray out;
      out.reserve(a.size());
      for (simdjson::dom::element c : a) out.push_back(convert(c));
      return Value(std::move(out));
    }
    case element_type::OBJECT: {
      simdjson::dom::object o = e.get_object().value_unsafe();
      ValueObject out;
      out.reserve(o.size());
      // append, not set: a hostile payload with many keys must stay linear. With duplicate
      // keys, lookups see the first occurrence.
      for (simdjson::dom::key_value_pair kv : o) out.append(std::string(kv.key), convert(kv.value));
      return Value(std::move(out));
    }
    case element_type::INT64: return Value(static_cast<std::int64_t>(e.get_int64().value_unsafe()));
    case element_type::UINT64: return Value(static_cast<double>(e.get_uint64().value_unsafe()));
    case element_type::DOUBLE: return Value(e.get_double().value_unsafe());
    case element_type::STRING: return Value(e.get_string().value_unsafe());
    case element_type::BOOL: return Value(e.get_bool().value_unsafe());
    case element_type::NULL_VALUE: return Value();
  }
  return Value();
}

Result<simdjson::dom::element> parse_dom(std::string_view json,
                                         simdjson::dom::parser& parser = thread_parser()) {
  auto r = parser.parse(json.data(), json.size(), true);
  if (r.error()) {
    return InvalidArgument(std::string("invalid JSON: ") + simdjson::error_message(r.error()));
  }
  return r.value_unsafe();
}

}  // namespace

Result<Value> parse_json(std::string_view json) {
  GANGLION_ASSIGN_OR_RETURN(simdjson::dom::element root, parse_dom(json));
  return convert(root);
}

Result<Value> parse_json_fields(std::string_view json, std::span<const std::string> fields) {
  GANGLION_ASSIGN_OR_RETURN(simdjson::dom::element root, parse_dom(json));
  if (root.type() != simdjson::dom::element_type::OBJECT) return convert(root);
  ValueObject out;
  out.reserve(fields.size());
  // Bind the object first: ranging over value_unsafe() of a temporary result dangles.
  simdjson::dom::object obj = root.get_object().value_unsafe();
  for (simdjson::dom::key_value_pair kv : obj) {
    if (std::find(fields.begin(), fields.end(), kv.key) != fields.end() &&
        out.find(kv.key) == nullptr) {
      out.append(std::string(kv.key), convert(kv.value));
      if (out.size() == fields.size()) break;  // all found
    }
  }
  return Value(std::move(out));
}

Result<FilteredJson> parse_json_filtered(std::string_view json, std::span<const std::string> fields,
                                         bool (*keep)(void* ctx, const Value& partial), void* ctx) {
  // A parser of its own: keep() may parse JSON (SQL parse_json()) with thread_parser(),
  // which would overwrite the document `root` points into.
  thread_local simdjson::dom::parser filter_parser;
  GANGLION_ASSIGN_OR_RETURN(simdjson::dom::element root, parse_dom(json, filter_parser));
  FilteredJson out;
  if (root.type() != simdjson::dom::element_type::OBJECT) {
    out.partial = convert(root);
    return out;
  }
  simdjson::dom::object obj = root.get_object().value_unsafe();
  ValueObject partial;
  partial.reserve(fields.size());
  for (simdjson::dom::key_value_pair kv : obj) {
    if (std::find(fields.begin(), fields.end(), kv.key) != fields.end() && partial.find(kv.key) == nullptr) {
      partial.append(std::string(kv.key), convert(kv.value));
      if (partial.size() == fields.size()) break;
    }
  }
  out.partial = Value(std::move(partial));
  out.kept = keep(ctx, out.partial);
  if (out.kept) out.whole = convert(root);
  return out;
}

void append_json_string(std::string_view s, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.reserve(out.size() + s.size() + 2);
  out += '"';
  std::size_t run = 0;  // start of the current run of bytes that need no escaping
  for (std::size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 15];
    }
  }
  out.append(s.data() + run, s.size() - run);
  out += '"';
}

void append_json(const Value& v, std::string& out) {
  switch (v.type()) {
    case Value::Type::kNull: out += "null"; return;
    case Value::Type::kBool: out += v.as_bool() ? "true" : "false"; return;
    case Value::Type::kInt: {
      char buf[24];
      auto r = std::to_chars(buf, buf + sizeof buf, v.as_int());
      out.append(buf, r.ptr);
      return;
    }
    case Value::Type::kFloat: {
      double d = v.as_float();
      if (!std::isfinite(d)) {
        out += "null";
        return;
      }
      char buf[32];
      auto r = std::to_chars(buf, buf + sizeof buf, d);
      out.append(buf, r.ptr);
      return;
    }
    case Value::Type::kString: append_json_string(v.as_string(), out); return;
    case Value::Type::kBytes: append_json_string(base64_encode(v.as_bytes().data), out); return;
    case Value::Type::kArray: {
      out += '[';
      bool first = true;
      for (const Value& e : v.as_array()) {
        if (!first) out += ',';
        first = false;
        append_json(e, out);
      }
      out += ']';
      return;
    }
    case Value::Type::kObject: {
      out += '{';
      bool first = true;
      for (const auto& [k, e] : v.as_object()) {
        if (!first) out += ',';
        first = false;
        append_json_string(k, out);
        out += ':';
        append_json(e, out);
      }
      out += '}';
      return;
    }
  }
}

std::string to_json(const Value& v) {
  std::string out;
  append_json(v, out);
  return out;
}

}  // namespace ganglion
