#include "log/segment_log.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <latch>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "base/fault_env.h"
#include "base/forwarding_env.h"
#include "base/mem_env.h"
#include "log/format.h"

namespace ganglion::log {
namespace {

using namespace std::chrono_literals;

const std::string kDir = "/node/log/telemetry";

std::string payload_for(std::uint64_t i, std::size_t len = 40) {
  std::string s = "record-" + std::to_string(i) + "-";
  while (s.size() < len) s += static_cast<char>('a' + (i + s.size()) % 26);
  return s;
}

std::vector<std::pair<std::uint64_t, std::string>> read_all(const SegmentLog& log,
                                                            std::uint64_t from = 0,
                                                            std::size_t page = 1000) {
  std::vector<std::pair<std::uint64_t, std::string>> out;
  for (;;) {
    auto batch = log.read(from, page);
    EXPECT_TRUE(batch.ok()) << batch.status().to_string();
    if (!batch.ok() || batch->empty()) break;
    for (const auto& r : batch->records()) out.emplace_back(r.offset, std::string(r.payload));
    from = batch->next_offset();
  }
  return out;
}

std::vector<std::string> segment_files(Env& env, const std::string& dir) {
  std::vector<std::string> out;
  auto names = env.list_dir(dir);
  if (!names.ok()) return out;
  for (const auto& n : *names) {
    std::uint64_t base;
    if (parse_segment_file_name(n, base)) out.push_back(join_path(dir, n));
  }
  return out;
}

struct Fixture {
  MemEnv mem;
  FaultEnv fault{mem};
  ManualClock clock;
  std::vector<std::string> warnings;
  std::mutex warn_mu;

