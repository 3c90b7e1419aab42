#include "stream/parser.h"

#include <algorithm>

#include "stream/lexer.h"

namespace ganglion::sql {
namespace {

// The parser recurses about four frames per nesting level (binary -> unary -> postfix ->
// primary); this many levels stay far below any thread's stack, also under ASan. It is
// more than twice kMaxExprDepth so that whatever to_sql() prints parses again.
constexpr int kMaxRecursion = 300;

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

class Parser {
 public:
  Parser(std::string_view sql, std::vector<Token> tokens) : sql_(sql), toks_(std::move(tokens)) {}

  Result<Statement> statement() {
    Result<Statement> r = statement_inner();
    if (!r.ok()) return r;
    accept(TokenKind::kSemicolon);
    if (!at_end()) return error_here("expected end of statement");
    return r;
  }

  Result<ExprPtr> lone_expression() {
    GANGLION_ASSIGN_OR_RETURN(ExprPtr e, expression("expression"));
    if (!at_end()) return error_here("expected end of expression");
    return e;
  }

 private:
  // ---- token helpers ----
  const Token& cur() const { return toks_[i_]; }
  const Token& peek_tok(std::size_t k = 1) const {
    return toks_[std::min(i_ + k, toks_.size() - 1)];
  }
  bool at_end() const { return cur().kind == TokenKind::kEnd; }
  void bump() {
    if (!at_end()) ++i_;
  }
  bool is(TokenKind k) const { return cur().kind == k; }
  bool is_kw(std::string_view kw, std::size_t k = 0) const {
    const Token& t = k == 0 ? cur() : peek_tok(k);
    return t.kind == TokenKind::kIdent && iequals(t.text, kw);
  }
  bool accept(TokenKind k) {
    if (!is(k)) return false;
    bump();
    return true;
  }
  bool accept_kw(std::string_view kw) {
    if (!is_kw(kw)) return false;
    bump();
    return true;
  }

  Status error_at(SourcePos pos, std::string_view message) const {
    return InvalidArgument(format_error(sql_, pos, message));
  }
  // "<expected>, found <current token>" at the current token.
  Status error_here(std::string_view expected) const {
    std::string m(expected);
    m += ", found ";
    m += describe(cur());
    return error_at(cur().pos, m);
  }
  Status expect(TokenKind k, std::string_view what) {
    if (accept(k)) return Status::Ok();
    return error_here(std::string("expected ") + std::string(what));
  }
  Status expect_kw(std::string_view kw, std::string_view context = {}) {
    if (accept_kw(kw)) return Status::Ok();
    std::string m = "expected " + std::string(kw);
    if (!context.empty()) {
      m += " after ";
      m += context;
    }
    return error_here(m);
  }

  // An identifier (bare and not reserved, or backquoted).
  Result<std::string> identifier(std::string_view what) {
    if (is(TokenKind::kQuotedIdent) || (is(TokenKind::kIdent) && !is_reserved(cur().text))) {
      std::string s = cur().text;
      bump();
      return s;
    }
    return error_here("expected " + std::string(what));
  }
  bool at_identifier() const {
    return is(TokenKind::kQuotedIdent) || (is(TokenKind::kIdent) && !is_reserved(cur().text));
  }

  // ---- statements ----
  Result<Statement> statement_inner() {
    if (is_kw("SELECT")) return select();
    if (is_kw("CREATE")) return create();
    if (is_kw("DROP")) return drop();
    return error_here("expected SELECT, CREATE or DROP");
  }

  Result<Statement> drop() {
    bump();
    DropStreamStatement d;
    if (accept_kw("STREAM")) {
      d.is_table = false;
    } else if (accept_kw("TABLE")) {
      d.is_table = true;
    } else {
      return error_here("expected STREAM or TABLE after DROP");
    }
    GANGLION_ASSIGN_OR_RETURN(d.name, identifier(d.is_table ? "table name" : "stream name"));
    return Statement(std::move(d));
  }

