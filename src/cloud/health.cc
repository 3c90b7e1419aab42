#include "cloud/health.h"

namespace ganglion::cloud {

HealthVerdict evaluate_health(std::optional<Duration> since_last,
                              const std::vector<std::string>& problems,
                              const HealthPolicy& policy) {
  if (!since_last) return {"offline", "no heartbeat yet"};
  if (*since_last >= policy.offline_grace)
    return {"offline", "no heartbeat for the offline grace period"};
  if (*since_last > policy.heartbeat_interval * 3 / 2) return {"degraded", "heartbeat late"};
  if (!problems.empty()) {
    std::string reason = "reported: ";
    for (std::size_t i = 0; i < problems.size(); ++i) reason += (i ? ", " : "") + problems[i];
    return {"degraded", reason};
  }
  return {"healthy", ""};
}

void HealthTracker::track(const std::string& node, const std::string& state,
                          std::optional<Duration> age) {
  Entry& e = nodes_[node];
  e.state = state;
  e.last.reset();
  if (age) e.last = clock_.now() - *age;
}

void HealthTracker::forget(const std::string& node) { nodes_.erase(node); }

std::optional<HealthChange> HealthTracker::on_heartbeat(const std::string& node,
                                                        std::vector<std::string> problems) {
  Entry& e = nodes_[node];
  e.last = clock_.now();
  e.problems = std::move(problems);
  return update(node, e);
}

std::vector<HealthChange> HealthTracker::evaluate() {
  std::vector<HealthChange> out;
  for (auto& [node, e] : nodes_) {
    if (auto c = update(node, e)) out.push_back(std::move(*c));
  }
  return out;
}

std::string HealthTracker::state(const std::string& node) const {
  auto it = nodes_.find(node);
  return it == nodes_.end() ? "offline" : it->second.state;
}

std::optional<HealthChange> HealthTracker::update(const std::string& node, Entry& e) {
  std::optional<Duration> since;
  if (e.last) since = clock_.now() - *e.last;
  HealthVerdict v = evaluate_health(since, e.problems, policy_);
  if (v.state == e.state) return std::nullopt;
  HealthChange c{node, clock_.wall_ms(), e.state, v.state, v.reason};
  e.state = v.state;
  return c;
}

}  // namespace ganglion::cloud