  LogOptions opts(FsyncPolicy p = FsyncPolicy::kAlways) {
    LogOptions o;
    o.fsync = p;
    o.warn = [this](std::string_view w) {
      std::lock_guard l(warn_mu);
      warnings.emplace_back(w);
    };
    return o;
  }
  std::unique_ptr<SegmentLog> open(LogOptions o) {
    auto log = SegmentLog::open(fault, clock, kDir, std::move(o));
    EXPECT_TRUE(log.ok()) << log.status().to_string();
    return log.ok() ? std::move(log).value() : nullptr;
  }
};

TEST(SegmentLog, RoundTripInOrder) {
  Fixture f;
  auto log = f.open(f.opts());
  for (std::uint64_t i = 0; i < 200; ++i) {
    auto off = log->append(payload_for(i), 1000 + static_cast<std::int64_t>(i));
    ASSERT_TRUE(off.ok()) << off.status().to_string();
    EXPECT_EQ(*off, i);
  }
  EXPECT_EQ(log->durable_offset(), 200u);
  auto batch = log->read(0, 1 << 20);
  ASSERT_TRUE(batch.ok());
  ASSERT_EQ(batch->size(), 200u);
  for (std::uint64_t i = 0; i < 200; ++i) {
    EXPECT_EQ(batch->records()[i].offset, i);
    EXPECT_EQ(batch->records()[i].timestamp_ms, 1000 + static_cast<std::int64_t>(i));
    EXPECT_EQ(batch->records()[i].payload, payload_for(i));
  }
  // Small pages return at least one record each and resume where they stopped.
  auto paged = read_all(*log, 0, 1);
  ASSERT_EQ(paged.size(), 200u);
  EXPECT_EQ(paged[123].second, payload_for(123));
  auto tail = read_all(*log, 150);
  ASSERT_EQ(tail.size(), 50u);
  EXPECT_EQ(tail.front().first, 150u);
  auto m = log->metrics();
  EXPECT_EQ(m.records_appended, 200u);
  EXPECT_EQ(m.backlog_records, 200u);
}

TEST(SegmentLog, RollsSegmentsAndReadsAcrossThem) {
  Fixture f;
  auto o = f.opts();
  o.segment_bytes = 1000;
  auto log = f.open(o);
  for (std::uint64_t i = 0; i < 100; ++i) ASSERT_TRUE(log->append_async(payload_for(i), 1).ok());
  ASSERT_TRUE(log->sync().ok());
  EXPECT_GT(segment_files(f.mem, kDir).size(), 5u);
  auto all = read_all(*log, 0, 300);
  ASSERT_EQ(all.size(), 100u);
  for (std::uint64_t i = 0; i < 100; ++i) EXPECT_EQ(all[i], std::make_pair(i, payload_for(i)));
  for (const auto& path : segment_files(f.mem, kDir)) {
    EXPECT_LE(*f.mem.file_size(path), 1000u) << path;
  }
}

TEST(SegmentLog, RecoversAfterReopenAndContinuesOffsets) {
  Fixture f;
  auto o = f.opts();
  o.segment_bytes = 2000;
  {
    auto log = f.open(o);
    for (std::uint64_t i = 0; i < 120; ++i) ASSERT_TRUE(log->append(payload_for(i), 5).ok());
    ASSERT_TRUE(log->close().ok());
    EXPECT_FALSE(log->append("late", 1).ok());
  }
  auto log = f.open(o);
  EXPECT_EQ(log->end_offset(), 120u);
  EXPECT_EQ(log->metrics().torn_tails_truncated, 0u);
  EXPECT_EQ(log->metrics().corrupt_records_skipped, 0u);
  auto off = log->append("after-reopen", 6);
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(*off, 120u);
  auto all = read_all(*log);
  ASSERT_EQ(all.size(), 121u);
  EXPECT_EQ(all[77].second, payload_for(77));
  EXPECT_EQ(all[120].second, "after-reopen");
}

TEST(SegmentLog, DropsTornTailAfterPowerLoss) {
  Fixture f;
  auto o = f.opts(FsyncPolicy::kInterval);
  o.sync_interval = 1s;
  o.sync_bytes = 1 << 30;
  {
    auto log = f.open(o);
    std::uint64_t last = 0;
    for (std::uint64_t i = 0; i < 10; ++i) last = *log->append_async(payload_for(i), 1);
    f.clock.advance(1s);  // the interval fsync makes the first ten durable
    ASSERT_TRUE(log->wait_durable(last).ok());
    for (std::uint64_t i = 10; i < 15; ++i) ASSERT_TRUE(log->append_async(payload_for(i), 1).ok());
    // The process dies with five records written but not synced.
  }
  ASSERT_TRUE(f.fault.power_loss().ok());
  // The disk had started on the next record: half a header reached the platter.
  const auto seg = segment_files(f.mem, kDir).back();
  std::string half;
  append_record(half, 10, 1, payload_for(10));
  ASSERT_TRUE((*f.mem.open_writable(seg, OpenMode::kAppend))->append(half.substr(0, 30)).ok());

  auto log = f.open(o);
  const auto m = log->metrics();
  EXPECT_EQ(m.torn_tails_truncated, 1u);
  EXPECT_EQ(m.torn_bytes_truncated, 30u);
  EXPECT_EQ(m.corrupt_records_skipped, 0u);
  EXPECT_FALSE(f.warnings.empty());
  auto all = read_all(*log);
  ASSERT_EQ(all.size(), 10u);
  for (std::uint64_t i = 0; i < 10; ++i) EXPECT_EQ(all[i], std::make_pair(i, payload_for(i)));
  // New appends follow the last valid record, not the garbage.
  auto off = log->append_async("fresh", 2);
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(*off, 10u);
  ASSERT_TRUE(log->sync().ok());
  log.reset();
  log = f.open(o);
  EXPECT_EQ(log->metrics().torn_tails_truncated, 0u);
  EXPECT_EQ(read_all(*log).back().second, "fresh");
}

// Flips a byte of the record at `offset` in the segment files under kDir.
void corrupt_record(MemEnv& mem, std::uint64_t offset) {
  for (const auto& path : segment_files(mem, kDir)) {
    std::string data = *mem.read_file(path);
    std::size_t p = kSegmentHeaderSize;
    while (p + kRecordHeaderSize <= data.size()) {
      const auto len = get_u32(data.data() + p);
      if (get_u64(data.data() + p + 8) == offset) {
        data[p + kRecordHeaderSize + len / 2] ^= 0x5A;
        auto w = std::move(mem.open_writable(path, OpenMode::kTruncate)).value();
        ASSERT_TRUE(w->append(data).ok());
        ASSERT_TRUE(w->sync().ok());
        return;
      }
      p += kRecordHeaderSize + len;
    }
  }
  FAIL() << "record " << offset << " not found";
}

TEST(SegmentLog, SkipsCorruptRecordInTheMiddleOfASegment) {
  Fixture f;
  auto o = f.opts();
  o.segment_bytes = 2000;
  {
    auto log = f.open(o);
    for (std::uint64_t i = 0; i < 100; ++i) ASSERT_TRUE(log->append_async(payload_for(i), 1).ok());
    ASSERT_TRUE(log->close().ok());
  }
  corrupt_record(f.mem, 7);   // an older segment
  corrupt_record(f.mem, 97);  // the last segment, valid records follow: not a torn tail
  auto log = f.open(o);
  const auto m = log->metrics();
  EXPECT_EQ(m.corrupt_records_skipped, 2u);
  EXPECT_EQ(m.torn_tails_truncated, 0u);
  auto all = read_all(*log, 0, 100);
  ASSERT_EQ(all.size(), 98u);
  std::set<std::uint64_t> seen;
  for (const auto& [off, payload] : all) {
    EXPECT_EQ(payload, payload_for(off));
    seen.insert(off);
  }
  EXPECT_FALSE(seen.count(7));
  EXPECT_FALSE(seen.count(97));
  EXPECT_TRUE(seen.count(98) && seen.count(99) && seen.count(8));
  EXPECT_EQ(*log->append("next", 1), 100u);
  // Reading again does not count the known corruption twice.
  read_all(*log, 0, 100);
  EXPECT_EQ(log->metrics().corrupt_records_skipped, 2u);
}

TEST(SegmentLog, SkipsCorruptionThatAppearsAfterOpen) {
  Fixture f;
  auto log = f.open(f.opts());
  for (std::uint64_t i = 0; i < 50; ++i) ASSERT_TRUE(log->append_async(payload_for(i), 1).ok());
  ASSERT_TRUE(log->sync().ok());
  corrupt_record(f.mem, 20);  // bit rot under a running log
  auto all = read_all(*log, 0, 200);
  ASSERT_EQ(all.size(), 49u);
  for (const auto& [off, payload] : all) EXPECT_EQ(payload, payload_for(off));
  EXPECT_EQ(log->metrics().corrupt_records_skipped, 1u);
}

TEST(SegmentLog, RefuseNewestQuotaRejectsAppendsAndStaysReadable) {
  Fixture f;
  auto o = f.opts();
  o.quota_bytes = 8000;
  o.quota_policy = QuotaPolicy::kRefuseNewest;
  auto log = f.open(o);
  std::uint64_t ok = 0;
  Status last;
  for (int i = 0; i < 500; ++i) {
    auto r = log->append(payload_for(i), 1);
    if (!r.ok()) {
      last = r.status();
      break;
    }
    ++ok;
  }
  EXPECT_EQ(last.code(), StatusCode::kResourceExhausted);
  EXPECT_GT(ok, 50u);
  EXPECT_LE(log->disk_bytes(), 8000u);
  EXPECT_EQ(log->metrics().refused_by_quota, 1u);
  EXPECT_EQ(read_all(*log).size(), ok);
  // Acknowledging frees whole segments, and appends work again.
  ASSERT_TRUE(log->commit_consumer(ok).ok());
  EXPECT_TRUE(log->append("again", 1).ok());
}

TEST(SegmentLog, DropOldestQuotaDeletesOldestSegmentsAndCountsThem) {
  Fixture f;
  auto o = f.opts();
  o.quota_bytes = 8000;
  o.quota_policy = QuotaPolicy::kDropOldest;
  auto log = f.open(o);
  for (int i = 0; i < 500; ++i) ASSERT_TRUE(log->append_async(payload_for(i), 1).ok());
  ASSERT_TRUE(log->sync().ok());
  EXPECT_LE(log->disk_bytes(), 8000u);
  EXPECT_LE(f.mem.used_bytes(), 8000u);
  const auto m = log->metrics();
  EXPECT_GT(m.dropped_by_quota, 300u);
  auto all = read_all(*log);
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all.front().first, log->start_offset());
  EXPECT_EQ(all.back().first, 499u);
  EXPECT_EQ(m.dropped_by_quota + all.size(), 500u);
  for (std::size_t i = 1; i < all.size(); ++i) EXPECT_EQ(all[i].first, all[i - 1].first + 1);
}

TEST(SegmentLog, ExpiresRecordsOlderThanTtl) {
  Fixture f;
  auto o = f.opts();
  o.ttl = 1h;
  o.segment_bytes = 1000;
  auto log = f.open(o);
  const std::int64_t now = f.clock.wall_ms();
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(log->append_async(payload_for(i), now).ok());
  ASSERT_TRUE(log->sync().ok());
  f.clock.advance(2h);
  for (int i = 40; i < 60; ++i)
    ASSERT_TRUE(log->append_async(payload_for(i), f.clock.wall_ms()).ok());
  ASSERT_TRUE(log->sync().ok());
  auto all = read_all(*log);
  ASSERT_EQ(all.size(), 20u);
  EXPECT_EQ(all.front().first, 40u);
  EXPECT_EQ(log->metrics().expired_skipped, 40u);
  ASSERT_TRUE(log->enforce_retention().ok());
  EXPECT_GT(log->start_offset(), 0u);
  EXPECT_GT(log->metrics().expired_records, 0u);
  EXPECT_EQ(read_all(*log).size(), 20u);
}

TEST(SegmentLog, ConsumerOffsetSurvivesRestartAndDeletesAcknowledgedSegments) {
  Fixture f;
  auto o = f.opts();
  o.segment_bytes = 1000;
  {
    auto log = f.open(o);
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(log->append_async(payload_for(i), 1).ok());
    ASSERT_TRUE(log->sync().ok());
    const auto before = segment_files(f.mem, kDir).size();
    ASSERT_TRUE(log->commit_consumer(60).ok());
    EXPECT_LT(segment_files(f.mem, kDir).size(), before);
    EXPECT_GT(log->start_offset(), 0u);
    EXPECT_LE(log->start_offset(), 60u);
    ASSERT_TRUE(log->commit_consumer(30).ok());  // never moves backwards
    EXPECT_EQ(log->consumer_offset(), 60u);
    EXPECT_EQ(log->metrics().backlog_records, 40u);
  }
  ASSERT_TRUE(f.fault.power_loss().ok());
  auto log = f.open(o);
  EXPECT_EQ(log->consumer_offset(), 60u);
  auto rest = read_all(*log, log->consumer_offset());
  ASSERT_EQ(rest.size(), 40u);
  EXPECT_EQ(rest.front().first, 60u);
  // Acknowledging everything keeps the active segment, so offsets continue.
  ASSERT_TRUE(log->commit_consumer(100).ok());
  EXPECT_EQ(segment_files(f.mem, kDir).size(), 1u);
  EXPECT_EQ(*log->append("x", 1), 100u);
}

TEST(SegmentLog, OffsetsNeverGoBelowTheAcknowledgedOffset) {
  Fixture f;
  auto o = f.opts(FsyncPolicy::kNever);
  {
    auto log = f.open(o);
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(log->append(payload_for(i), 1).ok());
    ASSERT_TRUE(log->commit_consumer(20).ok());  // acknowledged, but never fsynced
  }
  ASSERT_TRUE(f.fault.power_loss().ok());
  auto log = f.open(o);
  EXPECT_EQ(*log->append("new", 1), 20u);
}

TEST(SegmentLog, FullDiskFailsTheAppendKeepsTheLogReadableAndRecovers) {
  Fixture f;
  auto o = f.opts();
  o.segment_bytes = 1500;
  auto log = f.open(o);
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(log->append(payload_for(i), 1).ok());
  f.fault.set_no_space(true);
  for (int i = 0; i < 40; ++i) {  // crosses segment rolls while full
    auto r = log->append(payload_for(100 + i), 1);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kNoSpace) << r.status().to_string();
  }
  EXPECT_EQ(read_all(*log).size(), 30u);
  EXPECT_EQ(log->metrics().append_failures, 40u);
  f.fault.set_no_space(false);
  auto r = log->append("space is back", 1);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  auto all = read_all(*log);
  ASSERT_EQ(all.size(), 31u);
  EXPECT_EQ(all.back().second, "space is back");
  log.reset();
  log = f.open(o);
  EXPECT_EQ(log->metrics().corrupt_records_skipped, 0u);
  EXPECT_EQ(log->metrics().torn_tails_truncated, 0u);
  EXPECT_EQ(read_all(*log).size(), 31u);
}

