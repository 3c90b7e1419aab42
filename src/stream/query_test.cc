#include "stream/query.h"

#include <gtest/gtest.h>

#include "stream/query_testing.h"

namespace ganglion::stream {
namespace {

using testing::Outputs;
using testing::QueryHarness;

class QueryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    h.create(R"(CREATE STREAM demo () WITH (DATASOURCE="demo", FORMAT="json"))");
    h.create(R"(CREATE STREAM typed (id BIGINT, temperature FLOAT, name STRING, ok BOOLEAN,
                loc STRUCT(lat FLOAT, lon FLOAT), tags ARRAY(STRING)) WITH (DATASOURCE="typed"))");
  }
  QueryHarness h;
};

TEST_F(QueryTest, FilterEmitsOneArrayPerMatchingEvent) {
  ASSERT_TRUE(h.plan("SELECT * FROM demo WHERE temperature > 50").ok());
  h.push("demo", R"({"temperature": 40, "id": 1})");
  h.push("demo", R"({"temperature": 60, "id": 2})");
  EXPECT_EQ(h.take(), (Outputs{R"([{"temperature":60,"id":2}])"}));
  auto m = h.query->metrics();
  EXPECT_EQ(m.records_in, 2u);
  EXPECT_EQ(m.records_out, 1u);
  EXPECT_EQ(m.filtered, 1u);
  EXPECT_FALSE(h.query->windowed());
}

