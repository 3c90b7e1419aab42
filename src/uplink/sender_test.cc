// The sender against an in-memory receiver: MemEnv/FaultEnv for the log, a ManualClock, a
// manual executor. No sockets, no sleeps.
#include "uplink/sender.h"
#include "base/manual_executor.h"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <set>

#include "base/fault_env.h"
#include "base/mem_env.h"

namespace ganglion::uplink {
namespace {

// The receiver: keeps every PUBLISH; the test acknowledges or refuses them. Deduplicates
// like a cloud ingest would: per class, records below the last ingested batch's end.
class MemoryReceiver final : public BatchTransport {
 public:
  struct Pending {
    std::string topic;
    std::string bytes;
    Completion done;
  };
  void publish(std::string topic, std::string bytes, Completion done) override {
    pending.push_back({std::move(topic), std::move(bytes), std::move(done)});
    ++published;
  }
  // Acknowledges the oldest pending publish and ingests it; returns its header.
  BatchHeader ack_next() {
    Pending p = std::move(pending.front());
    pending.pop_front();
    BatchHeader h = ingest(p.bytes);
    p.done(Status::Ok());
    return h;
  }
  void refuse_next() {
    Pending p = std::move(pending.front());
    pending.pop_front();
    p.done(Unavailable("quota exceeded (0x97)"));
  }
  std::size_t ack_all() {
    std::size_t n = 0;
    while (!pending.empty()) {
      ack_next();
      ++n;
    }
    return n;
  }
  BatchHeader ingest(const std::string& bytes) {
    auto d = decode_batch(bytes);
    EXPECT_TRUE(d.ok()) << d.status().to_string();
    if (!d.ok()) return {};
    auto& hwm = end_of[d->header.cls];
    for (const auto& r : d->records) {
      if (r.offset < hwm) {
        ++duplicates;
        continue;
      }
      EXPECT_TRUE(records[d->header.cls].empty() || records[d->header.cls].back().offset < r.offset)
          << "order within class";
      records[d->header.cls].push_back(r);
    }
    EXPECT_GE(d->header.end, hwm);
    hwm = std::max(hwm, d->header.end);
    order.push_back(d->header.cls);
    headers.push_back(d->header);
    return d->header;
  }

  std::deque<Pending> pending;
  std::size_t published = 0;
  std::size_t duplicates = 0;
  std::map<std::string, std::uint64_t> end_of;
  std::map<std::string, std::vector<BatchRecord>> records;
  std::vector<std::string> order;
  std::vector<BatchHeader> headers;
};

log::StoreOptions three_classes(log::FsyncPolicy fsync = log::FsyncPolicy::kAlways,
                                std::uint64_t segment_bytes = 16u << 20) {
  log::StoreOptions o;
  int prio = 2;
  for (const char* name : {"alert", "telemetry", "bulk"}) {
    log::ClassOptions c;
    c.name = name;
    c.priority = prio--;
    c.log.fsync = fsync;
    c.log.segment_bytes = segment_bytes;
    c.log.warn = [](std::string_view) {};
    o.classes.push_back(c);
  }
  return o;
}

class SenderTest : public ::testing::Test {
 protected:
  void open(Env& env, log::StoreOptions so = three_classes()) {
    auto s = log::LogStore::open(env, clock, "/uplink", std::move(so));
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    store = std::move(*s);
  }
  void start_sender(SenderOptions o = default_options()) {
    sender = std::make_unique<Sender>(*store, receiver, clock, exec.executor(), o);
    sender->start();
    exec.drain();
  }
  static SenderOptions default_options() {
    SenderOptions o;
    o.node = "n1";
    o.region = "eu-west";
    o.batch_max_records = 10;
    o.linger = Duration::zero();
    return o;
  }
  void append(std::string_view cls, int n, std::string_view topic = "t") {
    for (int i = 0; i < n; ++i) {
      auto rec = encode_record(topic, std::string(cls) + "-" + std::to_string(next_id++));
      ASSERT_TRUE(store->append(cls, *rec, clock.wall_ms()).ok());
    }
    sender->notify();
    exec.drain();
  }
  void pump() {
    sender->notify();
    exec.drain();
  }
  log::SegmentLog& log_of(std::string_view cls) { return *store->find(cls); }

