// Analytic functions (lag, latest, changed_col, had_changed, CHANGED_COLS, acc_*) and their
// OVER (PARTITION BY ... WHEN ...) clause, run through the query engine with the manual
// clock. Expected outputs follow eKuiper's documentation and implementation.
#include "stream/analytic.h"

#include <gtest/gtest.h>

#include "stream/parser.h"
#include "stream/query_testing.h"

namespace ganglion::stream {
namespace {

using testing::Outputs;
using testing::QueryHarness;

class AnalyticTest : public ::testing::Test {
 protected:
  void SetUp() override {
    h.create(R"(CREATE STREAM demo () WITH (DATASOURCE="demo", FORMAT="json"))");
    h.create(R"(CREATE STREAM other () WITH (DATASOURCE="other"))");
    h.create(R"(CREATE TABLE names () WITH (DATASOURCE="names", KEY="id"))");
  }
  void plan(std::string_view sql, QueryOptions options = {}) {
    Status s = h.plan(sql, options);
    ASSERT_TRUE(s.ok()) << s.to_string();
  }
  std::string plan_error(std::string_view sql) {
    Status s = h.plan(sql);
    EXPECT_FALSE(s.ok()) << sql;
    return s.message();
  }
  QueryHarness h;
};

TEST_F(AnalyticTest, LagReturnsThePreviousValueThenTheOneBeforeWithDefaults) {
  plan("SELECT t, lag(t) AS p1, lag(t, 2) AS p2, lag(t, 2, 0) AS p2d FROM demo");
  h.push("demo", R"({"t": 1})");
  h.push("demo", R"({"t": 2})");
  h.push("demo", R"({"t": 3})");
  EXPECT_EQ(h.take(), (Outputs{R"([{"t":1,"p1":null,"p2":null,"p2d":0}])",
                               R"([{"t":2,"p1":1,"p2":null,"p2d":0}])",
                               R"([{"t":3,"p1":2,"p2":1,"p2d":1}])"}));
}

TEST_F(AnalyticTest, LagWithIgnoreNullSkipsNullValues) {
  plan("SELECT lag(t, 1, -1, true) AS a, lag(t) AS b FROM demo");
  h.push("demo", R"({"t": 1})");
  h.push("demo", R"({"t": null})");
  h.push("demo", R"({})");
  h.push("demo", R"({"t": 4})");
  h.push("demo", R"({"t": 5})");
  EXPECT_EQ(h.take(),
            (Outputs{R"([{"a":-1,"b":null}])", R"([{"a":1,"b":1}])", R"([{"a":1,"b":null}])",
                     R"([{"a":1,"b":null}])", R"([{"a":4,"b":4}])"}));
}

TEST_F(AnalyticTest, LagPartitionByKeepsOneHistoryPerKey) {
  plan("SELECT id, lag(t) OVER (PARTITION BY id) AS p, lag(t) AS any FROM demo");
  h.push("demo", R"({"id": 1, "t": 10})");
  h.push("demo", R"({"id": 2, "t": 20})");
  h.push("demo", R"({"id": 1, "t": 11})");
  h.push("demo", R"({"id": 2.0, "t": 21})");  // keys compare numbers by value
  EXPECT_EQ(h.take(),
            (Outputs{R"([{"id":1,"p":null,"any":null}])", R"([{"id":2,"p":null,"any":10}])",
                     R"([{"id":1,"p":10,"any":20}])", R"([{"id":2,"p":20,"any":11}])"}));
}

// eKuiper's documented example: the duration of the previous status, with had_changed()
// inside the WHEN of lag(), and lag()'s default evaluated at the first event.
TEST_F(AnalyticTest, LagOverWhenHadChangedMeasuresStatusDurations) {
  plan(
      "SELECT ts, lag(status) AS prev, ts - lag(ts, 1, ts, true) OVER (WHEN had_changed(true, "
      "status)) AS duration FROM demo");
  h.push("demo", R"({"ts": 1, "status": "a"})");
  h.push("demo", R"({"ts": 2, "status": "a"})");
  h.push("demo", R"({"ts": 3, "status": "b"})");
  h.push("demo", R"({"ts": 5, "status": "b"})");
  h.push("demo", R"({"ts": 6, "status": "c"})");
  EXPECT_EQ(
      h.take(),
      (Outputs{R"([{"ts":1,"prev":null,"duration":0}])", R"([{"ts":2,"prev":"a","duration":1}])",
               R"([{"ts":3,"prev":"a","duration":2}])", R"([{"ts":5,"prev":"b","duration":2}])",
               R"([{"ts":6,"prev":"b","duration":3}])"}));
}

// examples/rules/status_changes.json: one row per status change of a device, with the
// previous status and how long it lasted.
TEST_F(AnalyticTest, StatusChangesPerDeviceExampleRule) {
  plan(
      "SELECT deviceId, status, lag(status) OVER (PARTITION BY deviceId) AS previous, ts - lag(ts, "
      "1, ts, true) OVER (PARTITION BY deviceId WHEN had_changed(true, status) OVER (PARTITION BY "
      "deviceId)) AS previous_ms FROM demo WHERE had_changed(true, status) OVER (PARTITION BY "
      "deviceId)");
  h.push("demo", R"({"deviceId": "d1", "ts": 1000, "status": "idle"})");
  h.push("demo", R"({"deviceId": "d2", "ts": 1500, "status": "run"})");
  h.push("demo", R"({"deviceId": "d1", "ts": 2000, "status": "idle"})");
  h.push("demo", R"({"deviceId": "d1", "ts": 4000, "status": "run"})");
  h.push("demo", R"({"deviceId": "d2", "ts": 4500, "status": "run"})");
  h.push("demo", R"({"deviceId": "d2", "ts": 9500, "status": "fault"})");
  EXPECT_EQ(
      h.take(),
      (Outputs{R"([{"deviceId":"d1","status":"idle","previous":null,"previous_ms":0}])",
               R"([{"deviceId":"d2","status":"run","previous":null,"previous_ms":0}])",
               R"([{"deviceId":"d1","status":"run","previous":"idle","previous_ms":3000}])",
               R"([{"deviceId":"d2","status":"fault","previous":"run","previous_ms":8000}])"}));
}

TEST_F(AnalyticTest, AnalyticStateIsUpdatedByEventsWhereRejects) {
  plan("SELECT t, lag(t) AS p, acc_count(t) AS n FROM demo WHERE t > 5");
  h.push("demo", R"({"t": 1})");
  h.push("demo", R"({"t": 7})");
  h.push("demo", R"({"t": 3})");
  h.push("demo", R"({"t": 9})");
  EXPECT_EQ(h.take(), (Outputs{R"([{"t":7,"p":1,"n":2}])", R"([{"t":9,"p":3,"n":4}])"}));
  EXPECT_EQ(h.query->metrics().filtered, 2u);
}

TEST_F(AnalyticTest, TheSameCallInWhereAndSelectIsComputedOncePerEvent) {
  plan("SELECT acc_count(t) AS n, acc_count(t) + 0 AS m FROM demo WHERE acc_count(t) > 1");
  for (int i = 0; i < 3; ++i) h.push("demo", R"({"t": 1})");
  EXPECT_EQ(h.take(), (Outputs{R"([{"n":2,"m":2}])", R"([{"n":3,"m":3}])"}));
}

TEST_F(AnalyticTest, LatestKeepsTheLastNonNullValueAndHonoursWhen) {
  plan("SELECT latest(t) AS l, latest(t, 'none') AS d, latest(t) OVER (WHEN ok) AS w FROM demo");
  h.push("demo", R"({"ok": true})");
  h.push("demo", R"({"t": 1, "ok": false})");
  h.push("demo", R"({"t": 2, "ok": true})");
  h.push("demo", R"({"t": null, "ok": true})");
  h.push("demo", R"({"t": 3, "ok": false})");
  EXPECT_EQ(h.take(), (Outputs{R"([{"l":null,"d":"none","w":null}])", R"([{"l":1,"d":1,"w":null}])",
                               R"([{"l":2,"d":2,"w":2}])", R"([{"l":2,"d":2,"w":2}])",
                               R"([{"l":3,"d":3,"w":2}])"}));
}

// eKuiper's documented examples for the change-detection functions.
class ChangeTest : public AnalyticTest {
 protected:
  void push_documented_inputs() {
    const char* in[] = {
        R"({"ts":1,"temperature":23,"humidity":88})", R"({"ts":2,"temperature":23,"humidity":88})",
        R"({"ts":3,"temperature":23,"humidity":88})", R"({"ts":4,"temperature":25,"humidity":88})",
        R"({"ts":5,"temperature":25,"humidity":90})", R"({"ts":6,"temperature":25,"humidity":91})",
        R"({"ts":7,"temperature":25,"humidity":91})", R"({"ts":8,"temperature":25,"humidity":91})"};
    for (const char* j : in) h.push("demo", j);
  }
};

TEST_F(ChangeTest, ChangedColReturnsTheValueOnlyWhenItChanged) {
  plan("SELECT CHANGED_COL(true, temperature) AS t, CHANGED_COL(true, humidity) AS h FROM demo");
  push_documented_inputs();
  Outputs got = h.take();
  ASSERT_EQ(got.size(), 8u);
  EXPECT_EQ(got[0], R"([{"t":23,"h":88}])");
  EXPECT_EQ(got[1], R"([{"t":null,"h":null}])");
  EXPECT_EQ(got[3], R"([{"t":25,"h":null}])");
  EXPECT_EQ(got[4], R"([{"t":null,"h":90}])");
  EXPECT_EQ(got[5], R"([{"t":null,"h":91}])");
  EXPECT_EQ(got[7], R"([{"t":null,"h":null}])");
}

TEST_F(ChangeTest, ChangedColAndHadChangedFilterInWhere) {
  plan("SELECT ts FROM demo WHERE CHANGED_COL(true, temperature) > 24");
  push_documented_inputs();
  EXPECT_EQ(h.take(), (Outputs{R"([{"ts":4}])"}));
  plan("SELECT ts FROM demo WHERE HAD_CHANGED(true, temperature, humidity) = true");
  push_documented_inputs();
  EXPECT_EQ(h.take(),
            (Outputs{R"([{"ts":1}])", R"([{"ts":4}])", R"([{"ts":5}])", R"([{"ts":6}])"}));
  plan(
      "SELECT ts FROM demo WHERE HAD_CHANGED(true, temperature) = true AND "
      "HAD_CHANGED(true, humidity) = false");
  push_documented_inputs();
  EXPECT_EQ(h.take(), (Outputs{R"([{"ts":4}])"}));
}

TEST_F(ChangeTest, IgnoreNullDecidesWhetherANullIsAChange) {
  plan(
      "SELECT changed_col(true, v) AS a, changed_col(false, v) AS b, had_changed(true, v) AS c, "
      "had_changed(false, v) AS d FROM demo");
  h.push("demo", R"({"v": null})");  // NULL is the initial state: no change either way
  h.push("demo", R"({"v": 1})");
  h.push("demo", R"({"v": null})");
  h.push("demo", R"({"v": 1})");
  EXPECT_EQ(h.take(), (Outputs{R"([{"a":null,"b":null,"c":false,"d":false}])",
                               R"([{"a":1,"b":1,"c":true,"d":true}])",
                               R"([{"a":null,"b":null,"c":false,"d":true}])",
                               R"([{"a":null,"b":1,"c":false,"d":true}])"}));
}

TEST_F(ChangeTest, HadChangedStarWatchesEveryField) {
  plan("SELECT ts FROM demo WHERE had_changed(true, *)");
  h.push("demo", R"({"a": 1, "b": 2})");
  h.push("demo", R"({"a": 1, "b": 2})");
  h.push("demo", R"({"b": 2, "a": 1})");
  h.push("demo", R"({"a": 1, "b": 3, "ts": 4})");
  h.push("demo", R"({"a": 1, "b": 3, "ts": 4})");
  EXPECT_EQ(h.take(), (Outputs{R"([{"ts":null}])", R"([{"ts":4}])"}));
}

TEST_F(ChangeTest, HadChangedOverPartitionAndWhen) {
  plan("SELECT id, had_changed(true, v) OVER (PARTITION BY id WHEN v >= 0) AS c FROM demo");
  h.push("demo", R"({"id": "a", "v": 1})");
  h.push("demo", R"({"id": "b", "v": 1})");
  h.push("demo", R"({"id": "a", "v": -5})");  // not valid: false, state kept
  h.push("demo", R"({"id": "a", "v": 1})");
  h.push("demo", R"({"id": "b", "v": 2})");
  EXPECT_EQ(h.take(), (Outputs{R"([{"id":"a","c":true}])", R"([{"id":"b","c":true}])",
                               R"([{"id":"a","c":false}])", R"([{"id":"a","c":false}])",
                               R"([{"id":"b","c":true}])"}));
}

TEST_F(ChangeTest, ChangedColsEmitsOnlyTheChangedColumnsAndDropsEmptyRows) {
  plan(R"(SELECT CHANGED_COLS("c_", true, temperature, humidity) FROM demo)");
  push_documented_inputs();
  EXPECT_EQ(h.take(),
            (Outputs{R"([{"c_temperature":23,"c_humidity":88}])", R"([{"c_temperature":25}])",
                     R"([{"c_humidity":90}])", R"([{"c_humidity":91}])"}));
  plan(R"(SELECT ts, CHANGED_COLS("", false, temperature) FROM demo)");
  push_documented_inputs();
  Outputs got = h.take();
  ASSERT_EQ(got.size(), 8u);  // ts keeps every row
  EXPECT_EQ(got[0], R"([{"ts":1,"temperature":23}])");
  EXPECT_EQ(got[1], R"([{"ts":2}])");
  EXPECT_EQ(got[3], R"([{"ts":4,"temperature":25}])");
}

TEST_F(ChangeTest, ChangedColsStarComparesEveryField) {
  plan(R"(SELECT CHANGED_COLS("c_", false, *) FROM demo)");
  h.push("demo", R"({"temperature":23,"humidity":88})");
  h.push("demo", R"({"temperature":23,"humidity":88})");
  h.push("demo", R"({"temperature":25,"humidity":88})");
  h.push("demo", R"({"temperature":25,"humidity":90})");
  h.push("demo", R"({"temperature":25,"humidity":91})");
  EXPECT_EQ(h.take(),
            (Outputs{R"([{"c_temperature":23,"c_humidity":88}])", R"([{"c_temperature":25}])",
                     R"([{"c_humidity":90}])", R"([{"c_humidity":91}])"}));
}

TEST_F(ChangeTest, ChangedColsOfAnAggregateComparesWindowResults) {
  plan(R"(SELECT CHANGED_COLS("t", true, avg(temperature)) FROM demo GROUP BY COUNTWINDOW(2))");
  push_documented_inputs();
  EXPECT_EQ(h.take(), (Outputs{R"([{"tavg":23}])", R"([{"tavg":24}])", R"([{"tavg":25}])"}));
}

TEST_F(AnalyticTest, AccumulatingFunctionsFollowTheDocumentedSequence) {
  plan(
      "SELECT acc_sum(a) AS s, acc_max(a) AS mx, acc_min(a) AS mn, acc_count(a) AS c, "
      "acc_avg(a) AS av FROM demo");
  h.push("demo", R"({"a": 1})");
  h.push("demo", R"({"a": 2})");
  h.push("demo", R"({"a": null})");  // NULL is skipped by every acc function
  h.push("demo", R"({"a": 3})");
  EXPECT_EQ(h.take(), (Outputs{R"([{"s":1,"mx":1,"mn":1,"c":1,"av":1}])",
                               R"([{"s":3,"mx":2,"mn":1,"c":2,"av":1.5}])",
                               R"([{"s":3,"mx":2,"mn":1,"c":2,"av":1.5}])",
                               R"([{"s":6,"mx":3,"mn":1,"c":3,"av":2}])"}));
}

TEST_F(AnalyticTest, AccumulatingFunctionsStartAtZeroAndRejectNonNumbers) {
  plan("SELECT acc_sum(a) AS s, acc_min(a) AS mn, acc_avg(a) AS av, acc_count(a) AS c FROM demo");
  h.push("demo", R"({})");
  h.push("demo", R"({"a": "x"})");  // an error: the call reads NULL, its state is unchanged
  h.push("demo", R"({"a": -2.5})");
  EXPECT_EQ(h.take(), (Outputs{R"([{"s":0,"mn":0,"av":0,"c":0}])",
                               R"([{"s":null,"mn":null,"av":null,"c":1}])",
                               R"([{"s":-2.5,"mn":-2.5,"av":-2.5,"c":2}])"}));
  EXPECT_EQ(h.query->metrics().errors, 3u);
  EXPECT_EQ(h.query->metrics().last_error, "acc_avg: the value must be a number, got string(x)");
}

TEST_F(AnalyticTest, AccumulatingFunctionsPerPartitionAndWhen) {
  plan(
      "SELECT id, acc_sum(v) OVER (PARTITION BY id) AS s, acc_max(v) OVER (WHEN v < 100) AS m, "
      "acc_count(v) OVER (PARTITION BY id WHEN v > 1) AS n FROM demo");
  h.push("demo", R"({"id": "a", "v": 1})");
  h.push("demo", R"({"id": "b", "v": 500})");
  h.push("demo", R"({"id": "a", "v": 7})");
  h.push("demo", R"({"id": "b", "v": 2})");
  EXPECT_EQ(h.take(),
            (Outputs{R"([{"id":"a","s":1,"m":1,"n":0}])", R"([{"id":"b","s":500,"m":1,"n":1}])",
                     R"([{"id":"a","s":8,"m":7,"n":1}])", R"([{"id":"b","s":502,"m":7,"n":2}])"}));
}

TEST_F(AnalyticTest, EveryFunctionKeepsStatePerPartitionAndIgnoresEventsFailingWhen) {
  plan(
      "SELECT latest(v) OVER (PARTITION BY id WHEN ok) AS l, changed_col(true, v) OVER "
      "(PARTITION BY id WHEN ok) AS c, acc_min(v) OVER (PARTITION BY id WHEN ok) AS mn, "
      "acc_avg(v) OVER (PARTITION BY id WHEN ok) AS av, lag(v) OVER (PARTITION BY id WHEN ok) "
      "AS lg FROM demo");
  h.push("demo", R"({"id": "a", "v": 5, "ok": true})");
  h.push("demo", R"({"id": "b", "v": 1, "ok": true})");
  h.push("demo", R"({"id": "a", "v": 3, "ok": false})");
  h.push("demo", R"({"id": "a", "v": 5, "ok": true})");
  h.push("demo", R"({"id": "a", "v": 2, "ok": true})");
  h.push("demo", R"({"id": "b", "v": 3, "ok": true})");
  EXPECT_EQ(h.take(), (Outputs{R"([{"l":5,"c":5,"mn":5,"av":5,"lg":null}])",
                               R"([{"l":1,"c":1,"mn":1,"av":1,"lg":null}])",
                               R"([{"l":5,"c":null,"mn":5,"av":5,"lg":5}])",
                               R"([{"l":5,"c":null,"mn":5,"av":5,"lg":5}])",
                               R"([{"l":2,"c":2,"mn":2,"av":4,"lg":5}])",
                               R"([{"l":3,"c":3,"mn":1,"av":2,"lg":1}])"}));
}

TEST_F(AnalyticTest, AccumulatingFunctionsWithBeginAndResetConditions) {
  // eKuiper's accFuncWithCond: nothing accumulates before on_begin; the on_reset event is
  // still counted, the next one starts again from zero.
  plan("SELECT acc_sum(v, v > 10, v < 0) AS s, acc_count(v, true, v < 0) AS c FROM demo");
  for (int v : {1, 20, 3, -1, 4, 30, 5}) h.push("demo", R"({"v": )" + std::to_string(v) + "}");
  EXPECT_EQ(h.take(), (Outputs{R"([{"s":0,"c":1}])", R"([{"s":20,"c":2}])", R"([{"s":23,"c":3}])",
                               R"([{"s":22,"c":4}])", R"([{"s":0,"c":1}])", R"([{"s":30,"c":2}])",
                               R"([{"s":35,"c":3}])"}));
}

TEST_F(AnalyticTest, ANonNumberIsAnErrorOnlyWhenItWouldBeAccumulated) {
  plan("SELECT acc_sum(v, b, false) AS s FROM demo");
  h.push("demo", R"({"v": "x", "b": false})");  // not begun: ignored, as eKuiper
  h.push("demo", R"({"v": 2, "b": true})");
  h.push("demo", R"({"v": "x", "b": false})");  // begun: an error, the sum stays
  h.push("demo", R"({"v": 3, "b": false})");
  EXPECT_EQ(h.take(), (Outputs{R"([{"s":0}])", R"([{"s":2}])", R"([{"s":null}])", R"([{"s":5}])"}));
  EXPECT_EQ(h.query->metrics().errors, 1u);
}

TEST_F(AnalyticTest, PartitionsAreBoundedAndOverflowIsCounted) {
  QueryOptions o;
  o.max_analytic_partitions = 2;
  plan("SELECT acc_count(1) OVER (PARTITION BY id) AS n FROM demo", o);
  h.push("demo", R"({"id": 1})");
  h.push("demo", R"({"id": 2})");
  h.push("demo", R"({"id": 3})");
  h.push("demo", R"({"id": 1})");
  EXPECT_EQ(h.take(), (Outputs{R"([{"n":1}])", R"([{"n":1}])", R"([{"n":null}])", R"([{"n":2}])"}));
  EXPECT_EQ(h.query->metrics().dropped_overflow, 1u);
  EXPECT_EQ(h.query->metrics().last_error, "acc_count: at most 2 partitions are kept");
}

TEST_F(AnalyticTest, InAWindowEachRowKeepsTheValueOfItsEvent) {
  // Computed when the event arrives (before the window): a grouped column reads the
  // group's first row, as other non-aggregate columns do.
  plan(
      "SELECT lag(t) AS p, acc_sum(t) AS s, count(*) AS n FROM demo "
      "GROUP BY TUMBLINGWINDOW(ss, 10)");
  h.push("demo", R"({"t": 1})");
  h.advance_ms(1000);
  h.push("demo", R"({"t": 2})");
  h.advance_ms(9000);  // closes the first window
  h.push("demo", R"({"t": 3})");
  h.advance_ms(10000);
  EXPECT_EQ(h.take(), (Outputs{R"([{"p":null,"s":1,"n":2}])", R"([{"p":2,"s":6,"n":1}])"}));
  plan("SELECT t, lag(t) AS p FROM demo WHERE t > 1 GROUP BY TUMBLINGWINDOW(ss, 10)");
  h.push("demo", R"({"t": 1})");
  h.push("demo", R"({"t": 2})");
  h.advance_ms(10000);
  EXPECT_EQ(h.take(), (Outputs{R"([{"t":2,"p":1}])"}));
}

TEST_F(AnalyticTest, AnalyticOverAnAggregateRunsOncePerWindowRow) {
  plan(
      "SELECT max(t) AS m, lag(max(t)) AS prev, changed_col(true, max(t)) AS ch FROM demo GROUP "
      "BY COUNTWINDOW(2) HAVING acc_count(max(t)) > 1");
  for (int t : {1, 5, 5, 2, 0, 3}) h.push("demo", R"({"t": )" + std::to_string(t) + "}");
  EXPECT_EQ(h.take(), (Outputs{R"([{"m":5,"prev":5,"ch":null}])", R"([{"m":3,"prev":5,"ch":3}])"}));
}

TEST_F(AnalyticTest, WithAStreamJoinEveryStreamUpdatesTheStateAndRowsReadTheFromRow) {
  // As eKuiper's plan: analytic functions sit over every stream source, before the join.
  plan(
      "SELECT demo.id, other.v, acc_count(demo.id) AS n, acc_count(1) AS events FROM demo RIGHT "
      "JOIN other ON demo.id = other.id GROUP BY TUMBLINGWINDOW(ss, 10)");
  h.push("demo", R"({"id": 1})");
  h.push("other", R"({"id": 1, "v": "x"})");  // demo.id is NULL here: n does not count it
  h.push("demo", R"({"id": 2})");
  h.push("other", R"({"id": 2, "v": "y"})");
  h.push("other", R"({"id": 3, "v": "z"})");  // no demo row: reads its own values
  h.advance_ms(10000);
  EXPECT_EQ(h.take(), (Outputs{R"([{"id":1,"v":"x","n":1,"events":1},)"
                               R"({"id":2,"v":"y","n":2,"events":3},)"
                               R"({"id":null,"v":"z","n":2,"events":5}])"}));
}

TEST_F(AnalyticTest, PlanErrorsPointAtTheCall) {
  EXPECT_EQ(plan_error("SELECT lag(t, n) FROM demo"),
            "line 1, column 8: function 'lag': the offset must be an integer constant from 1 to "
            "100000");
  EXPECT_EQ(plan_error("SELECT lag(t, 0) FROM demo"),
            "line 1, column 8: function 'lag': the offset must be an integer constant from 1 to "
            "100000");
  EXPECT_EQ(plan_error("SELECT lag(t, 1, 2, true, 5) FROM demo"),
            "line 1, column 8: function 'lag' expects 1 to 4 arguments, got 5");
  EXPECT_EQ(plan_error("SELECT acc_sum(t, true) FROM demo"),
            "line 1, column 8: function 'acc_sum' expects 1 or 3 arguments, got 2");
  EXPECT_EQ(plan_error("SELECT had_changed(true) FROM demo"),
            "line 1, column 8: function 'had_changed' expects at least 2 arguments, got 1");
  EXPECT_EQ(plan_error("SELECT lag(*) FROM demo"),
            "line 1, column 8: function 'lag' does not take '*' alone");
  EXPECT_EQ(plan_error("SELECT changed_col(true, *) FROM demo"),
            "line 1, column 8: function 'changed_col': '*' is not allowed as argument 2");
  EXPECT_EQ(plan_error("SELECT a FROM demo WHERE CHANGED_COLS('', true, a)"),
            "line 1, column 26: changed_cols is only allowed as a column of the SELECT list");
  EXPECT_EQ(plan_error("SELECT CHANGED_COLS('', true, a) AS x FROM demo"),
            "line 1, column 8: changed_cols takes no alias: its first argument is the column "
            "prefix");
  EXPECT_EQ(plan_error("SELECT CHANGED_COLS(p, true, a) FROM demo"),
            "line 1, column 21: changed_cols: the prefix must be a string constant");
  EXPECT_EQ(plan_error("SELECT count(*) FROM demo WHERE lag(max(a)) > 1 GROUP BY COUNTWINDOW(2)"),
            "line 1, column 33: analytic function 'lag' over an aggregate is only allowed in "
            "SELECT, HAVING and ORDER BY");
  EXPECT_EQ(plan_error("SELECT abs(a) OVER (WHEN a > 1) FROM demo"),
            "line 1, column 8: OVER is not supported for scalar function 'abs'");
  EXPECT_EQ(plan_error("SELECT lag(a) OVER (PARTITION BY nope(a)) FROM demo"),
            "line 1, column 34: unknown function 'nope'");
}

TEST_F(AnalyticTest, StreamStreamAndTableJoinInOneQuery) {
  plan(
      "SELECT demo.id, other.v, names.name FROM demo INNER JOIN other ON demo.id = other.id "
      "LEFT JOIN names ON names.id = demo.id GROUP BY TUMBLINGWINDOW(ss, 10)");
  h.push("names", R"({"id": 1, "name": "one"})");
  h.push("demo", R"({"id": 1})");
  h.push("demo", R"({"id": 2})");
  h.push("other", R"({"id": 1, "v": "x"})");
  h.push("other", R"({"id": 2, "v": "y"})");
  h.push("names", R"({"id": 1, "name": "uno"})");  // the table as it is when the window closes
  h.advance_ms(10000);
  EXPECT_EQ(h.take(), (Outputs{R"([{"id":1,"v":"x","name":"uno"},{"id":2,"v":"y","name":null}])"}));
  plan(
      "SELECT count(*) AS n FROM demo INNER JOIN names ON names.id = demo.id INNER JOIN other ON "
      "demo.id = other.id WHERE names.name = 'uno' GROUP BY TUMBLINGWINDOW(ss, 10)");
  h.push("names", R"({"id": 1, "name": "uno"})");
  h.push("demo", R"({"id": 1})");
  h.push("demo", R"({"id": 2})");
  h.push("other", R"({"id": 1})");
  h.push("other", R"({"id": 2})");
  h.advance_ms(10000);
  EXPECT_EQ(h.take(), (Outputs{R"([{"n":1}])"}));
}

TEST(AnalyticFactoryTest, StatesFollowEkuiperWhenCalledDirectly) {
  auto args = [](std::string_view sql) {
    auto e = sql::parse_expression(sql);
    EXPECT_TRUE(e.ok());
    return std::move((*e)->args);
  };
  auto lag_args = args("lag(x, 2, 'd')");
  auto f = analytic_factory("lag", lag_args);
  ASSERT_TRUE(f.ok());
  auto st = (*f)();
  Value out;
  std::vector<Value> in{Value(1), Value(2), Value("d")};
  ASSERT_TRUE(st->update(in, true, out).ok());
  EXPECT_EQ(out, Value("d"));
  in[0] = Value(2);
  ASSERT_TRUE(st->update(in, false, out).ok());  // invalid: peek, no change
  EXPECT_EQ(out, Value("d"));
  ASSERT_TRUE(st->update(in, true, out).ok());
  EXPECT_EQ(out, Value("d"));
  in[0] = Value(3);
  ASSERT_TRUE(st->update(in, true, out).ok());
  EXPECT_EQ(out, Value(1));
  EXPECT_TRUE(is_analytic_function("acc_avg"));
  EXPECT_FALSE(is_analytic_function("avg"));
  auto cc = analytic_factory("changed_col", args("changed_col(true, x)"));
  ASSERT_TRUE(cc.ok());
  auto c = (*cc)();
  std::vector<Value> bad{Value("yes"), Value(1)};
  Status s = c->update(bad, true, out);
  EXPECT_EQ(s.message(), "changed_col: ignore_null must be a boolean, got string(yes)");
}

}  // namespace
}  // namespace ganglion::stream