// eKuiper's meta(): the MQTT source's metadata of the event a row came from.
TEST_F(QueryTest, MetaReadsTheTopicAndQosOfTheEvent) {
  auto push = [&](std::string topic, int qos, std::string json) {
    EventHeaders headers;
    headers.qos = static_cast<std::uint8_t>(qos);
    ASSERT_TRUE(h.query
                    ->push("demo", Event(std::move(topic), h.clock.wall_ms(),
                                         std::make_shared<const std::string>(std::move(json)),
                                         std::move(headers)))
                    .ok());
  };
  // In WHERE (the selective path that projects only the WHERE fields) and in SELECT.
  ASSERT_TRUE(h.plan("SELECT meta(topic) AS t, meta(QOS) AS q, meta(messageid) AS m, v FROM demo "
                     "WHERE meta(topic) LIKE 'site/%' AND v > 1")
                  .ok());
  push("site/a", 1, R"({"v": 2})");
  push("other/b", 1, R"({"v": 3})");
  push("site/c", 0, R"({"v": 0})");
  EXPECT_EQ(h.take(), (Outputs{R"([{"t":"site/a","q":1,"m":null,"v":2}])"}));
  // SELECT * passthrough with meta() in WHERE only.
  ASSERT_TRUE(h.plan("SELECT * FROM demo WHERE meta(topic) = 'x' AND v > 1").ok());
  push("x", 0, R"({"v": 2})");
  push("y", 0, R"({"v": 2})");
  EXPECT_EQ(h.take(), (Outputs{R"([{"v":2}])"}));
  // meta(*), and in a window: a non-aggregate column reads the group's first row.
  ASSERT_TRUE(h.plan("SELECT meta(*) AS all, count(*) AS n FROM demo GROUP BY "
                     "TUMBLINGWINDOW(ss, 10)")
                  .ok());
  push("first", 2, R"({"v": 1})");
  push("second", 0, R"({"v": 1})");
  h.advance_ms(10'000);
  EXPECT_EQ(h.take(), (Outputs{R"([{"all":{"topic":"first","qos":2},"n":2}])"}));
  // The argument names a key, not a field; anything else is a plan error.
  for (const char* bad : {"SELECT meta() FROM demo", "SELECT meta(a, b) FROM demo",
                          "SELECT meta('topic') FROM demo", "SELECT meta(d.topic) FROM demo d"}) {
    Status s = h.plan(bad);
    EXPECT_FALSE(s.ok()) << bad;
    EXPECT_NE(s.message().find("meta expects one metadata key"), std::string::npos) << s.message();
  }
}

// FORMAT="binary" (eKuiper's binary stream): the payload untouched, as `self` or as the one
// BYTEA column; rows carry bytes, which JSON sinks write in base64.
TEST_F(QueryTest, BinaryStreamsCarryThePayloadBytes) {
  h.create(R"(CREATE STREAM bin () WITH (DATASOURCE="bin", FORMAT="BINARY"))");
  h.create(R"(CREATE STREAM img (frame BYTEA) WITH (DATASOURCE="img", FORMAT="binary"))");
  ASSERT_TRUE(h.plan("SELECT self, meta(topic) AS t FROM bin").ok());
  h.push("bin", std::string("\x00\xff{not json", 11));
  EXPECT_EQ(h.take(), (Outputs{R"([{"self":"AP97bm90IGpzb24=","t":"bin"}])"}));
  ASSERT_TRUE(h.plan("SELECT * FROM img WHERE frame IS NOT NULL").ok());
  h.push("img", "GIF89a");
  EXPECT_EQ(h.take(), (Outputs{R"([{"frame":"R0lGODlh"}])"}));
  for (const char* bad :
       {R"(CREATE STREAM b2 (a BYTEA, b BYTEA) WITH (DATASOURCE="x", FORMAT="binary"))",
        R"(CREATE STREAM b3 (a STRING) WITH (DATASOURCE="x", FORMAT="binary"))",
        R"(CREATE STREAM b4 () WITH (DATASOURCE="x", FORMAT="binary", TIMESTAMP="ts"))",
        R"(CREATE STREAM b5 () WITH (DATASOURCE="x", FORMAT="protobuf"))"}) {
    EXPECT_FALSE(h.catalog.add_sql(bad).ok()) << bad;
  }
}

TEST_F(QueryTest, ProjectionNamesFollowEkuiper) {
  ASSERT_TRUE(
      h.plan("SELECT id, temperature * 2 AS double_t, loc->lat, upper(name), id + 1 FROM demo")
          .ok());
  h.push("demo", R"({"id": 7, "temperature": 1.5, "loc": {"lat": 3.5}, "name": "abc"})");
  EXPECT_EQ(h.take(),
            (Outputs{R"([{"id":7,"double_t":3,"lat":3.5,"upper":"ABC","kuiper_field_0":8}])"}));
}

TEST_F(QueryTest, StarPlusExpressionsAndQualifiedStar) {
  ASSERT_TRUE(h.plan("SELECT d.*, id * 10 AS id FROM demo AS d").ok());
  h.push("demo", R"({"id": 1, "x": "y"})");
  EXPECT_EQ(h.take(), (Outputs{R"([{"id":10,"x":"y"}])"}));
}

TEST_F(QueryTest, NullFieldsAndMissingFieldsReadAsNullAndWhereTreatsNullAsFalse) {
  ASSERT_TRUE(h.plan("SELECT id, missing FROM demo WHERE v > 1 OR v IS NULL").ok());
  h.push("demo", R"({"id": 1, "v": null})");
  h.push("demo", R"({"id": 2})");
  h.push("demo", R"({"id": 3, "v": 0})");
  EXPECT_EQ(h.take(), (Outputs{R"([{"id":1,"missing":null}])", R"([{"id":2,"missing":null}])"}));
}

TEST_F(QueryTest, SchemaMismatchIsCountedAndSkippedWithAReason) {
  ASSERT_TRUE(h.plan("SELECT id, temperature FROM typed").ok());
  h.push("typed", R"({"id": 1, "temperature": 20, "extra": true})");  // int into FLOAT: converted
  h.push("typed", R"({"id": "one", "temperature": 20.5})");
  h.push("typed", R"({"id": 3, "loc": {"lat": "north"}})");
  h.push("typed", R"(not json)");
  h.push("typed", R"([1, 2])");
  EXPECT_EQ(h.take(), (Outputs{R"([{"id":1,"temperature":20}])"}));
  auto m = h.query->metrics();
  EXPECT_EQ(m.dropped_decode, 4u);
  EXPECT_EQ(m.records_in, 5u);
  EXPECT_EQ(m.last_error, "payload is not a JSON object");
  ASSERT_TRUE(h.plan("SELECT * FROM typed").ok());
  h.push("typed", R"({"id": "one"})");
  EXPECT_EQ(h.query->metrics().last_error, "field 'id': expects BIGINT, got string(one)");
  h.push("typed", R"({"loc": {"lat": "north"}})");
  EXPECT_EQ(h.query->metrics().last_error,
            "field 'loc': field 'lat': expects FLOAT, got string(north)");
}

TEST_F(QueryTest, SchemaKeepsOnlyDeclaredFieldsAndFloatFieldsAreFloats) {
  ASSERT_TRUE(h.plan("SELECT * FROM typed").ok());
  h.push("typed", R"({"id": 1, "temperature": 20, "junk": 1, "tags": ["a"]})");
  ASSERT_EQ(h.emissions.size(), 1u);
  EXPECT_TRUE(h.emissions[0].rows[0].find("temperature")->is_float());
  EXPECT_EQ(h.take(), (Outputs{R"([{"id":1,"temperature":20,"tags":["a"]}])"}));
}

TEST_F(QueryTest, UnknownFieldOfASchemaStreamIsAPlanError) {
  Status s = h.plan("SELECT nope FROM typed");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "line 1, column 8: unknown field 'nope' in stream 'typed'");
}

