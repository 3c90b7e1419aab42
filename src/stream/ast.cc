#include "stream/ast.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>

namespace ganglion::sql {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

namespace {

// Printing precedences; they mirror the parser's binding powers (parser.cc).
constexpr int kPrecNot = 3;
constexpr int kPrecCompare = 4;
constexpr int kPrecUnary = 10;
constexpr int kPrecPostfix = 11;
constexpr int kPrecPrimary = 12;

int binary_prec(BinaryOp op) {
  switch (op) {
    case BinaryOp::kOr:
      return 1;
    case BinaryOp::kAnd:
      return 2;
    case BinaryOp::kEq:
    case BinaryOp::kNe:
    case BinaryOp::kLt:
    case BinaryOp::kLe:
    case BinaryOp::kGt:
    case BinaryOp::kGe:
      return kPrecCompare;
    case BinaryOp::kBitOr:
      return 5;
    case BinaryOp::kBitXor:
      return 6;
    case BinaryOp::kBitAnd:
      return 7;
    case BinaryOp::kAdd:
    case BinaryOp::kSub:
      return 8;
    case BinaryOp::kMul:
    case BinaryOp::kDiv:
    case BinaryOp::kMod:
      return 9;
  }
  return 1;
}

int prec(const Expr& e) {
  switch (e.kind) {
    case ExprKind::kBinary:
      return binary_prec(e.binary_op);
    case ExprKind::kUnary:
      return e.unary_op == UnaryOp::kNot ? kPrecNot : kPrecUnary;
    case ExprKind::kIn:
    case ExprKind::kBetween:
    case ExprKind::kLike:
    case ExprKind::kIsNull:
      return kPrecCompare;
    case ExprKind::kArrow:
    case ExprKind::kIndex:
    case ExprKind::kSlice:
      return kPrecPostfix;
    default:
      return kPrecPrimary;
  }
}

bool plain_identifier(std::string_view s) {
  if (s.empty()) return false;
  if (!(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return !is_reserved(s);
}

void ident(std::string_view s, std::string& out) {
  if (plain_identifier(s)) {
    out += s;
  } else {
    out += '`';
    out += s;
    out += '`';
  }
}

void quoted(std::string_view s, char q, std::string& out) {
  out += q;
  for (char c : s) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c == q) out += '\\';
        out += c;
    }
  }
  out += q;
}

void literal(const Value& v, std::string& out) {
  switch (v.type()) {
    case Value::Type::kNull:
      out += "NULL";
      return;
    case Value::Type::kBool:
      out += v.as_bool() ? "TRUE" : "FALSE";
      return;
    case Value::Type::kInt:
      out += std::to_string(v.as_int());
      return;
    case Value::Type::kFloat: {
      char buf[40];
      auto r = std::to_chars(buf, buf + sizeof buf, v.as_float());
      std::string_view s(buf, static_cast<std::size_t>(r.ptr - buf));
      out += s;
      if (s.find_first_of(".eEn") == std::string_view::npos) out += ".0";
      return;
    }
    case Value::Type::kString:
      quoted(v.as_string(), '\'', out);
      return;
    default:
      quoted(v.to_display_string(), '\'', out);
      return;
  }
}

void print(const Expr& e, std::string& out);

void child(const Expr& e, int min_prec, std::string& out) {
  if (prec(e) < min_prec) {
    out += '(';
    print(e, out);
    out += ')';
  } else {
    print(e, out);
  }
}

void list(const std::vector<ExprPtr>& xs, std::size_t from, std::string& out) {
  for (std::size_t i = from; i < xs.size(); ++i) {
    if (i > from) out += ", ";
    print(*xs[i], out);
  }
}

void print(const Expr& e, std::string& out) {
  switch (e.kind) {
    case ExprKind::kLiteral:
      literal(e.literal, out);
      return;
    case ExprKind::kField:
      if (!e.qualifier.empty()) {
        ident(e.qualifier, out);
        out += '.';
      }
      ident(e.name, out);
      return;
    case ExprKind::kUnary:
      if (e.unary_op == UnaryOp::kNot) {
        out += "NOT ";
        child(*e.args[0], kPrecNot, out);
      } else {
        out += '-';
        // "--" would start a comment.
        if (e.args[0]->kind == ExprKind::kUnary) out += ' ';
        child(*e.args[0], kPrecUnary, out);
      }
      return;
    case ExprKind::kBinary: {
      int p = binary_prec(e.binary_op);
      child(*e.args[0], p, out);
      out += ' ';
      out += to_string(e.binary_op);
      out += ' ';
      child(*e.args[1], p + 1, out);
      return;
    }
    case ExprKind::kIn:
      child(*e.args[0], kPrecCompare, out);
      out += e.negated ? " NOT IN (" : " IN (";
      list(e.args, 1, out);
      out += ')';
      return;
    case ExprKind::kBetween:
      child(*e.args[0], kPrecCompare, out);
      out += e.negated ? " NOT BETWEEN " : " BETWEEN ";
      child(*e.args[1], kPrecCompare + 1, out);
      out += " AND ";
      child(*e.args[2], kPrecCompare + 1, out);
      return;
    case ExprKind::kLike:
      child(*e.args[0], kPrecCompare, out);
      out += e.negated ? " NOT LIKE " : " LIKE ";
      child(*e.args[1], kPrecCompare + 1, out);
      return;
    case ExprKind::kIsNull:
      child(*e.args[0], kPrecCompare, out);
      out += e.negated ? " IS NOT NULL" : " IS NULL";
      return;
    case ExprKind::kCase: {
      out += "CASE";
      std::size_t i = 0;
      if (e.has_operand) {
        out += ' ';
        print(*e.args[0], out);
        i = 1;
      }
      std::size_t end = e.args.size() - (e.has_else ? 1 : 0);
      for (; i + 1 < end; i += 2) {
        out += " WHEN ";
        print(*e.args[i], out);
        out += " THEN ";
        print(*e.args[i + 1], out);
      }
      if (e.has_else) {
        out += " ELSE ";
        print(*e.args.back(), out);
      }
      out += " END";
      return;
    }
    case ExprKind::kCall:
      out += e.name;
      out += '(';
      if (e.star) {
        out += '*';
      } else {
        list(e.args, 0, out);
      }
      out += ')';
      if (e.over) {
        out += " OVER (";
        if (!e.over->partition_by.empty()) {
          out += "PARTITION BY ";
          list(e.over->partition_by, 0, out);
          if (e.over->when) out += ' ';
        }
        if (e.over->when) {
          out += "WHEN ";
          print(*e.over->when, out);
        }
        out += ')';
      }
      return;
    case ExprKind::kCast:
      out += "CAST(";
      print(*e.args[0], out);
      out += " AS ";
      out += to_string(e.cast_type);
      out += ')';
      return;
    case ExprKind::kArrow:
      child(*e.args[0], kPrecPostfix, out);
      out += "->";
      ident(e.name, out);
      return;
    case ExprKind::kIndex:
      child(*e.args[0], kPrecPostfix, out);
      out += '[';
      print(*e.args[1], out);
      out += ']';
      return;
    case ExprKind::kSlice:
      child(*e.args[0], kPrecPostfix, out);
      out += '[';
      if (e.args[1]) print(*e.args[1], out);
      out += ':';
      if (e.args[2]) print(*e.args[2], out);
      out += ']';
      return;
    case ExprKind::kWildcard:
      out += '*';
      return;
  }
}

void print_type(const TypeSpec& t, std::string& out) {
  out += to_string(t.kind);
  if (t.kind == TypeKind::kArray) {
    out += '(';
    if (t.element) print_type(*t.element, out);
    out += ')';
  } else if (t.kind == TypeKind::kStruct) {
    out += '(';
    for (std::size_t i = 0; i < t.fields.size(); ++i) {
      if (i) out += ", ";
      ident(t.fields[i].name, out);
      out += ' ';
      if (t.fields[i].type) print_type(*t.fields[i].type, out);
    }
    out += ')';
  }
}

void table_ref(const TableRef& t, std::string& out) {
  ident(t.name, out);
  if (!t.alias.empty()) {
    out += " AS ";
    ident(t.alias, out);
  }
}

void print_select(const SelectStatement& s, std::string& out) {
  out += "SELECT ";
  for (std::size_t i = 0; i < s.fields.size(); ++i) {
    if (i) out += ", ";
    const SelectField& f = s.fields[i];
    if (f.wildcard) {
      if (!f.wildcard_qualifier.empty()) {
        ident(f.wildcard_qualifier, out);
        out += '.';
      }
      out += '*';
    } else {
      print(*f.expr, out);
    }
    if (!f.alias.empty()) {
      out += " AS ";
      ident(f.alias, out);
    }
  }
  out += " FROM ";
  table_ref(s.from, out);
  for (const Join& j : s.joins) {
    out += ' ';
    out += to_string(j.type);
    out += " JOIN ";
    table_ref(j.table, out);
    if (j.on) {
      out += " ON ";
      print(*j.on, out);
    }
  }
  if (s.where) {
    out += " WHERE ";
    print(*s.where, out);
  }
  if (!s.group_by.empty() || s.window) {
    out += " GROUP BY ";
    list(s.group_by, 0, out);
    if (s.window) {
      if (!s.group_by.empty()) out += ", ";
      const Window& w = *s.window;
      out += to_string(w.kind);
      out += '(';
      bool first = true;
      if (w.kind != WindowKind::kCount) {
        out += to_string(w.unit);
        first = false;
      }
      for (std::int64_t a : w.args) {
        if (!first) out += ", ";
        first = false;
        out += std::to_string(a);
      }
      out += ')';
      if (w.trigger) {
        out += " OVER (WHEN ";
        print(*w.trigger, out);
        out += ')';
      }
    }
  }
  if (s.having) {
    out += " HAVING ";
    print(*s.having, out);
  }
  if (!s.order_by.empty()) {
    out += " ORDER BY ";
    for (std::size_t i = 0; i < s.order_by.size(); ++i) {
      if (i) out += ", ";
      print(*s.order_by[i].expr, out);
      if (s.order_by[i].descending) out += " DESC";
    }
  }
  if (s.limit) {
    out += " LIMIT ";
    out += std::to_string(*s.limit);
  }
}

}  // namespace

