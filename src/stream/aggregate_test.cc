#include "stream/aggregate.h"

#include <gtest/gtest.h>

#include <cmath>

#include "event/json.h"
#include "stream/query_testing.h"

namespace ganglion::stream {
namespace {

using testing::Outputs;
using testing::QueryHarness;

// Runs `select` over a 10 s tumbling window fed with `rows`, returns the payload.
std::string window_of(std::string_view select, std::vector<std::string> rows) {
  QueryHarness h;
  h.create(R"(CREATE STREAM demo () WITH (DATASOURCE="demo"))");
  Status s = h.plan(std::string(select) + " FROM demo GROUP BY TUMBLINGWINDOW(ss, 10)");
  if (!s.ok()) return "PLAN: " + s.message();
  for (auto& r : rows) h.push("demo", r);
  h.advance_ms(10000);
  auto out = h.take();
  return out.empty() ? "" : out[0];
}

const std::vector<std::string> kRows = {R"({"v": 4, "s": "b"})", R"({"v": null, "s": "a"})",
                                        R"({"v": 2, "s": "c"})", R"({"v": 8})",
                                        R"({"v": 6, "s": "a"})"};

TEST(AggregateTest, CountStarCountsRowsCountExprSkipsNull) {
  EXPECT_EQ(window_of("SELECT count(*) AS a, count(v) AS b, count(s) AS c", kRows),
            R"([{"a":5,"b":4,"c":4}])");
}

TEST(AggregateTest, SumAvgMinMaxIgnoreNull) {
  EXPECT_EQ(window_of("SELECT sum(v) AS s, avg(v) AS a, min(v) AS lo, max(v) AS hi", kRows),
            R"([{"s":20,"a":5,"lo":2,"hi":8}])");
  EXPECT_EQ(window_of("SELECT sum(v) AS s, avg(v) AS a", {R"({"v":1})", R"({"v":2.5})"}),
            R"([{"s":3.5,"a":1.75}])");
  EXPECT_EQ(window_of("SELECT min(s) AS lo, max(s) AS hi", kRows), R"([{"lo":"a","hi":"c"}])");
}

TEST(AggregateTest, AllNullGivesNullButCountZero) {
  EXPECT_EQ(window_of("SELECT sum(x) AS s, avg(x) AS a, max(x) AS m, count(x) AS n, stddev(x) AS "
                      "sd, median(x) AS md",
                      {R"({"v":1})"}),
            R"([{"s":null,"a":null,"m":null,"n":0,"sd":null,"md":null}])");
}

TEST(AggregateTest, VarianceAndStandardDeviationPopulationAndSample) {
  // values 2 4 4 4 5 5 7 9: population variance 4, sample 32/7.
  std::vector<std::string> rows;
  for (int v : {2, 4, 4, 4, 5, 5, 7, 9}) rows.push_back(R"({"v":)" + std::to_string(v) + "}");
  EXPECT_EQ(window_of("SELECT var(v) AS a, stddev(v) AS b", rows), R"([{"a":4,"b":2}])");
  auto out = window_of("SELECT vars(v) AS a, stddevs(v) AS b", rows);
  auto parsed = *parse_json(out);
  const Value& row = parsed.as_array()[0];
  EXPECT_NEAR(row.find("a")->as_float(), 32.0 / 7, 1e-12);
  EXPECT_NEAR(row.find("b")->as_float(), std::sqrt(32.0 / 7), 1e-12);
  EXPECT_EQ(window_of("SELECT vars(v) AS a", {R"({"v":1})"}), R"([{"a":null}])");
}

TEST(AggregateTest, MedianAndPercentiles) {
  EXPECT_EQ(window_of("SELECT median(v) AS m", kRows), R"([{"m":5}])");
  EXPECT_EQ(window_of("SELECT percentile_cont(v, 0.25) AS c, percentile_disc(v, 0.25) AS d, "
                      "percentile_disc(v, 1) AS top, percentile_cont(v, 0) AS bottom",
                      kRows),
            R"([{"c":3.5,"d":2,"top":8,"bottom":2}])");
}

TEST(AggregateTest, CollectKeepsOrderAndNullsCollectStarKeepsRows) {
  EXPECT_EQ(window_of("SELECT collect(v) AS c", kRows), R"([{"c":[4,null,2,8,6]}])");
  EXPECT_EQ(window_of("SELECT collect(*) AS c", {R"({"a":1})", R"({"a":2})"}),
            R"([{"c":[{"a":1},{"a":2}]}])");
  EXPECT_EQ(window_of("SELECT collect(*)[1]->a AS second", {R"({"a":1})", R"({"a":2})"}),
            R"([{"second":2}])");
}

TEST(AggregateTest, MergeAggUnitesTopLevelKeysLaterWins) {
  std::vector<std::string> rows = {R"({"a":{"a":2},"b":2,"c":3})", R"({"a":{"b":2},"b":5,"d":6})",
                                   R"({"a":{"a":3},"b":8})"};
  EXPECT_EQ(window_of("SELECT merge_agg(*) AS r", rows),
            R"([{"r":{"a":{"a":3},"b":8,"c":3,"d":6}}])");
  EXPECT_EQ(window_of("SELECT merge_agg(a) AS r", rows), R"([{"r":{"a":3,"b":2}}])");
}

TEST(AggregateTest, LastValueWithAndWithoutIgnoringNull) {
  std::vector<std::string> rows = {R"({"v":1})", R"({"v":2})", R"({"v":null})"};
  EXPECT_EQ(window_of("SELECT last_value(v, true) AS a, last_value(v, false) AS b", rows),
            R"([{"a":2,"b":null}])");
}

TEST(AggregateTest, DeduplicateAllOrLatest) {
  std::vector<std::string> rows = {R"({"k":1,"x":"a"})", R"({"k":2,"x":"b"})",
                                   R"({"k":1,"x":"c"})"};
  EXPECT_EQ(window_of("SELECT deduplicate(k, true) AS d", rows),
            R"([{"d":[{"k":1,"x":"a"},{"k":2,"x":"b"}]}])");
  EXPECT_EQ(window_of("SELECT deduplicate(k, false) AS d", rows), R"([{"d":{}}])");
  rows.push_back(R"({"k":3,"x":"d"})");
  EXPECT_EQ(window_of("SELECT deduplicate(k, false) AS d", rows), R"([{"d":{"k":3,"x":"d"}}])");
}

TEST(AggregateTest, TypeErrorsAreCountedAndTheValueSkipped) {
  QueryHarness h;
  h.create(R"(CREATE STREAM demo () WITH (DATASOURCE="demo"))");
  ASSERT_TRUE(h.plan("SELECT sum(v) AS s FROM demo GROUP BY TUMBLINGWINDOW(ss, 10)").ok());
  h.push("demo", R"({"v":1})");
  h.push("demo", R"({"v":"two"})");
  h.advance_ms(10000);
  EXPECT_EQ(h.take(), (Outputs{R"([{"s":1}])"}));
  EXPECT_EQ(h.query->metrics().errors, 1u);
  EXPECT_EQ(h.query->metrics().last_error, "sum: expects a number, got string(two)");
}

TEST(AggregateTest, GroupByIntAndIntegralFloatIsOneGroup) {
  QueryHarness h;
  h.create(R"(CREATE STREAM demo () WITH (DATASOURCE="demo"))");
  ASSERT_TRUE(h.plan("SELECT k, count(*) AS n FROM demo GROUP BY k, TUMBLINGWINDOW(ss, 10)").ok());
  h.push("demo", R"({"k":1})");
  h.push("demo", R"({"k":1.0})");
  h.push("demo", R"({"k":"1"})");
  h.push("demo", R"({})");
  h.push("demo", R"({"k":null})");
  h.advance_ms(10000);
  EXPECT_EQ(h.take(), (Outputs{R"([{"k":1,"n":2},{"k":"1","n":1},{"k":null,"n":2}])"}));
  EXPECT_EQ(hash_value(Value(1)), hash_value(Value(1.0)));
}

TEST(AggregateTest, AccumulatorsMergeAsIfRowsWereAddedInOrder) {
  const char* names[] = {"count", "sum",  "avg",    "min",     "max",       "stddev",    "stddevs",
                         "var",   "vars", "median", "collect", "merge_agg", "last_value"};
  for (const char* name : names) {
    auto f = accumulator_factory(name, {});
    ASSERT_TRUE(f.ok()) << name;
    auto whole = (*f)(), a = (*f)(), b = (*f)();
    for (int i = 0; i < 10; ++i) {
      Value v(i * 1.5);
      (void)whole->add(v, v);
      (void)(i < 4 ? a : b)->add(v, v);
    }
    a->merge(*b);
    Value x = whole->result(), y = a->result();
    if (x.is_float()) {
      EXPECT_NEAR(x.as_float(), y.as_float(), 1e-9) << name;
    } else {
      EXPECT_EQ(x, y) << name;
    }
  }
  EXPECT_FALSE(accumulator_factory("nosuch", {}).ok());
  Value bad[] = {Value("x")};
  EXPECT_FALSE(accumulator_factory("deduplicate", bad).ok());
}

}  // namespace
}  // namespace ganglion::stream
