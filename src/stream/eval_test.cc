#include "stream/eval.h"

#include <gtest/gtest.h>

#include "event/json.h"
#include "stream/parser.h"

namespace ganglion::sql {
namespace {

Value row() {
  return *parse_json(R"({"t":30,"h":55.5,"name":"sensor-1","ok":true,"n":null,
    "loc":{"lat":1.5,"tags":["a","b","c"]},"arr":[10,20,30,40],"s":"héllo"})");
}

// Evaluates `sql` against row(); errors come back as "ERROR: <message>".
Value eval(std::string_view sql) {
  auto r = evaluate_sql(sql, row());
  if (!r.ok()) return Value("ERROR: " + r.status().message());
  return *r;
}

TEST(EvalTest, ArithmeticAndPromotion) {
  EXPECT_EQ(eval("t + 1"), Value(31));
  EXPECT_TRUE(eval("t + 1").is_int());
  EXPECT_EQ(eval("t * 2 - 1"), Value(59));
  EXPECT_EQ(eval("t / 4"), Value(7));
  EXPECT_EQ(eval("t / 4.0"), Value(7.5));
  EXPECT_EQ(eval("t % 7"), Value(2));
  EXPECT_EQ(eval("h + t"), Value(85.5));
  EXPECT_EQ(eval("-t"), Value(-30));
  EXPECT_EQ(eval("6 & 3 | 8 ^ 1"), Value(11));
  EXPECT_EQ(eval("t / 0"), Value("ERROR: divided by zero"));
  EXPECT_EQ(eval("name + 1"), Value("ERROR: invalid operation string(sensor-1) + bigint(1)"));
}

TEST(EvalTest, ComparisonsAndLogic) {
  EXPECT_EQ(eval("t > 20 AND h < 60"), Value(true));
  EXPECT_EQ(eval("t >= 31 OR name = 'sensor-1'"), Value(true));
  EXPECT_EQ(eval("t = 30.0"), Value(true));
  EXPECT_EQ(eval("t <> 30"), Value(false));
  EXPECT_EQ(eval("name != 'x'"), Value(true));
  EXPECT_EQ(eval("name = 1"), Value(false));
  EXPECT_EQ(eval("NOT ok"), Value(false));
  EXPECT_EQ(eval("name > 1"), Value("ERROR: invalid operation string(sensor-1) > bigint(1)"));
  EXPECT_EQ(eval("t AND ok"), Value("ERROR: invalid operation AND bigint(30): expects a boolean"));
}

TEST(EvalTest, NullPropagatesAndWhereTreatsNullAsFalse) {
  EXPECT_TRUE(eval("n + 1").is_null());
  EXPECT_TRUE(eval("n > 1").is_null());
  EXPECT_TRUE(eval("missing = 1").is_null());
  EXPECT_TRUE(eval("NOT n").is_null());
  EXPECT_EQ(eval("n AND false"), Value(false));
  EXPECT_TRUE(eval("n AND true").is_null());
  EXPECT_EQ(eval("n OR true"), Value(true));
  EXPECT_TRUE(eval("n OR false").is_null());
  EXPECT_EQ(eval("n IS NULL"), Value(true));
  EXPECT_EQ(eval("t IS NOT NULL"), Value(true));
  EXPECT_EQ(eval("missing IS NULL"), Value(true));

  auto e = parse_expression("n > 1");
  auto c = compile(**e, {});
  ASSERT_TRUE(c.ok());
  Value r = row();
  EXPECT_EQ(*c->matches(Row{&r, {}}), false);
  auto notbool = compile(**parse_expression("t + 1"), {});
  EXPECT_FALSE(notbool->matches(Row{&r, {}}).ok());
}

TEST(EvalTest, InBetweenLike) {
  EXPECT_EQ(eval("t IN (1, 30, 5)"), Value(true));
  EXPECT_EQ(eval("t NOT IN (1, 2)"), Value(true));
  EXPECT_EQ(eval("name IN ('a', 'sensor-1')"), Value(true));
  EXPECT_TRUE(eval("t IN (1, NULL)").is_null());
  EXPECT_EQ(eval("t IN (30, NULL)"), Value(true));
  EXPECT_EQ(eval("t BETWEEN 10 AND 30"), Value(true));
  EXPECT_EQ(eval("t BETWEEN 31 AND 40"), Value(false));
  EXPECT_EQ(eval("h NOT BETWEEN 0 AND 50"), Value(true));
  EXPECT_TRUE(eval("n BETWEEN 1 AND 2").is_null());
  EXPECT_EQ(eval("name LIKE 'sensor-%'"), Value(true));
  EXPECT_EQ(eval("name LIKE 'sensor-_'"), Value(true));
  EXPECT_EQ(eval("name LIKE 'sensor'"), Value(false));
  EXPECT_EQ(eval("name NOT LIKE '%x%'"), Value(true));
  EXPECT_EQ(eval("s LIKE 'h_llo'"), Value(true));
  EXPECT_TRUE(eval("n LIKE 'a'").is_null());
}

TEST(EvalTest, LikeMatcher) {
  EXPECT_TRUE(like_match("", "%"));
  EXPECT_TRUE(like_match("abc", "a%c"));
  EXPECT_TRUE(like_match("abcbc", "%bc"));
  EXPECT_FALSE(like_match("abcbd", "%bc"));
  EXPECT_TRUE(like_match("a%c", "a\\%c"));
  EXPECT_FALSE(like_match("abc", "a\\%c"));
  EXPECT_TRUE(like_match("a_c", "a\\_c"));
  EXPECT_TRUE(like_match(std::string(10000, 'a'), "%a%a%a%b%") == false);
}

TEST(EvalTest, CaseExpressions) {
  EXPECT_EQ(eval("CASE WHEN t > 40 THEN 'hot' WHEN t > 20 THEN 'warm' ELSE 'cold' END"),
            Value("warm"));
  EXPECT_EQ(eval("CASE name WHEN 'x' THEN 1 WHEN 'sensor-1' THEN 2 END"), Value(2));
  EXPECT_TRUE(eval("CASE name WHEN 'x' THEN 1 END").is_null());
  EXPECT_EQ(eval("CASE WHEN n THEN 1 ELSE 2 END"), Value(2));
}

TEST(EvalTest, CastBothForms) {
  EXPECT_EQ(eval("CAST(h AS BIGINT)"), Value(55));
  EXPECT_EQ(eval("cast(h, \"bigint\")"), Value(55));
  EXPECT_EQ(eval("CAST(t AS STRING)"), Value("30"));
  EXPECT_EQ(eval("CAST('2.5' AS FLOAT)"), Value(2.5));
  EXPECT_EQ(eval("CAST('true' AS BOOLEAN)"), Value(true));
  EXPECT_EQ(eval("cast(t, 'float')"), Value(30.0));
  EXPECT_TRUE(eval("cast(t, 'float')").is_float());
  EXPECT_EQ(eval("CAST(name AS BIGINT)"),
            Value("ERROR: cannot convert string(sensor-1) to bigint"));
  EXPECT_EQ(eval("cast(t, 'int')"),
            Value("ERROR: line 1, column 9: cast: unknown type string(int)"));
}

TEST(EvalTest, NestedFieldsIndexesAndSlices) {
  EXPECT_EQ(eval("loc->lat"), Value(1.5));
  EXPECT_EQ(eval("loc->tags[1]"), Value("b"));
  EXPECT_EQ(eval("loc->tags[-1]"), Value("c"));
  EXPECT_TRUE(eval("loc->tags[9]").is_null());
  EXPECT_TRUE(eval("loc->nope->deeper").is_null());
  EXPECT_EQ(eval("arr[1:3]"), Value(ValueArray{20, 30}));
  EXPECT_EQ(eval("arr[:2]"), Value(ValueArray{10, 20}));
  EXPECT_EQ(eval("arr[2:]"), Value(ValueArray{30, 40}));
  EXPECT_EQ(eval("name[0:6]"), Value("sensor"));
  EXPECT_EQ(eval("loc['lat']"), Value(1.5));
  EXPECT_EQ(eval("t[0]"), Value("ERROR: invalid operation bigint(30)[...]: not an array"));
}

TEST(EvalTest, QualifiedFieldsResolveOwnAndJoinedStreams) {
  Value left = row();
  Value right = *parse_json(R"({"id":1,"name":"lookup"})");
  NamedRow joined[] = {{"t1", &right}};
  CompileOptions o;
  o.stream = "demo";
  o.alias = "d";
  auto c =
      compile(**parse_expression("demo.t + d.t = 60 AND t1.name = 'lookup' AND t2.x IS NULL"), o);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(*c->matches(Row{&left, joined}), true);
}

TEST(EvalTest, SchemaResolvesFieldsAtCompileTime) {
  auto st = parse_statement("CREATE STREAM demo (t BIGINT, name STRING) WITH (DATASOURCE=\"d\")");
  const auto& schema = std::get<CreateStreamStatement>(*st).fields;
  CompileOptions o;
  o.stream = "demo";
  o.schema = &schema;
  EXPECT_TRUE(compile(**parse_expression("t > 1 AND name = 'x'"), o).ok());
  auto bad = compile(**parse_expression("t > 1 AND temp = 'x'"), o);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "line 1, column 11: unknown field 'temp' in stream 'demo'");
}

