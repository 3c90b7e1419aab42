#include "broker/acl.h"

#include <utility>

#include "broker/topic_levels.h"

namespace ganglion::broker {
namespace {

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r");
  return s.substr(first, last - first + 1);
}

// Splits off the first whitespace-separated word; `rest` gets the trimmed remainder.
std::string_view first_word(std::string_view s, std::string_view& rest) {
  const auto end = s.find_first_of(" \t");
  if (end == std::string_view::npos) {
    rest = {};
    return s;
  }
  rest = trim(s.substr(end));
  return s.substr(0, end);
}

std::vector<std::string> split_levels(std::string_view filter) {
  const TopicLevels levels(filter);
  std::vector<std::string> out;
  out.reserve(levels.size());
  for (std::size_t i = 0; i < levels.size(); ++i) out.emplace_back(levels[i]);
  return out;
}

bool unsafe_value(std::string_view v) { return v.find_first_of("/+#") != std::string_view::npos; }

// Substitutes %u and %c in one level. Sets `unsafe` when a substituted value is missing or
// could change the filter's shape.
std::string substitute(std::string_view level, const ClientIdentity& who, bool& unsafe) {
  std::string out;
  for (std::size_t i = 0; i < level.size(); ++i) {
    if (level[i] == '%' && i + 1 < level.size() && (level[i + 1] == 'u' || level[i + 1] == 'c')) {
      if (level[i + 1] == 'u') {
        if (!who.username || unsafe_value(*who.username)) unsafe = true;
        if (who.username) out += *who.username;
      } else {
        if (unsafe_value(who.client_id)) unsafe = true;
        out += who.client_id;
      }
      ++i;
    } else {
      out += level[i];
    }
  }
  return out;
}

}  // namespace

// ---- IdentityAcl ----

bool IdentityAcl::check_topic(std::string_view topic, std::uint8_t access) const {
  if (allow_all_) return true;
  const TopicLevels levels(topic);
  for (const Rule& r : deny_) {
    if (filter_matches(r.levels, levels)) return false;
  }
  for (const Rule& r : allow_) {
    if ((r.access & access) == access && filter_matches(r.levels, levels)) return true;
  }
  return allow_unmatched_;
}

bool IdentityAcl::can_publish(std::string_view topic) const {
  return check_topic(topic, kAclWrite);
}

bool IdentityAcl::can_receive(std::string_view topic) const { return check_topic(topic, kAclRead); }

bool IdentityAcl::can_subscribe(std::string_view filter) const {
  if (allow_all_) return true;
  const TopicLevels levels(filter);
  for (const Rule& r : deny_) {
    if (filter_covers(r.levels, levels)) return false;
  }
  for (const Rule& r : allow_) {
    if ((r.access & kAclRead) && filter_covers(r.levels, levels)) return true;
  }
  return allow_unmatched_;
}

// ---- AclPolicy ----

AclPolicy::AclPolicy(AclPolicy&& other) noexcept { *this = std::move(other); }

AclPolicy& AclPolicy::operator=(AclPolicy&& other) noexcept {
  if (this == &other) return *this;
  std::scoped_lock lock(cache_mu_, other.cache_mu_);
  options_ = other.options_;
  allow_all_ = other.allow_all_;
  anonymous_ = std::move(other.anonymous_);
  users_ = std::move(other.users_);
  patterns_ = std::move(other.patterns_);
  cache_ = std::move(other.cache_);
  return *this;
}

AclPolicy AclPolicy::allow_all() {
  AclPolicy p;
  p.allow_all_ = true;
  return p;
}

