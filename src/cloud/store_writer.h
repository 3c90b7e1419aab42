// StoreWriter: the controller's write path for what nodes send at a high rate.
//
// Uplink batches must be durable before they are acknowledged (docs/api.md "Delivery");
// heartbeats, reported twins and health changes need not be durable at once. So:
//
//  - Group commit. submit() queues a batch with its completion. One commit takes every batch
//    queued so far (those that arrived while the previous commit ran) and stores them in one
//    transaction, one synchronous commit; only then does it run their completions, in order.
//    Each batch keeps the dedupe semantics of Store::ingest() (it runs under its own
//    savepoint, in arrival order, so a duplicate within one group is seen as one). When the
//    transaction fails, every batch of the group completes with the error: none is
//    acknowledged, and the broker delivers them again when the consumer's session resumes.
//  - Enrolments join the group too: enroll() queues one (token use, node row, audit entry,
//    all or nothing) and its completion runs after the commit that stored it. Enrolments
//    that arrive together share one synchronous commit with each other and with the batches,
//    instead of two commits each (node, then audit) taken one after another.
//  - Write-behind node state. heartbeat() and reported() keep the latest per node in memory
//    (overlay() lays it over what readers got from the store, so the API shows it at once)
//    and mark the node dirty; the dirty nodes are written in the first commit after
//    flush_state() (a timer calls it every cloud.store.flush_interval). health() changes go
//    with the next commit without waiting for a tick. A crash loses at most the heartbeats
//    and reported twins of the last tick (and health changes not yet committed); the node
//    sends them again with its next heartbeat.
//
// Threads: every method is thread-safe. commit() runs one group in the caller (tests drive
// it by hand: no thread, no sleep); start() runs a thread that commits whenever there is
// work. Completions run in the committing thread and must not block on the writer.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "cloud/store.h"

namespace ganglion::cloud {

class StoreWriter {
 public:
  using Done = std::function<void(Result<IngestOutcome>)>;
  using EnrolDone = std::function<void(Status)>;
  // One transaction, for metrics.
  struct CommitInfo {
    bool ok = true;
    std::size_t batches = 0;
    std::size_t enrolments = 0;
    std::size_t state_rows = 0;  // heartbeat, reported and health rows
    Duration elapsed{};          // on the writer's Clock
  };
  struct Options {
    std::size_t max_group_batches = 1024;              // batches per transaction at most
    std::function<void(const CommitInfo&)> on_commit;  // after each transaction, before completions
  };
  struct Stats {
    std::uint64_t commits = 0;         // transactions (successful or not)
    std::uint64_t failed_commits = 0;  // transactions that failed as a whole
    std::uint64_t batches = 0;         // batches committed (duplicates included)
    std::uint64_t enrolments = 0;      // enrolments in committed transactions (refused included)
    std::uint64_t state_rows = 0;      // heartbeat / reported / health rows written
    std::size_t last_group = 0;        // batches in the last transaction
  };

  StoreWriter(Store& store, Clock& clock, Options options);
  StoreWriter(Store& store, Clock& clock) : StoreWriter(store, clock, Options{}) {}
  ~StoreWriter();
  StoreWriter(const StoreWriter&) = delete;
  StoreWriter& operator=(const StoreWriter&) = delete;

  // Queues `batch`; `done` runs after the transaction that stored it (or failed).
  void submit(IngestBatch batch, Done done);
  // Queues an enrolment; `done` runs after the transaction that stored it, with its status
  // (kPermissionDenied: token invalid, expired or used up; another error: not stored). After
  // stop() it runs at once with kUnavailable.
  void enroll(Enrolment enrolment, EnrolDone done);

  // Write-behind node state.
  void heartbeat(HeartbeatUpdate h);
  // Records a reported twin and returns its version: one more than the last one known here,
  // or than `stored_version()` (the store's) the first time the node reports.
  std::int64_t reported(const std::string& node, std::string json, std::int64_t ts_ms,
                        const std::function<std::int64_t()>& stored_version);
  void health(HealthChange change);

  // Lays the latest in-memory heartbeat, reported twin and health of `n.id` over `n`.
  void overlay(NodeRecord& n) const;
  // Health changes of `node` not yet committed, oldest first.
  std::vector<HealthChange> unwritten_health(const std::string& node) const;

  // The node state goes with the next commit (the thread wakes up for it).
  void flush_state();
  // Commits one group: up to max_group_batches queued batches, every queued enrolment, the
  // pending health changes
  // and, when a flush was asked for or `with_state`, the dirty node state. Runs the batches'
  // completions afterwards in the caller. Returns the transaction's status (ok when there
  // was nothing to do).
  Status commit(bool with_state = false);
  // True when nothing waits to be written.
  bool idle() const;

  // Starts the committing thread.
  void start();
  // Stops the thread after writing everything still queued (batches and node state).
  // Idempotent; also called by the destructor.
  void stop();

  Stats stats() const;

 private:
  struct Latest {
    std::optional<HeartbeatUpdate> heartbeat;
    std::optional<ReportedUpdate> reported;
    std::optional<HealthChange> health;
  };
  struct Queued {
    IngestBatch batch;
    Done done;
  };
  bool has_work_locked() const;
  void run();

  Store& store_;
  Clock& clock_;
  Options options_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Queued> queue_;
  std::vector<std::pair<Enrolment, EnrolDone>> enrolments_;
  std::map<std::string, Latest> latest_;
  std::set<std::string> dirty_;
  std::vector<HealthChange> health_pending_;
  std::vector<HealthChange> health_inflight_;
  bool state_due_ = false;
  bool stop_ = false;
  Stats stats_;
  std::mutex commit_mu_;  // one commit at a time (the thread, or a test)
  std::thread thread_;
};

}  // namespace ganglion::cloud
