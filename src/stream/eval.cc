#include "stream/eval.h"

#include <algorithm>

#include "stream/parser.h"
#include "stream/time_format.h"

namespace ganglion::sql {
namespace detail {

struct EvalState {
  const Row* row = nullptr;
  const CallContext* ctx = nullptr;
  Status error;
};

// eval() returns a pointer valid until the node is evaluated again or the row changes, or
// nullptr after recording an error in `st.error`.
class Node {
 public:
  virtual ~Node() = default;
  virtual const Value* eval(EvalState& st) = 0;
};

}  // namespace detail

namespace {

using detail::EvalState;
using detail::Node;
using NodePtr = std::unique_ptr<Node>;

const Value kNull;
const Value kTrue(true);
const Value kFalse(false);

std::string describe(const Value& v) {
  std::string t = v.to_display_string();
  if (t.size() > 32) t = t.substr(0, 32) + "...";
  return std::string(v.type_name()) + "(" + t + ")";
}

const Value* fail(EvalState& st, Status s) {
  if (st.error.ok()) st.error = std::move(s);
  return nullptr;
}

const Value& boolean(bool b) { return b ? kTrue : kFalse; }

class Literal final : public Node {
 public:
  explicit Literal(Value v) : v_(std::move(v)) {}
  const Value* eval(EvalState&) override { return &v_; }

 private:
  Value v_;
};

// A field of the FROM stream. Unqualified in a join (`any_row`), as in eKuiper: the FROM
// stream's row first, then the joined rows in JOIN order; the first that has it gives it.
class Field final : public Node {
 public:
  Field(std::string name, std::size_t hint, bool any_row)
      : name_(std::move(name)), hint_(hint), any_row_(any_row) {}
  const Value* eval(EvalState& st) override {
    const Value* row = st.row->fields;
    if (row != nullptr && row->is_object()) {
      if (const Value* v = row->as_object().find(name_, hint_)) return v;
    }
    if (!any_row_) return &kNull;
    for (const NamedRow& r : st.row->joined) {
      if (r.fields == nullptr || !r.fields->is_object()) continue;
      if (const Value* v = r.fields->as_object().find(name_)) return v;
    }
    return &kNull;
  }

 private:
  std::string name_;
  std::size_t hint_;
  bool any_row_;
};

// `other.field` for a joined stream.
class JoinedField final : public Node {
 public:
  JoinedField(std::string qualifier, std::string name)
      : qualifier_(std::move(qualifier)), name_(std::move(name)) {}
  const Value* eval(EvalState& st) override {
    for (const NamedRow& r : st.row->joined) {
      if (r.name != qualifier_) continue;
      if (r.fields == nullptr || !r.fields->is_object()) return &kNull;
      const Value* v = r.fields->as_object().find(name_, hint_);
      return v != nullptr ? v : &kNull;
    }
    return &kNull;
  }

 private:
  std::string qualifier_, name_;
  std::size_t hint_ = 0;
};

class Negate final : public Node {
 public:
  explicit Negate(NodePtr x) : x_(std::move(x)) {}
  const Value* eval(EvalState& st) override {
    const Value* v = x_->eval(st);
    if (v == nullptr) return nullptr;
    if (v->is_null()) return &kNull;
    if (v->is_int()) {
      out_ = Value(static_cast<std::int64_t>(0 - static_cast<std::uint64_t>(v->as_int())));
    } else if (v->is_float()) {
      out_ = Value(-v->as_float());
    } else {
      return fail(st, InvalidArgument("invalid operation -" + describe(*v)));
    }
    return &out_;
  }

 private:
  NodePtr x_;
  Value out_;
};

// Requires a boolean or NULL; records an error otherwise.
bool truth(EvalState& st, const Value* v, std::string_view op, int& out) {
  if (v->is_null()) {
    out = -1;
    return true;
  }
  if (!v->is_bool()) {
    fail(st, InvalidArgument("invalid operation " + std::string(op) + " " + describe(*v) +
                             ": expects a boolean"));
    return false;
  }
  out = v->as_bool() ? 1 : 0;
  return true;
}

class Not final : public Node {
 public:
  explicit Not(NodePtr x) : x_(std::move(x)) {}
  const Value* eval(EvalState& st) override {
    const Value* v = x_->eval(st);
    if (v == nullptr) return nullptr;
    int t;
    if (!truth(st, v, "NOT", t)) return nullptr;
    return t < 0 ? &kNull : &boolean(t == 0);
  }