  MemEnv mem;
  ManualClock clock;
  ManualExecutor exec;
  MemoryReceiver receiver;
  std::unique_ptr<log::LogStore> store;
  std::unique_ptr<Sender> sender;
  int next_id = 0;
};

TEST_F(SenderTest, SendsNothingWhileTheLinkIsDown) {
  open(mem);
  start_sender();
  append("telemetry", 25);
  EXPECT_EQ(receiver.published, 0u);
  sender->on_link(true);
  exec.drain();
  EXPECT_EQ(receiver.published, 1u);  // window 1
}

TEST_F(SenderTest, CommitsTheConsumerOffsetOnlyOnAck) {
  open(mem);
  start_sender();
  sender->on_link(true);
  append("telemetry", 10);
  ASSERT_EQ(receiver.pending.size(), 1u);
  EXPECT_EQ(receiver.pending[0].topic, "ganglion/v1/n1/up/telemetry");
  EXPECT_EQ(log_of("telemetry").consumer_offset(), 0u);
  auto h = receiver.ack_next();
  exec.drain();
  EXPECT_EQ(h.sequence, 0u);
  EXPECT_EQ(h.end, 10u);
  EXPECT_EQ(h.count, 10u);
  EXPECT_EQ(h.node, "n1");
  EXPECT_EQ(h.region, "eu-west");
  EXPECT_EQ(log_of("telemetry").consumer_offset(), 10u);
  auto st = sender->stats();
  EXPECT_EQ(st.classes[1].name, "telemetry");
  EXPECT_EQ(st.classes[1].batches_acked, 1u);
  EXPECT_EQ(st.classes[1].records_acked, 10u);
  EXPECT_EQ(st.classes[1].backlog_records, 0u);
  EXPECT_GT(st.classes[1].bytes_raw, 0u);
}

TEST_F(SenderTest, DeletesNothingBeforeTheAck) {
  open(mem, three_classes(log::FsyncPolicy::kAlways, 4096));
  start_sender();
  sender->on_link(true);
  append("bulk", 500, "a-longer-topic/for/bulk/data");
  ASSERT_GT(log_of("bulk").metrics().segments, 3u);
  EXPECT_EQ(log_of("bulk").start_offset(), 0u);
  // Publishes pile up unacknowledged (the link is flaky): nothing leaves the disk.
  for (int i = 0; i < 5; ++i) pump();
  EXPECT_EQ(log_of("bulk").start_offset(), 0u);
  while (!receiver.pending.empty()) {
    receiver.ack_next();
    exec.drain();
  }
  EXPECT_EQ(log_of("bulk").consumer_offset(), 500u);
  EXPECT_GT(log_of("bulk").start_offset(), 400u);  // all but the active segment deleted
  EXPECT_EQ(receiver.records["bulk"].size(), 500u);
}

TEST_F(SenderTest, AlertsDrainBeforeTelemetryBeforeBulk) {
  open(mem);
  start_sender();
  append("bulk", 20);
  append("telemetry", 20);
  append("alert", 20);
  sender->on_link(true);
  exec.drain();
  while (!receiver.pending.empty()) {
    receiver.ack_next();
    exec.drain();
  }
  std::vector<std::string> want = {"alert", "alert", "telemetry", "telemetry", "bulk", "bulk"};
  EXPECT_EQ(receiver.order, want);
}

TEST_F(SenderTest, NewAlertsOvertakeATelemetryBacklog) {
  open(mem);
  start_sender();
  append("telemetry", 50);
  sender->on_link(true);
  exec.drain();
  receiver.ack_next();  // telemetry batch 1
  append("alert", 3);   // arrives while telemetry drains
  exec.drain();
  receiver.ack_all();
  exec.drain();
  receiver.ack_all();
  exec.drain();
  ASSERT_GE(receiver.order.size(), 3u);
  // The alert goes next, ahead of the 40 telemetry records still waiting.
  EXPECT_EQ(receiver.order[0], "telemetry");
  EXPECT_EQ(receiver.order[1], "alert");
  EXPECT_EQ(receiver.order[2], "telemetry");
}

TEST_F(SenderTest, KeepsOrderWithinAClassWithAWindow) {
  open(mem);
  SenderOptions o = default_options();
  o.window = 4;
  start_sender(o);
  sender->on_link(true);
  append("telemetry", 95);
  EXPECT_EQ(receiver.pending.size(), 4u);
  std::uint64_t expect_seq = 0;
  while (!receiver.pending.empty()) {
    auto h = receiver.ack_next();
    EXPECT_EQ(h.sequence, expect_seq);
    expect_seq = h.end;
    exec.drain();
  }
  EXPECT_EQ(expect_seq, 95u);
  EXPECT_EQ(receiver.records["telemetry"].size(), 95u);
  EXPECT_EQ(log_of("telemetry").consumer_offset(), 95u);
}

TEST_F(SenderTest, CommitsInOrderWhenAcksArriveOutOfOrder) {
  open(mem);
  SenderOptions o = default_options();
  o.window = 3;
  start_sender(o);
  sender->on_link(true);
  append("telemetry", 30);
  ASSERT_EQ(receiver.pending.size(), 3u);
  // Ack the second batch first: nothing may be committed past the first.
  auto second = std::move(receiver.pending[1]);
  receiver.pending.erase(receiver.pending.begin() + 1);
  second.done(Status::Ok());
  exec.drain();
  EXPECT_EQ(log_of("telemetry").consumer_offset(), 0u);
  receiver.ack_next();
  exec.drain();
  EXPECT_EQ(log_of("telemetry").consumer_offset(), 20u);
}

TEST_F(SenderTest, WaitsForALingeringBatchToFill) {
  open(mem);
  SenderOptions o = default_options();
  o.linger = std::chrono::milliseconds(500);
  start_sender(o);
  sender->on_link(true);
  append("telemetry", 3);
  EXPECT_EQ(receiver.published, 0u);
  clock.advance(std::chrono::milliseconds(499));
  exec.drain();
  EXPECT_EQ(receiver.published, 0u);
  clock.advance(std::chrono::milliseconds(1));
  exec.drain();
  ASSERT_EQ(receiver.published, 1u);
  EXPECT_EQ(receiver.ack_next().count, 3u);
  // A full batch does not wait.
  exec.drain();
  append("telemetry", 10);
  EXPECT_EQ(receiver.published, 2u);
}

TEST_F(SenderTest, ObeysTheBandwidthBudget) {
  open(mem);
  SenderOptions o = default_options();
  o.compression = Compression::kNone;
  o.bandwidth = 1000;  // bytes per second
  o.burst = 1000;
  o.window = 16;
  start_sender(o);
  sender->on_link(true);
  // Each batch is 10 records of ~90 bytes: about 1 KiB on the wire.
  append("telemetry", 100, std::string(60, 'x'));
  ASSERT_EQ(receiver.published, 1u);  // the burst
  const std::size_t batch = receiver.pending[0].bytes.size();
  ASSERT_GT(batch, 900u);
  std::size_t sent_bytes = batch;
  // Over ten simulated seconds about 10 KB more may go, never more than rate * t + burst.
  for (int ms = 0; ms < 10'000; ms += 50) {
    clock.advance(std::chrono::milliseconds(50));
    exec.drain();
    sent_bytes = 0;
    for (const auto& p : receiver.pending) sent_bytes += p.bytes.size();
    const double allowed = 1000.0 * (ms + 50) / 1000.0 + 1000 + batch;
    ASSERT_LE(static_cast<double>(sent_bytes), allowed) << "at " << ms << " ms";
  }
  EXPECT_GE(receiver.published, 9u);
  EXPECT_LE(receiver.published, 11u);
}

TEST_F(SenderTest, PublishesARefusedBatchAgainLater) {
  open(mem);
  SenderOptions o = default_options();
  o.retry_delay = std::chrono::seconds(5);
  start_sender(o);
  sender->on_link(true);
  append("alert", 5);
  receiver.refuse_next();
  exec.drain();
  EXPECT_EQ(receiver.pending.size(), 0u);
  EXPECT_EQ(sender->stats().classes[0].batches_refused, 1u);
  clock.advance(std::chrono::seconds(5));
  exec.drain();
  ASSERT_EQ(receiver.pending.size(), 1u);
  EXPECT_EQ(receiver.ack_next().sequence, 0u);
  exec.drain();
  EXPECT_EQ(log_of("alert").consumer_offset(), 5u);
  EXPECT_EQ(sender->stats().classes[0].batches_sent, 1u);  // one batch, two attempts
}

TEST_F(SenderTest, BlockedSenderKeepsRecordsInTheLog) {
  open(mem);
  start_sender();
  sender->block("region us-east not allowed");
  sender->on_link(true);
  append("alert", 5);
  EXPECT_EQ(receiver.published, 0u);
  EXPECT_TRUE(sender->stats().blocked);
  EXPECT_EQ(sender->stats().classes[0].backlog_records, 5u);
}

TEST_F(SenderTest, RedeliversAfterACrashOnlyWhatTheSequenceIdentifiesAsDuplicates) {
  FaultEnv fault(mem);
  open(fault);
  start_sender();
  sender->on_link(true);
  append("telemetry", 35);
  receiver.ack_next();  // [0,10) acked and committed
  exec.drain();
  receiver.ack_next();  // [10,20) acked and committed
  exec.drain();
  ASSERT_EQ(receiver.pending.size(), 1u);
  // The receiver got [20,30) but its PUBACK never reached the node: power fails.
  receiver.ingest(receiver.pending.front().bytes);
  receiver.pending.clear();
  ASSERT_TRUE(fault.crash().ok());
  sender.reset();
  store.reset();
  fault.restart();
  open(fault);
  start_sender();
  sender->on_link(true);
  exec.drain();
  while (!receiver.pending.empty()) {
    receiver.ack_next();
    exec.drain();
  }
  // Everything arrived once; the resent batch had the same sequence, and its records are
  // exactly the duplicates.
  EXPECT_EQ(receiver.records["telemetry"].size(), 35u);
  EXPECT_EQ(receiver.duplicates, 10u);
  std::vector<std::uint64_t> seqs;
  for (const auto& h : receiver.headers) seqs.push_back(h.sequence);
  EXPECT_EQ(seqs, (std::vector<std::uint64_t>{0, 10, 20, 20, 30}));
  for (std::size_t i = 0; i < 35; ++i) EXPECT_EQ(receiver.records["telemetry"][i].offset, i);
}

TEST_F(SenderTest, DrainsAMillionRecordsPiledUpWhileTheReceiverWasDown) {
  open(mem, three_classes(log::FsyncPolicy::kNever));
  SenderOptions o = default_options();
  o.batch_max_records = 5000;
  o.batch_max_bytes = 1 << 20;
  o.window = 4;
  o.max_batches_per_tick = 8;
  start_sender(o);
  constexpr int kRecords = 1'000'000;
  std::string rec = *encode_record("s/1", "0123456789");
  auto& log = log_of("telemetry");
  for (int i = 0; i < kRecords; ++i) {
    ASSERT_TRUE(log.append_async(rec, 1).ok());
  }
  ASSERT_TRUE(log.sync().ok());
  pump();
  EXPECT_EQ(receiver.published, 0u);
  EXPECT_EQ(sender->stats().classes[1].backlog_records, static_cast<std::uint64_t>(kRecords));
  sender->on_link(true);
  exec.drain();
  std::size_t batches = 0;
  while (!receiver.pending.empty()) {
    batches += receiver.ack_all();
    exec.drain();
  }
  EXPECT_EQ(batches, kRecords / 5000u);
  ASSERT_EQ(receiver.records["telemetry"].size(), static_cast<std::size_t>(kRecords));
  EXPECT_EQ(receiver.records["telemetry"].back().offset, kRecords - 1u);
  EXPECT_EQ(receiver.duplicates, 0u);
  EXPECT_EQ(log.consumer_offset(), static_cast<std::uint64_t>(kRecords));
  EXPECT_EQ(sender->stats().classes[1].backlog_records, 0u);
}

TEST_F(SenderTest, SurvivesAFlappingReceiver) {
  open(mem);
  SenderOptions o = default_options();
  o.window = 2;
  start_sender(o);
  std::mt19937 rng(7);
  int appended = 0;
  for (int round = 0; round < 200; ++round) {
    const int n = static_cast<int>(rng() % 7);
    append(rng() % 4 == 0 ? "alert" : "telemetry", n);
    appended += n;
    switch (rng() % 5) {
      case 0:
        sender->on_link(false);
        break;
      case 1:
        sender->on_link(true);
        break;
      case 2:  // a lost session: the transport delivers a publish twice, then acks it
        if (!receiver.pending.empty()) {
          receiver.ingest(receiver.pending.front().bytes);
          receiver.ack_next();
        }
        break;
      default:
        if (!receiver.pending.empty()) receiver.ack_next();
    }
    exec.drain();
    clock.advance(std::chrono::milliseconds(10));
    exec.drain();
  }
  sender->on_link(true);
  exec.drain();
  while (!receiver.pending.empty()) {
    receiver.ack_all();
    exec.drain();
  }
  const std::size_t got = receiver.records["alert"].size() + receiver.records["telemetry"].size();
  EXPECT_EQ(got, static_cast<std::size_t>(appended));
  for (const auto& cls : {"alert", "telemetry"}) {
    EXPECT_EQ(log_of(cls).consumer_offset(), log_of(cls).end_offset()) << cls;
  }
}

}  // namespace
}  // namespace ganglion::uplink
