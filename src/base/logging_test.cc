#include "base/logging.h"

#include <gtest/gtest.h>
#include <spdlog/details/log_msg.h>
#include <spdlog/formatter.h>

namespace ganglion {
namespace {

TEST(Logging, JsonFormatterWritesOneEscapedObjectPerLine) {
  auto f = make_json_formatter();
  spdlog::details::log_msg msg("edge", spdlog::level::warn, "link \"down\"\n\x01");
  spdlog::memory_buf_t out;
  f->format(msg, out);
  const std::string line(out.data(), out.size());
  EXPECT_NE(line.find("\"level\":\"warning\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"logger\":\"edge\""), std::string::npos);
  EXPECT_NE(line.find("\"msg\":\"link \\\"down\\\"\\n\\u0001\""), std::string::npos) << line;
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);
}

TEST(Logging, RejectsUnknownLevelAndFormat) {
  EXPECT_FALSE(init_logging(LogFormat::kText, "loud").ok());
  EXPECT_TRUE(init_logging(LogFormat::kText, "info").ok());
  EXPECT_FALSE(parse_log_format("xml").ok());
  EXPECT_EQ(*parse_log_format("json"), LogFormat::kJson);
}

}  // namespace
}  // namespace ganglion
