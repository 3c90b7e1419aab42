// RuleRuntime: one running rule (internal to the rule manager). Owns the rule's executor,
// its client of the broker, its sinks and its planned Query.
//
//   offer(source, event)  [source client's thread]  bounded queue -> the rule's executor
//   Query::push -> emissions collected during push -> sinks, after push returned, outside
//   the Query's lock; windows closed by the Clock's timer thread are posted to the executor.
//
// Until the rule's client is connected, events wait in the executor (so the first outputs
// are not published before CONNACK). teardown() stops the executor first: afterwards no task
// of the rule runs, then the Query (its timers), the client and the sinks go.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/metrics.h"
#include "broker/inprocess_client.h"
#include "event/event.h"
#include "rules/executor.h"
#include "rules/sinks.h"
#include "stream/functions.h"
#include "stream/query.h"

namespace ganglion::rules {

class RuleRuntime {
 public:
  RuleRuntime(std::string id, Clock& clock, std::size_t capacity, Histogram* latency);
  ~RuleRuntime();  // teardown()

  // Wiring, before start(): executor, client, SQL functions, sinks, query.
  std::unique_ptr<SerialExecutor> executor;
  std::unique_ptr<broker::InProcessClient> client;
  std::shared_ptr<sql::FunctionRegistry> sql_functions;
  std::vector<std::unique_ptr<Sink>> sinks;
  std::unique_ptr<stream::Query> query;

  // The Query's sink: call from push() (on the executor) or a timer (any thread).
  void on_emission(const stream::Emission& e);
  // Connects the client; events offered before CONNACK wait.
  void start();
  // Enqueues an event of query->sources()[source]; drops and counts it when the queue is full.
  // Thread-safe.
  void offer(std::size_t source, const Event& event);
  // Stops everything; idempotent. Not from the rule's executor.
  void teardown();

  const std::string& id() const { return id_; }
  std::size_t queued() const { return queued_.load(std::memory_order_relaxed); }
  std::size_t queued_bytes() const { return queued_bytes_.load(std::memory_order_relaxed); }
  std::uint64_t dropped_queue_full() const { return dropped_.load(std::memory_order_relaxed); }
  std::uint64_t source_in(std::size_t i) const {
    return i < source_in_.size() ? source_in_[i]->load() : 0;
  }
  std::uint64_t offered() const { return offered_.load(std::memory_order_relaxed); }
  std::int64_t last_invocation_ms() const { return last_ms_.load(std::memory_order_relaxed); }
  std::int64_t last_latency_us() const { return last_latency_us_.load(std::memory_order_relaxed); }
  std::string connect_error() const;

 private:
  void process(std::size_t source, const Event& event, MonoTime enqueued);
  void deliver(const stream::Emission& e);

  std::string id_;
  Clock& clock_;
  std::size_t capacity_;
  Histogram* latency_;
  std::vector<std::unique_ptr<std::atomic<std::uint64_t>>> source_in_;
  std::atomic<std::size_t> queued_{0};
  std::atomic<std::size_t> queued_bytes_{0};
  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<std::uint64_t> offered_{0};
  std::atomic<std::int64_t> last_ms_{0};
  std::atomic<std::int64_t> last_latency_us_{0};
  // Executor-only state.
  bool connected_ = false;
  std::deque<std::pair<std::size_t, Event>> waiting_;  // offered before CONNACK
  std::vector<stream::Emission> collected_;            // emitted during the current push
  bool in_push_ = false;
  mutable std::mutex error_mu_;
  std::string connect_error_;
  bool torn_down_ = false;
};

}  // namespace ganglion::rules