TEST(SegmentLog, FullMemEnvNeverCorruptsTheLog) {
  MemEnv mem(6000);
  ManualClock clock;
  LogOptions o;
  o.segment_bytes = 1000;
  o.warn = [](std::string_view) {};
  auto log = std::move(SegmentLog::open(mem, clock, kDir, o)).value();
  std::vector<std::uint64_t> ok;
  for (int i = 0; i < 300; ++i) {
    auto r = log->append(payload_for(i), 1);
    if (r.ok())
      ok.push_back(*r);
    else
      EXPECT_EQ(r.status().code(), StatusCode::kNoSpace) << r.status().to_string();
  }
  ASSERT_FALSE(ok.empty());
  auto all = read_all(*log);
  ASSERT_EQ(all.size(), ok.size());
  log.reset();
  log = std::move(SegmentLog::open(mem, clock, kDir, o)).value();
  EXPECT_EQ(read_all(*log).size(), ok.size());
  EXPECT_EQ(log->metrics().corrupt_records_skipped, 0u);
}

TEST(SegmentLog, FailedFsyncFailsTheRecordsAndTheLogContinues) {
  Fixture f;
  auto log = f.open(f.opts());
  ASSERT_TRUE(log->append("a", 1).ok());
  f.fault.fail_next_sync();
  auto r = log->append("b", 1);
  EXPECT_EQ(r.status().code(), StatusCode::kIoError);
  auto c = log->append("c", 1);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, 2u);  // the failed offset stays unused
  auto all = read_all(*log);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[1], std::make_pair(std::uint64_t{2}, std::string("c")));
}

