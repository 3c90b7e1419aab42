#include "cloud/tokens.h"

#include "cloud/pki.h"

namespace ganglion::cloud {

std::string token_hash(std::string_view secret) { return sha256_hex(secret); }

NewBootstrapToken make_bootstrap_token(const LabelMap& labels, std::int64_t ttl_ms,
                                       std::int64_t uses, std::int64_t now_ms,
                                       std::string created_by) {
  NewBootstrapToken t;
  t.secret = "gbt_" + random_hex(16);
  t.record.id = random_hex(8);
  t.record.hash = token_hash(t.secret);
  t.record.labels = labels;
  t.record.created_at_ms = now_ms;
  t.record.expires_at_ms = now_ms + ttl_ms;
  t.record.max_uses = uses;
  t.record.created_by = std::move(created_by);
  return t;
}

NewApiToken make_api_token(std::string name, Role role, std::int64_t now_ms) {
  NewApiToken t;
  t.secret = "gat_" + random_hex(16);
  t.record.id = random_hex(8);
  t.record.name = std::move(name);
  t.record.role = role;
  t.record.hash = token_hash(t.secret);
  t.record.created_at_ms = now_ms;
  return t;
}

std::string_view to_string(TokenCheck check) {
  switch (check) {
    case TokenCheck::kValid:
      return "valid";
    case TokenCheck::kUnknown:
      return "unknown";
    case TokenCheck::kExpired:
      return "expired";
    case TokenCheck::kUsedUp:
      return "used up";
  }
  return "unknown";
}

TokenCheck check_bootstrap_token(const std::optional<BootstrapToken>& found, std::int64_t now_ms) {
  if (!found) return TokenCheck::kUnknown;
  if (now_ms >= found->expires_at_ms) return TokenCheck::kExpired;
  if (found->uses >= found->max_uses) return TokenCheck::kUsedUp;
  return TokenCheck::kValid;
}

bool valid_node_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(id[0])) return false;
  for (char c : id) {
    if (!alnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

bool valid_label_key(std::string_view key) {
  if (key.empty() || key.size() > 63) return false;
  for (char c : key) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-' || c == '/';
    if (!ok) return false;
  }
  return true;
}

bool valid_label_value(std::string_view value) {
  if (value.size() > 255) return false;
  for (char c : value) {
    if (c == ',' || c == '=' || static_cast<unsigned char>(c) < 0x20) return false;
  }
  return true;
}

Result<LabelMap> parse_label_list(std::string_view text) {
  LabelMap out;
  while (!text.empty()) {
    const auto comma = text.find(',');
    std::string_view pair = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    if (eq == std::string_view::npos)
      return InvalidArgument("label \"" + std::string(pair) + "\": expected key=value");
    const auto key = pair.substr(0, eq);
    const auto value = pair.substr(eq + 1);
    if (!valid_label_key(key)) return InvalidArgument("bad label key \"" + std::string(key) + "\"");
    if (!valid_label_value(value))
      return InvalidArgument("bad label value for \"" + std::string(key) + "\"");
    out[std::string(key)] = std::string(value);
  }
  return out;
}

}  // namespace ganglion::cloud