 private:
  NodePtr x_;
};

// Three-valued AND / OR with short-circuit.
class Logic final : public Node {
 public:
  Logic(bool is_and, NodePtr a, NodePtr b) : and_(is_and), a_(std::move(a)), b_(std::move(b)) {}
  const Value* eval(EvalState& st) override {
    std::string_view op = and_ ? "AND" : "OR";
    const Value* x = a_->eval(st);
    if (x == nullptr) return nullptr;
    int l;
    if (!truth(st, x, op, l)) return nullptr;
    if (and_ && l == 0) return &kFalse;
    if (!and_ && l == 1) return &kTrue;
    const Value* y = b_->eval(st);
    if (y == nullptr) return nullptr;
    int r;
    if (!truth(st, y, op, r)) return nullptr;
    if (and_) {
      if (r == 0) return &kFalse;
      return (l == 1 && r == 1) ? &kTrue : &kNull;
    }
    if (r == 1) return &kTrue;
    return (l == 0 && r == 0) ? &kFalse : &kNull;
  }

 private:
  bool and_;
  NodePtr a_, b_;
};

class Arith final : public Node {
 public:
  Arith(ArithOp op, NodePtr a, NodePtr b) : op_(op), a_(std::move(a)), b_(std::move(b)) {}
  const Value* eval(EvalState& st) override {
    const Value* x = a_->eval(st);
    if (x == nullptr) return nullptr;
    const Value* y = b_->eval(st);
    if (y == nullptr) return nullptr;
    Status s = arith(op_, *x, *y, out_);
    if (!s.ok()) return fail(st, std::move(s));
    return &out_;
  }

 private:
  ArithOp op_;
  NodePtr a_, b_;
  Value out_;
};

// Returns -1 for NULL, 0/1 for the result; records an error for unorderable types.
int compare_op(EvalState& st, BinaryOp op, const Value& x, const Value& y) {
  if (x.is_null() || y.is_null()) return -1;
  if (op == BinaryOp::kEq || op == BinaryOp::kNe) {
    bool eq = x == y;
    return (op == BinaryOp::kEq) == eq ? 1 : 0;
  }
  if (!comparable(x, y)) {
    fail(st, InvalidArgument("invalid operation " + describe(x) + " " + std::string(to_string(op)) +
                             " " + describe(y)));
    return -2;
  }
  auto c = compare(x, y);
  if (c == std::partial_ordering::unordered) return 0;  // NaN
  switch (op) {
    case BinaryOp::kLt:
      return c < 0;
    case BinaryOp::kLe:
      return c <= 0;
    case BinaryOp::kGt:
      return c > 0;
    case BinaryOp::kGe:
      return c >= 0;
    default:
      return 0;
  }
}

class Compare final : public Node {
 public:
  Compare(BinaryOp op, NodePtr a, NodePtr b) : op_(op), a_(std::move(a)), b_(std::move(b)) {}
  const Value* eval(EvalState& st) override {
    const Value* x = a_->eval(st);
    if (x == nullptr) return nullptr;
    const Value* y = b_->eval(st);
    if (y == nullptr) return nullptr;
    int r = compare_op(st, op_, *x, *y);
    if (r == -2) return nullptr;
    return r < 0 ? &kNull : &boolean(r == 1);
  }

 private:
  BinaryOp op_;
  NodePtr a_, b_;
};

class In final : public Node {
 public:
  In(bool negated, NodePtr x, std::vector<NodePtr> list)
      : negated_(negated), x_(std::move(x)), list_(std::move(list)) {}
  const Value* eval(EvalState& st) override {
    const Value* x = x_->eval(st);
    if (x == nullptr) return nullptr;
    if (x->is_null()) return &kNull;
    bool saw_null = false;
    for (auto& n : list_) {
      const Value* y = n->eval(st);
      if (y == nullptr) return nullptr;
      if (y->is_null()) {
        saw_null = true;
      } else if (*x == *y) {
        return &boolean(!negated_);
      }
    }
    if (saw_null) return &kNull;  // SQL: x IN (1, NULL) is NULL when x is not 1
    return &boolean(negated_);
  }