TEST_F(QueryTest, PlanErrorsAreClear) {
  EXPECT_EQ(h.plan("SELECT * FROM nosuch").message(), "line 1, column 15: unknown stream 'nosuch'");
  EXPECT_EQ(h.plan("SELECT id FROM demo GROUP BY id").message(),
            "line 1, column 30: GROUP BY needs a window (eKuiper: dimensions are only allowed with "
            "a window)");
  EXPECT_EQ(h.plan("SELECT avg(t) FROM demo").message(),
            "aggregate functions need a window (GROUP BY ...WINDOW(...))");
  EXPECT_EQ(h.plan("SELECT avg(sum(t)) FROM demo GROUP BY TUMBLINGWINDOW(ss, 1)").message(),
            "line 1, column 12: aggregate function 'sum' is not allowed here");
  EXPECT_EQ(
      h.plan("SELECT percentile_cont(t, 2) FROM demo GROUP BY TUMBLINGWINDOW(ss, 1)").message(),
      "line 1, column 8: percentile_cont: the percentile must be a number constant in [0, 1]");
  EXPECT_EQ(h.plan("SELECT * FROM demo HAVING a > 1").message(),
            "line 1, column 29: HAVING needs GROUP BY or an aggregate function");
  EXPECT_FALSE(h.plan("SELECT * FROM demo WHERE").ok());
}

TEST_F(QueryTest, EvaluationErrorsAreCountedAndTheRowSkipped) {
  ASSERT_TRUE(h.plan("SELECT id / d AS q FROM demo WHERE id > 0").ok());
  h.push("demo", R"({"id": 4, "d": 0})");
  h.push("demo", R"({"id": "x", "d": 1})");
  h.push("demo", R"({"id": 4, "d": 2})");
  EXPECT_EQ(h.take(), (Outputs{R"([{"q":2}])"}));
  EXPECT_EQ(h.query->metrics().errors, 2u);
}

TEST_F(QueryTest, PushForAnUnknownSourceIsNotFound) {
  ASSERT_TRUE(h.plan("SELECT * FROM demo").ok());
  Status s = h.query->push("other", Event::from_string("other", 0, "{}"));
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(h.query->sources(), (std::vector<std::string>{"demo"}));
}

TEST_F(QueryTest, SendSinglePayloadsAreOneObjectPerRow) {
  Emission e;
  e.rows = {Value(ValueObject{{"a", 1}}), Value(ValueObject{{"a", 2}})};
  EXPECT_EQ(sink_payloads(e, false), (std::vector<std::string>{R"([{"a":1},{"a":2}])"}));
  EXPECT_EQ(sink_payloads(e, true), (std::vector<std::string>{R"({"a":1})", R"({"a":2})"}));
}

