#include "uplink/sender.h"

#include <atomic>
#include <deque>
#include <mutex>
#include <optional>

#include "base/timer_scope.h"
#include "uplink/token_bucket.h"

namespace ganglion::uplink {
namespace {

struct Batch {
  enum class State : std::uint8_t { kBuilt, kSent, kRetryWait, kAcked };
  std::uint64_t seq = 0;
  std::uint64_t end = 0;
  std::size_t records = 0;
  std::size_t raw_bytes = 0;
  std::string bytes;  // kept until acknowledged, to publish again after a refusal
  State state = State::kBuilt;
  bool attempted = false;
};

struct ClassState {
  std::string name;
  std::string topic;
  log::SegmentLog* log = nullptr;
  Duration linger{};
  // Executor-owned.
  std::uint64_t cursor = 0;   // next offset to read
  std::deque<Batch> batches;  // in offset order: built, in flight, acked (until committed)
  std::optional<MonoTime> linger_deadline;
  std::uint64_t rate_last_acked = 0;
  double avg_record_bytes = 256;  // recent payload size, so reads fetch about one batch
  // Read by stats() from any thread.
  std::atomic<std::uint64_t> batches_sent{0}, batches_acked{0}, batches_refused{0},
      records_acked{0}, bytes_raw{0}, bytes_sent{0};
  std::atomic<std::size_t> inflight{0};
  std::atomic<double> rate{0};
};

}  // namespace

struct Sender::Core : std::enable_shared_from_this<Sender::Core> {
  Core(log::LogStore& s, BatchTransport& t, Clock& c, Executor e, SenderOptions o)
      : store(s),
        transport(t),
        clock(c),
        exec(std::move(e)),
        options(std::move(o)),
        timers(c),
        builder(options.compression, options.zstd_level),
        bucket(options.bandwidth, options.burst, c.now()) {
    if (options.window == 0) options.window = 1;
    if (options.batch_max_records == 0) options.batch_max_records = 1;
    for (const auto& name : store.classes_by_priority()) {
      auto c = std::make_unique<ClassState>();
      c->name = name;
      c->topic = options.topic_prefix + options.node + "/up/" + name;
      c->log = store.find(name);
      c->linger = options.linger;
      for (const auto& [n, d] : options.class_linger) {
        if (n == name) c->linger = d;
      }
      classes.push_back(std::move(c));
    }
  }

  log::LogStore& store;
  BatchTransport& transport;
  Clock& clock;
  Executor exec;
  SenderOptions options;
  TimerScope timers;
  std::vector<std::unique_ptr<ClassState>> classes;  // fixed after construction

  // Executor-owned.
  BatchBuilder builder;
  TokenBucket bucket;
  MonoTime wake_deadline = MonoTime::max();
  TimerId wake_timer = 0;
  MonoTime last_tick{};
  std::uint64_t read_errors = 0;

  std::atomic<bool> pump_posted{false};
  std::atomic<bool> stopped{false};
  std::atomic<bool> link_up{false};
  std::atomic<bool> blocked{false};
  std::atomic<std::uint64_t> commit_failures{0};
  mutable std::mutex mu;
  std::string blocked_reason;  // GUARDED_BY(mu)

  void post(std::function<void(Core&)> fn) {
    std::weak_ptr<Core> weak = weak_from_this();
    exec([weak, fn = std::move(fn)] {
      if (auto self = weak.lock(); self && !self->stopped) fn(*self);
    });
  }

  void notify() {
    if (pump_posted.exchange(true)) return;
    post([](Core& c) { c.pump(); });
  }

  void schedule_wake(MonoTime at) {
    if (at >= wake_deadline) return;
    if (wake_timer) timers.cancel(wake_timer);
    wake_deadline = at;
    const MonoTime now = clock.now();
    std::weak_ptr<Core> weak = weak_from_this();
    wake_timer = timers.schedule_after(at > now ? at - now : Duration::zero(), [weak] {
      if (auto self = weak.lock()) {
        self->post([](Core& c) {
          c.wake_deadline = MonoTime::max();
          c.wake_timer = 0;
          c.pump();
        });
      }
    });
  }

  void schedule_tick() {
    std::weak_ptr<Core> weak = weak_from_this();
    timers.schedule_after(options.tick, [weak] {
      if (auto self = weak.lock()) self->post([](Core& c) { c.tick(); });
    });
  }

  void tick() {
    const MonoTime now = clock.now();
    const double dt = std::chrono::duration<double>(now - last_tick).count();
    last_tick = now;
    if (dt > 0) {
      for (auto& c : classes) {
        const std::uint64_t acked = c->records_acked.load();
        const double inst = static_cast<double>(acked - c->rate_last_acked) / dt;
        c->rate_last_acked = acked;
        const double old = c->rate.load();
        c->rate.store(old == 0 ? inst : 0.7 * old + 0.3 * inst);
      }
    }
    (void)store.enforce_retention();  // TTL; errors are retried next tick
    pump();
    schedule_tick();
  }