  Result<Statement> create() {
    bump();
    CreateStreamStatement c;
    if (accept_kw("STREAM")) {
      c.is_table = false;
    } else if (accept_kw("TABLE")) {
      c.is_table = true;
    } else {
      return error_here("expected STREAM or TABLE after CREATE");
    }
    c.pos = cur().pos;
    GANGLION_ASSIGN_OR_RETURN(c.name, identifier(c.is_table ? "table name" : "stream name"));
    GANGLION_RETURN_IF_ERROR(expect(TokenKind::kLParen, "'(' to start the field list"));
    if (!accept(TokenKind::kRParen)) {
      GANGLION_ASSIGN_OR_RETURN(c.fields, field_defs(0));
      GANGLION_RETURN_IF_ERROR(expect(TokenKind::kRParen, "',' or ')' in the field list"));
    }
    if (accept_kw("WITH")) {
      GANGLION_RETURN_IF_ERROR(expect(TokenKind::kLParen, "'(' after WITH"));
      if (!is(TokenKind::kRParen)) {
        do {
          if (!is(TokenKind::kIdent) && !is(TokenKind::kQuotedIdent)) {
            return error_here("expected option name");
          }
          std::string key = upper(cur().text);
          SourcePos key_pos = cur().pos;
          bump();
          GANGLION_RETURN_IF_ERROR(expect(TokenKind::kEq, "'=' after option " + key));
          std::string value;
          if (is(TokenKind::kString) || is(TokenKind::kInt) || is(TokenKind::kFloat) ||
              is_kw("TRUE") || is_kw("FALSE")) {
            value = is(TokenKind::kString)  ? cur().text
                    : is(TokenKind::kIdent) ? std::string(is_kw("TRUE") ? "true" : "false")
                                            : cur().text;
            bump();
          } else {
            return error_here("expected a quoted value for option " + key);
          }
          if (c.option(key) != nullptr) return error_at(key_pos, "duplicate option " + key);
          c.options.emplace_back(std::move(key), std::move(value));
        } while (accept(TokenKind::kComma));
      }
      GANGLION_RETURN_IF_ERROR(expect(TokenKind::kRParen, "',' or ')' in WITH options"));
    }
    return Statement(std::move(c));
  }

  Result<std::vector<FieldDef>> field_defs(int depth) {
    std::vector<FieldDef> out;
    do {
      FieldDef f;
      GANGLION_ASSIGN_OR_RETURN(f.name, identifier("field name"));
      GANGLION_ASSIGN_OR_RETURN(f.type, type_spec(depth));
      out.push_back(std::move(f));
    } while (accept(TokenKind::kComma));
    return out;
  }

  Result<std::unique_ptr<TypeSpec>> type_spec(int depth) {
    if (depth >= kMaxTypeDepth) return error_at(cur().pos, "type nested too deeply");
    if (!is(TokenKind::kIdent)) {
      return error_here(
          "expected a type (BIGINT, FLOAT, STRING, DATETIME, BOOLEAN, BYTEA, ARRAY, STRUCT)");
    }
    static constexpr std::pair<std::string_view, TypeKind> kTypes[] = {
        {"BIGINT", TypeKind::kBigint},   {"FLOAT", TypeKind::kFloat},
        {"STRING", TypeKind::kString},   {"DATETIME", TypeKind::kDatetime},
        {"BOOLEAN", TypeKind::kBoolean}, {"BYTEA", TypeKind::kBytea},
        {"ARRAY", TypeKind::kArray},     {"STRUCT", TypeKind::kStruct}};
    auto t = std::make_unique<TypeSpec>();
    bool found = false;
    for (auto [name, kind] : kTypes) {
      if (iequals(cur().text, name)) {
        t->kind = kind;
        found = true;
      }
    }
    if (!found) {
      return error_here(
          "expected a type (BIGINT, FLOAT, STRING, DATETIME, BOOLEAN, BYTEA, ARRAY, STRUCT)");
    }
    bump();
    if (t->kind == TypeKind::kArray) {
      GANGLION_RETURN_IF_ERROR(expect(TokenKind::kLParen, "'(' after ARRAY"));
      GANGLION_ASSIGN_OR_RETURN(t->element, type_spec(depth + 1));
      GANGLION_RETURN_IF_ERROR(expect(TokenKind::kRParen, "')' after the array element type"));
    } else if (t->kind == TypeKind::kStruct) {
      GANGLION_RETURN_IF_ERROR(expect(TokenKind::kLParen, "'(' after STRUCT"));
      GANGLION_ASSIGN_OR_RETURN(t->fields, field_defs(depth + 1));
      GANGLION_RETURN_IF_ERROR(expect(TokenKind::kRParen, "',' or ')' in STRUCT fields"));
    }
    return t;
  }

