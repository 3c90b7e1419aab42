// libFuzzer target for the data-sovereignty policy (src/uplink/policy.h), the one place
// where data leaves a site. The rules come from configuration; topics and payloads come from
// any device.
//
// Input: lines up to the first empty line configure the policy ("L <filter>" local-only,
// "F <filter> <drop|redact|hash> <path>" a field rule, "K <key>" the hash key, "C <class
// spec>" and "R <route>" the uplink's class and route syntax); the next line is the topic,
// the rest the payload. Checks, beyond "no crash": a topic matching a local-only filter never
// leaves; a forwarded payload holds, at the path of every field rule that matched, no value
// but "***" (redact), 64 hex digits (hash) or nothing (drop) — at every occurrence of a
// duplicated key.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "event/json.h"
#include "event/value.h"
#include "mqtt/topic.h"
#include "uplink/policy.h"
#include "uplink/uplink.h"

namespace {

using ganglion::Value;
using namespace ganglion::uplink;

[[noreturn]] void die(const char* what, std::string_view detail) {
  std::fprintf(stderr, "%s: %.*s\n", what, static_cast<int>(detail.size()), detail.data());
  std::abort();
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (std::size_t dot; (dot = path.find('.', start)) != std::string::npos; start = dot + 1)
    out.push_back(path.substr(start, dot - start));
  out.push_back(path.substr(start));
  return out;
}

bool is_hex64(const Value& v) {
  if (!v.is_string() || v.as_string().size() != 64) return false;
  return v.as_string().find_first_not_of("0123456789abcdef") == std::string::npos;
}

// Every value at `path[depth..]` under `v` (all occurrences of duplicated keys) obeys `rule`.
void check_path(const Value& v, const std::vector<std::string>& path, std::size_t depth,
                FieldAction action, std::string_view payload) {
  if (!v.is_object()) return;
  for (const auto& [k, child] : v.as_object()) {
    if (k != path[depth]) continue;
    if (depth + 1 < path.size()) {
      check_path(child, path, depth + 1, action, payload);
    } else if (action == FieldAction::kDrop) {
      die("a dropped field left the site", payload);
    } else if (action == FieldAction::kRedact &&
               !(child.is_string() && child.as_string() == kRedacted)) {
      die("a redacted field left the site", payload);
    } else if (action == FieldAction::kHash && !is_hex64(child)) {
      die("a hashed field left the site in clear", payload);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 16384) return 0;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  PolicyOptions options;
  while (!input.empty()) {
    const auto nl = input.find('\n');
    const std::string_view line = input.substr(0, nl);
    input = nl == std::string_view::npos ? std::string_view{} : input.substr(nl + 1);
    if (line.empty()) break;
    const std::string_view arg = line.size() > 2 ? line.substr(2) : std::string_view{};
    switch (line[0]) {
      case 'L':
        options.local_only.emplace_back(arg);
        break;
      case 'F':
        if (auto rule = parse_field_rule(arg); rule.ok()) options.fields.push_back(*rule);
        break;
      case 'K':
        options.hash_key = std::string(arg);
        break;
      case 'C':
        (void)parse_class_spec(arg);
        break;
      case 'R':
        (void)parse_route(arg);
        break;
      default:
        break;
    }
  }
  auto policy = DataPolicy::create(options);
  if (!policy.ok()) return 0;
  const auto nl = input.find('\n');
  const std::string topic(input.substr(0, nl));
  const std::string_view payload = nl == std::string_view::npos ? "" : input.substr(nl + 1);
  // The broker only routes valid topic names.
  if (!ganglion::mqtt::validate_topic_name(topic).ok()) return 0;

  const PolicyOutcome out = (*policy)->apply(topic, payload);
  bool local = false;
  for (const auto& f : options.local_only) local |= ganglion::mqtt::matches(f, topic);
  if (local != (out.verdict == Verdict::kLocalOnly)) die("local-only verdict is wrong", topic);
  if (out.verdict != Verdict::kForward) return 0;
  const std::string_view sent = out.rewritten ? std::string_view(out.payload) : payload;
  bool any_rule = false;
  for (const auto& f : options.fields) any_rule |= ganglion::mqtt::matches(f.filter, topic);
  if (!any_rule) {
    if (out.rewritten) die("payload rewritten without a matching rule", payload);
    return 0;
  }
  auto doc = ganglion::parse_json(sent);
  if (!doc.ok() || !doc->is_object())
    die("forwarded payload under a field rule is not an object", sent);
  for (std::size_t i = 0; i < options.fields.size(); ++i) {
    const FieldRule& f = options.fields[i];
    if (!ganglion::mqtt::matches(f.filter, topic)) continue;
    // A later matching rule on the same path wins ("redact a" then "hash a" sends a hash).
    bool overridden = false;
    for (std::size_t j = i + 1; j < options.fields.size(); ++j) {
      overridden |= options.fields[j].path == f.path &&
                    ganglion::mqtt::matches(options.fields[j].filter, topic);
    }
    if (!overridden) check_path(*doc, split_path(f.path), 0, f.action, payload);
  }
  return 0;
}
