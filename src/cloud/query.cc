#include "cloud/query.h"

#include <charconv>

#include "base/config.h"
#include "cloud/tokens.h"

namespace ganglion::cloud {
namespace {

bool valid_field(std::string_view f) {
  if (f.empty() || f.size() > 128 || f.front() == '.' || f.back() == '.') return false;
  for (char c : f) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.';
    if (!ok) return false;
  }
  return f.find("..") == std::string_view::npos;
}

Result<std::int64_t> parse_time(std::string_view text, std::int64_t now_ms, const char* name) {
  if (!text.empty() && text.front() == '-') {
    auto d = parse_duration_ms(text.substr(1));
    if (!d.ok()) return InvalidArgument(std::string(name) + ": expected Unix ms or -<duration>");
    return now_ms - *d;
  }
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size()) {
    return InvalidArgument(std::string(name) + ": expected Unix ms or -<duration>");
  }
  return v;
}

// '$."a"."b"' for "a.b": quoted path segments, so any field name is literal.
std::string json_path(std::string_view field) {
  std::string out = "$";
  while (true) {
    const auto dot = field.find('.');
    out += ".\"" + std::string(field.substr(0, dot)) + "\"";
    if (dot == std::string_view::npos) break;
    field = field.substr(dot + 1);
  }
  return out;
}

}  // namespace

Result<QueryParams> parse_query_params(const std::map<std::string, std::string>& q,
                                       std::int64_t now_ms) {
  QueryParams p;
  auto get = [&](const char* k) -> const std::string* {
    auto it = q.find(k);
    return it == q.end() ? nullptr : &it->second;
  };
  if (auto* m = get("metric")) p.metric = *m;
  if (!valid_field(p.metric))
    return InvalidArgument("metric: expected a JSON field name ([A-Za-z0-9_.])");
  if (auto* a = get("agg")) p.agg = *a;
  if (p.agg != "avg" && p.agg != "min" && p.agg != "max" && p.agg != "sum" && p.agg != "count") {
    return InvalidArgument("agg: expected avg, min, max, sum or count");
  }
  if (auto* b = get("bucket")) {
    auto d = parse_duration_ms(*b);
    if (!d.ok() || *d < 1000) return InvalidArgument("bucket: expected a duration of at least 1s");
    p.bucket_ms = *d;
  }
  if (auto* g = get("group_by")) p.group_by = *g;
  if (p.group_by != "node" && p.group_by != "none" && !valid_label_key(p.group_by)) {
    return InvalidArgument("group_by: expected node, none or a label key");
  }
  if (auto* w = get("where"); w && !w->empty()) {
    auto labels = parse_label_list(*w);
    if (!labels.ok()) return InvalidArgument("where: " + labels.status().message());
    for (auto& kv : *labels) p.where.push_back(kv);
  }
  p.to_ms = now_ms;
  p.from_ms = now_ms - 3'600'000;
  if (auto* f = get("from")) {
    GANGLION_ASSIGN_OR_RETURN(p.from_ms, parse_time(*f, now_ms, "from"));
  }
  if (auto* t = get("to")) {
    GANGLION_ASSIGN_OR_RETURN(p.to_ms, parse_time(*t, now_ms, "to"));
  }
  if (p.to_ms < p.from_ms) return InvalidArgument("to: before from");
  std::int64_t span = 0;  // to - from overflows for from=-1d&to=9223372036854775807
  if (__builtin_sub_overflow(p.to_ms, p.from_ms, &span) || span / p.bucket_ms > 100'000)
    return InvalidArgument("bucket: too many buckets for the range");
  if (auto* s = get("source")) {
    if (*s == "rollup") {
      p.rollup = true;
    } else if (*s != "raw") {
      return InvalidArgument("source: expected raw or rollup");
    }
  }
  if (p.rollup) {
    if (p.bucket_ms % 60'000 != 0)
      return InvalidArgument("bucket: must be a multiple of 1m with source=rollup");
    if (p.metric.find('.') != std::string::npos)
      return InvalidArgument("metric: rollups hold top-level fields only");
  }
  return p;
}

Result<SqlQuery> build_query(const QueryParams& p) {
  SqlQuery q;
  auto param = [&](auto v) {
    q.params.emplace_back(v);
    return "?" + std::to_string(q.params.size());
  };
  const std::string bucket = param(p.bucket_ms);
  std::string group;
  if (p.group_by == "node") {
    group = "r.node";
  } else if (p.group_by == "none") {
    group = "''";
  } else {
    group = "coalesce(json_extract(n.labels, " + param("$.\"" + p.group_by + "\"") + "), '')";
  }
  std::string value, agg, samples;
  std::string where;
  if (p.rollup) {
    // Per-minute partial aggregates: combine them correctly (avg = sum of sums / sum of counts).
    if (p.agg == "avg")
      agg = "sum(r.sum) / sum(r.count)";
    else if (p.agg == "sum")
      agg = "sum(r.sum)";
    else if (p.agg == "min")
      agg = "min(r.min)";
    else if (p.agg == "max")
      agg = "max(r.max)";
    else
      agg = "sum(r.count)";
    samples = "sum(r.count)";
    q.sql = "SELECT (r.minute / " + bucket + ") * " + bucket + " AS b, " + group + " AS g, " + agg +
            ", " + samples +
            " FROM rollup_1m r JOIN nodes n ON n.id = r.node WHERE r.field = " + param(p.metric) +
            " AND r.minute >= " + param(p.from_ms) + " AND r.minute < " + param(p.to_ms);
  } else {
    value = "json_extract(r.payload, " + param(json_path(p.metric)) + ")";
    if (p.agg == "count")
      agg = "count(" + value + ")";
    else
      agg = p.agg + "(CAST(" + value + " AS REAL))";
    samples = "count(" + value + ")";
    q.sql = "SELECT (r.ts / " + bucket + ") * " + bucket + " AS b, " + group + " AS g, " + agg +
            ", " + samples +
            " FROM records r JOIN nodes n ON n.id = r.node WHERE r.ts >= " + param(p.from_ms) +
            " AND r.ts < " + param(p.to_ms) + " AND json_valid(r.payload) AND " + value +
            " IS NOT NULL";
  }
  for (const auto& [k, v] : p.where) {
    if (k == "node") {
      where += " AND r.node = " + param(v);
    } else {
      where += " AND json_extract(n.labels, " + param("$.\"" + k + "\"") + ") = " + param(v);
    }
  }
  q.sql += where + " GROUP BY b, g ORDER BY g, b";
  return q;
}

}  // namespace ganglion::cloud
