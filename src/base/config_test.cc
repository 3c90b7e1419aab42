#include "base/config.h"

#include <gtest/gtest.h>

#include "base/mem_env.h"

namespace ganglion {
namespace {

ConfigSchema schema() {
  ConfigSchema s;
  s.add({.key = "node.id",
         .type = OptionType::kString,
         .default_value = "edge-1",
         .help = "Node id."});
  s.add({.key = "http.port",
         .type = OptionType::kInt,
         .default_value = "8080",
         .help = "Port.",
         .min = 0,
         .max = 65535});
  s.add({.key = "log.format",
         .type = OptionType::kString,
         .default_value = "text",
         .help = "Format.",
         .choices = {"text", "json"}});
  s.add({.key = "log.sync", .type = OptionType::kBool, .default_value = "false", .help = "Sync."});
  s.add({.key = "uplink.interval",
         .type = OptionType::kDuration,
         .default_value = "10s",
         .help = "I."});
  s.add({.key = "log.quota", .type = OptionType::kBytes, .default_value = "1GiB", .help = "Q."});
  s.add({.key = "mqtt.listeners",
         .type = OptionType::kStringList,
         .default_value = "tcp://127.0.0.1:1883",
         .help = "L."});
  s.add({.key = "ratio", .type = OptionType::kDouble, .default_value = "0.5", .help = "R."});
  return s;
}

TEST(Config, DefaultsApplyWithoutAFile) {
  auto s = schema();
  Config c(s);
  EXPECT_EQ(c.str("node.id"), "edge-1");
  EXPECT_EQ(c.integer("http.port"), 8080);
  EXPECT_EQ(c.integer("uplink.interval"), 10'000);
  EXPECT_EQ(c.integer("log.quota"), 1LL << 30);
  EXPECT_EQ(c.list("mqtt.listeners"), (std::vector<std::string>{"tcp://127.0.0.1:1883"}));
  EXPECT_DOUBLE_EQ(c.number("ratio"), 0.5);
  EXPECT_EQ(c.origin("node.id"), "default");
}

TEST(Config, NestedMapsSetDottedKeys) {
  auto s = schema();
  Config c(s);
  ASSERT_TRUE(
      c.load_yaml("node:\n  id: factory-7\nhttp:\n  port: 9000\nmqtt:\n  listeners: [a, b]\n",
                  "edge.yaml")
          .ok());
  EXPECT_EQ(c.str("node.id"), "factory-7");
  EXPECT_EQ(c.integer("http.port"), 9000);
  EXPECT_EQ(c.list("mqtt.listeners"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(c.origin("http.port"), "edge.yaml:4:9");
}

TEST(Config, WrongTypeNamesFileLineColumnAndExpectation) {
  auto s = schema();
  Config c(s);
  Status st = c.load_yaml("node:\n  id: x\nhttp:\n  port: eighty\n", "broken.yaml");
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(),
            "broken.yaml:4:9: http.port: expected integer in 0..65535, found \"eighty\"");
}

TEST(Config, OutOfRangeIsAnError) {
  auto s = schema();
  Config c(s);
  Status st = c.load_yaml("http: {port: 70000}", "f.yaml");
  EXPECT_NE(st.message().find("f.yaml:1:14: http.port: expected integer in 0..65535"),
            std::string::npos)
      << st.message();
}

TEST(Config, UnknownKeyIsAnErrorWithItsPosition) {
  auto s = schema();
  Config c(s);
  Status st = c.load_yaml("http:\n  prot: 1\n", "f.yaml");
  EXPECT_EQ(st.message(), "f.yaml:2:3: unknown option \"http.prot\"");
}

TEST(Config, InvalidChoiceListsTheChoices) {
  auto s = schema();
  Config c(s);
  Status st = c.load_yaml("log: {format: xml}", "f.yaml");
  EXPECT_NE(st.message().find("expected string (one of \"text\" \"json\"), found \"xml\""),
            std::string::npos)
      << st.message();
}

TEST(Config, BrokenYamlSyntaxReportsPosition) {
  auto s = schema();
  Config c(s);
  Status st = c.load_yaml("http:\n  port: [1, 2\n", "f.yaml");
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message().rfind("f.yaml:", 0), 0u) << st.message();
  EXPECT_NE(st.message().find("invalid YAML"), std::string::npos);
}

TEST(Config, SectionGivenAScalarIsAnError) {
  auto s = schema();
  Config c(s);
  Status st = c.load_yaml("http: 5\n", "f.yaml");
  EXPECT_EQ(st.message(), "f.yaml:1:7: http: expected a map (a section of options)");
}

TEST(Config, CommandLineOverridesAreValidated) {
  auto s = schema();
  Config c(s);
  EXPECT_TRUE(c.set("http.port", "1234", "--http.port").ok());
  EXPECT_EQ(c.integer("http.port"), 1234);
  EXPECT_EQ(c.set("http.port", "-1", "--http.port").message(),
            "--http.port: http.port: expected integer in 0..65535, found \"-1\"");
  EXPECT_EQ(c.set("nope", "1", "--nope").code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(c.set("mqtt.listeners", "a, b,c", "--mqtt.listeners").ok());
  EXPECT_EQ(c.list("mqtt.listeners"), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(Config, ParsesDurationsAndSizes) {
  EXPECT_EQ(*parse_duration_ms("250ms"), 250);
  EXPECT_EQ(*parse_duration_ms("1.5s"), 1500);
  EXPECT_EQ(*parse_duration_ms("2h"), 7'200'000);
  EXPECT_FALSE(parse_duration_ms("10").ok());
  EXPECT_FALSE(parse_duration_ms("10 parsecs").ok());
  EXPECT_EQ(*parse_bytes("4096"), 4096);
  EXPECT_EQ(*parse_bytes("64KiB"), 65536);
  EXPECT_EQ(*parse_bytes("1GB"), 1'000'000'000);
  EXPECT_FALSE(parse_bytes("lots").ok());
}

TEST(Config, SizeTooLargeForInt64IsAnErrorNotUndefinedBehaviour) {
  // Found with fuzz/config_yaml_fuzz: a size without a unit was cast from double to int64
  // unchecked ("disk_budget: 99999999999999999999999" is undefined behaviour).
  EXPECT_FALSE(parse_bytes("99999999999999999999999").ok());
  EXPECT_FALSE(parse_bytes("9300000000000000000").ok());
  EXPECT_EQ(*parse_bytes("9000000000000000000"), 9'000'000'000'000'000'000);
  EXPECT_FALSE(parse_bytes("99999999999999999999TiB").ok());
}

TEST(Config, LoadsThroughEnvAndReportsMissingFile) {
  MemEnv env;
  ASSERT_TRUE(env.write_file_atomic("/etc/edge.yaml", "node: {id: n9}\n").ok());
  auto s = schema();
  Config c(s);
  ASSERT_TRUE(c.load_yaml_file(env, "/etc/edge.yaml").ok());
  EXPECT_EQ(c.str("node.id"), "n9");
  EXPECT_NE(c.load_yaml_file(env, "/etc/missing.yaml").message().find("cannot read config file"),
            std::string::npos);
}

TEST(Config, ReferenceListsEveryOption) {
  auto s = schema();
  const std::string md = s.reference_markdown("Edge options");
  for (const auto& o : s.options()) EXPECT_NE(md.find("`" + o.key + "`"), std::string::npos);
}

}  // namespace
}  // namespace ganglion