TEST(SegmentLog, IntervalPolicySyncsWhenTheTimerFires) {
  Fixture f;
  auto o = f.opts(FsyncPolicy::kInterval);
  o.sync_interval = 200ms;
  o.sync_bytes = 1 << 30;
  auto log = f.open(o);
  std::atomic<int> durable{0};
  std::latch announced(5);  // callbacks run on the committer after wait_durable() may return
  std::uint64_t last = 0;
  for (int i = 0; i < 5; ++i) {
    last = *log->append_async(payload_for(i), 1, [&](std::uint64_t, const Status& s) {
      if (s.ok()) durable++;
      announced.count_down();
    });
  }
  EXPECT_EQ(log->durable_offset(), 0u);
  EXPECT_TRUE(log->read(0, 1000)->empty());  // readers see durable records only
  f.clock.advance(100ms);
  EXPECT_EQ(log->durable_offset(), 0u);
  f.clock.advance(100ms);
  ASSERT_TRUE(log->wait_durable(last).ok());
  announced.wait();
  EXPECT_EQ(durable.load(), 5);
  EXPECT_EQ(log->read(0, 1000)->size(), 5u);
  EXPECT_EQ(log->metrics().syncs, 1u);
}

TEST(SegmentLog, IntervalPolicySyncsWhenEnoughBytesArePending) {
  Fixture f;
  auto o = f.opts(FsyncPolicy::kInterval);
  o.sync_interval = 1h;
  o.sync_bytes = 1000;
  auto log = f.open(o);
  std::uint64_t last = 0;
  for (int i = 0; i < 40; ++i) last = *log->append_async(payload_for(i), 1);
  // 40 records of 64 bytes: at least two byte-triggered syncs, no clock needed.
  ASSERT_TRUE(log->wait_durable(24).ok());
  EXPECT_GE(log->durable_offset(), 25u);
  (void)last;
}

