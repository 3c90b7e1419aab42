#include "demo/scoring.h"

#include <gtest/gtest.h>

namespace ganglion::demo {
namespace {

TEST(GroundTruth, ReadsTheSimulatorsJsonLines) {
  const std::string text =
      R"({"device":"temperature-0001","kind":"temperature","anomaly":"overheat","topic":"t","start":1,"end":2,"seq_start":10,"seq_end":19})"
      "\n\n"
      R"({"device":"door-0004","kind":"door","anomaly":"forced_open","topic":"t","start":5,"end":5,"seq_start":3,"seq_end":3,"truncated":true})"
      "\n";
  auto t = read_ground_truth(text);
  ASSERT_TRUE(t.ok()) << t.status().message();
  ASSERT_EQ(t->size(), 2u);
  EXPECT_EQ((*t)[0].device, "temperature-0001");
  EXPECT_EQ((*t)[0].anomaly, "overheat");
  EXPECT_EQ((*t)[0].seq_start, 10u);
  EXPECT_EQ((*t)[1].seq_end, 3u);
}

TEST(GroundTruth, NamesTheBadLine) {
  auto t = read_ground_truth(
      "{\"device\":\"a\",\"anomaly\":\"x\",\"seq_start\":1,\"seq_end\":2}\n"
      "{\"device\":\"a\"}\n");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("line 2"), std::string::npos);
  EXPECT_FALSE(read_ground_truth("not json").ok());
}

TEST(Detections, PrecisionAndRecallAgainstTheTruth) {
  const std::vector<TruthAnomaly> truth = {
      {"t-1", "overheat", 10, 19}, {"t-1", "stuck_sensor", 40, 50}, {"v-1", "bearing_fault", 5, 8}};
  const std::vector<RaisedAlert> alerts = {
      {"t-1", 12, "overheat"},       // true
      {"t-1", 21, "overheat"},       // within the slack after the end: true
      {"t-1", 30, "overheat"},       // false
      {"v-1", 5, "bearing_fault"},   // true
      {"x-9", 5, "bearing_fault"}};  // unknown device: false
  const auto s = score_detections(truth, alerts, 3);
  EXPECT_EQ(s.alerts, 5u);
  EXPECT_EQ(s.true_alerts, 3u);
  EXPECT_EQ(s.anomalies, 3u);
  EXPECT_EQ(s.detected, 2u);  // the stuck sensor was missed
  EXPECT_DOUBLE_EQ(s.precision(), 0.6);
  EXPECT_DOUBLE_EQ(s.recall(), 2.0 / 3.0);
  EXPECT_EQ(s.per_anomaly.at("stuck_sensor").injected, 1u);
  EXPECT_EQ(s.per_anomaly.at("stuck_sensor").detected, 0u);
  EXPECT_EQ(s.per_anomaly.at("overheat").detected, 1u);
}

TEST(Detections, NothingToScoreIsPerfectNotDivisionByZero) {
  const auto s = score_detections({}, {}, 3);
  EXPECT_DOUBLE_EQ(s.precision(), 1.0);
  EXPECT_DOUBLE_EQ(s.recall(), 1.0);
}

TEST(Percentile, NearestRank) {
  std::vector<double> v = {5, 1, 4, 2, 3, 10, 9, 8, 7, 6};
  EXPECT_DOUBLE_EQ(percentile(v, 0.5), 5);
  EXPECT_DOUBLE_EQ(percentile(v, 0.99), 10);
  EXPECT_DOUBLE_EQ(percentile(v, 0.0), 1);
  std::vector<double> empty;
  EXPECT_DOUBLE_EQ(percentile(empty, 0.5), 0);
}

}  // namespace
}  // namespace ganglion::demo