TEST(EvalTest, ReferencedFieldsDriveJsonProjection) {
  auto c = compile(**parse_expression("t > 1 AND upper(name) = 'X' AND t < 100"), {});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->referenced_fields(), (std::vector<std::string>{"t", "name"}));
  auto v = parse_json_fields(R"({"a":1,"t":5,"name":"x","z":[1,2]})", c->referenced_fields());
  EXPECT_EQ(*c->matches(Row{&*v, {}}), true);
}

TEST(EvalTest, CompileErrorsCarryPositions) {
  auto err = [](std::string_view sql) {
    auto c = compile(**parse_expression(sql), {});
    return c.ok() ? std::string("OK") : c.status().message();
  };
  EXPECT_EQ(err("nosuch(1)"), "line 1, column 1: unknown function 'nosuch'");
  EXPECT_EQ(err("t + abs(1, 2)"), "line 1, column 5: function 'abs' expects 1 argument, got 2");
  EXPECT_EQ(err("substring('a')"),
            "line 1, column 1: function 'substring' expects 2 to 3 arguments, got 1");
  EXPECT_EQ(err("coalesce()"),
            "line 1, column 1: function 'coalesce' expects at least 1 argument, got 0");
  EXPECT_EQ(err("abs(*)"),
            "line 1, column 1: '*' is only allowed as the argument of an aggregate function");
  EXPECT_EQ(err("a LIKE 1"), "line 1, column 8: LIKE pattern must be a string");
  EXPECT_EQ(err("abs(t) OVER (PARTITION BY a)"),
            "line 1, column 1: OVER is not supported for scalar function 'abs'");
}

