#include "event/value.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <ostream>

#include "base/base64.h"
#include "event/json.h"

namespace ganglion {

Value::Value(ValueArray a) : v_(std::make_shared<const ValueArray>(std::move(a))) {}
Value::Value(ValueObject o) : v_(std::make_shared<const ValueObject>(std::move(o))) {}

const Value* Value::find(std::string_view key) const {
  if (!is_object()) return nullptr;
  return as_object().find(key);
}

std::string_view Value::type_name(Type t) {
  switch (t) {
    case Type::kNull:
      return "null";
    case Type::kBool:
      return "boolean";
    case Type::kInt:
      return "bigint";
    case Type::kFloat:
      return "float";
    case Type::kString:
      return "string";
    case Type::kBytes:
      return "bytea";
    case Type::kArray:
      return "array";
    case Type::kObject:
      return "struct";
  }
  return "unknown";
}

bool operator==(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_int() && b.is_int()) return a.as_int() == b.as_int();
    return a.number() == b.number();
  }
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case Value::Type::kNull:
      return true;
    case Value::Type::kBool:
      return a.as_bool() == b.as_bool();
    case Value::Type::kString:
      return a.as_string() == b.as_string();
    case Value::Type::kBytes:
      return a.as_bytes() == b.as_bytes();
    case Value::Type::kArray:
      return a.array_ptr() == b.array_ptr() || a.as_array() == b.as_array();
    case Value::Type::kObject:
      return a.object_ptr() == b.object_ptr() || a.as_object() == b.as_object();
    default:
      return false;
  }
}

ValueObject::ValueObject(std::initializer_list<Entry> entries) {
  entries_.reserve(entries.size());
  for (const auto& e : entries) set(e.first, e.second);
}

const Value* ValueObject::find(std::string_view key) const {
  for (const auto& e : entries_) {
    if (e.first == key) return &e.second;
  }
  return nullptr;
}

const Value* ValueObject::find(std::string_view key, std::size_t& hint) const {
  if (hint < entries_.size() && entries_[hint].first == key) return &entries_[hint].second;
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    if (entries_[i].first == key) {
      hint = i;
      return &entries_[i].second;
    }
  }
  return nullptr;
}

void ValueObject::set(std::string key, Value v) {
  for (auto& e : entries_) {
    if (e.first == key) {
      e.second = std::move(v);
      return;
    }
  }
  entries_.emplace_back(std::move(key), std::move(v));
}

bool operator==(const ValueObject& a, const ValueObject& b) {
  // Key order does not matter for equality.
  if (a.size() != b.size()) return false;
  // Same keys in the same order: compare entry by entry. Besides being the common case, this
  // keeps an object with a duplicated key ({"a":1,"a":2}, kept as parsed) equal to itself:
  // the lookup below sees only the first "a".
  bool same_order = true;
  for (std::size_t i = 0; i < a.size() && same_order; ++i) {
    same_order = a.at(i).first == b.at(i).first && a.at(i).second == b.at(i).second;
  }
  if (same_order) return true;
  for (const auto& [k, v] : a) {
    const Value* o = b.find(k);
    if (o == nullptr || !(*o == v)) return false;
  }
  return true;
}

bool comparable(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return true;
  if (a.type() != b.type()) return false;
  return a.is_string() || a.is_bool() || a.is_bytes();
}

std::partial_ordering compare(const Value& a, const Value& b) {
  if (a.is_int() && b.is_int()) return a.as_int() <=> b.as_int();
  if (a.is_number() && b.is_number()) return a.number() <=> b.number();
  if (a.type() != b.type()) return std::partial_ordering::unordered;
  switch (a.type()) {
    case Value::Type::kString:
      return a.as_string().compare(b.as_string()) <=> 0;
    case Value::Type::kBytes:
      return a.as_bytes().data.compare(b.as_bytes().data) <=> 0;
    case Value::Type::kBool:
      return a.as_bool() <=> b.as_bool();
    default:
      return std::partial_ordering::unordered;
  }
}

namespace {

std::string_view op_text(ArithOp op) {
  switch (op) {
    case ArithOp::kAdd:
      return "+";
    case ArithOp::kSub:
      return "-";
    case ArithOp::kMul:
      return "*";
    case ArithOp::kDiv:
      return "/";
    case ArithOp::kMod:
      return "%";
    case ArithOp::kBitAnd:
      return "&";
    case ArithOp::kBitOr:
      return "|";
    case ArithOp::kBitXor:
      return "^";
  }
  return "?";
}

std::string describe(const Value& v) {
  std::string s(v.type_name());
  s += '(';
  std::string text = v.to_display_string();
  if (text.size() > 32) text = text.substr(0, 32) + "...";
  s += text;
  s += ')';
  return s;
}

Status invalid_operation(ArithOp op, const Value& a, const Value& b) {
  std::string m = "invalid operation ";
  m += describe(a);
  m += ' ';
  m += op_text(op);
  m += ' ';
  m += describe(b);
  return InvalidArgument(std::move(m));
}

std::int64_t wrap(std::uint64_t u) { return static_cast<std::int64_t>(u); }

void append_number(std::string& out, double d) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  out.append(buf, r.ptr);
}

}  // namespace

