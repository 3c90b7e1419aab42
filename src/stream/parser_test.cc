#include "stream/parser.h"

#include <gtest/gtest.h>

namespace ganglion::sql {
namespace {

std::string roundtrip(std::string_view sql) {
  auto st = parse_statement(sql);
  if (!st.ok()) return "ERROR: " + st.status().message();
  std::string printed = to_sql(*st);
  auto again = parse_statement(printed);
  if (!again.ok()) return "REPARSE ERROR: " + again.status().message();
  std::string printed2 = to_sql(*again);
  if (printed2 != printed) return "UNSTABLE: " + printed + " VS " + printed2;
  return printed;
}

std::string error_of(std::string_view sql) {
  auto st = parse_statement(sql);
  if (st.ok()) return "OK: " + to_sql(*st);
  return st.status().message();
}

TEST(ParserTest, RoundTripsEkuiperDocStatements) {
  const char* cases[][2] = {
      {"SELECT * FROM demo", "SELECT * FROM demo"},
      {"select * from demo where temperature > 30", "SELECT * FROM demo WHERE temperature > 30"},
      {"SELECT temperature, humidity FROM demo WHERE temperature > 30 AND humidity < 80;",
       "SELECT temperature, humidity FROM demo WHERE temperature > 30 AND humidity < 80"},
      {"SELECT count(*), avg(temperature) AS t FROM demo GROUP BY TUMBLINGWINDOW(ss, 10)",
       "SELECT count(*), avg(temperature) AS t FROM demo GROUP BY TUMBLINGWINDOW(ss, 10)"},
      {"SELECT * FROM demo GROUP BY HoppingWindow(ss, 10, 5)",
       "SELECT * FROM demo GROUP BY HOPPINGWINDOW(ss, 10, 5)"},
      {"SELECT * FROM demo GROUP BY SLIDINGWINDOW(mi, 5) OVER (WHEN temperature > 30)",
       "SELECT * FROM demo GROUP BY SLIDINGWINDOW(mi, 5) OVER (WHEN temperature > 30)"},
      {"SELECT * FROM demo GROUP BY SLIDINGWINDOW(ms, 500, 100)",
       "SELECT * FROM demo GROUP BY SLIDINGWINDOW(ms, 500, 100)"},
      {"SELECT * FROM demo GROUP BY SESSIONWINDOW(hh, 2, 1)",
       "SELECT * FROM demo GROUP BY SESSIONWINDOW(hh, 2, 1)"},
      {"SELECT * FROM demo GROUP BY COUNTWINDOW(5, 1)",
       "SELECT * FROM demo GROUP BY COUNTWINDOW(5, 1)"},
      {"SELECT deviceId, max(t) FROM demo GROUP BY deviceId, TUMBLINGWINDOW(dd, 1) HAVING max(t) > "
       "3 ORDER BY deviceId DESC, t ASC LIMIT 10",
       "SELECT deviceId, max(t) FROM demo GROUP BY deviceId, TUMBLINGWINDOW(dd, 1) HAVING max(t) > "
       "3 ORDER BY deviceId DESC, t LIMIT 10"},
      {"SELECT demo.temperature, table1.hum FROM demo INNER JOIN table1 ON demo.id = table1.id",
       "SELECT demo.temperature, table1.hum FROM demo INNER JOIN table1 ON demo.id = table1.id"},
      {"SELECT * FROM demo AS d LEFT JOIN t1 ON d.id = t1.id RIGHT JOIN t2 ON d.id = t2.id FULL "
       "JOIN t3 ON TRUE CROSS JOIN t4 GROUP BY TUMBLINGWINDOW(ss, 10)",
       "SELECT * FROM demo AS d LEFT JOIN t1 ON d.id = t1.id RIGHT JOIN t2 ON d.id = t2.id FULL "
       "JOIN t3 ON TRUE CROSS JOIN t4 GROUP BY TUMBLINGWINDOW(ss, 10)"},
      {"SELECT d.*, t.name FROM demo d JOIN t ON d.id = t.id",
       "SELECT d.*, t.name FROM demo AS d INNER JOIN t ON d.id = t.id"},
      {"SELECT a->b->c, arr[0], arr[1:3], arr[:2], arr[1:] FROM s",
       "SELECT a->b->c, arr[0], arr[1:3], arr[:2], arr[1:] FROM s"},
      {"SELECT `weird name`, `select` FROM `my stream`",
       "SELECT `weird name`, `select` FROM `my stream`"},
      {"SELECT * FROM s WHERE a IN (1, 2, 3) AND b NOT IN ('x') AND c BETWEEN 1 AND 5 AND d NOT "
       "BETWEEN 0.5 AND 1e3",
       "SELECT * FROM s WHERE a IN (1, 2, 3) AND b NOT IN ('x') AND c BETWEEN 1 AND 5 AND d NOT "
       "BETWEEN 0.5 AND 1000.0"},
      {"SELECT * FROM s WHERE name LIKE 'a%_' OR name NOT LIKE \"b%\" OR x IS NULL OR y IS NOT "
       "NULL",
       "SELECT * FROM s WHERE name LIKE 'a%_' OR name NOT LIKE 'b%' OR x IS NULL OR y IS NOT NULL"},
      {"SELECT CASE WHEN t > 30 THEN 'hot' WHEN t > 10 THEN 'warm' ELSE 'cold' END AS level FROM s",
       "SELECT CASE WHEN t > 30 THEN 'hot' WHEN t > 10 THEN 'warm' ELSE 'cold' END AS level FROM "
       "s"},
      {"SELECT case color when 'red' then 1 end FROM s",
       "SELECT CASE color WHEN 'red' THEN 1 END FROM s"},
      {"SELECT cast(t, \"bigint\"), CAST(t AS float) FROM s",
       "SELECT cast(t, 'bigint'), CAST(t AS FLOAT) FROM s"},
      {"SELECT (a + b) * c, a + b * c, a - (b - c), -a, - -a, NOT a = b, a & 1 | 2 ^ 3 FROM s",
       "SELECT (a + b) * c, a + b * c, a - (b - c), -a, - -a, NOT a = b, a & 1 | 2 ^ 3 FROM s"},
      {"SELECT a <> b, a != b, a == b, a % 2 FROM s", "SELECT a != b, a != b, a = b, a % 2 FROM s"},
      {"SELECT 'it\\'s', \"say \\\"hi\\\"\" FROM s", "SELECT 'it\\'s', 'say \"hi\"' FROM s"},
      {"SELECT lag(temp) OVER (PARTITION BY id WHEN temp > 1) FROM s",
       "SELECT lag(temp) OVER (PARTITION BY id WHEN temp > 1) FROM s"},
      {"SELECT acc_sum(v) over (partition by a, b->c), latest(x) OVER (when had_changed(true, "
       "*)) FROM s",
       "SELECT acc_sum(v) OVER (PARTITION BY a, b->c), latest(x) OVER (WHEN had_changed(TRUE, "
       "*)) FROM s"},
      {"SELECT CHANGED_COLS(\"c_\", false, *, a) FROM s",
       "SELECT CHANGED_COLS('c_', FALSE, *, a) FROM s"},
      {"SELECT * FROM s -- trailing comment\n", "SELECT * FROM s"},
      {"SELECT /* c */ 1.5, .5, 2. FROM s", "SELECT 1.5, 0.5, 2.0 FROM s"},
      {"CREATE STREAM demo (temperature FLOAT, humidity BIGINT) WITH (DATASOURCE=\"demo\", "
       "FORMAT=\"JSON\")",
       "CREATE STREAM demo (temperature FLOAT, humidity BIGINT) WITH (DATASOURCE=\"demo\", "
       "FORMAT=\"JSON\")"},
      {"create stream demo () WITH (datasource=\"topic/#\", format=\"json\", timestamp=\"ts\", "
       "TIMESTAMP_FORMAT=\"yyyy-MM-dd\", KEY=\"id\", SHARED=\"true\")",
       "CREATE STREAM demo () WITH (DATASOURCE=\"topic/#\", FORMAT=\"json\", TIMESTAMP=\"ts\", "
       "TIMESTAMP_FORMAT=\"yyyy-MM-dd\", KEY=\"id\", SHARED=\"true\")"},
      {"CREATE STREAM s (id BIGINT, name STRING, ts DATETIME, ok BOOLEAN, raw BYTEA, tags "
       "ARRAY(STRING), loc STRUCT(lat FLOAT, lng FLOAT, meta STRUCT(a ARRAY(BIGINT)))) WITH "
       "(DATASOURCE=\"s\")",
       "CREATE STREAM s (id BIGINT, name STRING, ts DATETIME, ok BOOLEAN, raw BYTEA, tags "
       "ARRAY(STRING), loc STRUCT(lat FLOAT, lng FLOAT, meta STRUCT(a ARRAY(BIGINT)))) WITH "
       "(DATASOURCE=\"s\")"},
      {"CREATE TABLE t1 (id BIGINT, name STRING) WITH (DATASOURCE=\"lookup.json\", KEY=\"id\", "
       "TYPE=\"mqtt\")",
       "CREATE TABLE t1 (id BIGINT, name STRING) WITH (DATASOURCE=\"lookup.json\", KEY=\"id\", "
       "TYPE=\"mqtt\")"},
      {"DROP STREAM demo", "DROP STREAM demo"},
      {"drop table t1;", "DROP TABLE t1"},
  };
  for (auto& c : cases) EXPECT_EQ(roundtrip(c[0]), c[1]) << c[0];
}

TEST(ParserTest, BuildsStructuredSelect) {
  auto st = parse_statement(
      "SELECT id AS i FROM demo AS d WHERE t > 1 GROUP BY id, TUMBLINGWINDOW(mi, 2) LIMIT 5");
  ASSERT_TRUE(st.ok());
  const auto& s = std::get<SelectStatement>(*st);
  EXPECT_EQ(s.fields[0].alias, "i");
  EXPECT_EQ(s.from.name, "demo");
  EXPECT_EQ(s.from.alias, "d");
  ASSERT_TRUE(s.window.has_value());
  EXPECT_EQ(s.window->kind, WindowKind::kTumbling);
  EXPECT_EQ(s.window->unit_ms() * s.window->args[0], 120'000);
  EXPECT_EQ(s.group_by.size(), 1u);
  EXPECT_EQ(*s.limit, 5);
}

TEST(ParserTest, CreateStreamOptionsAreUpperCasedAndLookedUp) {
  auto st = parse_statement("CREATE STREAM s () WITH (datasource='a/b', shared=true)");
  ASSERT_TRUE(st.ok()) << st.status().message();
  const auto& c = std::get<CreateStreamStatement>(*st);
  EXPECT_TRUE(c.fields.empty());
  ASSERT_NE(c.option("DATASOURCE"), nullptr);
  EXPECT_EQ(*c.option("DATASOURCE"), "a/b");
  EXPECT_EQ(*c.option("SHARED"), "true");
  EXPECT_EQ(c.option("FORMAT"), nullptr);
}

TEST(ParserTest, PrecedenceFollowsSql) {
  auto e = parse_expression("a OR b AND NOT c = 1 + 2 * 3");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ((*e)->binary_op, BinaryOp::kOr);
  EXPECT_EQ((*e)->args[1]->binary_op, BinaryOp::kAnd);
  EXPECT_EQ((*e)->args[1]->args[1]->kind, ExprKind::kUnary);
  EXPECT_EQ(to_sql(**parse_expression("(a OR b) AND c")), "(a OR b) AND c");
  EXPECT_EQ(to_sql(**parse_expression("a * (b + c) - d")), "a * (b + c) - d");
  EXPECT_EQ(to_sql(**parse_expression("(a->b)[0]->c")), "a->b[0]->c");
  EXPECT_EQ(to_sql(**parse_expression("-(a + b)")), "-(a + b)");
  EXPECT_EQ(to_sql(**parse_expression("a + (NOT b)")), "a + (NOT b)");
}

TEST(ParserTest, ErrorAtEndOfInputPointsPastTheLastToken) {
  EXPECT_EQ(error_of("SELECT * FROM demo WHERE"),
            "line 1, column 25: expected expression after 'WHERE', found end of input\n"
            "SELECT * FROM demo WHERE\n"
            "                        ^");
}

TEST(ParserTest, ErrorsCarryLineAndColumn) {
  const char* cases[][2] = {
      {"", "line 1, column 1: expected SELECT, CREATE or DROP, found end of input"},
      {"UPDATE x", "line 1, column 1: expected SELECT, CREATE or DROP, found 'UPDATE'"},
      {"SELECT FROM s", "line 1, column 8: expected expression or '*', found 'FROM'"},
      {"SELECT a s", "line 1, column 10: expected ',' or FROM after the select list, found 's'"},
      {"SELECT a FROM", "line 1, column 14: expected stream name after FROM, found end of input"},
      {"SELECT a FROM s\nWHERE a >",
       "line 2, column 10: expected expression after '>', found end of input"},
      {"SELECT a FROM s WHERE a + * 2",
       "line 1, column 27: expected expression after '+', found '*'"},
      {"SELECT a FROM s WHERE (a", "line 1, column 25: expected ')', found end of input"},
      {"SELECT a FROM s WHERE a IN 1", "line 1, column 28: expected '(' after IN, found number 1"},
      {"SELECT a FROM s WHERE a BETWEEN 1 OR 2",
       "line 1, column 35: expected AND after the lower bound of BETWEEN, found 'OR'"},
      {"SELECT a FROM s WHERE a IS 1", "line 1, column 28: expected NULL after IS, found number 1"},
      {"SELECT a FROM s WHERE a LIKE",
       "line 1, column 29: expected pattern after 'LIKE', found end of input"},
      {"SELECT CASE a END FROM s", "line 1, column 15: expected WHEN, found 'END'"},
      {"SELECT CASE WHEN a THEN 1 FROM s",
       "line 1, column 27: expected WHEN, ELSE or END in CASE, found 'FROM'"},
      {"SELECT f(a FROM s",
       "line 1, column 12: expected ',' or ')' after the function arguments, found 'FROM'"},
      {"SELECT a FROM s GROUP TUMBLINGWINDOW(ss, 1)",
       "line 1, column 23: expected BY after GROUP, found 'TUMBLINGWINDOW'"},
      {"SELECT a FROM s GROUP BY TUMBLINGWINDOW(xx, 1)",
       "line 1, column 41: expected a time unit (ms, ss, mi, hh, dd), found 'xx'"},
      {"SELECT a FROM s GROUP BY TUMBLINGWINDOW(ss, 0)",
       "line 1, column 45: window length must be positive"},
      {"SELECT a FROM s GROUP BY HOPPINGWINDOW(ss, 1)",
       "line 1, column 26: HOPPINGWINDOW takes a time unit and 2 lengths"},
      {"SELECT a FROM s GROUP BY COUNTWINDOW(1), COUNTWINDOW(2)",
       "line 1, column 42: only one window is allowed in GROUP BY"},
      {"SELECT a FROM s GROUP BY TUMBLINGWINDOW(ss, 1) OVER (WHEN a)",
       "line 1, column 48: OVER (WHEN ...) is only allowed after SLIDINGWINDOW"},
      {"SELECT a FROM s GROUP BY +COUNTWINDOW(1)",
       "line 1, column 27: COUNTWINDOW is only allowed in GROUP BY"},
      {"SELECT tumblingWindow(ss, 1) FROM s",
       "line 1, column 8: TUMBLINGWINDOW is only allowed in GROUP BY"},
      {"SELECT lag(a) OVER FROM s", "line 1, column 20: expected '(' after OVER, found 'FROM'"},
      {"SELECT lag(a) OVER () FROM s",
       "line 1, column 21: expected PARTITION BY or WHEN in OVER, found ')'"},
      {"SELECT lag(a) OVER (ORDER BY id) FROM s",
       "line 1, column 21: expected PARTITION BY or WHEN in OVER, found 'ORDER'"},
      {"SELECT lag(a) OVER (PARTITION id) FROM s",
       "line 1, column 31: expected BY after PARTITION, found 'id'"},
      {"SELECT lag(a) OVER (PARTITION BY) FROM s",
       "line 1, column 33: expected expression after 'PARTITION BY', found ')'"},
      {"SELECT lag(a) OVER (PARTITION BY id,) FROM s",
       "line 1, column 37: expected expression after 'PARTITION BY', found ')'"},
      {"SELECT lag(a) OVER (WHEN) FROM s",
       "line 1, column 25: expected expression after 'WHEN', found ')'"},
      {"SELECT lag(a) OVER (PARTITION BY id FROM s",
       "line 1, column 37: expected ')' to close OVER, found 'FROM'"},
      {"SELECT lag(a) OVER (WHEN a > 1 PARTITION BY id) FROM s",
       "line 1, column 32: expected ')' to close OVER, found 'PARTITION'"},
      {"SELECT f(a, * + 1) FROM s", "line 1, column 13: expected function argument, found '*'"},
      {"SELECT a FROM s LIMIT x", "line 1, column 23: expected a number after 'LIMIT', found 'x'"},
      {"SELECT a FROM s extra junk", "line 1, column 23: expected end of statement, found 'junk'"},
      {"SELECT a FROM s LEFT t", "line 1, column 22: expected JOIN after 'LEFT', found 't'"},
      {"SELECT a FROM s JOIN t",
       "line 1, column 23: expected ON after the joined name, found end of input"},
      {"SELECT 'abc FROM s", "line 1, column 8: unterminated string"},
      {"SELECT 'a\\q' FROM s", "line 1, column 10: bad escape sequence in string"},
      {"SELECT `` FROM s", "line 1, column 8: empty quoted identifier"},
      {"SELECT `a FROM s", "line 1, column 8: unterminated quoted identifier"},
      {"SELECT a FROM s /* x", "line 1, column 17: unterminated comment"},
      {"SELECT a # b FROM s", "line 1, column 10: unexpected character '#'"},
      {"SELECT 99999999999999999999 FROM s", "line 1, column 8: integer out of range"},
      {"SELECT 1e999 FROM s", "line 1, column 8: number out of range"},
      {"SELECT 12ab FROM s", "line 1, column 10: invalid number"},
      {"SELECT CAST(a AS ARRAY(BIGINT)) FROM s",
       "line 1, column 18: CAST supports BIGINT, FLOAT, STRING, DATETIME, BOOLEAN and BYTEA"},
      {"SELECT CAST(a AS int) FROM s",
       "line 1, column 18: expected a type (BIGINT, FLOAT, STRING, DATETIME, BOOLEAN, BYTEA, "
       "ARRAY, STRUCT), found 'int'"},
      {"SELECT a->1 FROM s", "line 1, column 11: expected field name after '->', found number 1"},
      {"SELECT a[1 FROM s", "line 1, column 12: expected ']' after the index, found 'FROM'"},
      {"CREATE VIEW v", "line 1, column 8: expected STREAM or TABLE after CREATE, found 'VIEW'"},
      {"CREATE STREAM s (a INT) WITH (X=\"1\")",
       "line 1, column 20: expected a type (BIGINT, FLOAT, STRING, DATETIME, BOOLEAN, BYTEA, "
       "ARRAY, STRUCT), found 'INT'"},
      {"CREATE STREAM s (a BIGINT WITH (X=\"1\")",
       "line 1, column 27: expected ',' or ')' in the field list, found 'WITH'"},
      {"CREATE STREAM s () WITH (X=1, X=2)", "line 1, column 31: duplicate option X"},
      {"CREATE STREAM s () WITH (X)", "line 1, column 27: expected '=' after option X, found ')'"},
      {"CREATE STREAM s () WITH (X=y)",
       "line 1, column 28: expected a quoted value for option X, found 'y'"},
      {"DROP s", "line 1, column 6: expected STREAM or TABLE after DROP, found 's'"},
      {"DROP STREAM select", "line 1, column 13: expected stream name, found 'select'"},
  };
  for (auto& c : cases) {
    std::string got = error_of(c[0]);
    EXPECT_EQ(got.substr(0, got.find('\n')), c[1]) << c[0];
  }
}

TEST(ParserTest, UnclosedOverPointsPastTheLastToken) {
  EXPECT_EQ(error_of("SELECT lag(a) OVER (PARTITION BY id"),
            "line 1, column 36: expected ')' to close OVER, found end of input\n"
            "SELECT lag(a) OVER (PARTITION BY id\n"
            "                                   ^");
  EXPECT_EQ(error_of("SELECT id,\n  lag(a) OVER\n(WHEN a >) FROM s"),
            "line 3, column 10: expected expression after '>', found ')'\n"
            "(WHEN a >) FROM s\n"
            "         ^");
}

TEST(ParserTest, CaretLinesUpUnderTabs) {
  std::string got = error_of("SELECT a\n\tFROM s WHERE ?");
  EXPECT_EQ(got, "line 2, column 15: unexpected character '?'\n\tFROM s WHERE ?\n\t             ^");
}

TEST(ParserTest, DeepNestingIsAnErrorNotACrash) {
  std::string deep =
      "SELECT " + std::string(100000, '(') + "1" + std::string(100000, ')') + " FROM s";
  EXPECT_NE(error_of(deep).find("nested too deeply"), std::string::npos);
  std::string chain = "SELECT 1";
  for (int i = 0; i < 100000; ++i) chain += "+1";
  chain += " FROM s";
  EXPECT_NE(error_of(chain).find("nested too deeply"), std::string::npos);
  std::string negs = "SELECT ";
  for (int i = 0; i < 50000; ++i) negs += "- ";
  negs += "1 FROM s";
  EXPECT_NE(error_of(negs).find("nested too deeply"), std::string::npos);
  std::string nots;
  for (int i = 0; i < 50000; ++i) nots += "NOT ";
  EXPECT_NE(error_of("SELECT " + nots + "a FROM s").find("nested too deeply"), std::string::npos);
  std::string types = "CREATE STREAM s (a ";
  for (int i = 0; i < 1000; ++i) types += "ARRAY(";
  EXPECT_NE(error_of(types).find("type nested too deeply"), std::string::npos);
}

TEST(ParserTest, WideButShallowInputIsFine) {
  std::string in = "SELECT a FROM s WHERE a IN (0";
  for (int i = 1; i < 10000; ++i) in += ", " + std::to_string(i);
  in += ")";
  EXPECT_TRUE(parse_statement(in).ok());
}

}  // namespace
}  // namespace ganglion::sql