 private:
  bool negated_;
  NodePtr x_;
  std::vector<NodePtr> list_;
};

class Between final : public Node {
 public:
  Between(bool negated, NodePtr x, NodePtr lo, NodePtr hi)
      : negated_(negated), x_(std::move(x)), lo_(std::move(lo)), hi_(std::move(hi)) {}
  const Value* eval(EvalState& st) override {
    const Value* x = x_->eval(st);
    if (x == nullptr) return nullptr;
    const Value* lo = lo_->eval(st);
    if (lo == nullptr) return nullptr;
    const Value* hi = hi_->eval(st);
    if (hi == nullptr) return nullptr;
    int a = compare_op(st, BinaryOp::kGe, *x, *lo);
    if (a == -2) return nullptr;
    int b = compare_op(st, BinaryOp::kLe, *x, *hi);
    if (b == -2) return nullptr;
    if (a == 0 || b == 0) return &boolean(negated_);
    if (a < 0 || b < 0) return &kNull;
    return &boolean(!negated_);
  }

 private:
  bool negated_;
  NodePtr x_, lo_, hi_;
};

class Like final : public Node {
 public:
  Like(bool negated, NodePtr x, NodePtr pattern)
      : negated_(negated), x_(std::move(x)), pattern_(std::move(pattern)) {}
  const Value* eval(EvalState& st) override {
    const Value* x = x_->eval(st);
    if (x == nullptr) return nullptr;
    const Value* p = pattern_->eval(st);
    if (p == nullptr) return nullptr;
    if (x->is_null() || p->is_null()) return &kNull;
    if (!x->is_string() || !p->is_string()) {
      return fail(st,
                  InvalidArgument("invalid operation " + describe(*x) + " LIKE " + describe(*p)));
    }
    return &boolean(like_match(x->as_string(), p->as_string()) != negated_);
  }

 private:
  bool negated_;
  NodePtr x_, pattern_;
};

class IsNull final : public Node {
 public:
  IsNull(bool negated, NodePtr x) : negated_(negated), x_(std::move(x)) {}
  const Value* eval(EvalState& st) override {
    const Value* x = x_->eval(st);
    if (x == nullptr) return nullptr;
    return &boolean(x->is_null() != negated_);
  }

 private:
  bool negated_;
  NodePtr x_;
};

class Case final : public Node {
 public:
  Case(NodePtr operand, std::vector<std::pair<NodePtr, NodePtr>> whens, NodePtr otherwise)
      : operand_(std::move(operand)), whens_(std::move(whens)), else_(std::move(otherwise)) {}
  const Value* eval(EvalState& st) override {
    const Value* op = nullptr;
    if (operand_) {
      op = operand_->eval(st);
      if (op == nullptr) return nullptr;
    }
    for (auto& [w, t] : whens_) {
      const Value* c = w->eval(st);
      if (c == nullptr) return nullptr;
      bool hit;
      if (op != nullptr) {
        hit = !op->is_null() && !c->is_null() && *op == *c;
      } else {
        int tv;
        if (!truth(st, c, "WHEN", tv)) return nullptr;
        hit = tv == 1;
      }
      if (hit) return t->eval(st);
    }
    return else_ ? else_->eval(st) : &kNull;
  }

 private:
  NodePtr operand_;
  std::vector<std::pair<NodePtr, NodePtr>> whens_;
  NodePtr else_;
};

class Call final : public Node {
 public:
  Call(const FunctionDef* def, std::vector<NodePtr> args)
      : def_(def), args_(std::move(args)), values_(args_.size()) {}
  const Value* eval(EvalState& st) override {
    for (std::size_t i = 0; i < args_.size(); ++i) {
      const Value* v = args_[i]->eval(st);
      if (v == nullptr) return nullptr;
      if (v->is_null() && !def_->handles_null) return &kNull;
      values_[i] = *v;
    }
    Status s =
        def_->scalar ? def_->scalar(*st.ctx, values_, out_) : def_->closure(*st.ctx, values_, out_);
    if (!s.ok()) return fail(st, std::move(s));
    return &out_;
  }

