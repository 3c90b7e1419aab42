#include "stream/analytic.h"

#include <deque>
#include <optional>
#include <string>
#include <unordered_map>

namespace ganglion::stream {
namespace {

std::string describe(const Value& v) {
  std::string t = v.to_display_string();
  if (t.size() > 32) t = t.substr(0, 32) + "...";
  return std::string(v.type_name()) + "(" + t + ")";
}

// eKuiper requires a bool here (a NULL is an error too: Go's type assertion fails).
Result<bool> boolean_arg(std::string_view fn, std::string_view what, const Value& v) {
  if (!v.is_bool()) {
    return InvalidArgument(std::string(fn) + ": " + std::string(what) + " must be a boolean, got " +
                           describe(v));
  }
  return v.as_bool();
}

// lag(x, offset, default, ignore_null): a queue of the last `offset` accepted values, filled
// with the default (evaluated at the partition's first event, as eKuiper does) at the start.
class Lag final : public AnalyticState {
 public:
  explicit Lag(std::size_t offset) : offset_(offset) {}
  Status update(std::span<const Value> args, bool valid, Value& out) override {
    bool ignore_null = false;
    if (args.size() >= 4) {
      GANGLION_ASSIGN_OR_RETURN(ignore_null, boolean_arg("lag", "ignore_null", args[3]));
    }
    if (!started_) {
      started_ = true;
      queue_.assign(offset_, args.size() >= 3 ? args[2] : Value());
    }
    out = queue_.front();
    if (valid && !(ignore_null && args[0].is_null())) {
      queue_.pop_front();
      queue_.push_back(args[0]);
    }
    return Status::Ok();
  }

 private:
  std::size_t offset_;
  bool started_ = false;
  std::deque<Value> queue_;
};

// latest(x, default): the last non-NULL value seen while valid.
class Latest final : public AnalyticState {
 public:
  Status update(std::span<const Value> args, bool valid, Value& out) override {
    if (valid && !args[0].is_null()) {
      saved_ = args[0];
      out = args[0];
    } else if (!saved_.is_null()) {
      out = saved_;
    } else {
      out = args.size() >= 2 ? args[1] : Value();
    }
    return Status::Ok();
  }

 private:
  Value saved_;
};

// changed_col(ignore_null, x): x when it differs from the last value it returned, else NULL.
class ChangedCol final : public AnalyticState {
 public:
  Status update(std::span<const Value> args, bool valid, Value& out) override {
    GANGLION_ASSIGN_OR_RETURN(bool ignore_null, boolean_arg("changed_col", "ignore_null", args[0]));
    out = Value();
    if ((ignore_null && args[1].is_null()) || !valid) return Status::Ok();
    if (!(args[1] == last_)) {
      last_ = args[1];
      out = args[1];
    }
    return Status::Ok();
  }

 private:
  Value last_;  // NULL at first: a NULL first value is no change (as eKuiper)
};

// had_changed(ignore_null, x, ...): whether any x differs from its last value. A `*`
// argument checks every field of the row, each against its own last value.
class HadChanged final : public AnalyticState {
 public:
  explicit HadChanged(std::vector<bool> wildcard)
      : wildcard_(std::move(wildcard)), last_(wildcard_.size()) {}
  Status update(std::span<const Value> args, bool valid, Value& out) override {
    out = Value(false);
    if (!valid) return Status::Ok();
    GANGLION_ASSIGN_OR_RETURN(bool ignore_null, boolean_arg("had_changed", "ignore_null", args[0]));
    bool changed = false;
    auto check = [&](const Value& v, Value& last) {
      if (ignore_null && v.is_null()) return;
      if (!(v == last)) {
        changed = true;
        last = v;
      }
    };
    for (std::size_t i = 1; i < args.size(); ++i) {
      if (!wildcard_[i]) {
        check(args[i], last_[i]);
      } else if (args[i].is_object()) {
        for (const auto& [k, v] : args[i].as_object()) check(v, by_field_[std::string(k)]);
      }
    }
    out = Value(changed);
    return Status::Ok();
  }

