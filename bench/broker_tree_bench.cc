// SubscriptionTree::match vs. the floor: one std::unordered_map lookup of the exact topic.
//
// Subscriptions model an edge site: devices "site/<area>/<device>/<metric>" with a mix of exact
// filters (70%), one '+' level (20%) and '#' suffixes (10%). Each iteration matches one
// published topic from a fixed pseudo-random sequence and counts the matching subscriptions.
// Run: broker_tree_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "broker/topic_tree.h"

namespace {

using ganglion::broker::MergedMatches;
using ganglion::broker::SharedGroup;
using ganglion::broker::Subscription;
using ganglion::broker::SubscriptionTree;

constexpr int kAreas = 20;
constexpr int kMetrics = 8;

std::string topic_of(int area, int device, int metric) {
  return "site/area" + std::to_string(area) + "/dev" + std::to_string(device) + "/m" +
         std::to_string(metric);
}

struct Fixture {
  SubscriptionTree tree;
  std::unordered_map<std::string, std::vector<std::uint64_t>> exact;  // baseline
  std::vector<std::string> topics;                                    // published, in order
};

Fixture& fixture(int subscriptions) {
  static std::unordered_map<int, std::unique_ptr<Fixture>> cache;
  auto& slot = cache[subscriptions];
  if (slot) return *slot;
  slot = std::make_unique<Fixture>();
  Fixture& f = *slot;
  std::mt19937 rng(42);
  const int devices = std::max(1, subscriptions / (kAreas * kMetrics) + 1);
  std::uniform_int_distribution<int> area(0, kAreas - 1), device(0, devices - 1),
      metric(0, kMetrics - 1), kind(0, 9);
  for (int i = 0; i < subscriptions; ++i) {
    const std::uint64_t id = static_cast<std::uint64_t>(i) + 1;
    const int a = area(rng), d = device(rng), m = metric(rng), k = kind(rng);
    std::string filter;
    if (k < 7) {
      filter = topic_of(a, d, m);
      f.exact[filter].push_back(id);
    } else if (k < 9) {
      filter = "site/area" + std::to_string(a) + "/+/m" + std::to_string(m);
    } else {
      filter = "site/area" + std::to_string(a) + "/dev" + std::to_string(d) + "/#";
    }
    (void)f.tree.subscribe(filter, "", id, {});
  }
  for (int i = 0; i < 4096; ++i) f.topics.push_back(topic_of(area(rng), device(rng), metric(rng)));
  return f;
}

void BM_TreeMatch(benchmark::State& state) {
  Fixture& f = fixture(static_cast<int>(state.range(0)));
  std::size_t i = 0, matched = 0;
  for (auto _ : state) {
    const std::string& topic = f.topics[i++ & 4095];
    std::size_t n = 0;
    f.tree.match(
        topic, [&](const Subscription&) { ++n; }, [&](SharedGroup&) { ++n; });
    matched += n;
    benchmark::DoNotOptimize(n);
  }
  state.counters["matches/op"] =
      benchmark::Counter(static_cast<double>(matched) / static_cast<double>(state.iterations()));
  state.counters["nodes"] = static_cast<double>(f.tree.node_count());
}

void BM_TreeMatchMerged(benchmark::State& state) {
  Fixture& f = fixture(static_cast<int>(state.range(0)));
  MergedMatches out;
  std::size_t i = 0;
  for (auto _ : state) {
    f.tree.match_merged(f.topics[i++ & 4095], 0, out);
    benchmark::DoNotOptimize(out.deliveries().size());
  }
}

// The floor: exact-topic lookup only (no wildcards at all).
void BM_BaselineUnorderedMapExact(benchmark::State& state) {
  Fixture& f = fixture(static_cast<int>(state.range(0)));
  std::size_t i = 0;
  for (auto _ : state) {
    auto it = f.exact.find(f.topics[i++ & 4095]);
    std::size_t n = 0;
    if (it != f.exact.end()) {
      for (std::uint64_t id : it->second) n += id != 0;
    }
    benchmark::DoNotOptimize(n);
  }
}

BENCHMARK(BM_TreeMatch)->Arg(10'000)->Arg(100'000);
BENCHMARK(BM_TreeMatchMerged)->Arg(10'000)->Arg(100'000);
BENCHMARK(BM_BaselineUnorderedMapExact)->Arg(10'000)->Arg(100'000);

}  // namespace

BENCHMARK_MAIN();
