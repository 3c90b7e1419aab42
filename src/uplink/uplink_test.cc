#include "uplink/uplink.h"

#include <gtest/gtest.h>

namespace ganglion::uplink {
namespace {

TEST(UplinkConfig, ParsesClassSpecs) {
  auto c = parse_class_spec("telemetry priority=1 ttl=7d quota=512MiB full=drop-oldest linger=2s");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->name, "telemetry");
  EXPECT_EQ(c->priority, 1);
  EXPECT_EQ(c->ttl, std::chrono::hours(24 * 7));
  EXPECT_EQ(c->quota, 512u << 20);
  EXPECT_EQ(c->full, log::QuotaPolicy::kDropOldest);
  EXPECT_EQ(*c->linger, std::chrono::seconds(2));
  auto a = parse_class_spec("alert priority=2 full=refuse-newest");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->full, log::QuotaPolicy::kRefuseNewest);
  EXPECT_FALSE(a->linger.has_value());
  EXPECT_FALSE(parse_class_spec("Bad priority=1").ok());
  EXPECT_FALSE(parse_class_spec("x priority").ok());
  EXPECT_FALSE(parse_class_spec("x full=keep").ok());
  EXPECT_FALSE(parse_class_spec("x color=red").ok());
  EXPECT_FALSE(parse_class_spec("x ttl=forever").ok());
}

TEST(UplinkConfig, RefusesATtlTooLongForADuration) {
  // Found by fuzz/uplink_policy_fuzz: ttl=9999999997d (fits in milliseconds) overflowed the
  // conversion to nanoseconds (undefined behaviour, a negative ttl in practice).
  EXPECT_FALSE(parse_class_spec("x ttl=9999999997d").ok());
  EXPECT_FALSE(parse_class_spec("x linger=106752d").ok());
  auto c = parse_class_spec("x ttl=36500d");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->ttl, std::chrono::hours(24 * 36500));
}

TEST(UplinkConfig, ParsesRoutes) {
  auto r = parse_route("factory/+/alerts/# alert");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->filter, "factory/+/alerts/#");
  EXPECT_EQ(r->cls, "alert");
  EXPECT_FALSE(parse_route("factory/#").ok());
  EXPECT_FALSE(parse_route("fac#tory alert").ok());
  EXPECT_FALSE(parse_route("a/# Alert").ok());
}

}  // namespace
}  // namespace ganglion::uplink
