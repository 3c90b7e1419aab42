// Topic authorisation: who may publish to, subscribe to and receive from which topics.
//
// ACL file format (Mosquitto acl_file compatible, plus `deny`):
//
//   # comment; blank lines are ignored; leading/trailing whitespace is ignored
//   topic read $SYS/#              <- before any `user` line: rules for anonymous clients
//   user alice                     <- starts alice's section (the rest of the line is the name;
//   topic readwrite plant/#           sections of the same user add up)
//   topic deny plant/secret/#
//   topic plant/status             <- no access word means readwrite
//   pattern write devices/%c/up    <- applies to every client, anywhere in the file;
//   pattern read users/%u/#           %u = username, %c = client id
//
//   access words: read (subscribe and receive), write (publish), readwrite, deny (all three).
//   The topic filter is the rest of the line and may use '+' and '#'.
//
// Evaluation for one client and one topic:
//   1. a matching deny rule denies;
//   2. otherwise a matching rule granting the access allows;
//   3. otherwise AclOptions::allow_unmatched decides (default: deny).
// Filters follow MQTT matching: a rule "#" does not grant '$' topics; grant "$SYS/#" explicitly.
//
// Subscribing is checked against the filter, not a topic: a rule must *cover* the filter
// (every topic the filter can match is matched by the rule), so with only "a/b" readable a
// subscription to "a/#" is denied. A subscription covered by a deny rule is denied; one that
// merely overlaps a deny rule (subscribe "a/+" with "deny a/secret") is allowed, and the
// broker must check can_receive() on each delivery — that is the authoritative read check.
//
// Substitution safety: a username or client id containing '/', '+' or '#' could widen a
// pattern to other clients' topics. For such a value, allow patterns using it are dropped and
// deny patterns are widened to '#' from the level holding the placeholder on ("deny
// secret/%u/x" becomes "deny secret/#"). A client without a username gets no %u allow patterns.
//
// Thread safety: AclPolicy is immutable after parse() except its compile cache, which is
// guarded by a mutex; IdentityAcl is immutable and may be shared between threads.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/env.h"
#include "base/status.h"

namespace ganglion::broker {

// Access bits of a rule.
enum AclAccess : std::uint8_t {
  kAclNone = 0,
  kAclRead = 1,   // subscribe, and receive deliveries
  kAclWrite = 2,  // publish
  kAclReadWrite = kAclRead | kAclWrite,
};

struct AclOptions {
  // What happens when no rule matches: false = deny (the default).
  bool allow_unmatched = false;
};

// Who is asking. `username` is absent for anonymous clients.
struct ClientIdentity {
  std::optional<std::string> username;
  std::string client_id;
};

// The rules of one identity, with %u/%c substituted and filters pre-split. Hold one per session
// (AclPolicy::compile() on CONNECT) so that per-message checks do no lookup.
class IdentityAcl {
 public:
  // PUBLISH to `topic` (a topic name).
  bool can_publish(std::string_view topic) const;
  // Deliver a message on `topic` (a topic name) to this client.
  bool can_receive(std::string_view topic) const;
  // SUBSCRIBE to `filter` (without any $share/<group>/ prefix).
  bool can_subscribe(std::string_view filter) const;

  std::size_t rule_count() const { return allow_.size() + deny_.size(); }

 private:
  friend class AclPolicy;
  struct Rule {
    std::vector<std::string> levels;
    std::uint8_t access = kAclNone;
  };
  bool check_topic(std::string_view topic, std::uint8_t access) const;

  std::vector<Rule> allow_;
  std::vector<Rule> deny_;
  bool allow_unmatched_ = false;
  bool allow_all_ = false;
};

class AclPolicy {
 public:
  // Parses the format above. Errors: kInvalidArgument naming the line ("acl line 7: ...").
  static Result<AclPolicy> parse(std::string_view text, AclOptions options = {});
  // Reads and parses `path` through `env`; errors are prefixed with the path.
  static Result<AclPolicy> load(Env& env, const std::string& path, AclOptions options = {});
  // A policy that allows everything (no ACL configured).
  static AclPolicy allow_all();

  AclPolicy(AclPolicy&& other) noexcept;
  AclPolicy& operator=(AclPolicy&& other) noexcept;

  // The compiled rules for `who`. Cached by (username, client id); cheap to call again.
  std::shared_ptr<const IdentityAcl> compile(const ClientIdentity& who) const;

  // Rules in the file (all sections and patterns).
  std::size_t rule_count() const;

 private:
  AclPolicy() = default;

  struct RuleText {
    std::string filter;
    std::uint8_t access = kAclNone;
    bool deny = false;
  };
  std::shared_ptr<const IdentityAcl> compile_uncached(const ClientIdentity& who) const;

  AclOptions options_;
  bool allow_all_ = false;
  std::vector<RuleText> anonymous_;
  std::map<std::string, std::vector<RuleText>, std::less<>> users_;
  std::vector<RuleText> patterns_;

  static constexpr std::size_t kCacheLimit = 4096;
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::shared_ptr<const IdentityAcl>> cache_;
};

}  // namespace ganglion::broker
