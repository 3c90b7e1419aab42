// SegmentLog: the durable, append-only queue of one data class (store-and-forward).
//
// Producers append records from any thread; a committer thread batches everything queued
// since its last pass into one write and at most one fsync (group commit), so many producers
// share one fsync. A consumer (the uplink) reads records in offset order from its committed
// offset and acknowledges with commit_consumer(); segments wholly below the acknowledged
// offset are deleted. See format.h for the bytes on disk and README.md for the contract.
//
// Offsets: every record gets an offset, increasing by one per append. An append that fails
// (disk full, I/O error) leaves its offset unused, so offsets may have gaps; an offset that
// was reported durable is never reused, not even after a crash.
//
// Durability ("committed per policy"):
//   kAlways   a record is durable when the fsync covering it returned.
//   kInterval the committer fsyncs at most `sync_interval` after a record was appended, or
//             as soon as `sync_bytes` are unsynced; a record is durable after that fsync.
//   kNever    never fsynced per record or interval (only by sync() and when a segment is
//             rolled); a record counts as durable once it was written to the OS. A power
//             loss may lose such records.
// Readers see only records that are durable per the policy, so nothing they saw can vanish
// in a crash (except under kNever).
//
// Thread safety: all public methods are thread-safe. Durability callbacks run on the
// committer thread and must not call back into this log's blocking methods (append, sync).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/env.h"
#include "base/status.h"

namespace ganglion::log {

enum class FsyncPolicy { kAlways, kInterval, kNever };
enum class QuotaPolicy {
  kDropOldest,    // delete the oldest segments, even unacknowledged ones (counted)
  kRefuseNewest,  // appends fail with kResourceExhausted (counted)
};

struct LogOptions {
  FsyncPolicy fsync = FsyncPolicy::kAlways;
  Duration sync_interval = std::chrono::milliseconds(100);  // kInterval
  std::uint64_t sync_bytes = 4u << 20;                      // kInterval
  // A segment is rolled before it would grow past this. Clamped to a quarter of the quota,
  // so that dropping old segments can always make room.
  std::uint64_t segment_bytes = 16u << 20;
  std::uint64_t quota_bytes = UINT64_MAX;  // disk bytes of all segments of this log
  QuotaPolicy quota_policy = QuotaPolicy::kDropOldest;
  // Records whose timestamp is older than now - ttl are not delivered and their segments are
  // deleted by enforce_retention(). Zero: no expiry.
  Duration ttl = Duration::zero();
  // Receives recovery and corruption reports (one line each). Default: stderr.
  std::function<void(std::string_view)> warn;
};

// Counters since open (monotonic) and gauges (current values).
struct LogMetrics {
  std::uint64_t records_appended = 0;
  std::uint64_t bytes_appended = 0;    // payload bytes
  std::uint64_t append_failures = 0;   // records whose write or fsync failed
  std::uint64_t commits = 0;           // committer passes that wrote something
  std::uint64_t syncs = 0;             // fsyncs of segment files
  std::uint64_t refused_by_quota = 0;  // kRefuseNewest rejections
  std::uint64_t dropped_by_quota = 0;  // unacknowledged records deleted by kDropOldest
  std::uint64_t expired_records = 0;   // unacknowledged records deleted by TTL
  std::uint64_t expired_skipped = 0;   // expired records skipped by read()
  std::uint64_t corrupt_records_skipped = 0;
  std::uint64_t torn_tails_truncated = 0;
  std::uint64_t torn_bytes_truncated = 0;
  // Gauges.
  std::uint64_t backlog_records = 0;       // durable records at or after the consumer offset
  std::uint64_t backlog_bytes = 0;         // approximate: whole segments, pro rata in the first
  std::int64_t oldest_unacked_age_ms = 0;  // approximate: oldest timestamp of that segment
  std::uint64_t disk_bytes = 0;
  std::uint64_t segments = 0;
};

// One record as returned by read(); `payload` points into the RecordBatch that holds it.
struct RecordView {
  std::uint64_t offset = 0;
  std::int64_t timestamp_ms = 0;
  std::string_view payload;
};

// Records read in one call, in offset order, sharing one buffer (no per-record allocation).
class RecordBatch {
 public:
  const std::vector<RecordView>& records() const { return records_; }
  bool empty() const { return records_.empty(); }
  std::size_t size() const { return records_.size(); }
  // Where the next read() should start (one past the last record examined).
  std::uint64_t next_offset() const { return next_offset_; }

