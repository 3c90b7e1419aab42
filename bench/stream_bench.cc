// Streaming SQL engine benchmark: events/s per core (thread CPU time) and memory, beside the
// limit on the same machine: simdjson parsing the same payloads and doing nothing else.
// Windows are driven by a ManualClock advanced as events flow (1 ms per 10 events, so a
// 10 s window holds 100,000 events), so the figures measure the engine, not sleeps. The
// cases run interleaved, 20,000 events at a time, so the ratios to parse-only hold on a
// machine whose load changes during the run.
//
//   build/release/bench/stream_bench [--events=2000000] [--rules=1000]
//   build/release/bench/stream_bench --only=parse|filter|tumbling|hopping   (one case, to profile)
#include <malloc.h>
#include <simdjson.h>
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "base/clock.h"
#include "event/event.h"
#include "stream/query.h"

namespace {

using namespace ganglion;
using namespace ganglion::stream;

double thread_cpu_s() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

std::size_t heap_in_use() { return mallinfo2().uordblks; }

std::size_t rss_bytes() {
  std::ifstream f("/proc/self/statm");
  std::size_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * 4096;
}

// Realistic sensor payloads (~260 bytes, 12 fields, one nested object), 1,000 devices,
// temperatures uniform in [0, 100) so the filter passes about half.
std::vector<std::shared_ptr<const std::string>> make_payloads(std::size_t n) {
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> temp(0, 100), hum(20, 90), lat(-90, 90), lon(-180, 180);
  std::vector<std::shared_ptr<const std::string>> out;
  out.reserve(n);
  char buf[512];
  for (std::size_t i = 0; i < n; ++i) {
    int len = std::snprintf(
        buf, sizeof buf,
        R"({"device_id":"device-%04zu","ts":%lld,"temperature":%.2f,"humidity":%.2f,"pressure":%.1f,)"
        R"("battery":%d,"status":"%s","location":{"lat":%.5f,"lon":%.5f},"firmware":"1.4.%d",)"
        R"("seq":%zu,"tags":["factory-a","line-3"]})",
        i % 1000, 1700000000000LL + static_cast<long long>(i), temp(rng), hum(rng),
        980 + temp(rng) / 2, static_cast<int>(i % 100), i % 17 == 0 ? "warn" : "ok", lat(rng),
        lon(rng), static_cast<int>(i % 9), i);
    out.push_back(std::make_shared<const std::string>(buf, static_cast<std::size_t>(len)));
  }
  return out;
}

// One case, run in slices: run(n) pushes the next n events and adds the thread CPU time
// they took. main() interleaves the cases slice by slice, so a change in the machine's load
// (this VM is shared) hits every case alike and the ratios to parse-only hold.
class Case {
 public:
  virtual ~Case() = default;
  void run(std::size_t n) {
    const double t0 = thread_cpu_s();
    push(n);
    cpu_s_ += thread_cpu_s() - t0;
    events_ += n;
  }
  double events_per_s() const { return static_cast<double>(events_) / cpu_s_; }
  virtual std::uint64_t out_rows() const = 0;
  virtual std::size_t peak_heap() const { return 0; }

 protected:
  virtual void push(std::size_t n) = 0;
  std::size_t events_ = 0;

 private:
  double cpu_s_ = 0;
};

using Payloads = std::vector<std::shared_ptr<const std::string>>;

class ParseOnly : public Case {
 public:
  explicit ParseOnly(const Payloads& payloads) : payloads_(payloads) {}
  std::uint64_t out_rows() const override { return parsed_; }

 private:
  void push(std::size_t n) override {
    for (std::size_t i = events_; i < events_ + n; ++i) {
      const std::string& p = *payloads_[i % payloads_.size()];
      auto doc = parser_.parse(p.data(), p.size(), true);
      if (!doc.error()) ++parsed_;
    }
  }
  const Payloads& payloads_;
  simdjson::dom::parser parser_;
  std::uint64_t parsed_ = 0;
};

class QueryCase : public Case {
 public:
  // `track_heap`: sample the heap in use above the start at every emission.
  QueryCase(std::string_view sql, const Payloads& payloads, bool track_heap) : payloads_(payloads) {
    (void)catalog_.add_sql(R"(CREATE STREAM demo () WITH (DATASOURCE="demo", FORMAT="json"))");
    heap0_ = heap_in_use();
    auto q = plan_sql(sql, catalog_, clock_, {}, [this, track_heap](const Emission& e) {
      rows_ += e.rows.size();
      if (track_heap) peak_ = std::max(peak_, heap_in_use() - std::min(heap0_, heap_in_use()));
    });
    if (!q.ok()) {
      std::fprintf(stderr, "plan: %s\n", q.status().to_string().c_str());
      std::exit(1);
    }
    query_ = std::move(q).value();
  }
  std::uint64_t out_rows() const override { return rows_; }
  std::size_t peak_heap() const override { return peak_; }

