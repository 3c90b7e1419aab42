// log_bench: what the durable log costs next to the disk it sits on.
//
//   log_bench [--dir=PATH] [--seconds=1.5] [--record-bytes=256] [--threads=8]
//             [--recovery-mb=256]
//
// Prints one table: raw write()+fdatasync() baselines, appends under each fsync policy,
// drain (read) throughput and recovery time of a large log. Everything runs in a fresh
// temporary directory (under /tmp unless --dir is given; pass --dir on the disk you care
// about) that is removed at the end. For the 1 GB recovery figure: --recovery-mb=1024.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/env.h"
#include "log/segment_log.h"

using namespace ganglion;
using namespace ganglion::log;
using Clk = std::chrono::steady_clock;

namespace {

struct Flags {
  std::string dir = "/tmp";
  double seconds = 1.5;
  std::size_t record_bytes = 256;
  int threads = 8;
  std::uint64_t recovery_mb = 256;
};

double since(Clk::time_point t) { return std::chrono::duration<double>(Clk::now() - t).count(); }

void row(const char* name, double records, double secs, std::size_t rec_bytes, const char* note) {
  std::printf("%-44s %12.0f %10.1f   %s\n", name, records / secs,
              records * static_cast<double>(rec_bytes) / secs / 1e6, note);
}

// Raw baseline: one write() and one fdatasync() per `batch` records, for f.seconds.
// Returns records/s (0 when the file cannot be opened).
double raw_rate(const std::string& dir, const Flags& f, std::size_t batch) {
  const std::string path = dir + "/raw.dat";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    std::perror("open");
    return 0;
  }
  std::string buf(f.record_bytes * batch, 'r');
  std::uint64_t records = 0;
  const auto t0 = Clk::now();
  while (since(t0) < f.seconds) {
    if (::write(fd, buf.data(), buf.size()) != static_cast<ssize_t>(buf.size())) break;
    ::fdatasync(fd);
    records += batch;
  }
  const double secs = since(t0);
  ::close(fd);
  ::unlink(path.c_str());
  return static_cast<double>(records) / secs;
}

void raw_baseline(const std::string& dir, const Flags& f, std::size_t batch, const char* name) {
  row(name, raw_rate(dir, f, batch), 1.0, f.record_bytes, "");
}

// What a durable-append row achieved, to run the raw baseline with the same batching.
struct Achieved {
  double records_per_second = 0;
  double records_per_fsync = 0;
};

// The raw baseline writing as many records per fdatasync as the log did, and the log's rate
// as a share of it: the cost of the log's framing, CRCs, queueing and thread hand-offs.
void matched_raw(const std::string& dir, const Flags& f, const Achieved& a) {
  const auto batch = static_cast<std::size_t>(std::max(1.0, a.records_per_fsync + 0.5));
  char name[64];
  std::snprintf(name, sizeof name, "  raw, same batch (%zu records per fsync)", batch);
  const double raw = raw_rate(dir, f, batch);
  char note[96];
  std::snprintf(note, sizeof note, "the row above = %.0f%% of this",
                raw > 0 ? 100.0 * a.records_per_second / raw : 0.0);
  row(name, raw, 1.0, f.record_bytes, note);
}

std::unique_ptr<SegmentLog> open_log(const std::string& dir, LogOptions o) {
  o.warn = [](std::string_view w) {
    std::fprintf(stderr, "warn: %.*s\n", int(w.size()), w.data());
  };
  auto log = SegmentLog::open(Env::posix(), SystemClock::instance(), dir, std::move(o));
  if (!log.ok()) {
    std::fprintf(stderr, "open %s: %s\n", dir.c_str(), log.status().to_string().c_str());
    std::exit(1);
  }
  return std::move(log).value();
}

// Blocking appends from `threads` producers: each returns once durable per the policy.
Achieved bench_blocking(const std::string& dir, const Flags& f, FsyncPolicy p, int threads,
                        const char* name) {
  LogOptions o;
  o.fsync = p;
  auto log = open_log(dir, o);
  const std::string payload(f.record_bytes, 'x');
  std::atomic<std::uint64_t> records{0};
  std::atomic<bool> stop{false};
  const auto t0 = Clk::now();
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        if (!log->append(payload, 1).ok()) break;
        records.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  while (since(t0) < f.seconds) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  stop = true;
  for (auto& t : ts) t.join();
  const double secs = since(t0);
  const auto m = log->metrics();
  char note[96];
  const double per_fsync = m.syncs ? double(m.records_appended) / double(m.syncs) : 0.0;
  std::snprintf(note, sizeof note, "%.1f records per fsync", per_fsync);
  row(name, static_cast<double>(records.load()), secs, f.record_bytes, note);
  log.reset();
  std::filesystem::remove_all(dir);
  return {static_cast<double>(records.load()) / secs, per_fsync};
}