std::int64_t Window::unit_ms() const {
  switch (unit) {
    case TimeUnit::kMillisecond:
      return 1;
    case TimeUnit::kSecond:
      return 1000;
    case TimeUnit::kMinute:
      return 60'000;
    case TimeUnit::kHour:
      return 3'600'000;
    case TimeUnit::kDay:
      return 86'400'000;
  }
  return 1;
}

const std::string* CreateStreamStatement::option(std::string_view key) const {
  for (const auto& [k, v] : options) {
    if (k == key) return &v;
  }
  return nullptr;
}

std::string to_sql(const Expr& e) {
  std::string out;
  print(e, out);
  return out;
}

std::string to_sql(const TypeSpec& t) {
  std::string out;
  print_type(t, out);
  return out;
}

std::string to_sql(const Statement& st) {
  std::string out;
  if (const auto* s = std::get_if<SelectStatement>(&st)) {
    print_select(*s, out);
  } else if (const auto* c = std::get_if<CreateStreamStatement>(&st)) {
    out += c->is_table ? "CREATE TABLE " : "CREATE STREAM ";
    ident(c->name, out);
    out += " (";
    for (std::size_t i = 0; i < c->fields.size(); ++i) {
      if (i) out += ", ";
      ident(c->fields[i].name, out);
      out += ' ';
      print_type(*c->fields[i].type, out);
    }
    out += ')';
    if (!c->options.empty()) {
      out += " WITH (";
      for (std::size_t i = 0; i < c->options.size(); ++i) {
        if (i) out += ", ";
        out += c->options[i].first;
        out += '=';
        quoted(c->options[i].second, '"', out);
      }
      out += ')';
    }
  } else if (const auto* d = std::get_if<DropStreamStatement>(&st)) {
    out += d->is_table ? "DROP TABLE " : "DROP STREAM ";
    ident(d->name, out);
  }
  return out;
}