  Result<TableRef> table_ref(std::string_view what) {
    TableRef t;
    t.pos = cur().pos;
    GANGLION_ASSIGN_OR_RETURN(t.name, identifier(what));
    if (accept_kw("AS")) {
      GANGLION_ASSIGN_OR_RETURN(t.alias, identifier("alias after AS"));
    } else if (at_identifier()) {
      t.alias = cur().text;
      bump();
    }
    return t;
  }

  Result<Statement> select() {
    bump();
    SelectStatement s;
    do {
      SelectField f;
      if (accept(TokenKind::kStar)) {
        f.wildcard = true;
      } else if (at_identifier() && peek_tok().kind == TokenKind::kDot &&
                 peek_tok(2).kind == TokenKind::kStar) {
        f.wildcard = true;
        f.wildcard_qualifier = cur().text;
        bump();
        bump();
        bump();
      } else {
        GANGLION_ASSIGN_OR_RETURN(f.expr, expression("expression or '*'"));
      }
      if (accept_kw("AS")) {
        GANGLION_ASSIGN_OR_RETURN(f.alias, identifier("alias after AS"));
      }
      s.fields.push_back(std::move(f));
    } while (accept(TokenKind::kComma));
    if (!is_kw("FROM")) return error_here("expected ',' or FROM after the select list");
    bump();
    GANGLION_ASSIGN_OR_RETURN(s.from, table_ref("stream name after FROM"));
    for (;;) {
      Join j;
      if (accept_kw("JOIN")) {
        j.type = JoinType::kInner;
      } else if (is_kw("INNER") || is_kw("LEFT") || is_kw("RIGHT") || is_kw("FULL") ||
                 is_kw("CROSS")) {
        std::string kw = upper(cur().text);
        j.type = kw == "INNER"   ? JoinType::kInner
                 : kw == "LEFT"  ? JoinType::kLeft
                 : kw == "RIGHT" ? JoinType::kRight
                 : kw == "FULL"  ? JoinType::kFull
                                 : JoinType::kCross;
        bump();
        if (j.type != JoinType::kInner && j.type != JoinType::kCross) accept_kw("OUTER");
        GANGLION_RETURN_IF_ERROR(expect_kw("JOIN", "'" + kw + "'"));
      } else {
        break;
      }
      GANGLION_ASSIGN_OR_RETURN(j.table, table_ref("table or stream name after JOIN"));
      if (j.type != JoinType::kCross) {
        GANGLION_RETURN_IF_ERROR(expect_kw("ON", "the joined name"));
        GANGLION_ASSIGN_OR_RETURN(j.on, expression("join condition after 'ON'"));
      }
      s.joins.push_back(std::move(j));
    }
    if (accept_kw("WHERE")) {
      GANGLION_ASSIGN_OR_RETURN(s.where, expression("expression after 'WHERE'"));
    }
    if (accept_kw("GROUP")) {
      GANGLION_RETURN_IF_ERROR(expect_kw("BY", "GROUP"));
      do {
        if (window_ahead()) {
          if (s.window) return error_at(cur().pos, "only one window is allowed in GROUP BY");
          GANGLION_ASSIGN_OR_RETURN(s.window, window());
        } else {
          GANGLION_ASSIGN_OR_RETURN(ExprPtr e, expression("expression or window after 'GROUP BY'"));
          s.group_by.push_back(std::move(e));
        }
      } while (accept(TokenKind::kComma));
    }
    if (accept_kw("HAVING")) {
      GANGLION_ASSIGN_OR_RETURN(s.having, expression("expression after 'HAVING'"));
    }
    if (accept_kw("ORDER")) {
      GANGLION_RETURN_IF_ERROR(expect_kw("BY", "ORDER"));
      do {
        OrderItem o;
        GANGLION_ASSIGN_OR_RETURN(o.expr, expression("expression after 'ORDER BY'"));
        if (accept_kw("DESC")) {
          o.descending = true;
        } else {
          accept_kw("ASC");
        }
        s.order_by.push_back(std::move(o));
      } while (accept(TokenKind::kComma));
    }
    if (accept_kw("LIMIT")) {
      if (!is(TokenKind::kInt)) return error_here("expected a number after 'LIMIT'");
      s.limit = cur().int_value;
      bump();
    }
    return Statement(std::move(s));
  }