TEST_F(QueryTest, TumblingGroupByCountSumAvgMinMax) {
  ASSERT_TRUE(
      h.plan("SELECT device, count(*) AS n, sum(t) AS s, avg(t) AS a, min(t) AS lo, max(t) AS hi "
             "FROM demo GROUP BY device, TUMBLINGWINDOW(ss, 10)")
          .ok());
  EXPECT_TRUE(h.query->windowed());
  h.push("demo", R"({"device": "a", "t": 10})");
  h.push("demo", R"({"device": "b", "t": 1.5})");
  h.advance_ms(3000);
  h.push("demo", R"({"device": "a", "t": 20})");
  h.push("demo", R"({"device": "a", "t": null})");
  EXPECT_TRUE(h.take().empty());  // windows emit on close only
  h.advance_ms(7000);
  EXPECT_EQ(h.take(), (Outputs{R"([{"device":"a","n":3,"s":30,"a":15,"lo":10,"hi":20},)"
                               R"({"device":"b","n":1,"s":1.5,"a":1.5,"lo":1.5,"hi":1.5}])"}));
  EXPECT_EQ(h.emissions.size(), 0u);
  h.advance_ms(30000);  // empty windows emit nothing
  EXPECT_TRUE(h.take().empty());
}

TEST_F(QueryTest, HavingOrderByLimitPerWindow) {
  ASSERT_TRUE(h.plan("SELECT device, avg(t) AS a FROM demo GROUP BY device, TUMBLINGWINDOW(ss, 10) "
                     "HAVING a > 1 ORDER BY a DESC LIMIT 2")
                  .ok());
  for (auto [d, t] : {std::pair{"a", 5}, {"b", 1}, {"c", 9}, {"d", 7}, {"a", 7}}) {
    h.push("demo", R"({"device":")" + std::string(d) + R"(","t":)" + std::to_string(t) + "}");
  }
  h.advance_ms(10000);
  EXPECT_EQ(h.take(), (Outputs{R"([{"device":"c","a":9},{"device":"d","a":7}])"}));
  EXPECT_GE(h.query->metrics().filtered, 1u);
}

TEST_F(QueryTest, AggregatesInsideExpressionsAndWindowBounds) {
  ASSERT_TRUE(
      h.plan("SELECT max(t) - min(t) AS spread, avg(t) * 2 AS twice, count(*) + 1 AS c1, "
             "window_start() AS ws, window_end() AS we FROM demo GROUP BY TUMBLINGWINDOW(ss, 10)")
          .ok());
  std::int64_t start = h.now_ms();
  h.push("demo", R"({"t": 2})");
  h.push("demo", R"({"t": 6})");
  h.advance_ms(10000);
  EXPECT_EQ(h.take(), (Outputs{R"([{"spread":4,"twice":8,"c1":3,"ws":)" + std::to_string(start) +
                               R"(,"we":)" + std::to_string(start + 10000) + "}]"}));
}

TEST_F(QueryTest, NonAggregateWindowEmitsAllRowsOrdered) {
  ASSERT_TRUE(h.plan("SELECT id FROM demo GROUP BY TUMBLINGWINDOW(ss, 5) ORDER BY id DESC").ok());
  h.push("demo", R"({"id": 1})");
  h.push("demo", R"({"id": 3})");
  h.push("demo", R"({"id": 2})");
  h.advance_ms(5000);
  EXPECT_EQ(h.take(), (Outputs{R"([{"id":3},{"id":2},{"id":1}])"}));
}

TEST_F(QueryTest, DestroyingTheQueryCancelsItsTimers) {
  ASSERT_TRUE(h.plan("SELECT count(*) FROM demo GROUP BY TUMBLINGWINDOW(ss, 10)").ok());
  h.push("demo", "{}");
  EXPECT_EQ(h.clock.pending(), 1u);
  h.query.reset();
  EXPECT_EQ(h.clock.pending(), 0u);
  h.advance_ms(20000);
  EXPECT_TRUE(h.take().empty());
}

TEST_F(QueryTest, MetricsCountLatencyBuckets) {
  ASSERT_TRUE(h.plan("SELECT * FROM demo").ok());
  h.push("demo", "{}");
  h.push("demo", "{}");
  auto m = h.query->metrics();
  std::uint64_t total = 0;
  for (auto n : m.latency_us) total += n;
  EXPECT_EQ(total, 2u);
  EXPECT_EQ(m.emissions, 2u);
}

}  // namespace
}  // namespace ganglion::stream