 private:
  const FunctionDef* def_;
  std::vector<NodePtr> args_;
  std::vector<Value> values_;
  Value out_;
};

// The result of an aggregate call, computed by the aggregation layer.
class AggregateRef final : public Node {
 public:
  explicit AggregateRef(std::size_t slot) : slot_(slot) {}
  const Value* eval(EvalState& st) override {
    if (slot_ >= st.row->aggregates.size()) return &kNull;
    return &st.row->aggregates[slot_];
  }

 private:
  std::size_t slot_;
};

// The value of an analytic call, computed by the query engine for this row.
class AnalyticRef final : public Node {
 public:
  explicit AnalyticRef(std::size_t slot) : slot_(slot) {}
  const Value* eval(EvalState& st) override {
    if (slot_ >= st.row->analytics.size()) return &kNull;
    return &st.row->analytics[slot_];
  }

 private:
  std::size_t slot_;
};

// window_start() / window_end().
class WindowBound final : public Node {
 public:
  explicit WindowBound(bool end) : end_(end) {}
  const Value* eval(EvalState& st) override {
    if (st.row->window == nullptr) return &kNull;
    out_ = Value(end_ ? st.row->window->end : st.row->window->start);
    return &out_;
  }

 private:
  bool end_;
  Value out_;
};

// meta(key) / meta(*): the event's metadata (eKuiper's MQTT source: topic, qos). A key is
// matched exactly, then without regard to case (eKuiper writes messageId and messageid);
// a missing key or a row without metadata reads NULL.
class Meta final : public Node {
 public:
  explicit Meta(std::string key) : key_(std::move(key)) {}  // empty: meta(*)
  const Value* eval(EvalState& st) override {
    const Value* meta = st.row->meta;
    if (meta == nullptr || !meta->is_object()) return &kNull;
    if (key_.empty()) return meta;
    if (const Value* v = meta->find(key_)) return v;
    for (const auto& [k, v] : meta->as_object()) {
      if (iequals(k, key_)) return &v;
    }
    return &kNull;
  }

 private:
  std::string key_;
};

class Cast final : public Node {
 public:
  Cast(TypeKind type, NodePtr x) : type_(type), x_(std::move(x)) {}
  const Value* eval(EvalState& st) override {
    const Value* x = x_->eval(st);
    if (x == nullptr) return nullptr;
    Result<Value> r = Value();
    switch (type_) {
      case TypeKind::kBigint:
        r = to_bigint(*x);
        break;
      case TypeKind::kDatetime:
        r = stream::to_datetime(*x);
        break;
      case TypeKind::kFloat:
        r = to_float(*x);
        break;
      case TypeKind::kString:
        r = to_string_value(*x);
        break;
      case TypeKind::kBoolean:
        r = to_boolean(*x);
        break;
      case TypeKind::kBytea:
        r = to_bytea(*x);
        break;
      default:
        return fail(st, InvalidArgument("unsupported CAST type"));
    }
    if (!r.ok()) return fail(st, r.status());
    out_ = std::move(r).value();
    return &out_;
  }

 private:
  TypeKind type_;
  NodePtr x_;
  Value out_;
};

class Arrow final : public Node {
 public:
  Arrow(NodePtr x, std::string key) : x_(std::move(x)), key_(std::move(key)) {}
  const Value* eval(EvalState& st) override {
    const Value* x = x_->eval(st);
    if (x == nullptr) return nullptr;
    if (!x->is_object()) return &kNull;
    const Value* v = x->as_object().find(key_, hint_);
    return v != nullptr ? v : &kNull;
  }

