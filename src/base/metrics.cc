#include "base/metrics.h"

#include <fmt/format.h>
#include <cassert>
#include <cmath>
#include <stdexcept>

namespace ganglion {

void Gauge::add(double d) {
  double cur = v_.load(std::memory_order_relaxed);
  while (!v_.compare_exchange_weak(cur, cur + d, std::memory_order_relaxed)) {
  }
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<std::uint64_t>[bounds_.size() + 1]) {
  for (std::size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::observe(double v) {
  std::size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  double cur = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
}

std::uint64_t Histogram::cumulative(std::size_t i) const {
  std::uint64_t c = 0;
  for (std::size_t k = 0; k <= i && k <= bounds_.size(); ++k) {
    c += buckets_[k].load(std::memory_order_relaxed);
  }
  return c;
}

double Histogram::quantile(double q) const {
  const std::uint64_t total = count();
  if (total == 0) return 0;
  const double rank = q * static_cast<double>(total);
  std::uint64_t below = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    const std::uint64_t in = buckets_[i].load(std::memory_order_relaxed);
    if (static_cast<double>(below + in) >= rank && in > 0) {
      if (i == bounds_.size()) return bounds_.empty() ? 0 : bounds_.back();
      const double lo = i == 0 ? 0 : bounds_[i - 1];
      const double hi = bounds_[i];
      return lo + (hi - lo) * ((rank - static_cast<double>(below)) / static_cast<double>(in));
    }
    below += in;
  }
  return bounds_.empty() ? 0 : bounds_.back();
}

std::vector<double> exponential_buckets(double start, double factor, int count) {
  std::vector<double> b;
  double v = start;
  for (int i = 0; i < count; ++i, v *= factor) b.push_back(v);
  return b;
}

struct MetricsRegistry::FamilyBase {
  virtual ~FamilyBase() = default;
  MetricType type;
  std::string help;
  virtual void render(const std::string& name, std::string& out) = 0;
};

namespace {

std::string escape_label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string label_set(const std::vector<std::string>& names, const std::vector<std::string>& values,
                      const std::string& extra = {}) {
  if (names.empty() && extra.empty()) return {};
  std::string s = "{";
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i) s += ',';
    s += names[i] + "=\"" + escape_label(values[i]) + "\"";
  }
  if (!extra.empty()) {
    if (!names.empty()) s += ',';
    s += extra;
  }
  s += '}';
  return s;
}

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  return fmt::format("{}", v);
}

void check_name(const std::string& name) {
  bool ok = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0]));
  for (char c : name)
    ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':');
  if (!ok) throw std::invalid_argument("invalid metric name: " + name);
}

}  // namespace

template <typename T>
T& Family<T>::with(const std::vector<std::string>& label_values) {
  assert(label_values.size() == label_names_.size());
  std::lock_guard lock(mu_);
  auto& child = children_[label_values];
  if (!child) {
    if constexpr (std::is_same_v<T, Histogram>) {
      child = std::make_unique<Histogram>(bounds_);
    } else {
      child = std::make_unique<T>();
    }
  }
  return *child;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

struct FamilyAccess {
  template <typename T>
  struct Holder : MetricsRegistry::FamilyBase {
    Family<T> family;
    void render(const std::string& name, std::string& out) override {
      std::lock_guard lock(family.mu_);
      for (const auto& [values, child] : family.children_) {
        if constexpr (std::is_same_v<T, Histogram>) {
          const auto& bounds = child->bounds();
          for (std::size_t i = 0; i <= bounds.size(); ++i) {
            const std::string le =
                "le=\"" + (i == bounds.size() ? std::string("+Inf") : number(bounds[i])) + "\"";
            out += name + "_bucket" + label_set(family.label_names_, values, le) + " " +
                   std::to_string(child->cumulative(i)) + "\n";
          }
          out += name + "_sum" + label_set(family.label_names_, values) + " " +
                 number(child->sum()) + "\n";
          out += name + "_count" + label_set(family.label_names_, values) + " " +
                 std::to_string(child->count()) + "\n";
        } else if constexpr (std::is_same_v<T, Counter>) {
          out += name + label_set(family.label_names_, values) + " " +
                 std::to_string(child->value()) + "\n";
        } else {
          out +=
              name + label_set(family.label_names_, values) + " " + number(child->value()) + "\n";
        }
      }
    }
  };

  template <typename T>
  static Family<T>& get(MetricsRegistry& r, const std::string& name, const std::string& help,
                        MetricType type, std::vector<std::string> labels,
                        std::vector<double> bounds) {
    check_name(name);
    std::lock_guard lock(r.mu_);
    auto& slot = r.families_[name];
    if (!slot) {
      auto h = std::make_unique<Holder<T>>();
      h->type = type;
      h->help = help;
      h->family.label_names_ = std::move(labels);
      h->family.bounds_ = std::move(bounds);
      slot = std::move(h);
    }
    if (slot->type != type)
      throw std::invalid_argument("metric registered twice with two types: " + name);
    return static_cast<Holder<T>*>(slot.get())->family;
  }
};

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

Family<Counter>& MetricsRegistry::counter(const std::string& name, const std::string& help,
                                          std::vector<std::string> label_names) {
  return FamilyAccess::get<Counter>(*this, name, help, MetricType::kCounter, std::move(label_names),
                                    {});
}

Family<Gauge>& MetricsRegistry::gauge(const std::string& name, const std::string& help,
                                      std::vector<std::string> label_names) {
  return FamilyAccess::get<Gauge>(*this, name, help, MetricType::kGauge, std::move(label_names),
                                  {});
}

Family<Histogram>& MetricsRegistry::histogram(const std::string& name, const std::string& help,
                                              std::vector<double> bounds,
                                              std::vector<std::string> label_names) {
  return FamilyAccess::get<Histogram>(*this, name, help, MetricType::kHistogram,
                                      std::move(label_names), std::move(bounds));
}

std::string MetricsRegistry::render() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& [name, fam] : families_) {
    std::string help;
    for (char c : fam->help)
      help += c == '\n' ? std::string("\\n") : c == '\\' ? std::string("\\\\") : std::string(1, c);
    out += "# HELP " + name + " " + help + "\n";
    const char* type = fam->type == MetricType::kCounter ? "counter"
                       : fam->type == MetricType::kGauge ? "gauge"
                                                         : "histogram";
    out += "# TYPE " + name + " " + type + "\n";
    fam->render(name, out);
  }
  return out;
}

}  // namespace ganglion