namespace ganglion::stream {
namespace {

TEST(QuerySelectiveDecodeTest, KeptEventsShareTheirParseRejectedOnesDoNot) {
  QueryHarness h;
  h.create(R"(CREATE STREAM demo () WITH (DATASOURCE="demo"))");
  // A window keeps rows as Values (without one, see QueryJsonRowsTest below).
  ASSERT_TRUE(h.plan("SELECT * FROM demo WHERE t > 50 GROUP BY COUNTWINDOW(1)").ok());
  Event cold = Event::from_string("demo", 0, R"({"id":1,"t":10})");
  Event hot = Event::from_string("demo", 0, R"({"id":2,"t":60})");
  ASSERT_TRUE(h.query->push("demo", cold).ok());
  ASSERT_TRUE(h.query->push("demo", hot).ok());
  EXPECT_FALSE(cold.fields_parsed());
  EXPECT_TRUE(hot.fields_parsed());
  EXPECT_EQ(h.take(), (Outputs{R"([{"id":2,"t":60}])"}));
  // An event another rule parsed already takes the shared path with the same result.
  Event parsed = Event::from_string("demo", 0, R"({"id":3,"t":70})");
  (void)parsed.fields();
  ASSERT_TRUE(h.query->push("demo", parsed).ok());
  EXPECT_EQ(h.take(), (Outputs{R"([{"id":3,"t":70}])"}));
  Event bad = Event::from_string("demo", 0, "[1]");
  ASSERT_TRUE(h.query->push("demo", bad).ok());
  EXPECT_EQ(h.query->metrics().dropped_decode, 1u);
  EXPECT_EQ(h.query->metrics().filtered, 1u);
}

// `SELECT * ... WHERE` without a window on a schemaless stream: a kept event's row is its
// payload bytes, built into a Value only when read.
TEST(QueryJsonRowsTest, KeptEventsAreNotConvertedUntilARowIsRead) {
  QueryHarness h;
  h.create(R"(CREATE STREAM demo () WITH (DATASOURCE="demo"))");
  ASSERT_TRUE(h.plan("SELECT * FROM demo WHERE t > 50").ok());
  Event cold = Event::from_string("demo", 0, R"({"id":1,"t":10})");
  Event hot = Event::from_string("demo", 0, R"({"id":2, "t":60, "a":{"b":[1,null]}})");
  ASSERT_TRUE(h.query->push("demo", cold).ok());
  ASSERT_TRUE(h.query->push("demo", hot).ok());
  EXPECT_FALSE(cold.fields_parsed());
  EXPECT_FALSE(hot.fields_parsed());
  ASSERT_EQ(h.emissions.size(), 1u);
  const Emission& e = h.emissions[0];
  ASSERT_EQ(e.rows.size(), 1u);
  ASSERT_NE(e.rows.json(0), nullptr);
  EXPECT_EQ(e.rows[0], *parse_json(R"({"id":2,"t":60,"a":{"b":[1,null]}})"));
  EXPECT_EQ(h.take(), (Outputs{R"([{"id":2,"t":60,"a":{"b":[1,null]}}])"}));
  auto m = h.query->metrics();
  EXPECT_EQ(m.records_out, 1u);
  EXPECT_EQ(m.filtered, 1u);
}

// The same rule with selective decoding off takes the general path (every event parsed
// whole into a Value row): both must give the same rows, payloads and counts.
TEST(QueryJsonRowsTest, GivesTheSameOutputAsTheGeneralPath) {
  const std::vector<std::string> wheres = {
      "t > 50",       "t IS NULL",           "a->b = 1",     "a->b IS NULL",
      "nope IS NULL", "t > 50 OR t IS NULL", "NOT (t > 50)", "t > 'x'",
      "s LIKE 'a%'",  "t IN (60, NULL)",
  };
  const std::vector<std::string> payloads = {
      R"({"t":60,"id":1})",
      R"({"t": 60, "id": 1})",
      R"( {"t":60} )",
      R"({"t":null,"id":2})",
      R"({"id":3})",
      R"({"t":60,"a":{"b":1}})",
      R"({"t":60,"a":{"b":null}})",
      R"({"a":{"c":2},"t":70,"s":"abc"})",
      R"({"t":60,"a":1})",
      R"({"t":60.50,"x":1e2,"y":1.5,"z":-0,"w":-0.0,"n":-12,"f":2.5e-8})",
      R"({"t":60,"big":18446744073709551616,"i":123456789012345678})",
      R"({"t":60,"s":"\u00e9\"\\\/\n\t","u":"é"})",
      R"({"t":60,"t":10})",
      R"({"t":60,"arr":[1,[2,{"k":null}],true,false],"o":{}})",
      "[1]",
      R"("text")",
      "60",
      "not json",
      "",
      R"({"t":60)",
      R"({"t":60} x)",
      R"({"t":60,"bad":[1,})",
      R"({"t":10,"bad":[1,})",
      R"({"s":"abc","t":"hot"})",
  };
  for (const std::string& where : wheres) {
    QueryHarness fast, general;
    for (QueryHarness* h : {&fast, &general}) {
      h->create(R"(CREATE STREAM demo () WITH (DATASOURCE="demo", FORMAT="json"))");
    }
    const std::string sql = "SELECT * FROM demo WHERE " + where;
    ASSERT_TRUE(fast.plan(sql).ok()) << sql;
    QueryOptions off;
    off.selective_decode = false;
    ASSERT_TRUE(general.plan(sql, off).ok()) << sql;
    for (const std::string& p : payloads) {
      SCOPED_TRACE(sql + " with " + p);
      fast.push("demo", p);
      general.push("demo", p);
      ASSERT_EQ(fast.emissions.size(), general.emissions.size());
      for (std::size_t i = 0; i < fast.emissions.size(); ++i) {
        // Compared as JSON: ValueObject's == looks keys up, so it is false for an object
        // with duplicate keys even against itself.
        EXPECT_EQ(to_json(Value(ValueArray(fast.emissions[i].rows))),
                  to_json(Value(ValueArray(general.emissions[i].rows))));
        EXPECT_EQ(sink_payloads(fast.emissions[i], true),
                  sink_payloads(general.emissions[i], true));
      }
      EXPECT_EQ(fast.take(), general.take());
    }
    auto a = fast.query->metrics(), b = general.query->metrics();
    EXPECT_EQ(a.records_in, b.records_in) << sql;
    EXPECT_EQ(a.records_out, b.records_out) << sql;
    EXPECT_EQ(a.emissions, b.emissions) << sql;
    // As before this path existed, a rejected event is validated only as far as WHERE reads
    // it (see README): bad JSON after the WHERE field counts as filtered (or as an error of
    // WHERE) there, as dropped_decode on the general path.
    EXPECT_EQ(a.filtered + a.dropped_decode + a.errors, b.filtered + b.dropped_decode + b.errors)
        << sql;
  }
}

TEST(QueryJsonRowsTest, SinkPayloadsForwardCanonicalBytesAndReencodeTheRest) {
  Emission e;
  e.rows.push_json(std::make_shared<const std::string>(R"({"a":1,"b":[true,null]})"));
  e.rows.push_back(Value(ValueObject{{"c", 2}}));
  e.rows.push_json(std::make_shared<const std::string>(R"({"a": 1.50, "s":"\u0041"})"));
  EXPECT_EQ(e.rows.size(), 3u);
  EXPECT_EQ(sink_payloads(e, false),
            (std::vector<std::string>{R"([{"a":1,"b":[true,null]},{"c":2},{"a":1.5,"s":"A"}])"}));
  EXPECT_EQ(sink_payloads(e, true),
            (std::vector<std::string>{R"({"a":1,"b":[true,null]})", R"({"c":2})",
                                      R"({"a":1.5,"s":"A"})"}));
  EXPECT_EQ(e.rows[1], Value(ValueObject{{"c", 2}}));
  EXPECT_EQ(e.rows.front(), *parse_json(R"({"a":1,"b":[true,null]})"));
  Emission copy = e;
  EXPECT_EQ(copy.rows.values(), e.rows.values());
}

}  // namespace
}  // namespace ganglion::stream