 private:
  void push(std::size_t n) override {
    for (std::size_t i = events_; i < events_ + n; ++i) {
      Event e("demo", 0, payloads_[i % payloads_.size()]);
      (void)query_->push("demo", e);
      if (i % 10 == 9) clock_.advance(std::chrono::milliseconds(1));
    }
  }
  const Payloads& payloads_;
  ManualClock clock_;
  Catalog catalog_;
  std::unique_ptr<Query> query_;
  std::uint64_t rows_ = 0;
  std::size_t heap0_ = 0, peak_ = 0;
};

// Runs `cases` interleaved, `slice` events at a time, until each has seen `events`.
void run_interleaved(const std::vector<Case*>& cases, std::size_t events) {
  constexpr std::size_t kSlice = 20'000;
  for (std::size_t done = 0; done < events; done += kSlice) {
    for (Case* c : cases) c->run(std::min(kSlice, events - done));
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t events = 2'000'000, rules = 1000;
  std::string only;  // --only=parse|filter|tumbling|hopping: one case (for profiling)
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--only=", 7) == 0) only = argv[i] + 7;
    if (std::strncmp(argv[i], "--events=", 9) == 0) events = std::stoull(argv[i] + 9);
    if (std::strncmp(argv[i], "--rules=", 8) == 0) rules = std::stoull(argv[i] + 8);
  }
  auto payloads = make_payloads(20'000);
  std::size_t bytes = 0;
  for (auto& p : payloads) bytes += p->size();
  std::printf("payloads: %zu distinct, %.0f bytes on average, %zu events per case\n\n",
              payloads.size(), static_cast<double>(bytes) / static_cast<double>(payloads.size()),
              events);

  const char* kFilter = "SELECT * FROM demo WHERE temperature > 50";
  const char* kTumbling =
      "SELECT device_id, avg(temperature) AS t FROM demo GROUP BY device_id, TUMBLINGWINDOW(ss, "
      "10)";
  const char* kHopping =
      "SELECT device_id, avg(temperature) AS t FROM demo GROUP BY device_id, HOPPINGWINDOW(ss, 10, "
      "2)";
  const char* kHoppingNoKeys =
      "SELECT count(*) AS n, max(temperature) AS m FROM demo GROUP BY HOPPINGWINDOW(ss, 10, 2)";
  if (!only.empty()) {
    std::unique_ptr<Case> c;
    if (only == "parse") {
      c = std::make_unique<ParseOnly>(payloads);
    } else {
      c = std::make_unique<QueryCase>(only == "filter"     ? kFilter
                                      : only == "tumbling" ? kTumbling
                                                           : kHopping,
                                      payloads, false);
    }
    c->run(events);
    std::printf("%s: %.0f events/s/core\n", only.c_str(), c->events_per_s());
    return 0;
  }
  // Each case has its own query and clock; heap peaks are read per case, so the cases whose
  // memory is reported run on their own after the interleaved throughput runs.
  ParseOnly parse(payloads);
  QueryCase filter(kFilter, payloads, false), tumbling(kTumbling, payloads, false),
      hopping(kHopping, payloads, false), hopping_rows(kHoppingNoKeys, payloads, false);
  run_interleaved({&parse, &filter, &tumbling, &hopping, &hopping_rows}, events);
  auto peak_of = [&](const char* sql) {
    QueryCase c(sql, payloads, true);
    c.run(std::min<std::size_t>(events, 300'000));  // three 10 s windows
    return std::to_string(c.peak_heap() / 1024) + " KiB";
  };

  std::printf("%-58s %14s %10s %12s\n", "case", "events/s/core", "vs parse", "memory");
  auto line = [&](const char* name, const Case& r, std::string mem) {
    std::printf("%-58s %14.0f %9.2fx %12s\n", name, r.events_per_s(),
                r.events_per_s() / parse.events_per_s(), mem.c_str());
  };
  line("simdjson DOM parse only (the limit)", parse, "-");
  line("SELECT * FROM demo WHERE temperature > 50", filter, "-");
  line("avg(temperature) GROUP BY 1,000 device_id, TUMBLING 10 s", tumbling, peak_of(kTumbling));
  line("avg(temperature) GROUP BY 1,000 device_id, HOPPING 10 s/2 s", hopping, peak_of(kHopping));
  line("count(*), max(temperature), HOPPING 10 s/2 s (no keys)", hopping_rows,
       peak_of(kHoppingNoKeys));

  // Memory per idle rule: plan `rules` simple filters, compare the allocator and RSS.
  {
    ManualClock clock;
    Catalog catalog;
    (void)catalog.add_sql(R"(CREATE STREAM demo () WITH (DATASOURCE="demo", FORMAT="json"))");
    std::size_t heap0 = heap_in_use(), rss0 = rss_bytes();
    std::vector<std::unique_ptr<Query>> qs;
    qs.reserve(rules);
    for (std::size_t i = 0; i < rules; ++i) {
      auto q = plan_sql(
          "SELECT device_id, temperature FROM demo WHERE temperature > " + std::to_string(i % 100),
          catalog, clock, {}, [](const Emission&) {});
      qs.push_back(std::move(q).value());
    }
    std::size_t heap1 = heap_in_use(), rss1 = rss_bytes();
    std::printf(
        "\n%zu idle rules (SELECT device_id, temperature FROM demo WHERE temperature > N):\n",
        rules);
    std::printf(
        "  heap in use: %.1f KiB per rule; RSS: %.1f KiB per rule\n",
        static_cast<double>(heap1 - heap0) / 1024.0 / static_cast<double>(rules),
        static_cast<double>(rss1 > rss0 ? rss1 - rss0 : 0) / 1024.0 / static_cast<double>(rules));
  }
  std::printf("\nrows out: filter %llu, tumbling %llu, hopping %llu\n",
              static_cast<unsigned long long>(filter.out_rows()),
              static_cast<unsigned long long>(tumbling.out_rows()),
              static_cast<unsigned long long>(hopping.out_rows()));
  return 0;
}
