#include "rules/rule_spec.h"

#include <gtest/gtest.h>

namespace ganglion::rules {
namespace {

TEST(RuleSpec, ParsesOptionsGivenAsIntegralFloats) {
  auto spec = parse_rule_spec(
      R"({"id":"r1","sql":"SELECT * FROM s","actions":[{"log":{}}],
          "options":{"lateTolerance":2000.0,"bufferLength":1e3}})");
  ASSERT_TRUE(spec.ok()) << spec.status().to_string();
  EXPECT_EQ(spec->options.late_tolerance_ms, 2000);
  EXPECT_EQ(spec->options.buffer_length, 1000u);
}

TEST(RuleSpec, OptionBeyondInt64IsAnErrorNotUndefinedBehaviour) {
  // Found with fuzz/api_body_fuzz: int_prop cast the double to int64 before checking that it
  // fits (1e300 is undefined behaviour; UBSan: outside the range of representable values).
  for (const char* v : {"1e300", "-1e300", "9223372036854775808.0", "2.5"}) {
    auto spec = parse_rule_spec(std::string(R"({"id":"r1","sql":"SELECT * FROM s",)") +
                                R"("actions":[{"log":{}}],"options":{"lateTolerance":)" + v + "}}");
    ASSERT_FALSE(spec.ok()) << v;
    EXPECT_NE(spec.status().message().find("options.lateTolerance"), std::string::npos) << v;
  }
}

}  // namespace
}  // namespace ganglion::rules