  bool window_ahead() const {
    if (!is(TokenKind::kIdent) || peek_tok().kind != TokenKind::kLParen) return false;
    for (auto w :
         {"TUMBLINGWINDOW", "HOPPINGWINDOW", "SLIDINGWINDOW", "SESSIONWINDOW", "COUNTWINDOW"}) {
      if (iequals(cur().text, w)) return true;
    }
    return false;
  }

  Result<Window> window() {
    Window w;
    w.pos = cur().pos;
    std::string name = upper(cur().text);
    w.kind = name == "TUMBLINGWINDOW"  ? WindowKind::kTumbling
             : name == "HOPPINGWINDOW" ? WindowKind::kHopping
             : name == "SLIDINGWINDOW" ? WindowKind::kSliding
             : name == "SESSIONWINDOW" ? WindowKind::kSession
                                       : WindowKind::kCount;
    bump();
    bump();  // '('
    if (w.kind != WindowKind::kCount) {
      if (!is(TokenKind::kIdent)) return error_here("expected a time unit (ms, ss, mi, hh, dd)");
      static constexpr std::pair<std::string_view, TimeUnit> kUnits[] = {
          {"ms", TimeUnit::kMillisecond},
          {"ss", TimeUnit::kSecond},
          {"mi", TimeUnit::kMinute},
          {"hh", TimeUnit::kHour},
          {"dd", TimeUnit::kDay}};
      bool found = false;
      for (auto [u, unit] : kUnits) {
        if (iequals(cur().text, u)) {
          w.unit = unit;
          found = true;
        }
      }
      if (!found) return error_here("expected a time unit (ms, ss, mi, hh, dd)");
      bump();
      GANGLION_RETURN_IF_ERROR(expect(TokenKind::kComma, "',' after the time unit"));
    }
    do {
      if (!is(TokenKind::kInt)) return error_here("expected a positive integer");
      if (cur().int_value <= 0) return error_at(cur().pos, "window length must be positive");
      w.args.push_back(cur().int_value);
      bump();
    } while (accept(TokenKind::kComma) && w.args.size() < 8);
    GANGLION_RETURN_IF_ERROR(expect(TokenKind::kRParen, "')' after the window arguments"));
    std::size_t min_args = 1, max_args = 1;
    switch (w.kind) {
      case WindowKind::kTumbling:
        break;
      case WindowKind::kHopping:
        min_args = max_args = 2;
        break;
      case WindowKind::kSliding:
        max_args = 2;
        break;
      case WindowKind::kSession:
        min_args = max_args = 2;
        break;
      case WindowKind::kCount:
        max_args = 2;
        break;
    }
    if (w.args.size() < min_args || w.args.size() > max_args) {
      std::string m = std::string(to_string(w.kind)) + " takes ";
      if (w.kind != WindowKind::kCount) m += "a time unit and ";
      m += min_args == max_args ? std::to_string(min_args)
                                : std::to_string(min_args) + " or " + std::to_string(max_args);
      m += min_args == 1 && max_args == 1 ? " length" : " lengths";
      return error_at(w.pos, m);
    }
    if (is_kw("OVER")) {
      if (w.kind != WindowKind::kSliding) {
        return error_at(cur().pos, "OVER (WHEN ...) is only allowed after SLIDINGWINDOW");
      }
      bump();
      GANGLION_RETURN_IF_ERROR(expect(TokenKind::kLParen, "'(' after OVER"));
      GANGLION_RETURN_IF_ERROR(expect_kw("WHEN", "OVER ("));
      GANGLION_ASSIGN_OR_RETURN(w.trigger, expression("expression after 'WHEN'"));
      GANGLION_RETURN_IF_ERROR(expect(TokenKind::kRParen, "')' after the WHEN condition"));
    }
    return w;
  }

  // ---- expressions ----
  struct DepthGuard {
    explicit DepthGuard(int& d) : d_(d) { ++d_; }
    ~DepthGuard() { --d_; }
    int& d_;
  };

  ExprPtr node(ExprKind kind, SourcePos pos) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->pos = pos;
    return e;
  }
  // Sets e->depth from its children; fails when the tree grows too tall.
  Result<ExprPtr> seal(ExprPtr e) {
    int d = 0;
    for (const auto& a : e->args) {
      if (a) d = std::max(d, a->depth);
    }
    if (e->over) {
      for (const auto& a : e->over->partition_by) d = std::max(d, a->depth);
      if (e->over->when) d = std::max(d, e->over->when->depth);
    }
    e->depth = d + 1;
    if (e->depth > kMaxExprDepth) return error_at(e->pos, "expression nested too deeply");
    return e;
  }

