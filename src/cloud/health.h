// Node health from heartbeats, on an injected Clock.
//
//   healthy   a heartbeat arrived within 1.5 x heartbeat interval and reported no problem
//   degraded  the last heartbeat is late by more than 1.5 x interval, or it listed problems
//             (a non-empty "problems" array)
//   offline   no heartbeat for offline_grace (or never since the controller started knowing
//             the node)
//
// HealthTracker keeps the last heartbeat per node and turns time and heartbeats into state
// changes; the controller persists them (history) and announces them (events). Not
// thread-safe: the controller serialises calls.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "cloud/store.h"

namespace ganglion::cloud {

struct HealthPolicy {
  Duration heartbeat_interval = std::chrono::seconds(30);
  Duration offline_grace = std::chrono::minutes(2);
};

struct HealthVerdict {
  std::string state;   // healthy | degraded | offline
  std::string reason;  // human-readable, "" when healthy
};

// `since_last`: time since the last heartbeat, nullopt when there was none.
HealthVerdict evaluate_health(std::optional<Duration> since_last,
                              const std::vector<std::string>& problems, const HealthPolicy& policy);

class HealthTracker {
 public:
  HealthTracker(Clock& clock, HealthPolicy policy) : clock_(clock), policy_(policy) {}

  // Starts tracking `node` in `state` (from the store), whose last heartbeat was `age` ago
  // (nullopt: never).
  void track(const std::string& node, const std::string& state, std::optional<Duration> age);
  void forget(const std::string& node);
  // A heartbeat arrived now. Returns the change it causes, if any.
  std::optional<HealthChange> on_heartbeat(const std::string& node,
                                           std::vector<std::string> problems);
  // Re-evaluates every node at clock.now(); returns the changes (in node order).
  std::vector<HealthChange> evaluate();
  std::string state(const std::string& node) const;
  const HealthPolicy& policy() const { return policy_; }

 private:
  struct Entry {
    std::string state = "offline";
    std::optional<MonoTime> last;
    std::vector<std::string> problems;
  };
  std::optional<HealthChange> update(const std::string& node, Entry& e);

  Clock& clock_;
  HealthPolicy policy_;
  std::map<std::string, Entry> nodes_;
};

}  // namespace ganglion::cloud