 private:
  NodePtr x_;
  std::string key_;
  std::size_t hint_ = 0;
};

class Index final : public Node {
 public:
  Index(NodePtr x, NodePtr index) : x_(std::move(x)), index_(std::move(index)) {}
  const Value* eval(EvalState& st) override {
    const Value* x = x_->eval(st);
    if (x == nullptr) return nullptr;
    const Value* i = index_->eval(st);
    if (i == nullptr) return nullptr;
    if (x->is_null() || i->is_null()) return &kNull;
    if (x->is_object() && i->is_string()) {
      const Value* v = x->as_object().find(i->as_string());
      return v != nullptr ? v : &kNull;
    }
    if (!x->is_array())
      return fail(st, InvalidArgument("invalid operation " + describe(*x) + "[...]: not an array"));
    if (!i->is_int())
      return fail(st, InvalidArgument("array index must be an integer, got " + describe(*i)));
    const auto& arr = x->as_array();
    std::int64_t n = static_cast<std::int64_t>(arr.size());
    std::int64_t k = i->as_int() < 0 ? n + i->as_int() : i->as_int();
    if (k < 0 || k >= n) return &kNull;  // eKuiper: out of range reads as nil
    return &arr[static_cast<std::size_t>(k)];
  }

 private:
  NodePtr x_, index_;
};

class Slice final : public Node {
 public:
  Slice(NodePtr x, NodePtr lo, NodePtr hi)
      : x_(std::move(x)), lo_(std::move(lo)), hi_(std::move(hi)) {}
  const Value* eval(EvalState& st) override {
    const Value* x = x_->eval(st);
    if (x == nullptr) return nullptr;
    std::int64_t n = x->is_array()    ? static_cast<std::int64_t>(x->as_array().size())
                     : x->is_string() ? static_cast<std::int64_t>(x->as_string().size())
                                      : -1;
    if (x->is_null()) return &kNull;
    if (n < 0)
      return fail(
          st, InvalidArgument("invalid operation " + describe(*x) + "[:]: not an array or string"));
    std::int64_t lo = 0, hi = n;
    if (!bound(st, lo_.get(), n, lo) || !bound(st, hi_.get(), n, hi)) return nullptr;
    lo = std::clamp<std::int64_t>(lo, 0, n);
    hi = std::clamp<std::int64_t>(hi, lo, n);
    if (x->is_array()) {
      const auto& arr = x->as_array();
      out_ = Value(ValueArray(arr.begin() + lo, arr.begin() + hi));
    } else {
      out_ = Value(
          x->as_string().substr(static_cast<std::size_t>(lo), static_cast<std::size_t>(hi - lo)));
    }
    return &out_;
  }

 private:
  static bool bound(EvalState& st, Node* node, std::int64_t n, std::int64_t& out) {
    if (node == nullptr) return true;
    const Value* v = node->eval(st);
    if (v == nullptr) return false;
    if (!v->is_int()) {
      fail(st, InvalidArgument("slice bound must be an integer, got " + describe(*v)));
      return false;
    }
    out = v->as_int() < 0 ? n + v->as_int() : v->as_int();
    return true;
  }

  NodePtr x_, lo_, hi_;
  Value out_;
};

class Compiler {
 public:
  Compiler(const CompileOptions& o, std::vector<std::string>& fields, bool& reads_meta)
      : o_(o), fields_(fields), reads_meta_(reads_meta) {}