  // `what` names what the caller expects, for the message when no expression starts here.
  Result<ExprPtr> expression(std::string_view what) {
    if (starts_expression()) return binary(1);
    return error_here("expected " + std::string(what));
  }

  bool starts_expression() const {
    switch (cur().kind) {
      case TokenKind::kIdent:
        return !is_reserved(cur().text) || is_kw("NOT") || is_kw("CASE") || is_kw("TRUE") ||
               is_kw("FALSE") || is_kw("NULL") || is_kw("CAST");
      case TokenKind::kQuotedIdent:
      case TokenKind::kInt:
      case TokenKind::kFloat:
      case TokenKind::kString:
      case TokenKind::kLParen:
      case TokenKind::kMinus:
      case TokenKind::kPlus:
        return true;
      default:
        return false;
    }
  }

  // Binding power of the binary operator at the cursor, 0 when none.
  int infix_prec(BinaryOp& op) const {
    switch (cur().kind) {
      case TokenKind::kEq:
        op = BinaryOp::kEq;
        return 4;
      case TokenKind::kNe:
        op = BinaryOp::kNe;
        return 4;
      case TokenKind::kLt:
        op = BinaryOp::kLt;
        return 4;
      case TokenKind::kLe:
        op = BinaryOp::kLe;
        return 4;
      case TokenKind::kGt:
        op = BinaryOp::kGt;
        return 4;
      case TokenKind::kGe:
        op = BinaryOp::kGe;
        return 4;
      case TokenKind::kPipe:
        op = BinaryOp::kBitOr;
        return 5;
      case TokenKind::kCaret:
        op = BinaryOp::kBitXor;
        return 6;
      case TokenKind::kAmp:
        op = BinaryOp::kBitAnd;
        return 7;
      case TokenKind::kPlus:
        op = BinaryOp::kAdd;
        return 8;
      case TokenKind::kMinus:
        op = BinaryOp::kSub;
        return 8;
      case TokenKind::kStar:
        op = BinaryOp::kMul;
        return 9;
      case TokenKind::kSlash:
        op = BinaryOp::kDiv;
        return 9;
      case TokenKind::kPercent:
        op = BinaryOp::kMod;
        return 9;
      case TokenKind::kIdent:
        if (is_kw("OR")) {
          op = BinaryOp::kOr;
          return 1;
        }
        if (is_kw("AND")) {
          op = BinaryOp::kAnd;
          return 2;
        }
        return 0;
      default:
        return 0;
    }
  }

  // The predicates IN, BETWEEN, LIKE, IS (with optional NOT) at the cursor.
  bool predicate_ahead() const {
    if (is_kw("IN") || is_kw("BETWEEN") || is_kw("LIKE") || is_kw("IS")) return true;
    return is_kw("NOT") && (is_kw("IN", 1) || is_kw("BETWEEN", 1) || is_kw("LIKE", 1));
  }

  Result<ExprPtr> binary(int min_prec) {
    DepthGuard guard(depth_);
    if (depth_ > kMaxRecursion) return error_at(cur().pos, "expression nested too deeply");
    GANGLION_ASSIGN_OR_RETURN(ExprPtr lhs, unary());
    for (;;) {
      if (predicate_ahead()) {
        if (min_prec > 4) break;
        GANGLION_ASSIGN_OR_RETURN(lhs, predicate(std::move(lhs)));
        continue;
      }
      BinaryOp op;
      int p = infix_prec(op);
      if (p == 0 || p < min_prec) break;
      const Token& op_tok = cur();
      SourcePos pos = op_tok.pos;
      std::string op_text =
          op_tok.kind == TokenKind::kIdent ? upper(op_tok.text) : describe(op_tok);
      bump();
      if (!starts_expression()) {
        return error_here("expected expression after " +
                          (op_tok.kind == TokenKind::kIdent ? "'" + op_text + "'" : op_text));
      }
      GANGLION_ASSIGN_OR_RETURN(ExprPtr rhs, binary(p + 1));
      ExprPtr e = node(ExprKind::kBinary, pos);
      e->binary_op = op;
      e->args.push_back(std::move(lhs));
      e->args.push_back(std::move(rhs));
      GANGLION_ASSIGN_OR_RETURN(lhs, seal(std::move(e)));
    }
    return lhs;
  }

