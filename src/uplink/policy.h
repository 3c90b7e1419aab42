// DataPolicy: data sovereignty, applied at the one place where data leaves the site, before
// a message enters the uplink log (so nothing that may not leave is ever stored for upload).
//
//  - local-only topic filters: matching messages are never uplinked (dropped, counted);
//  - field rules per topic filter on JSON payloads: drop a field, redact it ("***"), or
//    replace it with HMAC-SHA256(hash_key, value) in lowercase hex; nested paths "a.b.c";
//  - the site's region (carried in every batch) and the regions its data may go to; the
//    sender refuses a destination outside that list (see Uplink).
//
// A message whose topic matches a field rule but whose payload is not a JSON object is not
// forwarded (fail closed: the rule cannot be enforced) and counted as `unparseable`.
// Every entry counts what it matched and what it changed; stats() and to_json() show them.
//
// Compact config syntax (the uplink.policy.* keys of the edge configuration):
//   local_only:  "<filter>"                         e.g. "factory/+/camera/#"
//   fields:      "<filter> <drop|redact|hash> <path>" e.g. "factory/# hash worker_id"
//
// Thread safety: apply() is const and thread-safe (counters are atomics).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace ganglion::uplink {

enum class FieldAction : std::uint8_t { kDrop, kRedact, kHash };
std::string_view to_string(FieldAction a);

inline constexpr std::string_view kRedacted = "***";

struct FieldRule {
  std::string filter;
  FieldAction action = FieldAction::kDrop;
  std::string path;  // dotted, e.g. "operator.badge"
};

// Parses "<filter> <drop|redact|hash> <path>". Errors: kInvalidArgument naming the text.
Result<FieldRule> parse_field_rule(std::string_view text);

struct PolicyOptions {
  std::vector<std::string> local_only;  // topic filters that never leave the site
  std::vector<FieldRule> fields;
  std::string hash_key;                      // HMAC key for kHash; required when a hash rule exists
  std::string region;                        // the site's region, carried in batch metadata
  std::vector<std::string> allowed_regions;  // destination regions allowed; empty: any
};

enum class Verdict : std::uint8_t {
  kForward,      // send `payload` (possibly rewritten)
  kLocalOnly,    // matched a local-only filter: never leaves the site
  kUnparseable,  // a field rule applies but the payload is not a JSON object
};

struct PolicyOutcome {
  Verdict verdict = Verdict::kForward;
  bool rewritten = false;
  std::string payload;  // the payload to log when rewritten (else empty: use the original)
};

struct PolicyEntryStats {
  std::string kind;  // "local_only", "drop", "redact", "hash"
  std::string filter;
  std::string path;           // empty for local_only
  std::uint64_t matched = 0;  // messages whose topic matched
  std::uint64_t applied = 0;  // messages dropped (local_only) or fields changed
};

class DataPolicy {
 public:
  // Errors: kInvalidArgument for an invalid filter or a hash rule without a key.
  static Result<std::unique_ptr<DataPolicy>> create(PolicyOptions options);

  PolicyOutcome apply(std::string_view topic, std::string_view payload) const;

  // ok when `destination_region` may receive this site's data (allowed_regions empty, or it
  // is listed); else kPermissionDenied naming both.
  Status check_destination(std::string_view destination_region) const;

  const PolicyOptions& options() const { return options_; }
  std::vector<PolicyEntryStats> stats() const;
  std::uint64_t unparseable() const { return unparseable_.load(); }
  // {"region":..,"allowed_regions":[..],"local_only":[{filter,matched,dropped}],
  //  "fields":[{filter,action,path,matched,applied}],"unparseable":n}
  std::string to_json() const;

 private:
  explicit DataPolicy(PolicyOptions options);
  struct Counters {
    std::atomic<std::uint64_t> matched{0};
    std::atomic<std::uint64_t> applied{0};
  };
  PolicyOptions options_;
  std::vector<std::vector<std::string>> paths_;  // fields[i].path split at '.'
  std::unique_ptr<Counters[]> local_counters_;
  std::unique_ptr<Counters[]> field_counters_;
  mutable std::atomic<std::uint64_t> unparseable_{0};
};

// HMAC-SHA256(key, data) in lowercase hex (64 characters).
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

}  // namespace ganglion::uplink
