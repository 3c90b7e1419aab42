#include "cloud/store_writer.h"

#include <algorithm>

namespace ganglion::cloud {

StoreWriter::StoreWriter(Store& store, Clock& clock, Options options)
    : store_(store), clock_(clock), options_(options) {
  options_.max_group_batches = std::max<std::size_t>(1, options_.max_group_batches);
}

StoreWriter::~StoreWriter() { stop(); }

void StoreWriter::submit(IngestBatch batch, Done done) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back({std::move(batch), std::move(done)});
  }
  cv_.notify_one();
}

void StoreWriter::enroll(Enrolment enrolment, EnrolDone done) {
  {
    std::lock_guard lock(mu_);
    if (!stop_) {
      enrolments_.emplace_back(std::move(enrolment), std::move(done));
      done = nullptr;
    }
  }
  if (done) return done(Unavailable("the controller is stopping"));
  cv_.notify_one();
}

void StoreWriter::heartbeat(HeartbeatUpdate h) {
  std::lock_guard lock(mu_);
  dirty_.insert(h.node);
  Latest& l = latest_[h.node];
  l.heartbeat = std::move(h);
}

std::int64_t StoreWriter::reported(const std::string& node, std::string json, std::int64_t ts_ms,
                                   const std::function<std::int64_t()>& stored_version) {
  std::optional<std::int64_t> known;
  {
    std::lock_guard lock(mu_);
    auto it = latest_.find(node);
    if (it != latest_.end() && it->second.reported) known = it->second.reported->version;
  }
  // Outside the lock: the store may be slow. The controller handles one node's messages in
  // order, so nothing else records a reported twin of `node` meanwhile.
  const std::int64_t base = known ? *known : stored_version();
  std::lock_guard lock(mu_);
  Latest& l = latest_[node];
  const std::int64_t version = std::max(base, l.reported ? l.reported->version : 0) + 1;
  l.reported = ReportedUpdate{node, std::move(json), version, ts_ms};
  dirty_.insert(node);
  return version;
}

void StoreWriter::health(HealthChange change) {
  {
    std::lock_guard lock(mu_);
    latest_[change.node].health = change;
    health_pending_.push_back(std::move(change));
  }
  cv_.notify_one();
}

void StoreWriter::overlay(NodeRecord& n) const {
  std::lock_guard lock(mu_);
  auto it = latest_.find(n.id);
  if (it == latest_.end()) return;
  const Latest& l = it->second;
  if (l.heartbeat) {
    n.last_heartbeat_ms = l.heartbeat->ts_ms;
    n.version = l.heartbeat->version;
    n.last_heartbeat = l.heartbeat->heartbeat_json;
  }
  if (l.reported) {
    n.reported = l.reported->json;
    n.reported_version = l.reported->version;
    n.reported_at_ms = l.reported->ts_ms;
  }
  if (l.health) {
    n.health = l.health->to;
    n.health_reason = l.health->reason;
    n.health_since_ms = l.health->ts_ms;
  }
}

std::vector<HealthChange> StoreWriter::unwritten_health(const std::string& node) const {
  std::lock_guard lock(mu_);
  std::vector<HealthChange> out;
  for (const auto* list : {&health_inflight_, &health_pending_}) {
    for (const auto& c : *list) {
      if (c.node == node) out.push_back(c);
    }
  }
  return out;
}

void StoreWriter::flush_state() {
  {
    std::lock_guard lock(mu_);
    state_due_ = true;
  }
  cv_.notify_one();
}

Status StoreWriter::commit(bool with_state) {
  std::lock_guard commit_lock(commit_mu_);
  WriteGroup g;
  std::vector<Done> dones;
  std::vector<EnrolDone> enrol_dones;
  std::vector<std::string> state_nodes;
  {
    std::lock_guard lock(mu_);
    for (auto& [e, done] : enrolments_) {
      g.enrolments.push_back(std::move(e));
      enrol_dones.push_back(std::move(done));
    }
    enrolments_.clear();
    while (!queue_.empty() && g.batches.size() < options_.max_group_batches) {
      g.batches.push_back(std::move(queue_.front().batch));
      dones.push_back(std::move(queue_.front().done));
      queue_.pop_front();
    }
    g.health = std::move(health_pending_);
    health_pending_.clear();
    health_inflight_ = g.health;
    if (with_state || state_due_) {
      state_due_ = false;
      for (const auto& node : dirty_) {
        const Latest& l = latest_[node];
        if (l.heartbeat) g.heartbeats.push_back(*l.heartbeat);
        if (l.reported) g.reported.push_back(*l.reported);
        state_nodes.push_back(node);
      }
      dirty_.clear();
    }
  }
  if (g.batches.empty() && g.enrolments.empty() && g.health.empty() && g.heartbeats.empty() &&
      g.reported.empty())
    return Status::Ok();

  const MonoTime t0 = clock_.now();
  GroupResult result = store_.write_group(g, clock_.wall_ms());
  const Status status = result.status;
  if (options_.on_commit) {
    options_.on_commit({status.ok(), g.batches.size(), g.enrolments.size(),
                        g.heartbeats.size() + g.reported.size() + g.health.size(),
                        clock_.now() - t0});
  }
  {
    std::lock_guard lock(mu_);
    health_inflight_.clear();
    ++stats_.commits;
    stats_.last_group = g.batches.size();
    if (status.ok()) {
      stats_.batches += g.batches.size();
      stats_.enrolments += g.enrolments.size();
      stats_.state_rows += g.heartbeats.size() + g.reported.size() + g.health.size();
    } else {
      ++stats_.failed_commits;
      // Not written: try the node state again with the next commit.
      health_pending_.insert(health_pending_.begin(), g.health.begin(), g.health.end());
      dirty_.insert(state_nodes.begin(), state_nodes.end());
    }
  }
  for (std::size_t i = 0; i < enrol_dones.size(); ++i) {
    if (!enrol_dones[i]) continue;
    enrol_dones[i](i < result.enrolments.size() ? std::move(result.enrolments[i])
                                                : Internal("no outcome"));
  }
  for (std::size_t i = 0; i < dones.size(); ++i) {
    if (!dones[i]) continue;
    dones[i](i < result.batches.size() ? std::move(result.batches[i])
                                       : Result<IngestOutcome>(Internal("no outcome")));
  }
  return status;
}

bool StoreWriter::has_work_locked() const {
  return !queue_.empty() || !enrolments_.empty() || !health_pending_.empty() ||
         (state_due_ && !dirty_.empty());
}

bool StoreWriter::idle() const {
  std::lock_guard lock(mu_);
  return queue_.empty() && enrolments_.empty() && health_pending_.empty() && dirty_.empty();
}

void StoreWriter::start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable() || stop_) return;
  thread_ = std::thread([this] { run(); });
}

void StoreWriter::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || has_work_locked(); });
    if (stop_) break;
    lock.unlock();
    (void)commit();
    lock.lock();
  }
}

void StoreWriter::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // Write what is left; give up when a transaction fails (the batches then stay
  // unacknowledged, the node state is lost as after a crash).
  while (!idle()) {
    if (!commit(true).ok()) break;
  }
}

StoreWriter::Stats StoreWriter::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace ganglion::cloud