  Result<NodePtr> compile(const Expr& e) {
    switch (e.kind) {
      case ExprKind::kLiteral:
        return NodePtr(new Literal(e.literal));
      case ExprKind::kField:
        return field(e);
      case ExprKind::kUnary: {
        GANGLION_ASSIGN_OR_RETURN(NodePtr x, compile(*e.args[0]));
        if (e.unary_op == UnaryOp::kNot) return NodePtr(new Not(std::move(x)));
        return NodePtr(new Negate(std::move(x)));
      }
      case ExprKind::kBinary: {
        GANGLION_ASSIGN_OR_RETURN(NodePtr a, compile(*e.args[0]));
        GANGLION_ASSIGN_OR_RETURN(NodePtr b, compile(*e.args[1]));
        switch (e.binary_op) {
          case BinaryOp::kAnd:
            return NodePtr(new Logic(true, std::move(a), std::move(b)));
          case BinaryOp::kOr:
            return NodePtr(new Logic(false, std::move(a), std::move(b)));
          case BinaryOp::kEq:
          case BinaryOp::kNe:
          case BinaryOp::kLt:
          case BinaryOp::kLe:
          case BinaryOp::kGt:
          case BinaryOp::kGe:
            return NodePtr(new Compare(e.binary_op, std::move(a), std::move(b)));
          case BinaryOp::kAdd:
            return arith(ArithOp::kAdd, std::move(a), std::move(b));
          case BinaryOp::kSub:
            return arith(ArithOp::kSub, std::move(a), std::move(b));
          case BinaryOp::kMul:
            return arith(ArithOp::kMul, std::move(a), std::move(b));
          case BinaryOp::kDiv:
            return arith(ArithOp::kDiv, std::move(a), std::move(b));
          case BinaryOp::kMod:
            return arith(ArithOp::kMod, std::move(a), std::move(b));
          case BinaryOp::kBitAnd:
            return arith(ArithOp::kBitAnd, std::move(a), std::move(b));
          case BinaryOp::kBitOr:
            return arith(ArithOp::kBitOr, std::move(a), std::move(b));
          case BinaryOp::kBitXor:
            return arith(ArithOp::kBitXor, std::move(a), std::move(b));
        }
        return error(e, "unknown operator");
      }
      case ExprKind::kIn: {
        GANGLION_ASSIGN_OR_RETURN(NodePtr x, compile(*e.args[0]));
        std::vector<NodePtr> list;
        for (std::size_t i = 1; i < e.args.size(); ++i) {
          GANGLION_ASSIGN_OR_RETURN(NodePtr n, compile(*e.args[i]));
          list.push_back(std::move(n));
        }
        return NodePtr(new In(e.negated, std::move(x), std::move(list)));
      }
      case ExprKind::kBetween: {
        GANGLION_ASSIGN_OR_RETURN(NodePtr x, compile(*e.args[0]));
        GANGLION_ASSIGN_OR_RETURN(NodePtr lo, compile(*e.args[1]));
        GANGLION_ASSIGN_OR_RETURN(NodePtr hi, compile(*e.args[2]));
        return NodePtr(new Between(e.negated, std::move(x), std::move(lo), std::move(hi)));
      }
      case ExprKind::kLike: {
        if (e.args[1]->kind == ExprKind::kLiteral && !e.args[1]->literal.is_string() &&
            !e.args[1]->literal.is_null()) {
          return error(*e.args[1], "LIKE pattern must be a string");
        }
        GANGLION_ASSIGN_OR_RETURN(NodePtr x, compile(*e.args[0]));
        GANGLION_ASSIGN_OR_RETURN(NodePtr p, compile(*e.args[1]));
        return NodePtr(new Like(e.negated, std::move(x), std::move(p)));
      }
      case ExprKind::kIsNull: {
        GANGLION_ASSIGN_OR_RETURN(NodePtr x, compile(*e.args[0]));
        return NodePtr(new IsNull(e.negated, std::move(x)));
      }
      case ExprKind::kCase: {
        NodePtr operand, otherwise;
        std::size_t i = 0;
        if (e.has_operand) {
          GANGLION_ASSIGN_OR_RETURN(operand, compile(*e.args[0]));
          i = 1;
        }
        std::size_t end = e.args.size() - (e.has_else ? 1 : 0);
        std::vector<std::pair<NodePtr, NodePtr>> whens;
        for (; i + 1 < end; i += 2) {
          GANGLION_ASSIGN_OR_RETURN(NodePtr w, compile(*e.args[i]));
          GANGLION_ASSIGN_OR_RETURN(NodePtr t, compile(*e.args[i + 1]));
          whens.emplace_back(std::move(w), std::move(t));
        }
        if (e.has_else) {
          GANGLION_ASSIGN_OR_RETURN(otherwise, compile(*e.args.back()));
        }
        return NodePtr(new Case(std::move(operand), std::move(whens), std::move(otherwise)));
      }
      case ExprKind::kCall:
        return call(e);
      case ExprKind::kCast: {
        GANGLION_ASSIGN_OR_RETURN(NodePtr x, compile(*e.args[0]));
        return NodePtr(new Cast(e.cast_type, std::move(x)));
      }
      case ExprKind::kArrow: {
        GANGLION_ASSIGN_OR_RETURN(NodePtr x, compile(*e.args[0]));
        return NodePtr(new Arrow(std::move(x), e.name));
      }
      case ExprKind::kIndex: {
        GANGLION_ASSIGN_OR_RETURN(NodePtr x, compile(*e.args[0]));
        GANGLION_ASSIGN_OR_RETURN(NodePtr i, compile(*e.args[1]));
        return NodePtr(new Index(std::move(x), std::move(i)));
      }
      case ExprKind::kSlice: {
        GANGLION_ASSIGN_OR_RETURN(NodePtr x, compile(*e.args[0]));
        NodePtr lo, hi;
        if (e.args[1]) {
          GANGLION_ASSIGN_OR_RETURN(lo, compile(*e.args[1]));
        }
        if (e.args[2]) {
          GANGLION_ASSIGN_OR_RETURN(hi, compile(*e.args[2]));
        }
        return NodePtr(new Slice(std::move(x), std::move(lo), std::move(hi)));
      }
      case ExprKind::kWildcard:
        return error(e, "'*' is not allowed here");
    }
    return error(e, "unsupported expression");
  }

