// Bootstrap tokens (enrolment) and API tokens (REST), and the small rules around identities.
//
// A token's secret is 128 random bits shown once ("gbt_<32 hex>" for bootstrap tokens,
// "gat_<32 hex>" for API tokens); only its SHA-256 is stored, so a stolen database grants
// nothing. Pure functions: the caller stores records and passes the time.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"
#include "cloud/store.h"

namespace ganglion::cloud {

struct NewBootstrapToken {
  std::string secret;  // shown once to the operator
  BootstrapToken record;
};
// `uses` >= 1; `ttl_ms` > 0.
NewBootstrapToken make_bootstrap_token(const LabelMap& labels, std::int64_t ttl_ms,
                                       std::int64_t uses, std::int64_t now_ms,
                                       std::string created_by);

struct NewApiToken {
  std::string secret;
  ApiToken record;
};
NewApiToken make_api_token(std::string name, Role role, std::int64_t now_ms);

// The stored hash of a secret token text.
std::string token_hash(std::string_view secret);

enum class TokenCheck { kValid, kUnknown, kExpired, kUsedUp };
std::string_view to_string(TokenCheck check);
// Judges a looked-up token (`found` empty: unknown) at `now_ms`.
TokenCheck check_bootstrap_token(const std::optional<BootstrapToken>& found, std::int64_t now_ms);

// Node ids become certificate CNs and MQTT topic levels: 1-64 chars of [a-z0-9._-], starting
// with a letter or digit (no '/', '+', '#', '$', spaces or upper case).
bool valid_node_id(std::string_view id);
// Label keys: 1-63 chars [A-Za-z0-9._-/]; values: 0-255 chars without ',' or '=' or control.
bool valid_label_key(std::string_view key);
bool valid_label_value(std::string_view value);
// "site=eu-1,type=factory" -> labels. Errors: kInvalidArgument naming the bad pair.
Result<LabelMap> parse_label_list(std::string_view text);

}  // namespace ganglion::cloud
