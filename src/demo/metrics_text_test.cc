#include "demo/metrics_text.h"

#include <gtest/gtest.h>

namespace ganglion::demo {
namespace {

constexpr std::string_view kText =
    "# HELP ganglion_uplink_backlog_records Records logged and not yet acknowledged.\n"
    "# TYPE ganglion_uplink_backlog_records gauge\n"
    "ganglion_uplink_backlog_records{class=\"alert\"} 3\n"
    "ganglion_uplink_backlog_records{class=\"telemetry\"} 40\n"
    "ganglion_uplink_backlog_records_extra 1000\n"
    "ganglion_uplink_policy_applied_total{kind=\"local_only\",filter=\"sites/+/camera/"
    "#\",path=\"\"} 7\n"
    "ganglion_uplink_policy_applied_total{kind=\"hash\",filter=\"sites/+/badge/"
    "#\",path=\"badge_id\"} 5\n"
    "ganglion_mqtt_clients_connected 12\n"
    "ganglion_broken{a=\"b\" 9\n";

TEST(MetricTotal, SumsEverySeriesOfExactlyThatName) {
  EXPECT_DOUBLE_EQ(metric_total(kText, "ganglion_uplink_backlog_records"), 43);
  EXPECT_DOUBLE_EQ(metric_total(kText, "ganglion_mqtt_clients_connected"), 12);
  EXPECT_DOUBLE_EQ(metric_total(kText, "ganglion_absent"), 0);
  EXPECT_DOUBLE_EQ(metric_total(kText, "ganglion_broken"), 0);
}

TEST(MetricTotal, FiltersOnALabel) {
  EXPECT_DOUBLE_EQ(
      metric_total(kText, "ganglion_uplink_policy_applied_total", "kind=\"local_only\""), 7);
  EXPECT_DOUBLE_EQ(metric_total(kText, "ganglion_uplink_policy_applied_total"), 12);
}

}  // namespace
}  // namespace ganglion::demo