TEST(EvalTest, AggregatesRegisteredLaterAreRejectedInScalarContext) {
  FunctionRegistry reg = FunctionRegistry::builtins();
  ASSERT_TRUE(
      reg.add({.name = "MY_AGG", .kind = FunctionKind::kAggregate, .min_args = 1, .max_args = 1})
          .ok());
  EXPECT_FALSE(reg.add({.name = "my_agg", .kind = FunctionKind::kAggregate}).ok());
  CompileOptions o;
  o.functions = &reg;
  auto c = compile(**parse_expression("my_agg(t) > 1"), o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(),
            "line 1, column 1: aggregate function 'my_agg' is not allowed here");
  auto builtin = compile(**parse_expression("avg(t) > 1"), {});
  ASSERT_FALSE(builtin.ok());
  EXPECT_EQ(builtin.status().message(),
            "line 1, column 1: aggregate function 'avg' is not allowed here");
}

TEST(EvalTest, AnalyticCallsNeedTheQueryEngineOrReadTheirSlot) {
  auto c = compile(**parse_expression("1 + lag(t) OVER (PARTITION BY id)"), {});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(), "line 1, column 5: analytic function 'lag' is not allowed here");
  auto star = compile(**parse_expression("concat(a, *)"), {});
  ASSERT_FALSE(star.ok());
  EXPECT_EQ(star.status().message(), "line 1, column 11: '*' is not allowed here");
  // With a slot the compiled expression reads Row::analytics (NULL past its end).
  CompileOptions o;
  o.analytic_slot = [](const Expr& call) { return call.name == "latest" ? 1 : -1; };
  auto ok = compile(**parse_expression("latest(t) * 2"), o);
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  std::vector<Value> slots{Value(), Value(21)};
  Row row;
  row.analytics = slots;
  EXPECT_EQ(*ok->evaluate(row), Value(42));
  EXPECT_TRUE(ok->evaluate(Row{})->is_null());
  EXPECT_FALSE(compile(**parse_expression("lag(t)"), o).ok());
}

TEST(EvalTest, FunctionsAreCaseInsensitiveAndNullInNullOut) {
  EXPECT_EQ(eval("UPPER(name)"), Value("SENSOR-1"));
  EXPECT_TRUE(eval("upper(n)").is_null());
  EXPECT_TRUE(eval("abs(missing)").is_null());
}

TEST(EvalTest, CompiledExpressionIsReusableAcrossRowsOfDifferentShapes) {
  auto c = compile(**parse_expression("b = 2"), {});
  Value r1(ValueObject{{"a", 1}, {"b", 2}});
  Value r2(ValueObject{{"b", 2}, {"a", 1}});
  Value r3(ValueObject{{"a", 1}});
  EXPECT_EQ(*c->matches(Row{&r1, {}}), true);
  EXPECT_EQ(*c->matches(Row{&r2, {}}), true);
  EXPECT_EQ(*c->matches(Row{&r3, {}}), false);
  EXPECT_EQ(*c->matches(Row{nullptr, {}}), false);
}

}  // namespace
}  // namespace ganglion::sql
