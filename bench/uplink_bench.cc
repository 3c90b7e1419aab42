// uplink_bench: what batching + zstd cost and save, and how fast a backlog drains.
//
//   uplink_bench [--dir=PATH] [--records=500000] [--record-kind=telemetry]
//
// 1. Compression: batches of 100 and 1000 realistic telemetry JSON records (random-walk
//    sensor values, a few devices and lines), zstd levels 1/3/9 and none: bytes per record
//    before/after, ratio, CPU µs per batch and MB/s of input.
// 2. Drain: `--records` records appended to a LogStore on disk (fsync never) while the link
//    is down, then drained end to end through the Sender (read, batch, zstd, publish) into an
//    in-memory receiver that acknowledges at once (no network): records/s and MB/s, and the
//    same with the receiver decoding every batch (the cloud's side).
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/env.h"
#include "log/log_store.h"
#include "uplink/batch_format.h"
#include "uplink/sender.h"

using namespace ganglion;
using namespace ganglion::uplink;
using Clk = std::chrono::steady_clock;

namespace {

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Telemetry as a PLC gateway would publish it: one JSON object per reading.
class TelemetryGenerator {
 public:
  std::pair<std::string, std::string> next() {
    const int device = static_cast<int>(rng_() % 40);
    temp_[device] += dist_(rng_) * 0.05;
    press_[device] += dist_(rng_) * 0.001;
    ts_ += 7 + rng_() % 5;
    char buf[320];
    std::snprintf(
        buf, sizeof buf,
        "{\"ts\":%lld,\"site\":\"plant-7\",\"line\":\"line-%d\",\"device\":\"press-%02d\","
        "\"temperature\":%.2f,\"pressure\":%.4f,\"vibration\":%.4f,\"rpm\":%d,"
        "\"status\":\"%s\",\"seq\":%llu}",
        static_cast<long long>(ts_), device / 10, device, 60 + temp_[device],
        1.013 + press_[device], std::abs(dist_(rng_)) * 0.02, 1480 + static_cast<int>(rng_() % 40),
        rng_() % 50 ? "ok" : "warn", static_cast<unsigned long long>(seq_++));
    return {"factory/line-" + std::to_string(device / 10) + "/telemetry/press-" +
                std::to_string(device),
            buf};
  }

 private:
  std::mt19937_64 rng_{42};
  std::normal_distribution<double> dist_{0, 1};
  double temp_[40] = {};
  double press_[40] = {};
  std::int64_t ts_ = 1'764'000'000'000;
  std::uint64_t seq_ = 0;
};

void compression_table() {
  std::printf("\n## zstd on telemetry JSON batches\n\n");
  std::printf(
      "| records/batch | compression | raw B/record | sent B/record | ratio | CPU µs/batch | MB/s "
      "in |\n");
  std::printf("|---:|---|---:|---:|---:|---:|---:|\n");
  for (int per_batch : {100, 1000}) {
    for (auto [name, comp, level] :
         {std::tuple{"none", Compression::kNone, 0}, std::tuple{"zstd 1", Compression::kZstd, 1},
          std::tuple{"zstd 3", Compression::kZstd, 3},
          std::tuple{"zstd 9", Compression::kZstd, 9}}) {
      TelemetryGenerator gen;
      BatchBuilder builder(comp, level);
      std::vector<std::string> records;
      const int batches = per_batch == 100 ? 400 : 60;
      for (int i = 0; i < per_batch * batches; ++i) {
        auto [t, p] = gen.next();
        records.push_back(*encode_record(t, p));
      }
      std::uint64_t raw = 0, sent = 0;
      const double c0 = cpu_seconds();
      for (int b = 0; b < batches; ++b) {
        for (int i = 0; i < per_batch; ++i) {
          builder.add(static_cast<std::uint64_t>(b * per_batch + i), 0,
                      records[static_cast<std::size_t>(b * per_batch + i)]);
        }
        raw += builder.raw_bytes();
        sent += builder.finish("node-1", "telemetry", "eu-west", 0, 0)->size();
      }
      const double cpu = cpu_seconds() - c0;
      const double n = static_cast<double>(per_batch) * batches;
      std::printf("| %d | %s | %.1f | %.1f | %.2f | %.0f | %.0f |\n", per_batch, name,
                  static_cast<double>(raw) / n, static_cast<double>(sent) / n,
                  static_cast<double>(raw) / static_cast<double>(sent), cpu / batches * 1e6,
                  static_cast<double>(raw) / cpu / 1e6);
    }
  }
}

class QueueExecutor {
 public:
  Executor executor() {
    return [this](std::function<void()> fn) {
      std::lock_guard lock(mu_);
      q_.push_back(std::move(fn));
      cv_.notify_one();
    };
  }
  // Runs tasks until `done()` holds.
  template <typename Pred>
  void run_until(Pred done) {
    while (!done()) {
      std::function<void()> fn;
      {
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, std::chrono::milliseconds(5), [&] { return !q_.empty(); });
        if (q_.empty()) continue;
        fn = std::move(q_.front());
        q_.pop_front();
      }
      fn();
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> q_;
};

class AckingReceiver final : public BatchTransport {
 public:
  explicit AckingReceiver(bool decode) : decode_(decode) {}
  void publish(std::string, std::string bytes, Completion done) override {
    bytes_ += bytes.size();
    if (decode_) records_ += decode_batch(bytes)->records.size();
    done(Status::Ok());
  }
  std::uint64_t bytes_ = 0;
  std::uint64_t records_ = 0;

