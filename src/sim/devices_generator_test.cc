// SimDevice: deterministic per seed, per-device sequence numbers, topics per kind, anomalies
// injected at about the requested rate and reported with the right seq ranges.
#include "sim/devices_generator.h"

#include <gtest/gtest.h>

#include <map>

namespace ganglion::sim {
namespace {

TEST(SimDevices, SameSeedSameMessagesAndSequenceNumbersCountUp) {
  SimDevice a("site-a", DeviceKind::kVibration, 2, 42, 0.05),
      b("site-a", DeviceKind::kVibration, 2, 42, 0.05);
  std::vector<InjectedAnomaly> fa, fb;
  for (int i = 0; i < 200; ++i) {
    auto ma = a.next(1'700'000'000'000 + i * 500, fa), mb = b.next(1'700'000'000'000 + i * 500, fb);
    EXPECT_EQ(ma.payload, mb.payload);
    EXPECT_EQ(ma.seq, static_cast<std::uint64_t>(i));
    EXPECT_EQ(ma.topic, "sites/site-a/vibration/vibration-0003/telemetry");
    EXPECT_NE(ma.payload.find("\"seq\":" + std::to_string(i) + ","), std::string::npos);
  }
  EXPECT_EQ(fa.size(), fb.size());
}

TEST(SimDevices, EventKindsUseTheEventsTopicAndPoissonIntervals) {
  SimDevice d("s", DeviceKind::kBadge, 0, 1, 0);
  std::vector<InjectedAnomaly> f;
  auto m = d.next(0, f);
  EXPECT_TRUE(m.event);
  EXPECT_EQ(m.topic, "sites/s/badge/badge-0001/events");
  EXPECT_NE(m.payload.find("\"badge_id\":\"B-"), std::string::npos);
  double sum = 0;
  for (int i = 0; i < 4000; ++i) sum += d.next_interval_s(2.0);
  EXPECT_NEAR(sum / 4000, 0.5, 0.05);
  SimDevice t("s", DeviceKind::kPower, 0, 1, 0);
  EXPECT_DOUBLE_EQ(t.next_interval_s(2.0), 0.5);
}

TEST(SimDevices, AnomaliesMatchTheRateAndCoverTheirSeqRanges) {
  std::map<std::string, int> names;
  std::size_t anomalies = 0, anomalous_messages = 0, starts = 0;
  for (DeviceKind kind : kAllDeviceKinds) {
    SimDevice d("s", kind, 0, 7, 0.01);
    std::vector<InjectedAnomaly> f;
    std::uint64_t covered = 0;
    for (int i = 0; i < 20'000; ++i) {
      auto m = d.next(i * 100, f);
      anomalous_messages += m.anomalous;
      starts += m.anomaly_start;
    }
    if (auto open = d.finish()) f.push_back(*open);
    for (const auto& a : f) {
      EXPECT_EQ(a.kind, kind);
      EXPECT_LE(a.seq_start, a.seq_end);
      EXPECT_EQ(a.start_ms, static_cast<std::int64_t>(a.seq_start) * 100);
      EXPECT_EQ(a.end_ms, static_cast<std::int64_t>(a.seq_end) * 100);
      covered += a.seq_end - a.seq_start + 1;
      names[a.anomaly]++;
    }
    anomalies += f.size();
    EXPECT_GT(f.size(), 0u) << to_string(kind);
    (void)covered;
  }
  EXPECT_EQ(starts, anomalies);
  // 6 kinds x 20000 messages at 1% per message outside anomalies: roughly 1000 anomalies.
  EXPECT_GT(anomalies, 600u);
  EXPECT_LT(anomalies, 1300u);
  for (const char* n : {"overheat", "stuck_sensor", "bearing_fault", "spike", "forced_open",
                        "held_open", "unknown_badge", "person_in_restricted_zone"})
    EXPECT_GT(names[n], 0) << n;
}

TEST(SimDevices, ParsesRatesAndKinds) {
  EXPECT_DOUBLE_EQ(*parse_rate("2/s"), 2.0);
  EXPECT_DOUBLE_EQ(*parse_rate("120/min"), 2.0);
  EXPECT_DOUBLE_EQ(*parse_rate("0.5"), 0.5);
  EXPECT_FALSE(parse_rate("0/s").ok());
  EXPECT_FALSE(parse_rate("fast").ok());
  EXPECT_FALSE(parse_rate("2/week").ok());
  auto kinds = parse_device_kinds("door,temperature,door");
  ASSERT_TRUE(kinds.ok());
  EXPECT_EQ(kinds->size(), 2u);
  EXPECT_FALSE(parse_device_kinds("toaster").ok());
}

TEST(SimDevices, GroundTruthLineIsJson) {
  InjectedAnomaly a{
      "vibration-0001", DeviceKind::kVibration, "bearing_fault", "t", 10, 20, 3, 5, false};
  EXPECT_EQ(
      to_json_line(a),
      R"({"device":"vibration-0001","kind":"vibration","anomaly":"bearing_fault","topic":"t","start":10,)"
      R"("end":20,"seq_start":3,"seq_end":5,"truncated":false})");
}

}  // namespace
}  // namespace ganglion::sim