 private:
  std::vector<bool> wildcard_;
  std::vector<Value> last_;
  std::unordered_map<std::string, Value> by_field_;
};

enum class AccKind { kSum, kMin, kMax, kAvg, kCount };

// acc_*(x[, on_begin, on_reset]): accumulates over the rule's life. With the conditions:
// nothing accumulates until on_begin is true; the event where on_reset is true is still
// accumulated, and the next event starts from zero again (eKuiper's accFuncWithCond).
class Accumulate final : public AnalyticState {
 public:
  Accumulate(AccKind kind, std::string name) : kind_(kind), name_(std::move(name)) {}
  Status update(std::span<const Value> args, bool valid, Value& out) override {
    const Value& v = args[0];
    bool conditional = args.size() == 3;
    bool on_begin = false, on_reset = false;
    if (conditional) {
      GANGLION_ASSIGN_OR_RETURN(on_begin, boolean_arg(name_, "on_begin", args[1]));
      GANGLION_ASSIGN_OR_RETURN(on_reset, boolean_arg(name_, "on_reset", args[2]));
    }
    // Checked before anything changes, and only for a value that would be accumulated.
    bool adds = valid && !v.is_null() && (!conditional || begun_ || on_begin);
    if (adds && kind_ != AccKind::kCount && !v.is_number()) {
      return InvalidArgument(name_ + ": the value must be a number, got " + describe(v));
    }
    if (conditional) {
      if (!begun_) reset();
      if (on_begin) begun_ = true;
    }
    if (adds) add(v);
    if (on_reset) begun_ = false;
    result(out);
    return Status::Ok();
  }

 private:
  void reset() {
    count_ = 0;
    sum_ = 0;
    extreme_.reset();
  }

  // Precondition: `v` is not NULL, and a number unless kind_ is kCount.
  void add(const Value& v) {
    ++count_;
    if (kind_ == AccKind::kCount) return;
    double x = v.number();
    sum_ += x;
    if (!extreme_ || (kind_ == AccKind::kMin ? x < *extreme_ : x > *extreme_)) extreme_ = x;
  }

  void result(Value& out) const {
    switch (kind_) {
      case AccKind::kCount:
        out = Value(count_);
        return;
      case AccKind::kSum:
        out = Value(sum_);
        return;
      case AccKind::kAvg:
        out = Value(count_ == 0 ? 0.0 : sum_ / static_cast<double>(count_));
        return;
      case AccKind::kMin:
      case AccKind::kMax:
        out = Value(extreme_.value_or(0.0));
        return;
    }
  }

  AccKind kind_;
  std::string name_;
  bool begun_ = false;
  std::int64_t count_ = 0;
  double sum_ = 0;
  std::optional<double> extreme_;
};

std::optional<AccKind> acc_kind(std::string_view name) {
  if (name == "acc_sum") return AccKind::kSum;
  if (name == "acc_min") return AccKind::kMin;
  if (name == "acc_max") return AccKind::kMax;
  if (name == "acc_avg") return AccKind::kAvg;
  if (name == "acc_count") return AccKind::kCount;
  return std::nullopt;
}

}  // namespace

bool is_analytic_function(std::string_view name) {
  return name == "lag" || name == "latest" || name == "changed_col" || name == "had_changed" ||
         acc_kind(name).has_value();
}

Result<AnalyticFactory> analytic_factory(std::string_view name,
                                         std::span<const sql::ExprPtr> args) {
  std::string fn(name);
  std::vector<bool> wildcard(args.size(), false);
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] && args[i]->kind == sql::ExprKind::kWildcard) {
      if (name != "had_changed" || i == 0) {
        return InvalidArgument("function '" + fn + "': '*' is not allowed as argument " +
                               std::to_string(i + 1));
      }
      wildcard[i] = true;
    }
  }
  if (name == "lag") {
    std::int64_t offset = 1;
    if (args.size() >= 2) {
      const sql::Expr& o = *args[1];
      if (o.kind != sql::ExprKind::kLiteral || !o.literal.is_int() || o.literal.as_int() < 1 ||
          o.literal.as_int() > kMaxLagOffset) {
        return InvalidArgument("function 'lag': the offset must be an integer constant from 1 to " +
                               std::to_string(kMaxLagOffset));
      }
      offset = o.literal.as_int();
    }
    return AnalyticFactory(
        [offset] { return std::make_unique<Lag>(static_cast<std::size_t>(offset)); });
  }
  if (name == "latest") return AnalyticFactory([] { return std::make_unique<Latest>(); });
  if (name == "changed_col") return AnalyticFactory([] { return std::make_unique<ChangedCol>(); });
  if (name == "had_changed") {
    return AnalyticFactory([wildcard] { return std::make_unique<HadChanged>(wildcard); });
  }
  if (auto kind = acc_kind(name)) {
    if (args.size() != 1 && args.size() != 3) {
      return InvalidArgument("function '" + fn + "' expects 1 or 3 arguments, got " +
                             std::to_string(args.size()));
    }
    AccKind k = *kind;
    return AnalyticFactory([k, fn] { return std::make_unique<Accumulate>(k, fn); });
  }
  return InvalidArgument("'" + fn + "' is not an analytic function");
}

}  // namespace ganglion::stream
