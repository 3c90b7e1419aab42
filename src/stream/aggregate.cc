#include "stream/aggregate.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

namespace ganglion::stream {
namespace {

std::string describe(const Value& v) {
  std::string t = v.to_display_string();
  if (t.size() > 32) t = t.substr(0, 32) + "...";
  return std::string(v.type_name()) + "(" + t + ")";
}

Status not_a_number(std::string_view fn, const Value& v) {
  return InvalidArgument(std::string(fn) + ": expects a number, got " + describe(v));
}

class Count final : public Accumulator {
 public:
  explicit Count(bool star) : star_(star) {}
  Status add(const Value& arg, const Value&) override {
    if (star_ || !arg.is_null()) ++n_;
    return Status::Ok();
  }
  void merge(const Accumulator& o) override { n_ += static_cast<const Count&>(o).n_; }
  Value result() const override { return Value(n_); }

 private:
  bool star_;
  std::int64_t n_ = 0;
};

// sum and avg: integers are summed exactly while no float has been seen (sum of ints is a
// bigint, as in eKuiper); avg is always a float.
class Sum final : public Accumulator {
 public:
  explicit Sum(bool avg) : avg_(avg) {}
  Status add(const Value& v, const Value&) override {
    if (v.is_null()) return Status::Ok();
    if (v.is_int()) {
      isum_ += static_cast<std::uint64_t>(v.as_int());
    } else if (v.is_float()) {
      fsum_ += v.as_float();
      any_float_ = true;
    } else {
      return not_a_number(avg_ ? "avg" : "sum", v);
    }
    ++n_;
    return Status::Ok();
  }
  void merge(const Accumulator& o) override {
    const auto& s = static_cast<const Sum&>(o);
    isum_ += s.isum_;
    fsum_ += s.fsum_;
    any_float_ |= s.any_float_;
    n_ += s.n_;
  }
  Value result() const override {
    if (n_ == 0) return Value();
    double total = static_cast<double>(static_cast<std::int64_t>(isum_)) + fsum_;
    if (avg_) return Value(total / static_cast<double>(n_));
    if (!any_float_) return Value(static_cast<std::int64_t>(isum_));
    return Value(total);
  }

 private:
  bool avg_;
  std::uint64_t isum_ = 0;  // wraps like int64 arithmetic elsewhere
  double fsum_ = 0;
  bool any_float_ = false;
  std::int64_t n_ = 0;
};

class MinMax final : public Accumulator {
 public:
  explicit MinMax(bool max) : max_(max) {}
  Status add(const Value& v, const Value&) override {
    if (v.is_null()) return Status::Ok();
    return fold(v);
  }
  void merge(const Accumulator& o) override {
    const auto& m = static_cast<const MinMax&>(o);
    if (!m.best_.is_null()) (void)fold(m.best_);
  }
  Value result() const override { return best_; }

 private:
  Status fold(const Value& v) {
    if (best_.is_null()) {
      if (!v.is_number() && !v.is_string() && !v.is_bool()) {
        return InvalidArgument(std::string(max_ ? "max" : "min") + ": cannot order " + describe(v));
      }
      best_ = v;
      return Status::Ok();
    }
    if (!comparable(best_, v)) {
      return InvalidArgument(std::string(max_ ? "max" : "min") + ": cannot compare " + describe(v) +
                             " with " + describe(best_));
    }
    auto c = compare(v, best_);
    if (max_ ? c > 0 : c < 0) best_ = v;
    return Status::Ok();
  }

  bool max_;
  Value best_;
};

// Welford's running variance; merge() uses Chan et al.'s parallel update.
class Variance final : public Accumulator {
 public:
  Variance(bool sample, bool sqrt, const char* name) : sample_(sample), sqrt_(sqrt), name_(name) {}
  Status add(const Value& v, const Value&) override {
    if (v.is_null()) return Status::Ok();
    if (!v.is_number()) return not_a_number(name_, v);
    double x = v.number();
    ++n_;
    double d = x - mean_;
    mean_ += d / static_cast<double>(n_);
    m2_ += d * (x - mean_);
    return Status::Ok();
  }
  void merge(const Accumulator& o) override {
    const auto& b = static_cast<const Variance&>(o);
    if (b.n_ == 0) return;
    if (n_ == 0) {
      n_ = b.n_, mean_ = b.mean_, m2_ = b.m2_;
      return;
    }
    double n = static_cast<double>(n_ + b.n_);
    double d = b.mean_ - mean_;
    m2_ += b.m2_ + d * d * static_cast<double>(n_) * static_cast<double>(b.n_) / n;
    mean_ += d * static_cast<double>(b.n_) / n;
    n_ += b.n_;
  }
  Value result() const override {
    std::int64_t denom = sample_ ? n_ - 1 : n_;
    if (denom <= 0) return Value();
    double var = std::max(0.0, m2_ / static_cast<double>(denom));
    return Value(sqrt_ ? std::sqrt(var) : var);
  }