// An Env whose fsyncs wait until the test opens the gate, to make batching deterministic.
class GatedEnv final : public ForwardingEnv {
 public:
  using ForwardingEnv::ForwardingEnv;
  void close_gate() {
    std::lock_guard l(mu_);
    open_ = false;
  }
  void open_gate() {
    {
      std::lock_guard l(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  void wait_for_blocked_sync() {
    std::unique_lock l(mu_);
    cv_.wait(l, [&] { return blocked_ > 0; });
  }
  Result<std::unique_ptr<WritableFile>> open_writable(const std::string& p, OpenMode m) override {
    GANGLION_ASSIGN_OR_RETURN(auto f, base_.open_writable(p, m));
    return std::unique_ptr<WritableFile>(new File(*this, std::move(f)));
  }

 private:
  class File final : public WritableFile {
   public:
    File(GatedEnv& env, std::unique_ptr<WritableFile> f) : env_(env), f_(std::move(f)) {}
    Status append(std::span<const std::byte> d) override { return f_->append(d); }
    Status sync() override {
      std::unique_lock l(env_.mu_);
      env_.blocked_++;
      env_.cv_.notify_all();
      env_.cv_.wait(l, [&] { return env_.open_; });
      env_.blocked_--;
      return f_->sync();
    }
    Status close() override { return f_->close(); }
    std::uint64_t size() const override { return f_->size(); }

   private:
    GatedEnv& env_;
    std::unique_ptr<WritableFile> f_;
  };
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
  int blocked_ = 0;
};

TEST(SegmentLog, GroupCommitBatchesAppendsQueuedDuringAnFsync) {
  MemEnv mem;
  GatedEnv gated(mem);
  ManualClock clock;
  auto log = std::move(SegmentLog::open(gated, clock, kDir, {})).value();
  const auto syncs_before = log->metrics().syncs;
  gated.close_gate();
  std::thread first([&] { EXPECT_TRUE(log->append("first", 1).ok()); });
  gated.wait_for_blocked_sync();  // the committer is inside the fsync of "first"
  std::vector<std::thread> producers;
  for (int t = 0; t < 8; ++t) {
    producers.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) ASSERT_TRUE(log->append_async(payload_for(t * 100 + i), 1).ok());
    });
  }
  for (auto& p : producers) p.join();
  gated.open_gate();
  first.join();
  ASSERT_TRUE(log->sync().ok());
  const auto m = log->metrics();
  EXPECT_EQ(m.records_appended, 201u);
  EXPECT_EQ(m.syncs - syncs_before, 2u);  // one for "first", one for the 200 queued behind it
  EXPECT_EQ(m.commits, 2u);
  EXPECT_EQ(read_all(*log).size(), 201u);
}

