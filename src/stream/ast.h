// AST of Ganglion's streaming SQL (the eKuiper dialect). Built by parser.h, printed back to
// SQL by to_sql(); printing then parsing again gives the same tree (the fuzzer checks this).
//
// Trees are bounded: the parser rejects expressions nested deeper than kMaxExprDepth, so
// every recursive walk over an Expr (printing, compiling, destroying) is stack-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "event/value.h"

namespace ganglion::sql {

inline constexpr int kMaxExprDepth = 128;  // height of an expression tree
inline constexpr int kMaxTypeDepth = 32;   // ARRAY(ARRAY(STRUCT(...)))

struct SourcePos {
  int line = 1;    // 1-based
  int column = 1;  // 1-based, in bytes
};

enum class ExprKind {
  kLiteral,   // literal
  kField,     // [qualifier.]name
  kUnary,     // unary_op args[0]
  kBinary,    // args[0] binary_op args[1]
  kIn,        // args[0] [NOT] IN (args[1..])
  kBetween,   // args[0] [NOT] BETWEEN args[1] AND args[2]
  kLike,      // args[0] [NOT] LIKE args[1]
  kIsNull,    // args[0] IS [NOT] NULL
  kCase,      // CASE [args[0] if has_operand] (WHEN a THEN b)... [ELSE last if has_else] END
  kCall,      // name(args...) or name(*) when star; optional OVER clause
  kCast,      // CAST(args[0] AS cast_type)
  kArrow,     // args[0] -> name
  kIndex,     // args[0][args[1]]
  kSlice,     // args[0][args[1]? : args[2]?]  (missing bounds are nullptr)
  kWildcard,  // `*` as a function argument beside others: had_changed(true, *)
};

enum class UnaryOp { kNot, kNeg };
enum class BinaryOp {
  kOr,
  kAnd,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kBitOr,
  kBitXor,
  kBitAnd,
  kAdd,
  kSub,
  kMul,
  kDiv,
  kMod,
};

// Scalar type names of CREATE STREAM and CAST.
enum class TypeKind { kBigint, kFloat, kString, kDatetime, kBoolean, kBytea, kArray, kStruct };

struct TypeSpec;
struct FieldDef {
  std::string name;
  std::unique_ptr<TypeSpec> type;
};
struct TypeSpec {
  TypeKind kind = TypeKind::kString;
  std::unique_ptr<TypeSpec> element;  // kArray
  std::vector<FieldDef> fields;       // kStruct
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

// `OVER (PARTITION BY e, ... WHEN cond)` after an analytic call (lag, latest, acc_sum...).
struct OverClause {
  std::vector<ExprPtr> partition_by;
  ExprPtr when;
};

struct Expr {
  ExprKind kind = ExprKind::kLiteral;
  SourcePos pos;
  int depth = 1;  // height of this subtree

  Value literal;          // kLiteral
  std::string qualifier;  // kField: stream name or alias, may be empty
  std::string name;       // kField field name, kCall function name (as written), kArrow key
  UnaryOp unary_op = UnaryOp::kNot;
  BinaryOp binary_op = BinaryOp::kAnd;
  bool negated = false;      // NOT IN, NOT BETWEEN, NOT LIKE, IS NOT NULL
  bool star = false;         // count(*)
  bool has_operand = false;  // kCase
  bool has_else = false;     // kCase
  TypeKind cast_type = TypeKind::kString;
  std::vector<ExprPtr> args;
  std::unique_ptr<OverClause> over;
};

enum class WindowKind { kTumbling, kHopping, kSliding, kSession, kCount };
enum class TimeUnit { kMillisecond, kSecond, kMinute, kHour, kDay };

struct Window {
  WindowKind kind = WindowKind::kTumbling;
  SourcePos pos;
  TimeUnit unit = TimeUnit::kSecond;  // unused by COUNTWINDOW
  // Integer arguments after the unit: tumbling {size}, hopping {size, hop}, sliding
  // {size[, delay]}, session {max_duration, timeout} (as eKuiper), count {count[, hop]}.
  std::vector<std::int64_t> args;
  ExprPtr trigger;  // SLIDINGWINDOW(...) OVER (WHEN trigger)

  // Milliseconds in one unit.
  std::int64_t unit_ms() const;
};

struct SelectField {
  ExprPtr expr;  // nullptr for a wildcard
  bool wildcard = false;
  std::string wildcard_qualifier;  // "s" in s.*
  std::string alias;               // empty when none
};

struct TableRef {
  std::string name;
  std::string alias;
  SourcePos pos;
};

enum class JoinType { kInner, kLeft, kRight, kFull, kCross };
struct Join {
  JoinType type = JoinType::kInner;
  TableRef table;
  ExprPtr on;  // nullptr for CROSS JOIN
};

struct OrderItem {
  ExprPtr expr;
  bool descending = false;
};

struct SelectStatement {
  std::vector<SelectField> fields;
  TableRef from;
  std::vector<Join> joins;
  ExprPtr where;
  std::vector<ExprPtr> group_by;  // dimensions, without the window
  std::optional<Window> window;
  ExprPtr having;
  std::vector<OrderItem> order_by;
  std::optional<std::int64_t> limit;
};

struct CreateStreamStatement {
  bool is_table = false;
  std::string name;
  SourcePos pos;
  std::vector<FieldDef> fields;  // empty: schemaless
  // WITH options in written order; keys upper-cased (DATASOURCE, FORMAT, KEY, ...).
  std::vector<std::pair<std::string, std::string>> options;

  // Value of option `key` (upper-case), or nullptr.
  const std::string* option(std::string_view key) const;
};

struct DropStreamStatement {
  bool is_table = false;
  std::string name;
};

using Statement = std::variant<SelectStatement, CreateStreamStatement, DropStreamStatement>;

// Prints back as SQL with keywords upper-case, minimal parentheses and identifiers
// backquoted where needed.
// ASCII case-insensitive equality (SQL keywords, function names, metadata keys).
bool iequals(std::string_view a, std::string_view b);

std::string to_sql(const Statement& s);
std::string to_sql(const Expr& e);
std::string to_sql(const TypeSpec& t);

std::string_view to_string(BinaryOp op);   // "+", "AND", "<>"...
std::string_view to_string(TypeKind t);    // "BIGINT", ... ("ARRAY", "STRUCT")
std::string_view to_string(WindowKind w);  // "TUMBLINGWINDOW", ...
std::string_view to_string(TimeUnit u);    // "ms", "ss", "mi", "hh", "dd"
std::string_view to_string(JoinType j);    // "INNER", ...

// True when `word` is a reserved keyword (case-insensitive) that cannot be a bare identifier.
bool is_reserved(std::string_view word);

}  // namespace ganglion::sql