  Result<ExprPtr> predicate(ExprPtr lhs) {
    SourcePos pos = cur().pos;
    bool negated = accept_kw("NOT");
    if (accept_kw("IS")) {
      ExprPtr e = node(ExprKind::kIsNull, pos);
      e->negated = accept_kw("NOT");
      GANGLION_RETURN_IF_ERROR(expect_kw("NULL", e->negated ? "IS NOT" : "IS"));
      e->args.push_back(std::move(lhs));
      return seal(std::move(e));
    }
    if (accept_kw("IN")) {
      ExprPtr e = node(ExprKind::kIn, pos);
      e->negated = negated;
      e->args.push_back(std::move(lhs));
      GANGLION_RETURN_IF_ERROR(expect(TokenKind::kLParen, "'(' after IN"));
      do {
        GANGLION_ASSIGN_OR_RETURN(ExprPtr item, expression("expression in the IN list"));
        e->args.push_back(std::move(item));
      } while (accept(TokenKind::kComma));
      GANGLION_RETURN_IF_ERROR(expect(TokenKind::kRParen, "',' or ')' in the IN list"));
      return seal(std::move(e));
    }
    if (accept_kw("BETWEEN")) {
      ExprPtr e = node(ExprKind::kBetween, pos);
      e->negated = negated;
      e->args.push_back(std::move(lhs));
      if (!starts_expression()) return error_here("expected expression after 'BETWEEN'");
      GANGLION_ASSIGN_OR_RETURN(ExprPtr lo, binary(5));
      GANGLION_RETURN_IF_ERROR(expect_kw("AND", "the lower bound of BETWEEN"));
      if (!starts_expression()) return error_here("expected expression after 'AND'");
      GANGLION_ASSIGN_OR_RETURN(ExprPtr hi, binary(5));
      e->args.push_back(std::move(lo));
      e->args.push_back(std::move(hi));
      return seal(std::move(e));
    }
    bump();  // LIKE
    ExprPtr e = node(ExprKind::kLike, pos);
    e->negated = negated;
    e->args.push_back(std::move(lhs));
    if (!starts_expression()) return error_here("expected pattern after 'LIKE'");
    GANGLION_ASSIGN_OR_RETURN(ExprPtr pat, binary(5));
    e->args.push_back(std::move(pat));
    return seal(std::move(e));
  }

  Result<ExprPtr> unary() {
    DepthGuard guard(depth_);
    if (depth_ > kMaxRecursion) return error_at(cur().pos, "expression nested too deeply");
    SourcePos pos = cur().pos;
    if (accept_kw("NOT")) {
      if (!starts_expression()) return error_here("expected expression after 'NOT'");
      GANGLION_ASSIGN_OR_RETURN(ExprPtr operand, binary(3));
      ExprPtr e = node(ExprKind::kUnary, pos);
      e->unary_op = UnaryOp::kNot;
      e->args.push_back(std::move(operand));
      return seal(std::move(e));
    }
    if (accept(TokenKind::kMinus)) {
      if (!starts_expression()) return error_here("expected expression after '-'");
      GANGLION_ASSIGN_OR_RETURN(ExprPtr operand, unary());
      ExprPtr e = node(ExprKind::kUnary, pos);
      e->unary_op = UnaryOp::kNeg;
      e->args.push_back(std::move(operand));
      return seal(std::move(e));
    }
    if (accept(TokenKind::kPlus)) {
      if (!starts_expression()) return error_here("expected expression after '+'");
      return unary();
    }
    return postfix();
  }

  Result<ExprPtr> postfix() {
    GANGLION_ASSIGN_OR_RETURN(ExprPtr e, primary());
    for (;;) {
      SourcePos pos = cur().pos;
      if (accept(TokenKind::kArrow)) {
        ExprPtr a = node(ExprKind::kArrow, pos);
        GANGLION_ASSIGN_OR_RETURN(a->name, identifier("field name after '->'"));
        a->args.push_back(std::move(e));
        GANGLION_ASSIGN_OR_RETURN(e, seal(std::move(a)));
      } else if (accept(TokenKind::kLBracket)) {
        ExprPtr lo;
        if (!is(TokenKind::kColon)) {
          GANGLION_ASSIGN_OR_RETURN(lo, expression("index or slice after '['"));
        }
        if (accept(TokenKind::kColon)) {
          ExprPtr s = node(ExprKind::kSlice, pos);
          ExprPtr hi;
          if (!is(TokenKind::kRBracket)) {
            GANGLION_ASSIGN_OR_RETURN(hi, expression("slice end or ']'"));
          }
          s->args.push_back(std::move(e));
          s->args.push_back(std::move(lo));
          s->args.push_back(std::move(hi));
          GANGLION_RETURN_IF_ERROR(expect(TokenKind::kRBracket, "']' after the slice"));
          GANGLION_ASSIGN_OR_RETURN(e, seal(std::move(s)));
        } else {
          ExprPtr ix = node(ExprKind::kIndex, pos);
          ix->args.push_back(std::move(e));
          ix->args.push_back(std::move(lo));
          GANGLION_RETURN_IF_ERROR(expect(TokenKind::kRBracket, "']' after the index"));
          GANGLION_ASSIGN_OR_RETURN(e, seal(std::move(ix)));
        }
      } else {
        return e;
      }
    }
  }

