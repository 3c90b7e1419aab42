#include "uplink/policy.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <sstream>

#include "event/json.h"
#include "event/value.h"
#include "mqtt/topic.h"

namespace ganglion::uplink {

std::string_view to_string(FieldAction a) {
  switch (a) {
    case FieldAction::kDrop:
      return "drop";
    case FieldAction::kRedact:
      return "redact";
    case FieldAction::kHash:
      return "hash";
  }
  return "?";
}

Result<FieldRule> parse_field_rule(std::string_view text) {
  std::istringstream in{std::string(text)};
  std::vector<std::string> w;
  for (std::string s; in >> s;) w.push_back(s);
  const std::string where = "uplink.policy.fields \"" + std::string(text) + "\"";
  if (w.size() != 3)
    return InvalidArgument(where + ": expected \"<filter> <drop|redact|hash> <path>\"");
  FieldRule r;
  r.filter = w[0];
  if (Status s = mqtt::validate_topic_filter(r.filter); !s.ok()) return s.with_context(where);
  if (w[1] == "drop") {
    r.action = FieldAction::kDrop;
  } else if (w[1] == "redact") {
    r.action = FieldAction::kRedact;
  } else if (w[1] == "hash") {
    r.action = FieldAction::kHash;
  } else {
    return InvalidArgument(where + ": action must be drop, redact or hash");
  }
  r.path = w[2];
  if (r.path.empty() || r.path.front() == '.' || r.path.back() == '.' ||
      r.path.find("..") != std::string::npos) {
    return InvalidArgument(where + ": bad field path");
  }
  return r;
}

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(kHex[mac[i] >> 4]);
    out.push_back(kHex[mac[i] & 15]);
  }
  return out;
}

DataPolicy::DataPolicy(PolicyOptions options)
    : options_(std::move(options)),
      local_counters_(std::make_unique<Counters[]>(options_.local_only.size())),
      field_counters_(std::make_unique<Counters[]>(options_.fields.size())) {
  for (const auto& f : options_.fields) {
    std::vector<std::string> parts;
    std::string_view p = f.path;
    for (std::size_t dot; (dot = p.find('.')) != std::string_view::npos; p.remove_prefix(dot + 1)) {
      parts.emplace_back(p.substr(0, dot));
    }
    parts.emplace_back(p);
    paths_.push_back(std::move(parts));
  }
}

Result<std::unique_ptr<DataPolicy>> DataPolicy::create(PolicyOptions options) {
  for (const auto& f : options.local_only) {
    if (Status s = mqtt::validate_topic_filter(f); !s.ok()) {
      return s.with_context("uplink.policy.local_only \"" + f + "\"");
    }
  }
  bool hashes = false;
  for (const auto& f : options.fields) {
    GANGLION_RETURN_IF_ERROR(
        mqtt::validate_topic_filter(f.filter).with_context("uplink.policy.fields"));
    hashes |= f.action == FieldAction::kHash;
  }
  if (hashes && options.hash_key.empty()) {
    return InvalidArgument(
        "uplink.policy.hash_key is empty but a field rule hashes: an unkeyed hash of an id can "
        "be reversed by trying every id");
  }
  return std::unique_ptr<DataPolicy>(new DataPolicy(std::move(options)));
}

namespace {

// Applies `action` at `path[depth..]` inside `v`; returns true (and sets `out`) when
// something changed. Objects are immutable and shared, so the changed spine is rebuilt.
bool rewrite(const Value& v, const std::vector<std::string>& path, std::size_t depth,
             FieldAction action, std::string_view key, Value& out) {
  if (!v.is_object()) return false;
  const ValueObject& obj = v.as_object();
  const std::string& name = path[depth];
  const bool last = depth + 1 == path.size();
  bool changed = false;
  ValueObject copy;
  copy.reserve(obj.size());
  for (const auto& [k, child] : obj) {
    if (k != name) {
      copy.append(k, child);
      continue;
    }
    if (last) {
      changed = true;
      switch (action) {
        case FieldAction::kDrop:
          break;
        case FieldAction::kRedact:
          copy.append(k, Value(std::string(kRedacted)));
          break;
        case FieldAction::kHash:
          copy.append(k, Value(hmac_sha256_hex(key, child.is_string() ? child.as_string()
                                                                      : ganglion::to_json(child))));
          break;
      }
    } else {
      Value replaced;
      if (rewrite(child, path, depth + 1, action, key, replaced)) {
        changed = true;
        copy.append(k, std::move(replaced));
      } else {
        copy.append(k, child);
      }
    }
  }
  if (changed) out = Value(std::move(copy));
  return changed;
}

}  // namespace