TEST(SegmentLog, ManyBlockingProducersGetUniqueDurableOffsets) {
  Fixture f;
  auto o = f.opts();
  o.segment_bytes = 4096;
  auto log = f.open(o);
  constexpr int kThreads = 6;
  constexpr int kPer = 150;
  std::vector<std::vector<std::uint64_t>> offsets(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPer; ++i) {
        auto r = log->append(payload_for(t * 1000 + i), t);
        ASSERT_TRUE(r.ok());
        offsets[t].push_back(*r);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::map<std::uint64_t, std::string> expect;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPer; ++i) expect[offsets[t][i]] = payload_for(t * 1000 + i);
    EXPECT_TRUE(std::is_sorted(offsets[t].begin(), offsets[t].end()));
  }
  ASSERT_EQ(expect.size(), static_cast<std::size_t>(kThreads * kPer));
  auto all = read_all(*log);
  ASSERT_EQ(all.size(), expect.size());
  for (const auto& [off, payload] : all) EXPECT_EQ(expect[off], payload);
  EXPECT_LE(log->metrics().syncs, log->metrics().records_appended + 1);
}

// Power loss at random points, many seeded runs: every record reported durable survives, in
// order, with its content; nothing corrupt or foreign is ever returned.
TEST(SegmentLog, RandomizedPowerLossKeepsEveryDurableRecord) {
  const auto deadline = std::chrono::steady_clock::now() + 4s;
  int runs = 0;
  for (std::uint32_t seed = 1; seed <= 150 && std::chrono::steady_clock::now() < deadline; ++seed) {
    ++runs;
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    Fixture f;
    auto o = f.opts(static_cast<FsyncPolicy>(rng() % 3));
    o.segment_bytes = 200 + rng() % 3000;
    o.sync_interval = 50ms;
    o.sync_bytes = 500 + rng() % 5000;
    std::map<std::uint64_t, std::string> model;  // what may be read at an offset
    std::mutex durable_mu;
    std::set<std::uint64_t> durable;
    for (int epoch = 0; epoch < 4; ++epoch) {
      auto log = f.open(o);
      ASSERT_NE(log, nullptr);
      // Check what recovery gives back.
      auto all = read_all(*log, 0, 1 + rng() % 2000);
      std::set<std::uint64_t> present;
      std::uint64_t prev = 0;
      bool first = true;
      for (const auto& [off, payload] : all) {
        ASSERT_TRUE(first || off > prev) << "out of order at " << off;
        first = false;
        prev = off;
        auto it = model.find(off);
        ASSERT_NE(it, model.end()) << "foreign record at offset " << off;
        ASSERT_EQ(it->second, payload) << "wrong content at offset " << off;
        present.insert(off);
      }
      {
        std::lock_guard l(durable_mu);
        for (auto d : durable) {
          ASSERT_TRUE(present.count(d))
              << "lost durable record " << d << " (policy " << static_cast<int>(o.fsync)
              << ", epoch " << epoch
              << ", recovery: " << (f.warnings.empty() ? std::string("clean") : f.warnings.back())
              << ")";
        }
      }
      // Lost, never-durable offsets may be handed out again.
      for (auto it = model.begin(); it != model.end();) {
        it = present.count(it->first) ? std::next(it) : model.erase(it);
      }
      EXPECT_EQ(log->metrics().corrupt_records_skipped, 0u);

      const int ops = 20 + static_cast<int>(rng() % 120);
      for (int i = 0; i < ops; ++i) {
        const std::string payload = payload_for(rng(), 1 + rng() % 300);
        const int action = static_cast<int>(rng() % 20);
        if (action == 0) {
          f.fault.fail_next_write();
        } else if (action == 1) {
          f.fault.fail_next_sync();
        }
        if (action < 2 || action > 3) {
          auto r = log->append_async(payload, epoch, [&](std::uint64_t off, const Status& s) {
            if (s.ok() && o.fsync != FsyncPolicy::kNever) {
              std::lock_guard l(durable_mu);
              durable.insert(off);
            }
          });
          if (r.ok()) model[*r] = payload;
        } else if (action == 2) {
          const std::uint64_t end = log->end_offset();
          if (log->sync().ok()) {
            // Records whose own write failed earlier stay failed: ask for each one.
            for (const auto& [off, _] : model) {
              if (off < end && log->wait_durable(off).ok()) {
                std::lock_guard l(durable_mu);
                durable.insert(off);
              }
            }
          }
        } else {
          f.clock.advance(std::chrono::milliseconds(rng() % 80));
        }
      }
      // Sometimes let the committer catch up, sometimes cut while it is busy.
      if (rng() % 2) {
        f.clock.advance(o.sync_interval);  // kInterval: the timer fsyncs what is queued
        if (log->end_offset() > 0) (void)log->wait_durable(log->end_offset() - 1);
      }
      const bool with_garbage = rng() % 2;
      log.reset();                             // the process dies (nothing is flushed)...
      ASSERT_TRUE(f.fault.power_loss().ok());  // ...then the power goes
      if (with_garbage) {
        auto segs = segment_files(f.mem, kDir);
        if (!segs.empty()) {
          std::string junk;
          const int kind = static_cast<int>(rng() % 3);
          if (kind == 0) {
            append_record(junk, 1u << 30, 0, "torn");
            junk.resize(rng() % junk.size());
          } else if (kind == 1) {
            junk.assign(1 + rng() % 100, '\0');
          } else {
            for (std::uint32_t k = 0, n = 1 + rng() % 100; k < n; ++k)
              junk += static_cast<char>(rng());
          }
          ASSERT_TRUE((*f.mem.open_writable(segs.back(), OpenMode::kAppend))->append(junk).ok());
        }
      }
    }
  }
  EXPECT_GE(runs, 20);
}

TEST(SegmentLog, WorksOnTheRealDisk) {
  char tmpl[] = "/tmp/ganglion-log-test-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = std::string(tmpl) + "/alerts";
  ManualClock clock;
  LogOptions o;
  o.segment_bytes = 4096;
  {
    auto log = std::move(SegmentLog::open(Env::posix(), clock, dir, o)).value();
    for (int i = 0; i < 300; ++i) ASSERT_TRUE(log->append_async(payload_for(i), i).ok());
    ASSERT_TRUE(log->sync().ok());
    ASSERT_TRUE(log->commit_consumer(100).ok());
  }
  {
    auto log = std::move(SegmentLog::open(Env::posix(), clock, dir, o)).value();
    EXPECT_EQ(log->consumer_offset(), 100u);
    auto rest = read_all(*log, 100);
    ASSERT_EQ(rest.size(), 200u);
    EXPECT_EQ(rest[0].second, payload_for(100));
    EXPECT_EQ(rest[199].second, payload_for(299));
    EXPECT_EQ(*log->append("more", 1), 300u);
  }
  std::filesystem::remove_all(tmpl);
}

}  // namespace
}  // namespace ganglion::log