  enum class Built { kBatch, kNone, kLinger };

  Built build(ClassState& c, MonoTime now) {
    const std::uint64_t durable = c.log->durable_offset();
    if (c.cursor >= durable) {
      c.linger_deadline.reset();
      return Built::kNone;
    }
    if (c.linger > Duration::zero() && durable - c.cursor < options.batch_max_records) {
      if (!c.linger_deadline) c.linger_deadline = now + c.linger;
      if (now < *c.linger_deadline) {
        schedule_wake(*c.linger_deadline);
        return Built::kLinger;
      }
    }
    // Read about one batch: the log returns up to max_bytes, and what is read beyond
    // batch_max_records would be read again for the next batch.
    const double per_record = c.avg_record_bytes * 1.1 + 32;  // + the log's record header
    const std::size_t want = static_cast<std::size_t>(
        std::min<double>(static_cast<double>(options.batch_max_bytes),
                         static_cast<double>(options.batch_max_records) * per_record));
    auto rb = c.log->read(c.cursor, std::max<std::size_t>(want, 1));
    if (!rb.ok()) {
      ++read_errors;
      schedule_wake(now + options.retry_delay);
      return Built::kNone;
    }
    Batch b;
    b.seq = c.cursor;
    if (rb->empty()) {
      if (rb->next_offset() <= c.cursor) return Built::kNone;
      // Only expired or corrupt records: nothing to send, but the range is done.
      b.end = rb->next_offset();
      b.state = Batch::State::kAcked;
    } else {
      const auto& recs = rb->records();
      const std::size_t n = std::min(recs.size(), options.batch_max_records);
      std::size_t payload = 0;
      for (std::size_t i = 0; i < n; ++i) payload += recs[i].payload.size();
      c.avg_record_bytes =
          0.5 * c.avg_record_bytes + 0.5 * static_cast<double>(payload) / static_cast<double>(n);
      for (std::size_t i = 0; i < n; ++i) {
        builder.add(recs[i].offset, recs[i].timestamp_ms, recs[i].payload);
      }
      b.end = n < recs.size() ? recs[n].offset : rb->next_offset();
      b.records = builder.count();
      b.raw_bytes = builder.raw_bytes();
      auto bytes = builder.finish(options.node, c.name, options.region, b.seq, b.end);
      if (!bytes.ok()) {
        ++read_errors;
        schedule_wake(now + options.retry_delay);
        return Built::kNone;
      }
      b.bytes = std::move(*bytes);
      if (b.records == 0) b.state = Batch::State::kAcked;  // all undecodable (counted nowhere else)
    }
    c.cursor = b.end;
    c.linger_deadline.reset();
    c.batches.push_back(std::move(b));
    if (c.batches.back().state == Batch::State::kAcked) commit_prefix(c);
    return Built::kBatch;
  }

  void publish(ClassState& c, Batch& b) {
    b.state = Batch::State::kSent;
    if (!b.attempted) {
      b.attempted = true;
      c.batches_sent.fetch_add(1);
    }
    c.inflight.fetch_add(1);
    std::weak_ptr<Core> weak = weak_from_this();
    ClassState* cp = &c;
    const std::uint64_t seq = b.seq;
    transport.publish(c.topic, b.bytes, [weak, cp, seq](Status s) {
      if (auto self = weak.lock()) {
        self->post([cp, seq, s](Core& core) { core.on_published(*cp, seq, s); });
      }
    });
  }

  void on_published(ClassState& c, std::uint64_t seq, const Status& s) {
    Batch* b = nullptr;
    for (auto& x : c.batches) {
      if (x.seq == seq && x.state == Batch::State::kSent) b = &x;
    }
    if (!b) return;
    c.inflight.fetch_sub(1);
    if (s.ok()) {
      b->state = Batch::State::kAcked;
      c.batches_acked.fetch_add(1);
      c.records_acked.fetch_add(b->records);
      c.bytes_raw.fetch_add(b->raw_bytes);
      c.bytes_sent.fetch_add(b->bytes.size());
      b->bytes.clear();
      b->bytes.shrink_to_fit();
      commit_prefix(c);
    } else {
      if (s.code() != StatusCode::kCancelled) c.batches_refused.fetch_add(1);
      b->state = Batch::State::kRetryWait;
      std::weak_ptr<Core> weak = weak_from_this();
      ClassState* cp = &c;
      timers.schedule_after(options.retry_delay, [weak, cp, seq] {
        if (auto self = weak.lock()) {
          self->post([cp, seq](Core& core) {
            for (auto& x : cp->batches) {
              if (x.seq == seq && x.state == Batch::State::kRetryWait)
                x.state = Batch::State::kBuilt;
            }
            core.pump();
          });
        }
      });
    }
    pump();
  }

