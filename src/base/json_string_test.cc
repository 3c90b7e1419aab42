#include "base/json_string.h"

#include <gtest/gtest.h>

namespace ganglion {
namespace {

TEST(JsonString, EscapesQuotesBackslashesAndControlCharacters) {
  std::string out;
  append_json_string("a\"b\\c\n\x01", out);
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\n\\u0001\"");
}

TEST(JsonNesting, CountsArraysAndObjectsButNotBracketsInStrings) {
  EXPECT_TRUE(json_nesting_within("1", 0));
  EXPECT_TRUE(json_nesting_within("[[1]]", 2));
  EXPECT_FALSE(json_nesting_within("[[1]]", 1));
  EXPECT_TRUE(json_nesting_within(R"({"a":[1],"b":{"c":2}})", 2));
  EXPECT_FALSE(json_nesting_within(R"({"a":[{"b":1}]})", 2));
  EXPECT_TRUE(json_nesting_within(R"(["[[[[", "\"[[[["])", 1));
  EXPECT_FALSE(json_nesting_within(std::string(100'000, '['), 256));
}

}  // namespace
}  // namespace ganglion