  Result<ExprPtr> primary() {
    const Token& t = cur();
    SourcePos pos = t.pos;
    switch (t.kind) {
      case TokenKind::kInt: {
        ExprPtr e = node(ExprKind::kLiteral, pos);
        e->literal = Value(t.int_value);
        bump();
        return e;
      }
      case TokenKind::kFloat: {
        ExprPtr e = node(ExprKind::kLiteral, pos);
        e->literal = Value(t.float_value);
        bump();
        return e;
      }
      case TokenKind::kString: {
        ExprPtr e = node(ExprKind::kLiteral, pos);
        e->literal = Value(t.text);
        bump();
        return e;
      }
      case TokenKind::kLParen: {
        bump();
        GANGLION_ASSIGN_OR_RETURN(ExprPtr e, expression("expression after '('"));
        GANGLION_RETURN_IF_ERROR(expect(TokenKind::kRParen, "')'"));
        return e;
      }
      case TokenKind::kQuotedIdent:
        return field();
      case TokenKind::kIdent:
        break;
      default:
        return error_here("expected expression");
    }
    if (is_kw("TRUE") || is_kw("FALSE") || is_kw("NULL")) {
      ExprPtr e = node(ExprKind::kLiteral, pos);
      if (!is_kw("NULL")) e->literal = Value(is_kw("TRUE"));
      bump();
      return e;
    }
    if (is_kw("CASE")) return case_expr();
    if (is_kw("CAST") && peek_tok().kind == TokenKind::kLParen) return cast_or_call();
    if (is_reserved(t.text)) return error_here("expected expression");
    if (peek_tok().kind == TokenKind::kLParen) return call();
    return field();
  }

  Result<ExprPtr> field() {
    ExprPtr e = node(ExprKind::kField, cur().pos);
    std::string first = cur().text;
    bump();
    if (accept(TokenKind::kDot)) {
      e->qualifier = std::move(first);
      GANGLION_ASSIGN_OR_RETURN(e->name, identifier("field name after '.'"));
    } else {
      e->name = std::move(first);
    }
    return e;
  }

  Result<ExprPtr> call() {
    // A window is not a function: `GROUP BY +COUNTWINDOW(1)` would print as a window.
    if (window_ahead()) {
      return error_at(cur().pos, upper(cur().text) + " is only allowed in GROUP BY");
    }
    ExprPtr e = node(ExprKind::kCall, cur().pos);
    e->name = cur().text;
    bump();
    bump();  // '('
    if (is(TokenKind::kStar) && peek_tok().kind == TokenKind::kRParen) {
      e->star = true;
      bump();
    } else if (!is(TokenKind::kRParen)) {
      do {
        // `*` beside other arguments (had_changed(true, *), changed_cols("p", true, *)).
        if (is(TokenKind::kStar) &&
            (peek_tok().kind == TokenKind::kComma || peek_tok().kind == TokenKind::kRParen)) {
          e->args.push_back(node(ExprKind::kWildcard, cur().pos));
          bump();
          continue;
        }
        GANGLION_ASSIGN_OR_RETURN(ExprPtr a, expression("function argument"));
        e->args.push_back(std::move(a));
      } while (accept(TokenKind::kComma));
    }
    GANGLION_RETURN_IF_ERROR(expect(TokenKind::kRParen, "',' or ')' after the function arguments"));
    if (is_kw("OVER")) {
      bump();
      GANGLION_RETURN_IF_ERROR(expect(TokenKind::kLParen, "'(' after OVER"));
      e->over = std::make_unique<OverClause>();
      if (accept_kw("PARTITION")) {
        GANGLION_RETURN_IF_ERROR(expect_kw("BY", "PARTITION"));
        do {
          GANGLION_ASSIGN_OR_RETURN(ExprPtr p, expression("expression after 'PARTITION BY'"));
          e->over->partition_by.push_back(std::move(p));
        } while (accept(TokenKind::kComma));
      }
      if (accept_kw("WHEN")) {
        GANGLION_ASSIGN_OR_RETURN(e->over->when, expression("expression after 'WHEN'"));
      }
      if (e->over->partition_by.empty() && !e->over->when) {
        return error_here("expected PARTITION BY or WHEN in OVER");
      }
      GANGLION_RETURN_IF_ERROR(expect(TokenKind::kRParen, "')' to close OVER"));
    }
    return seal(std::move(e));
  }