std::string_view to_string(BinaryOp op) {
  switch (op) {
    case BinaryOp::kOr:
      return "OR";
    case BinaryOp::kAnd:
      return "AND";
    case BinaryOp::kEq:
      return "=";
    case BinaryOp::kNe:
      return "!=";
    case BinaryOp::kLt:
      return "<";
    case BinaryOp::kLe:
      return "<=";
    case BinaryOp::kGt:
      return ">";
    case BinaryOp::kGe:
      return ">=";
    case BinaryOp::kBitOr:
      return "|";
    case BinaryOp::kBitXor:
      return "^";
    case BinaryOp::kBitAnd:
      return "&";
    case BinaryOp::kAdd:
      return "+";
    case BinaryOp::kSub:
      return "-";
    case BinaryOp::kMul:
      return "*";
    case BinaryOp::kDiv:
      return "/";
    case BinaryOp::kMod:
      return "%";
  }
  return "?";
}

std::string_view to_string(TypeKind t) {
  switch (t) {
    case TypeKind::kBigint:
      return "BIGINT";
    case TypeKind::kFloat:
      return "FLOAT";
    case TypeKind::kString:
      return "STRING";
    case TypeKind::kDatetime:
      return "DATETIME";
    case TypeKind::kBoolean:
      return "BOOLEAN";
    case TypeKind::kBytea:
      return "BYTEA";
    case TypeKind::kArray:
      return "ARRAY";
    case TypeKind::kStruct:
      return "STRUCT";
  }
  return "?";
}

