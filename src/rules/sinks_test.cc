#include "rules/sinks.h"

#include <gtest/gtest.h>

#include "event/json.h"

namespace ganglion::rules {
namespace {

Value row(std::string_view json) { return *parse_json(json); }

TEST(Template, RendersFieldsNestedFieldsAndJson) {
  Value r = row(R"({"deviceId": "d1", "t": 21.5, "n": 3, "loc": {"site": "p7"}, "tags": ["a"]})");
  EXPECT_EQ(render_template("alerts/{{.deviceId}}", r), "alerts/d1");
  EXPECT_EQ(render_template("{{ .loc.site }}/{{.n}}", r), "p7/3");
  EXPECT_EQ(render_template("{\"t\":{{.t}},\"tags\":{{json .tags}}}", r),
            R"({"t":21.5,"tags":["a"]})");
  EXPECT_EQ(render_template("x{{.missing}}y", r), "xy");
  EXPECT_EQ(render_template("{{.}}", row(R"({"a":1})")), R"({"a":1})");
  EXPECT_EQ(render_template("{{json .deviceId}}", r), "\"d1\"");
  // A non-single payload (an array of rows): fields read the first row.
  EXPECT_EQ(render_template("out/{{.deviceId}}", row(R"([{"deviceId":"x"},{"deviceId":"y"}])")),
            "out/x");
}

TEST(Template, ChecksActions) {
  EXPECT_TRUE(check_template("plain").ok());
  EXPECT_TRUE(check_template("a/{{.b}}/{{json .c.d}}").ok());
  EXPECT_FALSE(check_template("a/{{.b").ok());
  EXPECT_FALSE(check_template("a/{{b}}").ok());
  EXPECT_FALSE(check_template("a/{{.b..c}}").ok());
}

TEST(MakeSink, RefusesBadPropertiesNamingThem) {
  SinkContext ctx;
  ctx.rule_id = "r";
  auto bad = [&](std::string_view json) {
    auto doc = parse_json(json);
    const auto& [type, props] = doc->as_object().at(0);
    auto s = make_sink({type, props}, 0, ctx);
    return s.ok() ? std::string("ok") : s.status().message();
  };
  EXPECT_EQ(bad(R"({"mqtt": {"topic": "a/+"}})"),
            "actions[0].mqtt.topic: a topic name may not contain '+' or '#'");
  EXPECT_EQ(bad(R"({"mqtt": {"topic": "a", "qos": 3}})"), "actions[0].mqtt.qos: must be 0, 1 or 2");
  EXPECT_EQ(bad(R"({"mqtt": {"topic": "a", "retained": "yes"}})"),
            "actions[0].mqtt.retained: expects true or false");
  EXPECT_EQ(bad(R"({"rest": {"url": "https://x/y"}})"),
            "actions[0].rest.url: url 'https://x/y': only http:// URLs are supported");
  EXPECT_EQ(bad(R"({"rest": {"url": "http://x/y", "method": "teleport"}})"),
            "actions[0].rest.method: expects post, put, patch, get or delete");
  EXPECT_EQ(bad(R"({"function": {"name": "nope"}})"),
            "actions[0].function.name: function 'nope' is not defined (POST /functions first)");
  EXPECT_EQ(bad(R"({"uplink": {"class": "alert"}})"),
            "actions[0].uplink: the uplink is not enabled on this node (uplink.url)");
  EXPECT_EQ(bad(R"({"kafka": {}})"),
            "actions[0]: unknown sink type 'kafka' (mqtt, log, rest, function, uplink, nop)");
  EXPECT_EQ(bad(R"({"log": {}})"), "ok");
}

TEST(HttpUrl, Splits) {
  auto u = parse_http_url("http://127.0.0.1:9000/hook?x=1");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, "9000");
  EXPECT_EQ(u->target, "/hook?x=1");
  u = parse_http_url("http://example.com");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->port, "80");
  EXPECT_EQ(u->target, "/");
  EXPECT_FALSE(parse_http_url("http://host:99999999/").ok());
}

TEST(RuleSpec, ParsesTheEkuiperDocument) {
  auto r = parse_rule_spec(R"({"id": "rule1", "sql": "SELECT 1 FROM demo",
    "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": "t"}}, {"log": {}}],
    "options": {"isEventTime": false, "lateTolerance": 1000, "sendMetaToSink": false, "qos": 1}})");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->actions.size(), 2u);
  EXPECT_EQ(r->actions[0].type, "mqtt");
  EXPECT_EQ(r->options.late_tolerance_ms, 1000);
  // Round trip keeps the unknown option.
  EXPECT_EQ(
      to_json(rule_spec_to_value(*r)),
      R"({"id":"rule1","sql":"SELECT 1 FROM demo","actions":[{"mqtt":{"server":"tcp://127.0.0.1:1883","topic":"t"}},{"log":{}}],"options":{"isEventTime":false,"lateTolerance":1000,"sendMetaToSink":false,"qos":1},"triggered":true})");
  EXPECT_EQ(
      parse_rule_spec(R"({"id": "a b", "sql": "x", "actions": [{"log": {}}]})").status().message(),
      "rule id 'a b': only letters, digits, '_', '-' and '.' are allowed");
  EXPECT_EQ(parse_rule_spec(R"({"id": "a", "sql": "x", "actions": []})").status().message(),
            "actions: required, a non-empty array");
  EXPECT_EQ(parse_rule_spec(R"({"id": "a", "sql": "x", "actions": [{"log": {}, "mqtt": {}}]})")
                .status()
                .message(),
            "actions[0]: an action is an object with one key, the sink type");
}

}  // namespace
}  // namespace ganglion::rules