  // CAST(x AS type) (SQL) or cast(x, "type") (eKuiper's function form, kept as a call).
  Result<ExprPtr> cast_or_call() {
    SourcePos pos = cur().pos;
    std::string name = cur().text;
    bump();
    bump();  // '('
    GANGLION_ASSIGN_OR_RETURN(ExprPtr x, expression("expression after 'CAST('"));
    if (accept_kw("AS")) {
      ExprPtr e = node(ExprKind::kCast, pos);
      SourcePos type_pos = cur().pos;
      GANGLION_ASSIGN_OR_RETURN(std::unique_ptr<TypeSpec> t, type_spec(0));
      if (t->kind == TypeKind::kArray || t->kind == TypeKind::kStruct) {
        return error_at(type_pos,
                        "CAST supports BIGINT, FLOAT, STRING, DATETIME, BOOLEAN and BYTEA");
      }
      e->cast_type = t->kind;
      e->args.push_back(std::move(x));
      GANGLION_RETURN_IF_ERROR(expect(TokenKind::kRParen, "')' after the CAST type"));
      return seal(std::move(e));
    }
    ExprPtr e = node(ExprKind::kCall, pos);
    e->name = std::move(name);
    e->args.push_back(std::move(x));
    while (accept(TokenKind::kComma)) {
      GANGLION_ASSIGN_OR_RETURN(ExprPtr a, expression("function argument"));
      e->args.push_back(std::move(a));
    }
    GANGLION_RETURN_IF_ERROR(expect(TokenKind::kRParen, "AS, ',' or ')' in CAST"));
    return seal(std::move(e));
  }

  Result<ExprPtr> case_expr() {
    ExprPtr e = node(ExprKind::kCase, cur().pos);
    bump();
    if (!is_kw("WHEN")) {
      GANGLION_ASSIGN_OR_RETURN(ExprPtr operand, expression("WHEN or expression after 'CASE'"));
      e->has_operand = true;
      e->args.push_back(std::move(operand));
    }
    if (!is_kw("WHEN")) return error_here("expected WHEN");
    while (accept_kw("WHEN")) {
      GANGLION_ASSIGN_OR_RETURN(ExprPtr w, expression("expression after 'WHEN'"));
      GANGLION_RETURN_IF_ERROR(expect_kw("THEN", "the WHEN condition"));
      GANGLION_ASSIGN_OR_RETURN(ExprPtr th, expression("expression after 'THEN'"));
      e->args.push_back(std::move(w));
      e->args.push_back(std::move(th));
    }
    if (accept_kw("ELSE")) {
      GANGLION_ASSIGN_OR_RETURN(ExprPtr el, expression("expression after 'ELSE'"));
      e->has_else = true;
      e->args.push_back(std::move(el));
    }
    if (!is_kw("END")) return error_here("expected WHEN, ELSE or END in CASE");
    bump();
    return seal(std::move(e));
  }

  std::string_view sql_;
  std::vector<Token> toks_;
  std::size_t i_ = 0;
  int depth_ = 0;
};

}  // namespace

Result<Statement> parse_statement(std::string_view sql) {
  GANGLION_ASSIGN_OR_RETURN(std::vector<Token> tokens, tokenize(sql));
  return Parser(sql, std::move(tokens)).statement();
}

Result<ExprPtr> parse_expression(std::string_view sql) {
  GANGLION_ASSIGN_OR_RETURN(std::vector<Token> tokens, tokenize(sql));
  return Parser(sql, std::move(tokens)).lone_expression();
}

}  // namespace ganglion::sql