 private:
  bool sample_, sqrt_;
  const char* name_;
  std::int64_t n_ = 0;
  double mean_ = 0, m2_ = 0;
};

// median, percentile_cont, percentile_disc: keep the numbers, sort at result().
class Percentile final : public Accumulator {
 public:
  Percentile(double p, bool continuous, const char* name) : p_(p), cont_(continuous), name_(name) {}
  Status add(const Value& v, const Value&) override {
    if (v.is_null()) return Status::Ok();
    if (!v.is_number()) return not_a_number(name_, v);
    values_.push_back(v);
    return Status::Ok();
  }
  void merge(const Accumulator& o) override {
    const auto& b = static_cast<const Percentile&>(o);
    values_.insert(values_.end(), b.values_.begin(), b.values_.end());
  }
  Value result() const override {
    if (values_.empty()) return Value();
    std::vector<Value> v = values_;
    std::sort(v.begin(), v.end(),
              [](const Value& a, const Value& b) { return a.number() < b.number(); });
    const std::size_t n = v.size();
    if (!cont_) {
      // The smallest value whose cumulative distribution is >= p.
      auto k = static_cast<std::size_t>(std::ceil(p_ * static_cast<double>(n)));
      return v[k == 0 ? 0 : std::min(k - 1, n - 1)];
    }
    double pos = p_ * static_cast<double>(n - 1);
    auto lo = static_cast<std::size_t>(std::floor(pos));
    std::size_t hi = std::min(lo + 1, n - 1);
    double frac = pos - static_cast<double>(lo);
    return Value(v[lo].number() + (v[hi].number() - v[lo].number()) * frac);
  }

 private:
  double p_;
  bool cont_;
  const char* name_;
  std::vector<Value> values_;
};

class Collect final : public Accumulator {
 public:
  Status add(const Value& v, const Value&) override {
    values_.push_back(v);
    return Status::Ok();
  }
  void merge(const Accumulator& o) override {
    const auto& b = static_cast<const Collect&>(o);
    values_.insert(values_.end(), b.values_.begin(), b.values_.end());
  }
  Value result() const override { return Value(values_); }

 private:
  ValueArray values_;
};

// merge_agg: union of the top-level keys of object values, later values win.
class MergeAgg final : public Accumulator {
 public:
  Status add(const Value& v, const Value&) override {
    if (v.is_object()) values_.push_back(v);
    return Status::Ok();
  }
  void merge(const Accumulator& o) override {
    const auto& b = static_cast<const MergeAgg&>(o);
    values_.insert(values_.end(), b.values_.begin(), b.values_.end());
  }
  Value result() const override {
    ValueObject out;
    for (const Value& v : values_) {
      for (const auto& [k, x] : v.as_object()) out.set(k, x);
    }
    return Value(std::move(out));
  }

 private:
  ValueArray values_;
};

class LastValue final : public Accumulator {
 public:
  explicit LastValue(bool ignore_null) : ignore_null_(ignore_null) {}
  Status add(const Value& v, const Value&) override {
    if (ignore_null_ && v.is_null()) return Status::Ok();
    last_ = v;
    seen_ = true;
    return Status::Ok();
  }
  void merge(const Accumulator& o) override {
    const auto& b = static_cast<const LastValue&>(o);
    if (b.seen_) last_ = b.last_, seen_ = true;
  }
  Value result() const override { return last_; }

 private:
  bool ignore_null_;
  bool seen_ = false;
  Value last_;
};

// deduplicate(key, all): all -> the rows whose key was not seen before, in order;
// otherwise the latest row if its key is new, else an empty object (as eKuiper).
class Deduplicate final : public Accumulator {
 public:
  explicit Deduplicate(bool all) : all_(all) {}
  Status add(const Value& key, const Value& row) override {
    entries_.emplace_back(key, row);
    return Status::Ok();
  }
  void merge(const Accumulator& o) override {
    const auto& b = static_cast<const Deduplicate&>(o);
    entries_.insert(entries_.end(), b.entries_.begin(), b.entries_.end());
  }
  Value result() const override {
    std::vector<const Value*> seen;
    ValueArray rows;
    bool last_new = false;
    for (const auto& entry : entries_) {
      const Value& k = entry.first;  // not a structured binding: clang 14 cannot capture one
      last_new = std::none_of(seen.begin(), seen.end(), [&](const Value* s) { return *s == k; });
      if (last_new) {
        seen.push_back(&k);
        if (all_) rows.push_back(entry.second);
      }
    }
    if (all_) return Value(std::move(rows));
    if (entries_.empty() || !last_new) return Value(ValueObject{});
    return entries_.back().second;
  }