  void commit_prefix(ClassState& c) {
    std::optional<std::uint64_t> to;
    while (!c.batches.empty() && c.batches.front().state == Batch::State::kAcked) {
      to = c.batches.front().end;
      c.batches.pop_front();
    }
    if (!to) return;
    // Durable before anything is deleted; a failure only means duplicates after a restart.
    if (Status s = c.log->commit_consumer(*to); !s.ok()) commit_failures.fetch_add(1);
  }

  void pump() {
    pump_posted.store(false);
    if (stopped) return;
    const MonoTime now = clock.now();
    const bool can_send = link_up && !blocked;
    std::size_t built = 0;
    bool more = false;
    bool sending = can_send;  // false once a higher class waits for the budget
    for (auto& cp : classes) {
      ClassState& c = *cp;
      bool lingering = false;
      while (c.batches.size() < options.window) {
        if (built >= options.max_batches_per_tick) {
          more = true;
          break;
        }
        const Built r = build(c, now);
        if (r == Built::kBatch) {
          ++built;
          continue;
        }
        lingering = r == Built::kLinger;
        break;
      }
      bool waiting = false;  // this class has something it could not send yet
      for (auto& b : c.batches) {
        if (b.state == Batch::State::kSent || b.state == Batch::State::kAcked) continue;
        if (b.state == Batch::State::kRetryWait || !sending) {
          waiting = true;
          break;
        }
        if (!bucket.try_take(b.bytes.size(), now)) {
          schedule_wake(now + bucket.wait_for(b.bytes.size(), now));
          waiting = true;
          sending = false;
          break;
        }
        publish(c, b);
      }
      if (!lingering && c.cursor < c.log->durable_offset()) waiting = true;
      // Strict priority: lower classes neither build nor send while this one waits.
      if (waiting) break;
    }
    if (more) notify();
  }
};

Sender::Sender(log::LogStore& store, BatchTransport& transport, Clock& clock, Executor executor,
               SenderOptions options)
    : core_(std::make_shared<Core>(store, transport, clock, std::move(executor),
                                   std::move(options))) {}

Sender::~Sender() { stop(); }

void Sender::start() {
  core_->post([](Core& c) {
    for (auto& cls : c.classes) cls->cursor = cls->log->consumer_offset();
    c.last_tick = c.clock.now();
    c.schedule_tick();
    c.pump();
  });
}

void Sender::stop() {
  if (core_->stopped.exchange(true)) return;
  core_->timers.close();
}

void Sender::notify() { core_->notify(); }

void Sender::on_link(bool up) {
  core_->link_up.store(up);
  if (up) core_->notify();
}

void Sender::block(std::string reason) {
  {
    std::lock_guard lock(core_->mu);
    core_->blocked_reason = std::move(reason);
  }
  core_->blocked.store(true);
}

SenderStats Sender::stats() const {
  SenderStats s;
  const Core& c = *core_;
  s.link_up = c.link_up.load();
  s.blocked = c.blocked.load();
  {
    std::lock_guard lock(c.mu);
    s.blocked_reason = c.blocked_reason;
  }
  s.commit_failures = c.commit_failures.load();
  for (const auto& cp : c.classes) {
    ClassSendStats x;
    x.name = cp->name;
    const log::LogMetrics m = cp->log->metrics();
    x.backlog_records = m.backlog_records;
    x.backlog_bytes = m.backlog_bytes;
    x.oldest_age_seconds = static_cast<double>(m.oldest_unacked_age_ms) / 1000.0;
    x.dropped_by_quota = m.dropped_by_quota;
    x.expired = m.expired_records + m.expired_skipped;
    x.consumer_offset = cp->log->consumer_offset();
    x.end_offset = cp->log->end_offset();
    x.send_rate = cp->rate.load();
    x.drain_eta_seconds = x.backlog_records == 0 ? 0
                          : x.send_rate > 0.001
                              ? static_cast<double>(x.backlog_records) / x.send_rate
                              : -1;
    x.batches_sent = cp->batches_sent.load();
    x.batches_acked = cp->batches_acked.load();
    x.batches_refused = cp->batches_refused.load();
    x.records_acked = cp->records_acked.load();
    x.bytes_raw = cp->bytes_raw.load();
    x.bytes_sent = cp->bytes_sent.load();
    x.inflight = cp->inflight.load();
    s.classes.push_back(std::move(x));
  }
  return s;
}

}  // namespace ganglion::uplink