 private:
  static Status error(const Expr& e, std::string_view message) {
    return InvalidArgument("line " + std::to_string(e.pos.line) + ", column " +
                           std::to_string(e.pos.column) + ": " + std::string(message));
  }

  Result<NodePtr> arith(ArithOp op, NodePtr a, NodePtr b) {
    return NodePtr(new Arith(op, std::move(a), std::move(b)));
  }

  Result<NodePtr> field(const Expr& e) {
    bool own = e.qualifier.empty() || e.qualifier == o_.stream ||
               (!o_.alias.empty() && e.qualifier == o_.alias);
    if (!own) return NodePtr(new JoinedField(e.qualifier, e.name));
    std::size_t hint = 0;
    if (o_.schema != nullptr) {
      auto it = std::find_if(o_.schema->begin(), o_.schema->end(),
                             [&](const FieldDef& f) { return f.name == e.name; });
      if (it == o_.schema->end()) {
        return error(e, "unknown field '" + e.name + "' in stream '" + o_.stream + "'");
      }
      hint = static_cast<std::size_t>(it - o_.schema->begin());
    }
    if (std::find(fields_.begin(), fields_.end(), e.name) == fields_.end())
      fields_.push_back(e.name);
    return NodePtr(new Field(e.name, hint, e.qualifier.empty()));
  }

  Result<NodePtr> call(const Expr& e) {
    const FunctionRegistry& reg = o_.functions ? *o_.functions : FunctionRegistry::builtins();
    const FunctionDef* def = reg.find(e.name);
    if (def == nullptr) {
      std::string lower = e.name;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (lower == "window_start" || lower == "window_end") {
        if (!e.args.empty() || e.star)
          return error(e, "function '" + lower + "' expects 0 arguments");
        return NodePtr(new WindowBound(lower == "window_end"));
      }
      if (lower == "meta") {
        // meta(topic): the argument names a metadata key, it is not a field of the row.
        const bool key = e.args.size() == 1 && e.args[0] && e.args[0]->kind == ExprKind::kField &&
                         e.args[0]->qualifier.empty();
        if (!(e.star && e.args.empty()) && !key)
          return error(e, "meta expects one metadata key (meta(topic)) or * (meta(*))");
        reads_meta_ = true;
        return NodePtr(new Meta(e.star ? std::string() : e.args[0]->name));
      }
      return error(e, "unknown function '" + e.name + "'");
    }
    if (def->kind == FunctionKind::kAggregate && o_.aggregate_slot) {
      int slot = o_.aggregate_slot(e);
      if (slot >= 0) return NodePtr(new AggregateRef(static_cast<std::size_t>(slot)));
    }
    if (def->kind == FunctionKind::kAnalytic) {
      int slot = o_.analytic_slot ? o_.analytic_slot(e) : -1;
      if (slot >= 0) return NodePtr(new AnalyticRef(static_cast<std::size_t>(slot)));
      return error(e, "analytic function '" + def->name + "' is not allowed here");
    }
    if (def->kind != FunctionKind::kScalar) {
      return error(e, "aggregate function '" + def->name + "' is not allowed here");
    }
    if (e.star) return error(e, "'*' is only allowed as the argument of an aggregate function");
    if (e.over) return error(e, "OVER is not supported for scalar function '" + def->name + "'");
    std::string arity = FunctionRegistry::arity_error(*def, static_cast<int>(e.args.size()));
    if (!arity.empty()) return error(e, arity);
    if (def->name == "cast" && e.args[1]->kind == ExprKind::kLiteral) {
      const Value& t = e.args[1]->literal;
      static constexpr std::string_view kTypes[] = {"bigint",  "float",    "string",
                                                    "boolean", "datetime", "bytea"};
      bool ok = t.is_string() &&
                std::any_of(std::begin(kTypes), std::end(kTypes), [&](std::string_view k) {
                  std::string l = t.as_string();
                  for (char& c : l)
                    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
                  return l == k;
                });
      if (!ok) return error(*e.args[1], "cast: unknown type " + describe(t));
    }
    std::vector<NodePtr> args;
    for (const auto& a : e.args) {
      GANGLION_ASSIGN_OR_RETURN(NodePtr n, compile(*a));
      args.push_back(std::move(n));
    }
    return NodePtr(new Call(def, std::move(args)));
  }