 private:
  friend class SegmentLog;
  std::unique_ptr<std::string> data_ = std::make_unique<std::string>();
  std::vector<RecordView> records_;
  std::vector<std::size_t> positions_;  // payload positions in data_ while building
  std::uint64_t next_offset_ = 0;
};

class SegmentLog {
 public:
  // Called once when the record is durable per the policy (status ok) or failed.
  using DurableCallback = std::function<void(std::uint64_t offset, const Status& status)>;

  // Opens (creating when absent) the log in directory `dir` and recovers it: every segment is
  // scanned and CRC-checked; a torn tail of the last segment is truncated, corrupt records
  // elsewhere are skipped; both are counted and reported through `options.warn`.
  // `env` and `clock` must outlive the log.
  static Result<std::unique_ptr<SegmentLog>> open(Env& env, Clock& clock, std::string dir,
                                                  LogOptions options = {});
  // Stops the committer. Records not yet written are abandoned (their callbacks get
  // kCancelled); nothing is flushed: call close() first for a clean shutdown.
  ~SegmentLog();
  SegmentLog(const SegmentLog&) = delete;
  SegmentLog& operator=(const SegmentLog&) = delete;

  // Appends a record and returns its offset once it is durable per the policy.
  // Errors: kInvalidArgument (payload over kMaxPayloadBytes), kResourceExhausted (quota,
  // kRefuseNewest), kNoSpace / kIoError (the write or fsync failed; the log stays usable),
  // kFailedPrecondition (closed, or broken by an unrecoverable error: reopen it).
  Result<std::uint64_t> append(std::string_view payload, std::int64_t timestamp_ms);
  // Queues a record and returns its offset at once; `on_durable` (may be empty) runs later on
  // the committer thread. The same immediate errors as append().
  Result<std::uint64_t> append_async(std::string_view payload, std::int64_t timestamp_ms,
                                     DurableCallback on_durable = {});
  // Blocks until the record at `offset` (returned by append_async) is durable per the
  // policy, or returns the error that failed it.
  Status wait_durable(std::uint64_t offset);
  // Writes and fsyncs everything appended before the call, whatever the policy.
  Status sync();
  // sync(), then stops accepting appends. Idempotent.
  Status close();

  // Offset of the first record still on disk.
  std::uint64_t start_offset() const;
  // Offset the next append will get.
  std::uint64_t end_offset() const;
  // Every successfully appended record with an offset below this is durable per the policy.
  std::uint64_t durable_offset() const;

  // Durable records with offset >= from_offset, in order, about max_bytes of payload and
  // headers (at least one record when any is available). Expired and corrupt records are
  // skipped, never returned. Starting below start_offset() starts at start_offset().
  Result<RecordBatch> read(std::uint64_t from_offset, std::size_t max_bytes) const;

  // Records that every record below `offset` was consumed: stored durably (atomic file
  // replace), then segments wholly below it are deleted. Offsets never move backwards.
  Status commit_consumer(std::uint64_t offset);
  std::uint64_t consumer_offset() const;

  // Deletes segments wholly acknowledged or wholly expired (TTL), oldest first. The active
  // segment is never deleted. Called by commit_consumer(); call it periodically for TTL.
  Status enforce_retention();
  // Deletes the oldest segment that is not the active one, acknowledged or not (counted as
  // dropped). Returns false when there is none.
  Result<bool> drop_oldest_segment();