 private:
  bool decode_;
};

void drain_table(const std::string& dir, std::uint64_t n) {
  std::printf("\n## Drain: %llu records piled up on disk, then sent through the Sender\n\n",
              static_cast<unsigned long long>(n));
  std::printf(
      "| receiver | batch | append rec/s | drain rec/s | drain MB/s raw | MB/s sent | CPU s "
      "(drain) |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|\n");
  for (bool decode : {false, true}) {
    for (std::size_t batch : {100u, 1000u}) {
      const std::string path = dir + "/uplink-bench-" + std::to_string(::getpid());
      std::filesystem::remove_all(path);
      SystemClock clock;
      log::StoreOptions so;
      log::ClassOptions co;
      co.name = "telemetry";
      co.log.fsync = log::FsyncPolicy::kNever;
      so.classes.push_back(co);
      auto store = std::move(*log::LogStore::open(Env::posix(), clock, path, so));
      TelemetryGenerator gen;
      std::uint64_t raw = 0;
      auto t0 = Clk::now();
      auto* lg = store->find("telemetry");
      for (std::uint64_t i = 0; i < n; ++i) {
        auto [t, p] = gen.next();
        auto rec = *encode_record(t, p);
        raw += rec.size();
        (void)lg->append_async(rec, 0);
      }
      (void)lg->sync();
      const double append_s = std::chrono::duration<double>(Clk::now() - t0).count();
      QueueExecutor exec;
      AckingReceiver receiver(decode);
      SenderOptions o;
      o.node = "bench";
      o.batch_max_records = batch;
      o.batch_max_bytes = 4u << 20;
      o.linger = Duration::zero();
      o.window = 4;
      Sender sender(*store, receiver, clock, exec.executor(), o);
      const double c0 = cpu_seconds();
      t0 = Clk::now();
      sender.start();
      sender.on_link(true);
      exec.run_until([&] { return lg->consumer_offset() >= n; });
      const double s = std::chrono::duration<double>(Clk::now() - t0).count();
      const double cpu = cpu_seconds() - c0;
      sender.stop();
      std::printf("| %s | %zu | %.0f | %.0f | %.1f | %.1f | %.2f |\n",
                  decode ? "acks + decodes" : "acks", batch, static_cast<double>(n) / append_s,
                  static_cast<double>(n) / s, static_cast<double>(raw) / s / 1e6,
                  static_cast<double>(receiver.bytes_) / s / 1e6, cpu);
      (void)store->close();
      store.reset();
      std::filesystem::remove_all(path);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "/tmp";
  std::uint64_t records = 500'000;
  for (int i = 1; i < argc; ++i) {
    if (!std::strncmp(argv[i], "--dir=", 6))
      dir = argv[i] + 6;
    else if (!std::strncmp(argv[i], "--records=", 10))
      records = std::stoull(argv[i] + 10);
    else {
      std::fprintf(stderr, "usage: uplink_bench [--dir=PATH] [--records=N]\n");
      return 2;
    }
  }
  TelemetryGenerator g;
  std::printf("# uplink_bench\n\nSample record: %s %s\n", g.next().first.c_str(),
              g.next().second.c_str());
  compression_table();
  drain_table(dir, records);
  return 0;
}