Result<AclPolicy> AclPolicy::parse(std::string_view text, AclOptions options) {
  AclPolicy policy;
  policy.options_ = options;
  std::vector<RuleText>* section = &policy.anonymous_;
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const auto nl = text.find('\n');
    const std::string_view raw = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    const std::string_view line = trim(raw);
    if (line.empty() || line[0] == '#') continue;

    auto error = [&](const std::string& what) {
      return InvalidArgument("acl line " + std::to_string(line_no) + ": " + what);
    };
    std::string_view rest;
    const std::string_view keyword = first_word(line, rest);
    if (keyword == "user") {
      if (rest.empty()) return error("'user' needs a username");
      section = &policy.users_[std::string(rest)];
      continue;
    }
    if (keyword != "topic" && keyword != "pattern") {
      return error("unknown keyword '" + std::string(keyword) +
                   "' (expected user, topic or pattern)");
    }
    if (rest.empty()) return error("'" + std::string(keyword) + "' needs a topic filter");

    RuleText rule;
    rule.access = kAclReadWrite;
    std::string_view after;
    const std::string_view word = first_word(rest, after);
    bool has_access = true;
    if (word == "read") {
      rule.access = kAclRead;
    } else if (word == "write") {
      rule.access = kAclWrite;
    } else if (word == "readwrite") {
      rule.access = kAclReadWrite;
    } else if (word == "deny") {
      rule.deny = true;
    } else {
      has_access = false;
    }
    // "topic read" alone names a topic called "read" in Mosquitto; keep that reading.
    std::string_view filter = has_access && !after.empty() ? after : rest;
    if (!has_access || after.empty()) {
      rule.access = kAclReadWrite;
      rule.deny = false;
    }
    if (!is_valid_topic_filter(filter)) {
      return error("invalid topic filter '" + std::string(filter) + "'");
    }
    rule.filter = std::string(filter);
    if (keyword == "pattern") {
      policy.patterns_.push_back(std::move(rule));
    } else {
      section->push_back(std::move(rule));
    }
  }
  return policy;
}

Result<AclPolicy> AclPolicy::load(Env& env, const std::string& path, AclOptions options) {
  auto text = env.read_file(path);
  if (!text.ok()) return text.status().with_context("acl file " + path);
  auto policy = parse(*text, options);
  if (!policy.ok()) return policy.status().with_context(path);
  return policy;
}

std::size_t AclPolicy::rule_count() const {
  std::size_t n = anonymous_.size() + patterns_.size();
  for (const auto& [user, rules] : users_) n += rules.size();
  return n;
}

std::shared_ptr<const IdentityAcl> AclPolicy::compile_uncached(const ClientIdentity& who) const {
  auto acl = std::make_shared<IdentityAcl>();
  acl->allow_all_ = allow_all_;
  acl->allow_unmatched_ = options_.allow_unmatched;
  auto add = [&](const RuleText& r, std::vector<std::string> levels) {
    IdentityAcl::Rule rule{std::move(levels), r.access};
    (r.deny ? acl->deny_ : acl->allow_).push_back(std::move(rule));
  };

  const std::vector<RuleText>* own = &anonymous_;
  if (who.username) {
    auto it = users_.find(*who.username);
    own = it == users_.end() ? nullptr : &it->second;
  }
  if (own != nullptr) {
    for (const RuleText& r : *own) add(r, split_levels(r.filter));
  }
  for (const RuleText& r : patterns_) {
    const TopicLevels raw(r.filter);
    std::vector<std::string> levels;
    bool unsafe = false;
    for (std::size_t i = 0; i < raw.size() && !unsafe; ++i) {
      std::string level = substitute(raw[i], who, unsafe);
      if (unsafe) {
        if (r.deny) levels.emplace_back("#");  // widen: deny more, never less
      } else {
        levels.push_back(std::move(level));
      }
    }
    if (unsafe && !r.deny) continue;  // never grant through an unsafe substitution
    add(r, std::move(levels));
  }
  return acl;
}

std::shared_ptr<const IdentityAcl> AclPolicy::compile(const ClientIdentity& who) const {
  std::string key;
  // Length-prefixed so no (username, client id) pair can collide with another.
  if (who.username) {
    key += std::to_string(who.username->size());
    key += ':';
    key += *who.username;
  } else {
    key += '-';
  }
  key += who.client_id;
  {
    std::lock_guard lock(cache_mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
  }
  auto acl = compile_uncached(who);
  std::lock_guard lock(cache_mu_);
  if (cache_.size() >= kCacheLimit) cache_.clear();  // bounded; sessions keep their own copy
  cache_.emplace(std::move(key), acl);
  return acl;
}

}  // namespace ganglion::broker
