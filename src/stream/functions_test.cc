#include "stream/functions.h"

#include <gtest/gtest.h>

#include <cmath>

#include "event/json.h"
#include "stream/eval.h"

namespace ganglion::sql {
namespace {

ManualClock& test_clock() {
  static ManualClock clock(WallTime(std::chrono::milliseconds(1'700'000'000'123)));
  return clock;
}

Value f(std::string_view sql) {
  Value fields =
      *parse_json(R"({"s":"Hello, World","x":-2.5,"i":7,"j":{"a":{"b":[1,{"c":true}]}}})");
  CompileOptions o;
  o.clock = &test_clock();
  auto r = evaluate_sql(sql, fields, o);
  if (!r.ok()) return Value("ERROR: " + r.status().message());
  return *r;
}

double num(std::string_view sql) { return f(sql).number(); }

TEST(FunctionsTest, Math) {
  EXPECT_EQ(f("abs(x)"), Value(2.5));
  EXPECT_EQ(f("abs(-7)"), Value(7));
  EXPECT_TRUE(f("abs(-7)").is_int());
  EXPECT_EQ(f("ceil(x)"), Value(-2.0));
  EXPECT_EQ(f("ceiling(1.2)"), Value(2.0));
  EXPECT_EQ(f("floor(x)"), Value(-3.0));
  EXPECT_EQ(f("floor(i)"), Value(7));
  EXPECT_EQ(f("round(2.5)"), Value(3.0));
  EXPECT_EQ(f("round(3.14159, 2)"), Value(3.14));
  EXPECT_EQ(f("trunc(3.789, 1)"), Value(3.7));
  EXPECT_EQ(f("sqrt(16)"), Value(4.0));
  EXPECT_EQ(f("power(2, 10)"), Value(1024.0));
  EXPECT_EQ(f("pow(2, 3)"), Value(8.0));
  EXPECT_EQ(f("log(100)"), Value(2.0));
  EXPECT_EQ(f("log(2, 8)"), Value(3.0));
  EXPECT_EQ(f("ln(1)"), Value(0.0));
  EXPECT_EQ(f("exp(0)"), Value(1.0));
  EXPECT_EQ(f("mod(i, 4)"), Value(3));
  EXPECT_EQ(f("sign(x)"), Value(-1));
  EXPECT_NEAR(num("sin(pi() / 2)"), 1.0, 1e-12);
  EXPECT_NEAR(num("cos(0)"), 1.0, 1e-12);
  EXPECT_NEAR(num("tan(0)"), 0.0, 1e-12);
  EXPECT_NEAR(num("asin(1)"), M_PI / 2, 1e-12);
  EXPECT_NEAR(num("acos(1)"), 0.0, 1e-12);
  EXPECT_NEAR(num("atan(1)"), M_PI / 4, 1e-12);
  EXPECT_NEAR(num("atan2(1, 1)"), M_PI / 4, 1e-12);
  EXPECT_NEAR(num("sinh(0) + cosh(0) + tanh(0)"), 1.0, 1e-12);
  EXPECT_NEAR(num("degrees(pi())"), 180.0, 1e-9);
  EXPECT_NEAR(num("radians(180)"), M_PI, 1e-12);
  EXPECT_NEAR(num("cot(1)"), 1 / std::tan(1.0), 1e-12);
  EXPECT_EQ(f("bitand(12, 10)"), Value(8));
  EXPECT_EQ(f("bitor(12, 10)"), Value(14));
  EXPECT_EQ(f("bitxor(12, 10)"), Value(6));
  EXPECT_EQ(f("bitnot(0)"), Value(-1));
  double r = num("rand()");
  EXPECT_GE(r, 0.0);
  EXPECT_LT(r, 1.0);
  EXPECT_EQ(f("abs(s)"), Value("ERROR: abs: expects a number, got string(Hello, World)"));
}

TEST(FunctionsTest, Strings) {
  EXPECT_EQ(f("concat(s, '!', i, NULL)"), Value("Hello, World!7"));
  EXPECT_EQ(f("lower(s)"), Value("hello, world"));
  EXPECT_EQ(f("upper(s)"), Value("HELLO, WORLD"));
  EXPECT_EQ(f("length(s)"), Value(12));
  EXPECT_EQ(f("length('héllo')"), Value(5));
  EXPECT_EQ(f("numbytes('héllo')"), Value(6));
  EXPECT_EQ(f("substring(s, 7)"), Value("World"));
  EXPECT_EQ(f("substring(s, 0, 5)"), Value("Hello"));
  EXPECT_EQ(f("substring('héllo', 1, 3)"), Value("él"));
  EXPECT_EQ(f("substring(s, 50)"), Value(""));
  EXPECT_EQ(f("trim('  a b  ')"), Value("a b"));
  EXPECT_EQ(f("ltrim('  a ')"), Value("a "));
  EXPECT_EQ(f("rtrim('  a ')"), Value("  a"));
  EXPECT_EQ(f("lpad('a', 2)"), Value("  a"));
  EXPECT_EQ(f("rpad('a', 2)"), Value("a  "));
  EXPECT_EQ(f("startswith(s, 'Hell')"), Value(true));
  EXPECT_EQ(f("endswith(s, 'x')"), Value(false));
  EXPECT_EQ(f("indexof(s, 'World')"), Value(7));
  EXPECT_EQ(f("indexof(s, 'nope')"), Value(-1));
  EXPECT_EQ(f("split_value('a/b/c', '/', 1)"), Value("b"));
  EXPECT_TRUE(f("split_value('a/b/c', '/', 5)").is_null());
  EXPECT_EQ(f("format(12332.1234, 2)"), Value("12,332.12"));
  EXPECT_EQ(f("format(-1234567, 0)"), Value("-1,234,567"));
  EXPECT_EQ(f("reverse('abé')"), Value("éba"));
  EXPECT_EQ(f("chr(65)"), Value("A"));
  EXPECT_EQ(f("regexp_matches(s, '^H.*d$')"), Value(true));
  EXPECT_EQ(f("regexp_matches(s, '[0-9]')"), Value(false));
  EXPECT_EQ(f("regexp_replace(s, 'o', '0')"), Value("Hell0, W0rld"));
  EXPECT_EQ(f("regexp_substr(s, 'W[a-z]+')"), Value("World"));
  EXPECT_EQ(f("regexp_matches(s, '(')"),
            Value("ERROR: regexp_matches: invalid regular expression '('"));
}

TEST(FunctionsTest, ConversionAndEncoding) {
  EXPECT_EQ(f("cast(i, 'string')"), Value("7"));
  EXPECT_EQ(f("cast('12', 'bigint')"), Value(12));
  EXPECT_EQ(f("to_json(j->a)"), Value(R"({"b":[1,{"c":true}]})"));
  EXPECT_EQ(f("parse_json('{\"k\":[1]}')->k[0]"), Value(1));
  EXPECT_EQ(f("parse_json('{')").as_string().rfind("ERROR: parse_json: invalid JSON: ", 0), 0u);
  EXPECT_EQ(f("encode('hello', 'base64')"), Value("aGVsbG8="));
  EXPECT_EQ(f("decode('aGVsbG8=', 'base64')"), Value("hello"));
  EXPECT_EQ(f("hex2dec('0xff')"), Value(255));
  EXPECT_EQ(f("dec2hex(255)"), Value("0xff"));
}

TEST(FunctionsTest, Hashes) {
  EXPECT_EQ(f("md5('abc')"), Value("900150983cd24fb0d6963f7d28e17f72"));
  EXPECT_EQ(f("sha1('abc')"), Value("a9993e364706816aba3e25717850c26c9cd0d89d"));
  EXPECT_EQ(f("sha256('abc')"),
            Value("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
  EXPECT_EQ(f("length(sha512('abc'))"), Value(128));
  EXPECT_EQ(f("length(sha384('abc'))"), Value(96));
  EXPECT_EQ(f("length(sha224('abc'))"), Value(56));
}

TEST(FunctionsTest, TimeComesFromTheInjectedClock) {
  EXPECT_EQ(f("now()"), Value(std::int64_t{1'700'000'000'123}));
  EXPECT_EQ(f("tstamp()"), Value(std::int64_t{1'700'000'000'123}));
  EXPECT_EQ(f("format_time(now(), 'yyyy-MM-dd HH:mm:ss.SSS')"), Value("2023-11-14 22:13:20.123"));
  EXPECT_EQ(f("format_time(0, 'yy/M/d h:m:s a \\'T\\'')"), Value("70/1/1 12:0:0 AM T"));
}

TEST(FunctionsTest, NullHandling) {
  EXPECT_EQ(f("coalesce(missing, NULL, i)"), Value(7));
  EXPECT_TRUE(f("coalesce(missing)").is_null());
  EXPECT_EQ(f("isnull(missing)"), Value(true));
  EXPECT_EQ(f("isnull(i)"), Value(false));
  EXPECT_TRUE(f("nullif(i, 7)").is_null());
  EXPECT_EQ(f("nullif(i, 8)"), Value(7));
  EXPECT_EQ(f("cardinality(j->a->b)"), Value(2));
}

TEST(FunctionsTest, JsonPath) {
  EXPECT_EQ(f("json_path_exists(j, '$.a.b[1].c')"), Value(true));
  EXPECT_EQ(f("json_path_exists(j, '$.a.x')"), Value(false));
  EXPECT_EQ(f("json_path_query(j, '$.a.b[0]')"), Value(1));
  EXPECT_EQ(f("json_path_query(j, \"$['a']['b'][-1].c\")"), Value(true));
  EXPECT_EQ(f("json_path_query(j, '$.a.b[*]')"),
            Value(ValueArray{1, Value(ValueObject{{"c", true}})}));
  EXPECT_EQ(f("json_path_query_first(j, '$.a.b[*]')"), Value(1));
  EXPECT_EQ(f("json_path_query(j, 'a.b')"),
            Value("ERROR: json_path_query: path must start with '$'"));
  EXPECT_EQ(f("json_path_query(j, '$.a[')"), Value("ERROR: json_path_query: invalid path '$.a['"));
}

TEST(FunctionsTest, RegistryArityMessages) {
  const auto& reg = FunctionRegistry::builtins();
  EXPECT_NE(reg.find("SHA256"), nullptr);
  EXPECT_EQ(reg.find("nope"), nullptr);
  EXPECT_EQ(FunctionRegistry::arity_error(*reg.find("pi"), 1),
            "function 'pi' expects 0 arguments, got 1");
  EXPECT_EQ(FunctionRegistry::arity_error(*reg.find("pi"), 0), "");
}

}  // namespace
}  // namespace ganglion::sql
