#include "demo/view.h"

#include <gtest/gtest.h>

namespace ganglion::demo {
namespace {

DemoView sample() {
  DemoView v;
  v.elapsed_s = 12;
  v.duration_s = 60;
  v.phase = "link of factory-eu CUT (back in 8 s)";
  SiteView a;
  a.name = "factory-eu";
  a.region = "eu";
  a.connected = 12;
  a.connections = 12;
  a.msgs_per_s = 240;
  a.reactions = 3;
  a.latency_p50_ms = 0.8;
  a.latency_p99_ms = 2.5;
  a.raw_bytes = 2'500'000;
  a.uplinked_bytes = 100'000;
  a.backlog = 450;
  a.cut = true;
  SiteView b = a;
  b.name = "shop-us";
  b.region = "us";
  b.cut = false;
  b.link_up = true;
  b.backlog = 0;
  v.sites = {a, b};
  return v;
}

TEST(HumanBytes, DecimalUnits) {
  EXPECT_EQ(human_bytes(860), "860 B");
  EXPECT_EQ(human_bytes(1'200), "1.2 kB");
  EXPECT_EQ(human_bytes(2'500'000), "2.5 MB");
  EXPECT_EQ(human_bytes(3'000'000'000ULL), "3.00 GB");
}

TEST(RenderTable, ShowsEverySiteTheTotalsAndTheLinkState) {
  const std::string t = render_table(sample());
  EXPECT_NE(t.find("t=12s/60s"), std::string::npos) << t;
  EXPECT_NE(t.find("link of factory-eu CUT"), std::string::npos) << t;
  EXPECT_NE(t.find("(24/24 connections up)"), std::string::npos) << t;
  EXPECT_NE(t.find("factory-eu"), std::string::npos);
  EXPECT_NE(t.find("CUT"), std::string::npos);
  EXPECT_NE(t.find("2.5 MB  100.0 kB   25x"), std::string::npos) << t;
  EXPECT_NE(t.find("5.0 MB  200.0 kB   25x"), std::string::npos) << t;  // the "all" row
  for (std::size_t at = 0, next; (next = t.find('\n', at)) != std::string::npos; at = next + 1)
    EXPECT_LE(next - at, 100u) << "a line wider than 100 columns";
  EXPECT_NE(t.find("0.8/2.5"), std::string::npos);
}

TEST(RenderLines, OneLinePerSite) {
  const std::string t = render_lines(sample());
  EXPECT_EQ(std::count(t.begin(), t.end(), '\n'), 2);
  EXPECT_NE(t.find("shop-us msgs/s 240"), std::string::npos) << t;
  EXPECT_NE(t.find("link up"), std::string::npos);
  EXPECT_NE(t.find("link CUT"), std::string::npos);
}

}  // namespace
}  // namespace ganglion::demo
