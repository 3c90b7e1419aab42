#include "stream/catalog.h"

#include <gtest/gtest.h>

#include <variant>

#include "stream/parser.h"

namespace ganglion::stream {
namespace {

std::shared_ptr<const StreamDef> stream_def(std::string_view sql) {
  auto st = sql::parse_statement(sql);
  EXPECT_TRUE(st.ok());
  auto def = make_stream_def(std::get<sql::CreateStreamStatement>(*st));
  EXPECT_TRUE(def.ok());
  return *def;
}

TEST(DecodeRow, DatetimeFromAFloatOutsideInt64IsAMismatchNotUndefinedBehaviour) {
  // Found by fuzz/stream_row_fuzz: a float payload value was cast to int64 unchecked.
  auto def = stream_def(R"(CREATE STREAM s (ts DATETIME) WITH (DATASOURCE="s"))");
  auto ok = decode_row(*def, R"({"ts":1700000000000.7})");
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_EQ(ok->find("ts")->as_int(), 1700000000000);
  EXPECT_FALSE(decode_row(*def, R"({"ts":1.7e52})").ok());
  EXPECT_FALSE(decode_row(*def, R"({"ts":-1e19})").ok());
}

}  // namespace
}  // namespace ganglion::stream
