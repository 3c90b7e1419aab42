// Sender: drains the uplink log upstream, batch by batch, acknowledged batch by batch.
//
// For each class of the LogStore, highest priority first, it reads durable records from its
// send cursor, builds a batch (batch_format.h; by count, bytes, or after `linger`), and hands
// it to a BatchTransport with QoS 1 to <topic_prefix><node>/up/<class>. A batch counts as
// delivered only when the transport reports its PUBACK; then the class's consumer offset is
// committed durably (SegmentLog::commit_consumer) up to the longest acknowledged prefix, and
// the log may delete the segments below. Nothing is deleted before its acknowledgement.
//
// Order and priority: within a class batches are sent in offset order, at most `window` in
// flight, committed in order. A class is served only when no higher-priority class has
// records waiting to be sent (strict priority: alerts drain before telemetry, telemetry
// before bulk). Batches wait for the bandwidth budget (TokenBucket) in priority order too.
//
// Link: batches are published only while the transport is connected (on_link(true));
// published ones stay with the transport across reconnects (MqttClient resends them), and
// draining starts at once when the link comes back. A batch the receiver refuses (reason
// >= 0x80) is published again after `retry_delay` (counted): refusals block the class
// rather than lose data.
//
// Thread model: every piece of work runs as a task on the Executor given (one at a time,
// never inline); at most `max_batches_per_tick` batches are built per task before the task
// re-posts itself, so the executor stays responsive. Public methods are thread-safe and may
// be called from any thread (they post). The LogStore, transport and clock must outlive the
// Sender; destroy it when its executor runs no more of its tasks (posted tasks hold only a
// weak reference and do nothing afterwards).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "log/log_store.h"
#include "uplink/batch_format.h"

namespace ganglion::uplink {

// Where batches go: MqttClient in the node (uplink.cc), an in-memory receiver in tests.
class BatchTransport {
 public:
  using Completion = std::function<void(Status status)>;
  virtual ~BatchTransport() = default;
  // Publishes `bytes` with QoS 1 to `topic`. `done` runs exactly once, on any thread: ok when
  // the receiver acknowledged (PUBACK, reason < 0x80); kCancelled when the transport was
  // stopped first; any other error when the receiver refused it. Until then the transport
  // keeps the message across reconnects.
  virtual void publish(std::string topic, std::string bytes, Completion done) = 0;
};

// Runs a task later on the sender's thread; must not run it inline.
using Executor = std::function<void(std::function<void()>)>;

struct SenderOptions {
  std::string node = "edge-local";
  std::string region;                         // carried in every batch
  std::string topic_prefix = "ganglion/v1/";  // + <node>/up/<class>
  std::size_t batch_max_records = 1000;
  std::size_t batch_max_bytes = 256u << 10;          // payload bytes before compression, about
  Duration linger = std::chrono::milliseconds(500);  // wait for a fuller batch at most this
  // Per-class linger (by class name) overriding `linger`, e.g. alerts: 0.
  std::vector<std::pair<std::string, Duration>> class_linger;
  std::size_t window = 1;  // batches in flight per class
  Compression compression = Compression::kZstd;
  int zstd_level = 3;
  std::uint64_t bandwidth = 0;  // bytes per second of batches; 0 = unlimited
  std::uint64_t burst = 0;      // bucket size in bytes; 0 = one second of bandwidth
  std::size_t max_batches_per_tick = 4;
  Duration retry_delay = std::chrono::seconds(5);
  // Rates, TTL retention and a fallback poll for new records run this often.
  Duration tick = std::chrono::seconds(1);
};

struct ClassSendStats {
  std::string name;
  std::uint64_t backlog_records = 0;  // durable, not yet acknowledged (log's gauge)
  std::uint64_t backlog_bytes = 0;    // approximate (log's gauge)
  double oldest_age_seconds = 0;      // approximate (log's gauge)
  double send_rate = 0;               // acknowledged records per second, recent average
  double drain_eta_seconds = -1;      // backlog / send_rate; -1 when unknown (rate 0)
  std::uint64_t consumer_offset = 0;
  std::uint64_t end_offset = 0;
  std::uint64_t batches_sent = 0;  // publishes (first attempts)
  std::uint64_t batches_acked = 0;
  std::uint64_t batches_refused = 0;  // refused by the receiver, sent again later
  std::uint64_t records_acked = 0;
  std::uint64_t bytes_raw = 0;         // batch bodies before compression (acked batches)
  std::uint64_t bytes_sent = 0;        // batch bytes after compression (acked batches)
  std::uint64_t dropped_by_quota = 0;  // log: unacknowledged records deleted (drop-oldest)
  std::uint64_t expired = 0;           // log: unacknowledged records deleted by TTL
  std::size_t inflight = 0;
};

struct SenderStats {
  bool link_up = false;
  bool blocked = false;  // block() was called (e.g. region not allowed)
  std::string blocked_reason;
  std::uint64_t commit_failures = 0;
  std::vector<ClassSendStats> classes;  // highest priority first
};

class Sender {
 public:
  Sender(log::LogStore& store, BatchTransport& transport, Clock& clock, Executor executor,
         SenderOptions options);
  ~Sender();
  Sender(const Sender&) = delete;
  Sender& operator=(const Sender&) = delete;

  // Starts from each class's committed consumer offset and arms the tick.
  void start();
  // No more publishes or commits; batches in flight are left to the transport (and sent
  // again from the log after a restart, as duplicates the sequence identifies). Idempotent.
  void stop();

  // New durable records may be available (coalesced: cheap to call per record).
  void notify();
  // The transport's link went up or down.
  void on_link(bool up);
  // Stops publishing for `reason` (data policy); records keep accumulating in the log.
  void block(std::string reason);

  SenderStats stats() const;

 private:
  struct Core;
  std::shared_ptr<Core> core_;
};

}  // namespace ganglion::uplink
