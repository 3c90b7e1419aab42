#include "cloud/query.h"

#include <gtest/gtest.h>

namespace ganglion::cloud {
namespace {

constexpr std::int64_t kNow = 1'700'000'000'000;

TEST(Query, DefaultsAndRelativeTimes) {
  auto p = parse_query_params({{"metric", "temp"}, {"from", "-15m"}}, kNow);
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(p->agg, "avg");
  EXPECT_EQ(p->bucket_ms, 60'000);
  EXPECT_EQ(p->group_by, "node");
  EXPECT_EQ(p->from_ms, kNow - 15 * 60'000);
  EXPECT_EQ(p->to_ms, kNow);
}

TEST(Query, RejectsWhatCouldReachTheSqlText) {
  for (auto [k, v] :
       std::vector<std::pair<std::string, std::string>>{{"metric", "temp'); DROP TABLE records;--"},
                                                        {"metric", ""},
                                                        {"metric", "a..b"},
                                                        {"agg", "median"},
                                                        {"bucket", "0s"},
                                                        {"group_by", "site\""},
                                                        {"where", "site"},
                                                        {"from", "yesterday"},
                                                        {"source", "cache"}}) {
    std::map<std::string, std::string> q{{"metric", "temp"}};
    q[k] = v;
    EXPECT_FALSE(parse_query_params(q, kNow).ok()) << k << "=" << v;
  }
}

TEST(Query, HugeRangeIsAnErrorNotAnOverflow) {
  // Found with fuzz/api_body_fuzz: to - from overflowed int64 (undefined behaviour).
  auto p =
      parse_query_params({{"metric", "t"}, {"from", "-1d"}, {"to", "9223372036854775807"}}, kNow);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("too many buckets"), std::string::npos);
}

TEST(Query, UserValuesAreBoundNeverSpliced) {
  auto p = parse_query_params({{"metric", "motor.rpm"},
                               {"agg", "max"},
                               {"bucket", "5m"},
                               {"group_by", "site"},
                               {"where", "site=eu-1,node=n1"}},
                              kNow);
  ASSERT_TRUE(p.ok());
  auto q = build_query(*p);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->sql.find("eu-1"), std::string::npos);
  EXPECT_EQ(q->sql.find("motor"), std::string::npos);
  EXPECT_NE(q->sql.find("max(CAST(json_extract(r.payload, "), std::string::npos);
  bool has_path = false, has_site = false;
  for (const auto& v : q->params) {
    if (auto* s = std::get_if<std::string>(&v)) {
      has_path |= *s == "$.\"motor\".\"rpm\"";
      has_site |= *s == "eu-1";
    }
  }
  EXPECT_TRUE(has_path);
  EXPECT_TRUE(has_site);
}

TEST(Query, RollupsCombinePartialAggregates) {
  auto p = parse_query_params({{"metric", "temp"}, {"source", "rollup"}, {"bucket", "1h"}}, kNow);
  ASSERT_TRUE(p.ok());
  auto q = build_query(*p);
  ASSERT_TRUE(q.ok());
  EXPECT_NE(q->sql.find("sum(r.sum) / sum(r.count)"), std::string::npos);
  EXPECT_FALSE(
      parse_query_params({{"metric", "temp"}, {"source", "rollup"}, {"bucket", "30s"}}, kNow).ok());
}

}  // namespace
}  // namespace ganglion::cloud