Status arith(ArithOp op, const Value& a, const Value& b, Value& out) {
  if (a.is_null() || b.is_null()) {
    out = Value();
    return Status::Ok();
  }
  if (!a.is_number() || !b.is_number()) return invalid_operation(op, a, b);
  if (a.is_int() && b.is_int()) {
    const std::int64_t x = a.as_int(), y = b.as_int();
    const auto ux = static_cast<std::uint64_t>(x), uy = static_cast<std::uint64_t>(y);
    switch (op) {
      case ArithOp::kAdd:
        out = Value(wrap(ux + uy));
        return Status::Ok();
      case ArithOp::kSub:
        out = Value(wrap(ux - uy));
        return Status::Ok();
      case ArithOp::kMul:
        out = Value(wrap(ux * uy));
        return Status::Ok();
      case ArithOp::kDiv:
        if (y == 0) return InvalidArgument("divided by zero");
        out = Value(y == -1 ? wrap(0 - ux) : x / y);
        return Status::Ok();
      case ArithOp::kMod:
        if (y == 0) return InvalidArgument("divided by zero");
        out = Value(y == -1 ? std::int64_t{0} : x % y);
        return Status::Ok();
      case ArithOp::kBitAnd:
        out = Value(x & y);
        return Status::Ok();
      case ArithOp::kBitOr:
        out = Value(x | y);
        return Status::Ok();
      case ArithOp::kBitXor:
        out = Value(x ^ y);
        return Status::Ok();
    }
  }
  const double x = a.number(), y = b.number();
  switch (op) {
    case ArithOp::kAdd:
      out = Value(x + y);
      return Status::Ok();
    case ArithOp::kSub:
      out = Value(x - y);
      return Status::Ok();
    case ArithOp::kMul:
      out = Value(x * y);
      return Status::Ok();
    case ArithOp::kDiv:
      if (y == 0) return InvalidArgument("divided by zero");
      out = Value(x / y);
      return Status::Ok();
    case ArithOp::kMod:
      if (y == 0) return InvalidArgument("divided by zero");
      out = Value(std::fmod(x, y));
      return Status::Ok();
    default:
      return invalid_operation(op, a, b);
  }
}

std::string Value::to_display_string() const {
  switch (type()) {
    case Type::kNull:
      return "";
    case Type::kBool:
      return as_bool() ? "true" : "false";
    case Type::kInt:
      return std::to_string(as_int());
    case Type::kFloat: {
      std::string s;
      append_number(s, as_float());
      return s;
    }
    case Type::kString:
      return as_string();
    case Type::kBytes:
      return base64_encode(as_bytes().data);
    case Type::kArray:
    case Type::kObject:
      return to_json(*this);
  }
  return "";
}

namespace {
std::string_view trim_space(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

Status cannot_convert(const Value& v, std::string_view to) {
  return InvalidArgument("cannot convert " + describe(v) + " to " + std::string(to));
}
}  // namespace

Result<Value> to_bigint(const Value& v) {
  switch (v.type()) {
    case Value::Type::kNull:
      return Value();
    case Value::Type::kInt:
      return v;
    case Value::Type::kBool:
      return Value(v.as_bool() ? 1 : 0);
    case Value::Type::kFloat: {
      double d = v.as_float();
      if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) {
        return cannot_convert(v, "bigint");
      }
      return Value(static_cast<std::int64_t>(d));
    }
    case Value::Type::kString: {
      std::string_view s = trim_space(v.as_string());
      std::int64_t i = 0;
      auto r = std::from_chars(s.data(), s.data() + s.size(), i);
      if (r.ec == std::errc() && r.ptr == s.data() + s.size() && !s.empty()) return Value(i);
      auto f = to_float(v);
      if (f.ok()) return to_bigint(*f);
      return cannot_convert(v, "bigint");
    }
    default:
      return cannot_convert(v, "bigint");
  }
}

Result<Value> to_float(const Value& v) {
  switch (v.type()) {
    case Value::Type::kNull:
      return Value();
    case Value::Type::kInt:
      return Value(static_cast<double>(v.as_int()));
    case Value::Type::kFloat:
      return v;
    case Value::Type::kBool:
      return Value(v.as_bool() ? 1.0 : 0.0);
    case Value::Type::kString: {
      std::string_view s = trim_space(v.as_string());
      double d = 0;
      auto r = std::from_chars(s.data(), s.data() + s.size(), d);
      if (r.ec == std::errc() && r.ptr == s.data() + s.size() && !s.empty()) return Value(d);
      return cannot_convert(v, "float");
    }
    default:
      return cannot_convert(v, "float");
  }
}

Result<Value> to_boolean(const Value& v) {
  switch (v.type()) {
    case Value::Type::kNull:
      return Value();
    case Value::Type::kBool:
      return v;
    case Value::Type::kInt:
      return Value(v.as_int() != 0);
    case Value::Type::kFloat:
      return Value(v.as_float() != 0);
    case Value::Type::kString: {
      std::string_view s = trim_space(v.as_string());
      // The spellings Go's strconv.ParseBool accepts, as eKuiper does.
      if (s == "1" || s == "t" || s == "T" || s == "true" || s == "TRUE" || s == "True") {
        return Value(true);
      }
      if (s == "0" || s == "f" || s == "F" || s == "false" || s == "FALSE" || s == "False") {
        return Value(false);
      }
      return cannot_convert(v, "boolean");
    }
    default:
      return cannot_convert(v, "boolean");
  }
}

Value to_string_value(const Value& v) {
  if (v.is_null() || v.is_string()) return v;
  return Value(v.to_display_string());
}

Result<Value> to_bytea(const Value& v) {
  switch (v.type()) {
    case Value::Type::kNull:
      return Value();
    case Value::Type::kBytes:
      return v;
    case Value::Type::kString: {
      auto d = base64_decode(v.as_string());
      if (!d) return cannot_convert(v, "bytea");
      return Value(Bytes{std::move(*d)});
    }
    default:
      return cannot_convert(v, "bytea");
  }
}

std::ostream& operator<<(std::ostream& os, const Value& v) { return os << to_json(v); }

}  // namespace ganglion
