// Value: the typed field value of Ganglion's data path (event payloads, SQL rows).
//
// A Value is null, bool, int64, double, string, bytes, array or object. Objects keep their
// keys in insertion order (like the JSON they usually come from). Arrays and objects are
// immutable once wrapped in a Value and shared by reference count, so copying a Value never
// deep-copies a container; scalars and short strings never allocate.
//
// Semantics follow eKuiper's SQL dialect:
//   - NULL propagates: arithmetic and comparison with a NULL operand give NULL (compare()
//     reports "unordered"); a WHERE clause treats NULL as false.
//   - int and float mix by promoting the int to double; int op int stays int (wrapping on
//     overflow, integer division).
//   - DATETIME values are carried as int64 milliseconds since the Unix epoch.
// Thread: a Value may be read from many threads at once; it is never mutated in place.
#pragma once

#include <compare>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "base/status.h"

namespace ganglion {

class Value;
class ValueObject;
using ValueArray = std::vector<Value>;

// Raw bytes (SQL BYTEA). Serialised to JSON as base64.
struct Bytes {
  std::string data;
  friend bool operator==(const Bytes&, const Bytes&) = default;
};

class Value {
 public:
  enum class Type : std::uint8_t { kNull, kBool, kInt, kFloat, kString, kBytes, kArray, kObject };

  Value() = default;                                                 // null
  Value(std::nullptr_t) {}                                           // NOLINT
  Value(bool b) : v_(b) {}                                           // NOLINT
  Value(int i) : v_(static_cast<std::int64_t>(i)) {}                 // NOLINT
  Value(long i) : v_(static_cast<std::int64_t>(i)) {}                // NOLINT
  Value(long long i) : v_(static_cast<std::int64_t>(i)) {}           // NOLINT
  Value(double d) : v_(d) {}                                         // NOLINT
  Value(std::string s) : v_(std::move(s)) {}                         // NOLINT
  Value(std::string_view s) : v_(std::string(s)) {}                  // NOLINT
  Value(const char* s) : v_(std::string(s)) {}                       // NOLINT
  Value(Bytes b) : v_(std::move(b)) {}                               // NOLINT
  Value(ValueArray a);                                               // NOLINT
  Value(ValueObject o);                                              // NOLINT
  Value(std::shared_ptr<const ValueArray> a) : v_(std::move(a)) {}   // NOLINT
  Value(std::shared_ptr<const ValueObject> o) : v_(std::move(o)) {}  // NOLINT

  Type type() const { return static_cast<Type>(v_.index()); }
  bool is_null() const { return v_.index() == 0; }
  bool is_bool() const { return type() == Type::kBool; }
  bool is_int() const { return type() == Type::kInt; }
  bool is_float() const { return type() == Type::kFloat; }
  bool is_number() const { return is_int() || is_float(); }
  bool is_string() const { return type() == Type::kString; }
  bool is_bytes() const { return type() == Type::kBytes; }
  bool is_array() const { return type() == Type::kArray; }
  bool is_object() const { return type() == Type::kObject; }

  // Accessors. Preconditions: the type matches (asserted in debug builds).
  bool as_bool() const { return std::get<bool>(v_); }
  std::int64_t as_int() const { return std::get<std::int64_t>(v_); }
  double as_float() const { return std::get<double>(v_); }
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const Bytes& as_bytes() const { return std::get<Bytes>(v_); }
  const ValueArray& as_array() const { return *std::get<std::shared_ptr<const ValueArray>>(v_); }
  const ValueObject& as_object() const { return *std::get<std::shared_ptr<const ValueObject>>(v_); }
  const std::shared_ptr<const ValueArray>& array_ptr() const {
    return std::get<std::shared_ptr<const ValueArray>>(v_);
  }
  const std::shared_ptr<const ValueObject>& object_ptr() const {
    return std::get<std::shared_ptr<const ValueObject>>(v_);
  }
  // A number as double (int promoted). Precondition: is_number().
  double number() const { return is_int() ? static_cast<double>(as_int()) : as_float(); }

  // Field of an object, or nullptr when this is not an object or has no such key.
  const Value* find(std::string_view key) const;

  // Structural equality with numeric promotion (1 == 1.0). NULL equals NULL here; SQL
  // three-valued logic is applied by the evaluator, not by this function.
  friend bool operator==(const Value& a, const Value& b);

  // Human-readable rendering, as eKuiper's cast(x, "string"): strings as is, numbers in
  // shortest form, bools as true/false, null as "", containers as JSON, bytes as base64.
  std::string to_display_string() const;

  static std::string_view type_name(Type t);  // "null", "bool", "bigint", "float", ...
  std::string_view type_name() const { return type_name(type()); }

 private:
  std::variant<std::monostate, bool, std::int64_t, double, std::string, Bytes,
               std::shared_ptr<const ValueArray>, std::shared_ptr<const ValueObject>>
      v_;
};

// An insertion-ordered map from string keys to Values. Lookup is linear, which beats hashing
// for the 5-30 fields of a typical payload; find(key, hint) makes repeated lookups of the
// same key across rows of the same shape O(1).
class ValueObject {
 public:
  using Entry = std::pair<std::string, Value>;

  ValueObject() = default;
  ValueObject(std::initializer_list<Entry> entries);

  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }
  const Entry& at(std::size_t i) const { return entries_[i]; }

  const Value* find(std::string_view key) const;
  // Like find(), trying index `hint` first; on success `hint` is set to the index found.
  const Value* find(std::string_view key, std::size_t& hint) const;

  // Replaces the value of an existing key or appends a new key.
  void set(std::string key, Value v);
  // Appends without checking for duplicates (the caller knows the key is new).
  void append(std::string key, Value v) { entries_.emplace_back(std::move(key), std::move(v)); }
  void reserve(std::size_t n) { entries_.reserve(n); }
  // Empties the object and keeps its storage (for a scratch object refilled per event).
  void clear() { entries_.clear(); }

  friend bool operator==(const ValueObject& a, const ValueObject& b);

 private:
  std::vector<Entry> entries_;
};

// Orders two values: numbers (with promotion), strings and bytes (bytewise), bools
// (false < true). Returns unordered when either side is NULL, a NaN is involved, or the
// types cannot be ordered against each other (see comparable()).
std::partial_ordering compare(const Value& a, const Value& b);
// True when a and b have types that compare() can order (both numbers, both strings, ...).
bool comparable(const Value& a, const Value& b);

enum class ArithOp { kAdd, kSub, kMul, kDiv, kMod, kBitAnd, kBitOr, kBitXor };

// out = a <op> b. NULL in, NULL out. Errors (kInvalidArgument): non-numeric operands
// ("invalid operation string(a) + bigint(1)"), integer division or modulo by zero, bitwise
// operations on floats.
Status arith(ArithOp op, const Value& a, const Value& b, Value& out);

// Conversions in the style of eKuiper's cast(). NULL converts to NULL.
Result<Value> to_bigint(const Value& v);  // float truncates; "12" parses; bool -> 0/1
Result<Value> to_float(const Value& v);
Result<Value> to_boolean(const Value& v);  // "true"/"false"/"1"/"0"...; numbers != 0
Value to_string_value(const Value& v);     // to_display_string()
Result<Value> to_bytea(const Value& v);    // strings are base64-decoded; bytes pass through

// Writes `v` as JSON (strings quoted); for logs and test failure messages.
std::ostream& operator<<(std::ostream& os, const Value& v);

}  // namespace ganglion