// Async appends from one producer, then one sync(): the log's best case per policy.
Achieved bench_async(const std::string& dir, const Flags& f, FsyncPolicy p, const char* name) {
  LogOptions o;
  o.fsync = p;
  o.sync_interval = std::chrono::milliseconds(50);
  auto log = open_log(dir, o);
  const std::string payload(f.record_bytes, 'y');
  std::uint64_t records = 0;
  const auto t0 = Clk::now();
  while (since(t0) < f.seconds) {
    for (int i = 0; i < 1024; ++i) {
      if (!log->append_async(payload, 1).ok()) break;
    }
    records += 1024;
    // Bound the queue so the figure is the disk's, not memory's.
    if (records > 8192) (void)log->wait_durable(records - 8192);
  }
  (void)log->sync();
  const double secs = since(t0);
  const auto m = log->metrics();
  char note[96];
  const double per_fsync = m.syncs ? double(records) / double(m.syncs) : 0.0;
  std::snprintf(note, sizeof note, "%llu fsyncs, %.0f records per fsync",
                static_cast<unsigned long long>(m.syncs), per_fsync);
  row(name, static_cast<double>(records), secs, f.record_bytes, note);
  log.reset();
  std::filesystem::remove_all(dir);
  return {static_cast<double>(records) / secs, per_fsync};
}

void bench_drain_and_recovery(const std::string& dir, const Flags& f) {
  const std::uint64_t total = f.recovery_mb << 20;
  const std::uint64_t n = total / (f.record_bytes + 24);
  {
    LogOptions o;
    o.fsync = FsyncPolicy::kNever;
    auto log = open_log(dir, o);
    const std::string payload(f.record_bytes, 'z');
    const auto t0 = Clk::now();
    for (std::uint64_t i = 0; i < n; ++i) {
      (void)log->append_async(payload, static_cast<std::int64_t>(i));
      if ((i & 0xFFFF) == 0xFFFF) (void)log->wait_durable(i - 0x8000);
    }
    (void)log->close();
    char note[96];
    std::snprintf(note, sizeof note, "fill for the rows below (%llu MB)",
                  static_cast<unsigned long long>(f.recovery_mb));
    row("append kNever, 1 producer, async (fill)", static_cast<double>(n), since(t0),
        f.record_bytes, note);
  }
  // Drop the page cache is not possible without root; recovery below reads warm pages.
  const auto t1 = Clk::now();
  auto log = open_log(dir, {});
  const double open_secs = since(t1);
  std::uint64_t got = 0;
  std::uint64_t from = 0;
  const auto t2 = Clk::now();
  for (;;) {
    auto b = log->read(from, 1 << 20);
    if (!b.ok() || b->empty()) break;
    got += b->size();
    from = b->next_offset();
  }
  const double drain_secs = since(t2);
  row("drain: read() in 1 MB batches", static_cast<double>(got), drain_secs, f.record_bytes,
      got == n ? "all records, CRC-checked" : "MISSING RECORDS");
  char note[128];
  std::snprintf(note, sizeof note, "%.0f ms to open %llu MB (%.2f GB/s, page cache warm)",
                open_secs * 1e3, static_cast<unsigned long long>(f.recovery_mb),
                static_cast<double>(total) / open_secs / 1e9);
  row("recovery: open() = scan + CRC every segment", static_cast<double>(n), open_secs,
      f.record_bytes, note);
  log.reset();
  std::filesystem::remove_all(dir);
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](const char* k) -> const char* {
      const std::size_t n = std::strlen(k);
      return a.compare(0, n, k) == 0 ? a.c_str() + n : nullptr;
    };
    if (auto v = val("--dir="))
      f.dir = v;
    else if (auto v = val("--seconds="))
      f.seconds = std::atof(v);
    else if (auto v = val("--record-bytes="))
      f.record_bytes = std::strtoull(v, nullptr, 10);
    else if (auto v = val("--threads="))
      f.threads = std::atoi(v);
    else if (auto v = val("--recovery-mb="))
      f.recovery_mb = std::strtoull(v, nullptr, 10);
    else {
      std::fprintf(stderr,
                   "usage: %s [--dir=PATH] [--seconds=S] [--record-bytes=N] "
                   "[--threads=N] [--recovery-mb=MB]\n",
                   argv[0]);
      return 2;
    }
  }
  std::string tmpl = f.dir + "/ganglion-log-bench-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  const std::string root = tmpl;
  std::printf("log_bench in %s: %zu B records, %.1f s per row, %d producer threads\n\n",
              root.c_str(), f.record_bytes, f.seconds, f.threads);
  std::printf("%-44s %12s %10s   %s\n", "case", "records/s", "MB/s", "note");
  raw_baseline(root, f, 1, "raw write+fdatasync, 1 record per fsync");
  raw_baseline(root, f, 64, "raw write+fdatasync, 64 records per fsync");
  // Each kAlways row is followed by the raw baseline at the batch size it achieved.
  matched_raw(root, f,
              bench_blocking(root + "/always1", f, FsyncPolicy::kAlways, 1,
                             "append kAlways, 1 producer (blocking)"));
  char name[64];
  std::snprintf(name, sizeof name, "append kAlways, %d producers (group commit)", f.threads);
  matched_raw(root, f, bench_blocking(root + "/alwaysN", f, FsyncPolicy::kAlways, f.threads, name));
  matched_raw(root, f,
              bench_async(root + "/always-async", f, FsyncPolicy::kAlways,
                          "append kAlways, 1 producer, async"));
  bench_async(root + "/interval", f, FsyncPolicy::kInterval,
              "append kInterval 50 ms, 1 producer, async");
  bench_async(root + "/never", f, FsyncPolicy::kNever, "append kNever, 1 producer, async");
  bench_drain_and_recovery(root + "/recovery", f);
  std::filesystem::remove_all(root);
  return 0;
}
