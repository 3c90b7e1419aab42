// Stream-to-table lookup joins (per event) and stream-to-stream joins (per window).
#include <gtest/gtest.h>

#include "stream/query.h"
#include "stream/query_testing.h"

namespace ganglion::stream {
namespace {

using testing::Outputs;
using testing::QueryHarness;

class JoinTest : public ::testing::Test {
 protected:
  void SetUp() override {
    h.create(R"(CREATE STREAM demo () WITH (DATASOURCE="demo"))");
    h.create(R"(CREATE STREAM other () WITH (DATASOURCE="other"))");
    h.create(
        R"(CREATE TABLE devices (id STRING, room STRING) WITH (DATASOURCE="devices", KEY="id"))");
    h.create(R"(CREATE TABLE limits () WITH (DATASOURCE="limits"))");
  }
  QueryHarness h;
};

TEST_F(JoinTest, TableKeepsTheLatestRowPerKeyForLookups) {
  ASSERT_TRUE(
      h.plan("SELECT demo.id, t, devices.room FROM demo INNER JOIN devices ON demo.id = devices.id")
          .ok());
  EXPECT_EQ(h.query->sources(), (std::vector<std::string>{"demo", "devices"}));
  h.push("devices", R"({"id":"d1","room":"hall"})");
  h.push("devices", R"({"id":"d2","room":"lab"})");
  h.push("devices", R"({"id":"d1","room":"kitchen"})");
  h.push("demo", R"({"id":"d1","t":20})");
  h.push("demo", R"({"id":"d9","t":30})");  // INNER: no match, no output
  EXPECT_EQ(h.take(), (Outputs{R"([{"id":"d1","t":20,"room":"kitchen"}])"}));
  auto m = h.query->metrics();
  EXPECT_EQ(m.table_updates, 3u);
  EXPECT_EQ(m.records_in, 2u);
}

// eKuiper resolves an unqualified field in a join to the first row that has it: the FROM
// stream's, then the joined ones in JOIN order.
TEST_F(JoinTest, UnqualifiedFieldsAreLookedUpInTheFromRowThenTheJoinedRows) {
  ASSERT_TRUE(h.plan("SELECT id, t, room, nowhere FROM demo INNER JOIN devices ON demo.id = "
                     "devices.id WHERE room != 'lab'")
                  .ok());
  h.push("devices", R"({"id":"d1","room":"hall","t":-1})");
  h.push("devices", R"({"id":"d2","room":"lab"})");
  h.push("demo", R"({"id":"d1","t":20})");  // t and id from demo; room from devices
  h.push("demo", R"({"id":"d2","t":21})");  // filtered on the joined room
  EXPECT_EQ(h.take(), (Outputs{R"([{"id":"d1","t":20,"room":"hall","nowhere":null}])"}));
  // A LEFT JOIN row without a match reads the joined-only field as NULL.
  ASSERT_TRUE(h.plan("SELECT id, room FROM demo LEFT JOIN devices ON demo.id = devices.id").ok());
  h.push("demo", R"({"id":"d9"})");
  EXPECT_EQ(h.take(), (Outputs{R"([{"id":"d9","room":null}])"}));
}

TEST_F(JoinTest, LeftJoinWithTableKeepsUnmatchedEventsWithNulls) {
  ASSERT_TRUE(
      h.plan("SELECT d.id, dev.room FROM demo AS d LEFT JOIN devices AS dev ON d.id = dev.id "
             "WHERE dev.room IS NULL OR dev.room != 'lab'")
          .ok());
  h.push("devices", R"({"id":"d2","room":"lab"})");
  h.push("demo", R"({"id":"d1"})");
  h.push("demo", R"({"id":"d2"})");
  EXPECT_EQ(h.take(), (Outputs{R"([{"id":"d1","room":null}])"}));
}

TEST_F(JoinTest, TableWithoutKeyIsScannedAndBounded) {
  QueryOptions o;
  o.max_table_rows = 2;
  ASSERT_TRUE(
      h.plan("SELECT demo.v, limits.name FROM demo JOIN limits ON demo.v > limits.max", o).ok());
  h.push("limits", R"({"name":"low","max":10})");
  h.push("limits", R"({"name":"mid","max":20})");
  h.push("limits", R"({"name":"high","max":30})");  // evicts "low"
  h.push("demo", R"({"v":25})");
  EXPECT_EQ(h.take(), (Outputs{R"([{"v":25,"name":"mid"}])"}));
  EXPECT_EQ(h.query->metrics().dropped_overflow, 1u);
  h.push("demo", R"({"v":35})");  // two matches: two rows in one emission
  EXPECT_EQ(h.take(), (Outputs{R"([{"v":35,"name":"mid"},{"v":35,"name":"high"}])"}));
}

TEST_F(JoinTest, TableLookupInsideAWindowedAggregate) {
  ASSERT_TRUE(
      h.plan("SELECT devices.room, avg(demo.t) AS a FROM demo JOIN devices ON demo.id = devices.id "
             "GROUP BY devices.room, TUMBLINGWINDOW(ss, 10)")
          .ok());
  h.push("devices", R"({"id":"d1","room":"hall"})");
  h.push("devices", R"({"id":"d2","room":"hall"})");
  h.push("demo", R"({"id":"d1","t":10})");
  h.push("demo", R"({"id":"d2","t":20})");
  h.advance_ms(10000);
  EXPECT_EQ(h.take(), (Outputs{R"([{"room":"hall","a":15}])"}));
}

TEST_F(JoinTest, StreamInnerJoinWithinAWindow) {
  ASSERT_TRUE(
      h.plan("SELECT demo.id, demo.t, other.h FROM demo INNER JOIN other ON demo.id = other.id "
             "GROUP BY TUMBLINGWINDOW(ss, 10)")
          .ok());
  h.push("demo", R"({"id":1,"t":20})");
  h.push("demo", R"({"id":2,"t":21})");
  h.push("other", R"({"id":1,"h":50})");
  h.push("other", R"({"id":3,"h":70})");
  h.advance_ms(10000);
  EXPECT_EQ(h.take(), (Outputs{R"([{"id":1,"t":20,"h":50}])"}));
  h.push("other", R"({"id":2,"h":60})");  // the next window: demo id 2 is gone
  h.advance_ms(10000);
  EXPECT_TRUE(h.take().empty());
}

TEST_F(JoinTest, StreamLeftRightFullAndCrossJoins) {
  auto run = [&](std::string join) {
    EXPECT_TRUE(h.plan("SELECT demo.id AS l, other.id AS r FROM demo " + join +
                       " GROUP BY TUMBLINGWINDOW(ss, 10)")
                    .ok())
        << join;
    h.push("demo", R"({"id":1})");
    h.push("demo", R"({"id":2})");
    h.push("other", R"({"id":2})");
    h.push("other", R"({"id":3})");
    h.advance_ms(10000);
    auto out = h.take();
    return out.empty() ? std::string() : out[0];
  };
  EXPECT_EQ(run("LEFT JOIN other ON demo.id = other.id"), R"([{"l":1,"r":null},{"l":2,"r":2}])");
  EXPECT_EQ(run("RIGHT JOIN other ON demo.id = other.id"), R"([{"l":2,"r":2},{"l":null,"r":3}])");
  EXPECT_EQ(run("FULL JOIN other ON demo.id = other.id"),
            R"([{"l":1,"r":null},{"l":2,"r":2},{"l":null,"r":3}])");
  EXPECT_EQ(run("CROSS JOIN other"),
            R"([{"l":1,"r":2},{"l":1,"r":3},{"l":2,"r":2},{"l":2,"r":3}])");
}

TEST_F(JoinTest, WhereAppliesAfterAStreamJoinAndAggregatesSeeJoinedRows) {
  ASSERT_TRUE(
      h.plan("SELECT count(*) AS n, sum(other.v) AS s FROM demo JOIN other ON demo.id = other.id "
             "WHERE other.v > 1 GROUP BY TUMBLINGWINDOW(ss, 10)")
          .ok());
  h.push("demo", R"({"id":1})");
  h.push("other", R"({"id":1,"v":1})");
  h.push("other", R"({"id":1,"v":5})");
  h.push("other", R"({"id":1,"v":7})");
  h.advance_ms(10000);
  EXPECT_EQ(h.take(), (Outputs{R"([{"n":2,"s":12}])"}));
}

TEST_F(JoinTest, StarOverAJoinMergesBothSides) {
  ASSERT_TRUE(h.plan("SELECT * FROM demo JOIN devices ON demo.id = devices.id").ok());
  h.push("devices", R"({"id":"d1","room":"hall"})");
  h.push("demo", R"({"id":"d1","t":1})");
  EXPECT_EQ(h.take(), (Outputs{R"([{"id":"d1","t":1,"room":"hall"}])"}));
}

TEST_F(JoinTest, JoinPlanErrors) {
  EXPECT_EQ(h.plan("SELECT * FROM demo JOIN other ON demo.id = other.id").message(),
            "line 1, column 15: a join of streams needs a window (GROUP BY ...WINDOW(...))");
  EXPECT_EQ(h.plan("SELECT * FROM demo RIGHT JOIN devices ON demo.id = devices.id").message(),
            "line 1, column 31: a join with table 'devices' must be INNER or LEFT");
  EXPECT_EQ(h.plan("SELECT * FROM devices").message(),
            "line 1, column 15: FROM must name a stream, 'devices' is a table");
  EXPECT_FALSE(h.plan("SELECT * FROM demo JOIN nosuch ON demo.id = nosuch.id").ok());
}

}  // namespace
}  // namespace ganglion::stream