 private:
  bool all_;
  std::vector<std::pair<Value, Value>> entries_;
};

Result<bool> constant_bool(std::string_view fn, std::span<const Value> c, std::size_t i,
                           bool fallback) {
  if (c.size() <= i) return fallback;
  if (!c[i].is_bool()) {
    return InvalidArgument(std::string(fn) + ": argument " + std::to_string(i + 2) +
                           " must be a boolean constant, got " + describe(c[i]));
  }
  return c[i].as_bool();
}

}  // namespace

Result<AccumulatorFactory> accumulator_factory(std::string_view name, std::span<const Value> c,
                                               bool star) {
  using P = std::unique_ptr<Accumulator>;
  if (name == "count") return AccumulatorFactory([star] { return P(new Count(star)); });
  if (name == "sum") return AccumulatorFactory([] { return P(new Sum(false)); });
  if (name == "avg") return AccumulatorFactory([] { return P(new Sum(true)); });
  if (name == "min") return AccumulatorFactory([] { return P(new MinMax(false)); });
  if (name == "max") return AccumulatorFactory([] { return P(new MinMax(true)); });
  if (name == "stddev")
    return AccumulatorFactory([] { return P(new Variance(false, true, "stddev")); });
  if (name == "stddevs")
    return AccumulatorFactory([] { return P(new Variance(true, true, "stddevs")); });
  if (name == "var") return AccumulatorFactory([] { return P(new Variance(false, false, "var")); });
  if (name == "vars")
    return AccumulatorFactory([] { return P(new Variance(true, false, "vars")); });
  if (name == "median")
    return AccumulatorFactory([] { return P(new Percentile(0.5, true, "median")); });
  if (name == "percentile_cont" || name == "percentile_disc") {
    if (c.empty() || !c[0].is_number() || c[0].number() < 0 || c[0].number() > 1) {
      return InvalidArgument(std::string(name) +
                             ": the percentile must be a number constant in [0, 1]");
    }
    double p = c[0].number();
    bool cont = name == "percentile_cont";
    const char* n = cont ? "percentile_cont" : "percentile_disc";
    return AccumulatorFactory([p, cont, n] { return P(new Percentile(p, cont, n)); });
  }
  if (name == "collect") return AccumulatorFactory([] { return P(new Collect()); });
  if (name == "merge_agg") return AccumulatorFactory([] { return P(new MergeAgg()); });
  if (name == "last_value") {
    GANGLION_ASSIGN_OR_RETURN(bool ignore_null, constant_bool(name, c, 0, true));
    return AccumulatorFactory([ignore_null] { return P(new LastValue(ignore_null)); });
  }
  if (name == "deduplicate") {
    GANGLION_ASSIGN_OR_RETURN(bool all, constant_bool(name, c, 0, false));
    return AccumulatorFactory([all] { return P(new Deduplicate(all)); });
  }
  return InvalidArgument("unknown aggregate function '" + std::string(name) + "'");
}

std::size_t hash_value(const Value& v) {
  auto mix = [](std::size_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
  };
  switch (v.type()) {
    case Value::Type::kNull:
      return 0x9e3779b97f4a7c15ULL;
    case Value::Type::kBool:
      return v.as_bool() ? 0x51 : 0x50;
    case Value::Type::kInt:
      return mix(static_cast<std::size_t>(v.as_int()));
    case Value::Type::kFloat: {
      double d = v.as_float();
      // Integral floats hash as the int they equal (1.0 == 1).
      if (d >= -9.2e18 && d <= 9.2e18 && d == std::floor(d)) {
        return mix(static_cast<std::size_t>(static_cast<std::int64_t>(d)));
      }
      std::uint64_t bits;
      std::memcpy(&bits, &d, sizeof bits);
      return mix(bits);
    }
    case Value::Type::kString:
      return std::hash<std::string_view>()(v.as_string());
    case Value::Type::kBytes:
      return std::hash<std::string_view>()(v.as_bytes().data) ^ 0xb;
    case Value::Type::kArray: {
      std::size_t h = 0xa;
      for (const Value& e : v.as_array()) h = h * 31 + hash_value(e);
      return h;
    }
    case Value::Type::kObject: {
      std::size_t h = 0x0;
      for (const auto& [k, e] : v.as_object())
        h = h * 31 + (std::hash<std::string>()(k) ^ hash_value(e));
      return h;
    }
  }
  return 0;
}

std::size_t ValuesHash::operator()(const std::vector<Value>& key) const {
  std::size_t h = key.size();
  for (const Value& v : key) h = h * 0x100000001b3ULL + hash_value(v);
  return h;
}

}  // namespace ganglion::stream