  const CompileOptions& o_;
  std::vector<std::string>& fields_;
  bool& reads_meta_;
};

}  // namespace

CompiledExpr::CompiledExpr(CompiledExpr&&) noexcept = default;
CompiledExpr& CompiledExpr::operator=(CompiledExpr&&) noexcept = default;
CompiledExpr::~CompiledExpr() = default;

Result<Value> CompiledExpr::evaluate(const Row& row) {
  EvalState st;
  st.row = &row;
  st.ctx = &ctx_;
  const Value* v = root_->eval(st);
  if (v == nullptr) return st.error;
  return *v;
}

Result<bool> CompiledExpr::matches(const Row& row) {
  EvalState st;
  st.row = &row;
  st.ctx = &ctx_;
  const Value* v = root_->eval(st);
  if (v == nullptr) return st.error;
  if (v->is_null()) return false;
  if (!v->is_bool()) return InvalidArgument("condition is not a boolean: " + describe(*v));
  return v->as_bool();
}

Result<CompiledExpr> compile(const Expr& expr, const CompileOptions& options) {
  CompiledExpr out;
  Compiler c(options, out.fields_, out.reads_meta_);
  GANGLION_ASSIGN_OR_RETURN(out.root_, c.compile(expr));
  out.ctx_.clock = options.clock != nullptr ? options.clock : &SystemClock::instance();
  return out;
}

Result<Value> evaluate_sql(std::string_view expr, const Value& fields,
                           const CompileOptions& options) {
  GANGLION_ASSIGN_OR_RETURN(ExprPtr e, parse_expression(expr));
  GANGLION_ASSIGN_OR_RETURN(CompiledExpr c, compile(*e, options));
  Row row;
  row.fields = &fields;
  return c.evaluate(row);
}

bool like_match(std::string_view text, std::string_view pattern) {
  // Iterative matcher with one backtrack point (the last %): O(len(text) * len(pattern))
  // worst case, no recursion.
  std::size_t t = 0, p = 0;
  std::size_t star_p = std::string_view::npos, star_t = 0;
  auto char_len = [](std::string_view s, std::size_t i) {
    std::size_t n = 1;
    while (i + n < s.size() && (static_cast<unsigned char>(s[i + n]) & 0xC0) == 0x80) ++n;
    return n;
  };
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '%') {
      star_p = ++p;
      star_t = t;
      continue;
    }
    if (p < pattern.size()) {
      if (pattern[p] == '_') {
        t += char_len(text, t);
        ++p;
        continue;
      }
      std::size_t q = p;
      if (pattern[q] == '\\' && q + 1 < pattern.size()) ++q;
      if (pattern[q] == text[t]) {
        p = q + 1;
        ++t;
        continue;
      }
    }
    if (star_p == std::string_view::npos) return false;
    star_t += char_len(text, star_t);
    t = star_t;
    p = star_p;
  }
  while (p < pattern.size() && pattern[p] == '%') ++p;
  return p == pattern.size();
}

}  // namespace ganglion::sql
