#include "base/metrics.h"

#include <gtest/gtest.h>

namespace ganglion {
namespace {

TEST(Metrics, RendersCounterWithLabelsInPrometheusFormat) {
  MetricsRegistry r;
  auto& fam = r.counter("mqtt_messages_total", "Messages routed.", {"qos"});
  fam.with({"0"}).inc(3);
  fam.with({"1"}).inc();
  EXPECT_EQ(r.render(),
            "# HELP mqtt_messages_total Messages routed.\n"
            "# TYPE mqtt_messages_total counter\n"
            "mqtt_messages_total{qos=\"0\"} 3\n"
            "mqtt_messages_total{qos=\"1\"} 1\n");
}

TEST(Metrics, SameNameReturnsSameFamily) {
  MetricsRegistry r;
  r.counter("c", "h").get().inc();
  r.counter("c", "h").get().inc();
  EXPECT_EQ(r.counter("c", "h").get().value(), 2u);
}

TEST(Metrics, GaugeRendersDoubles) {
  MetricsRegistry r;
  auto& g = r.gauge("uplink_backlog_bytes", "Bytes waiting.").get();
  g.set(1.5);
  g.add(2);
  EXPECT_NE(r.render().find("uplink_backlog_bytes 3.5\n"), std::string::npos);
}

TEST(Metrics, HistogramRendersCumulativeBuckets) {
  MetricsRegistry r;
  auto& h = r.histogram("latency_seconds", "Latency.", {0.1, 1}).get();
  h.observe(0.05);
  h.observe(0.5);
  h.observe(5);
  const std::string out = r.render();
  EXPECT_NE(out.find("latency_seconds_bucket{le=\"0.1\"} 1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("latency_seconds_bucket{le=\"1\"} 2\n"), std::string::npos) << out;
  EXPECT_NE(out.find("latency_seconds_bucket{le=\"+Inf\"} 3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("latency_seconds_sum 5.55\n"), std::string::npos) << out;
  EXPECT_NE(out.find("latency_seconds_count 3\n"), std::string::npos) << out;
}

TEST(Metrics, HistogramEstimatesQuantiles) {
  Histogram h({1, 2, 3, 4});
  for (int i = 0; i < 100; ++i) h.observe(0.5 + (i % 4));
  EXPECT_NEAR(h.quantile(0.5), 2.0, 0.01);
  EXPECT_LE(h.quantile(0.99), 4.0);
}

TEST(Metrics, EscapesLabelValues) {
  MetricsRegistry r;
  r.counter("x_total", "h", {"topic"}).with({"a\"b\\c\nd"}).inc();
  EXPECT_NE(r.render().find("x_total{topic=\"a\\\"b\\\\c\\nd\"} 1"), std::string::npos);
}

TEST(Metrics, RejectsInvalidNames) {
  MetricsRegistry r;
  EXPECT_THROW(r.counter("9bad", "h"), std::invalid_argument);
  EXPECT_THROW(r.counter("has-dash", "h"), std::invalid_argument);
}

}  // namespace
}  // namespace ganglion