std::string_view to_string(WindowKind w) {
  switch (w) {
    case WindowKind::kTumbling:
      return "TUMBLINGWINDOW";
    case WindowKind::kHopping:
      return "HOPPINGWINDOW";
    case WindowKind::kSliding:
      return "SLIDINGWINDOW";
    case WindowKind::kSession:
      return "SESSIONWINDOW";
    case WindowKind::kCount:
      return "COUNTWINDOW";
  }
  return "?";
}

std::string_view to_string(TimeUnit u) {
  switch (u) {
    case TimeUnit::kMillisecond:
      return "ms";
    case TimeUnit::kSecond:
      return "ss";
    case TimeUnit::kMinute:
      return "mi";
    case TimeUnit::kHour:
      return "hh";
    case TimeUnit::kDay:
      return "dd";
  }
  return "?";
}

std::string_view to_string(JoinType j) {
  switch (j) {
    case JoinType::kInner:
      return "INNER";
    case JoinType::kLeft:
      return "LEFT";
    case JoinType::kRight:
      return "RIGHT";
    case JoinType::kFull:
      return "FULL";
    case JoinType::kCross:
      return "CROSS";
  }
  return "?";
}

bool is_reserved(std::string_view word) {
  static constexpr std::array<std::string_view, 34> kReserved = {
      "SELECT", "FROM", "WHERE", "GROUP", "BY",      "HAVING", "ORDER", "LIMIT", "AS",
      "AND",    "OR",   "NOT",   "IN",    "BETWEEN", "LIKE",   "IS",    "NULL",  "CASE",
      "WHEN",   "THEN", "ELSE",  "END",   "TRUE",    "FALSE",  "JOIN",  "INNER", "LEFT",
      "RIGHT",  "FULL", "CROSS", "ON",    "OVER",    "CAST",   "OUTER"};
  for (std::string_view k : kReserved) {
    if (iequals(k, word)) return true;
  }
  return false;
}

}  // namespace ganglion::sql