  std::uint64_t disk_bytes() const;
  LogMetrics metrics() const;
  const std::string& dir() const { return dir_; }
  const LogOptions& options() const { return options_; }

 private:
  struct Segment;
  struct Failure {
    std::uint64_t begin;
    std::uint64_t end;
    Status status;
  };
  struct TimerGate;

  SegmentLog(Env& env, Clock& clock, std::string dir, LogOptions options);
  Status recover();
  Status open_active_segment(std::uint64_t base_offset);
  Result<std::uint64_t> enqueue(std::string_view payload, std::int64_t timestamp_ms,
                                DurableCallback cb);
  void committer_loop();
  // Committer only: writes `batch` (encoded records starting at `first_offset`), rolling
  // segments as needed, and fsyncs when `sync_now` or the policy asks for it.
  Status write_batch(const std::string& batch, std::uint64_t first_offset, bool sync_now);
  Status roll_segment(std::uint64_t base_offset);
  Status sync_active();
  void handle_write_failure(const Status& s, std::uint64_t batch_end);
  void on_sync_timer();
  std::uint64_t durable_offset_locked() const;
  Status status_of_locked(std::uint64_t offset) const;
  Status delete_front_segment_locked(std::uint64_t* unacked_records);
  void warn(const std::string& line) const;

  Env& env_;
  Clock& clock_;
  const std::string dir_;
  LogOptions options_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;                // committer waits for work
  std::condition_variable durable_cv_;             // producers wait for durability
  std::deque<std::shared_ptr<Segment>> segments_;  // GUARDED_BY(mu_), by base offset
  std::string pending_;                            // GUARDED_BY(mu_), encoded records
  std::uint64_t pending_first_ = 0;                // GUARDED_BY(mu_)
  std::vector<std::pair<std::uint64_t, DurableCallback>> pending_callbacks_;
  std::vector<std::pair<std::uint64_t, DurableCallback>>
      waiting_callbacks_;              // written, not durable
  std::uint64_t next_offset_ = 0;      // GUARDED_BY(mu_)
  std::uint64_t written_offset_ = 0;   // GUARDED_BY(mu_): below it, written or failed
  std::uint64_t synced_offset_ = 0;    // GUARDED_BY(mu_): below it, fsynced or failed
  std::uint64_t sync_target_ = 0;      // GUARDED_BY(mu_): sync() wants synced_offset_ >= this
  std::deque<Failure> failures_;       // GUARDED_BY(mu_): recent failed ranges
  std::uint64_t consumer_offset_ = 0;  // GUARDED_BY(mu_)
  std::uint64_t error_epoch_ = 0;      // GUARDED_BY(mu_): bumped by every failed pass
  Status last_error_;                  // GUARDED_BY(mu_)
  bool sync_due_ = false;              // GUARDED_BY(mu_): interval timer fired
  bool timer_armed_ = false;           // GUARDED_BY(mu_)
  TimerId timer_id_ = 0;
  bool closed_ = false;           // GUARDED_BY(mu_)
  bool stop_ = false;             // GUARDED_BY(mu_)
  Status broken_;                 // GUARDED_BY(mu_): sticky unrecoverable error
  std::uint64_t disk_bytes_ = 0;  // GUARDED_BY(mu_): files + pending
  mutable LogMetrics m_;          // GUARDED_BY(mu_): counters
  std::mutex consumer_mu_;        // serialises consumer-offset file writes

  // Committer-owned state (no lock needed).
  std::unique_ptr<WritableFile> active_file_;
  std::shared_ptr<Segment> active_;
  std::uint64_t active_size_ = 0;         // bytes written to the active file
  std::uint64_t active_synced_size_ = 0;  // bytes of it known durable per policy
  std::uint64_t unsynced_bytes_ = 0;
  std::string batch_;

  std::shared_ptr<TimerGate> gate_;
  std::thread committer_;
};

}  // namespace ganglion::log