PolicyOutcome DataPolicy::apply(std::string_view topic, std::string_view payload) const {
  PolicyOutcome out;
  for (std::size_t i = 0; i < options_.local_only.size(); ++i) {
    if (mqtt::matches(options_.local_only[i], topic)) {
      local_counters_[i].matched.fetch_add(1, std::memory_order_relaxed);
      local_counters_[i].applied.fetch_add(1, std::memory_order_relaxed);
      out.verdict = Verdict::kLocalOnly;
      return out;
    }
  }
  std::optional<Value> doc;
  for (std::size_t i = 0; i < options_.fields.size(); ++i) {
    if (!mqtt::matches(options_.fields[i].filter, topic)) continue;
    field_counters_[i].matched.fetch_add(1, std::memory_order_relaxed);
    if (!doc) {
      auto parsed = parse_json(payload);
      if (!parsed.ok() || !parsed->is_object()) {
        unparseable_.fetch_add(1, std::memory_order_relaxed);
        out.verdict = Verdict::kUnparseable;
        return out;
      }
      doc = std::move(*parsed);
    }
    Value next;
    if (rewrite(*doc, paths_[i], 0, options_.fields[i].action, options_.hash_key, next)) {
      field_counters_[i].applied.fetch_add(1, std::memory_order_relaxed);
      doc = std::move(next);
      out.rewritten = true;
    }
  }
  if (out.rewritten) out.payload = ganglion::to_json(*doc);
  return out;
}

Status DataPolicy::check_destination(std::string_view destination_region) const {
  if (options_.allowed_regions.empty()) return Status::Ok();
  for (const auto& r : options_.allowed_regions) {
    if (r == destination_region) return Status::Ok();
  }
  return PermissionDenied("uplink destination region \"" + std::string(destination_region) +
                          "\" is not in uplink.policy.allowed_regions of site region \"" +
                          options_.region + "\"");
}

std::vector<PolicyEntryStats> DataPolicy::stats() const {
  std::vector<PolicyEntryStats> out;
  for (std::size_t i = 0; i < options_.local_only.size(); ++i) {
    out.push_back({"local_only", options_.local_only[i], "", local_counters_[i].matched.load(),
                   local_counters_[i].applied.load()});
  }
  for (std::size_t i = 0; i < options_.fields.size(); ++i) {
    const auto& f = options_.fields[i];
    out.push_back({std::string(to_string(f.action)), f.filter, f.path,
                   field_counters_[i].matched.load(), field_counters_[i].applied.load()});
  }
  return out;
}

std::string DataPolicy::to_json() const {
  std::string o = "{\"region\":";
  append_json_string(options_.region, o);
  o += ",\"allowed_regions\":[";
  for (std::size_t i = 0; i < options_.allowed_regions.size(); ++i) {
    if (i) o += ',';
    append_json_string(options_.allowed_regions[i], o);
  }
  o += "],\"hash_key_set\":";
  o += options_.hash_key.empty() ? "false" : "true";
  o += ",\"local_only\":[";
  bool first_local = true, first_field = true;
  std::string fields;
  for (const auto& e : stats()) {
    if (e.kind == "local_only") {
      if (!first_local) o += ',';
      first_local = false;
      o += "{\"filter\":";
      append_json_string(e.filter, o);
      o += ",\"matched\":" + std::to_string(e.matched) +
           ",\"dropped\":" + std::to_string(e.applied) + "}";
    } else {
      if (!first_field) fields += ',';
      first_field = false;
      fields += "{\"filter\":";
      append_json_string(e.filter, fields);
      fields += ",\"action\":\"" + e.kind + "\",\"path\":";
      append_json_string(e.path, fields);
      fields += ",\"matched\":" + std::to_string(e.matched) +
                ",\"applied\":" + std::to_string(e.applied) + "}";
    }
  }
  o += "],\"fields\":[" + fields + "],\"unparseable\":" + std::to_string(unparseable_.load()) + "}";
  return o;
}

}  // namespace ganglion::uplink
