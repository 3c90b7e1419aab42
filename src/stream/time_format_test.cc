#include "stream/time_format.h"

#include <gtest/gtest.h>

namespace ganglion::stream {
namespace {

constexpr std::int64_t k2024May1 = 1714521600000;  // 2024-05-01T00:00:00Z

TEST(TimeFormatTest, FormatsWithJavaStylePatterns) {
  const std::int64_t t = k2024May1 + 13 * 3'600'000 + 5 * 60'000 + 9'042;  // 13:05:09.042
  EXPECT_EQ(format_time(t, "yyyy-MM-dd HH:mm:ss.SSS"), "2024-05-01 13:05:09.042");
  EXPECT_EQ(format_time(t, "yy/M/d h:m:s a Z"), "24/5/1 1:5:9 PM +0000");
  EXPECT_EQ(format_time(t, "yyyy-MM-dd'T'HH:mm:ss'Z'"), "2024-05-01T13:05:09Z");
  EXPECT_EQ(format_time(-1, "yyyy-MM-dd HH:mm:ss.SSS"), "1969-12-31 23:59:59.999");
  EXPECT_EQ(format_time(0, "hh a"), "12 AM");
}

TEST(TimeFormatTest, ParsesWhatItFormats) {
  for (std::int64_t t : {std::int64_t{0}, k2024May1, k2024May1 + 86'399'999, std::int64_t{-1},
                         std::int64_t{951782400000} /* 2000-02-29 */}) {
    for (const char* f :
         {"yyyy-MM-dd HH:mm:ss.SSS", "yyyy-MM-dd'T'HH:mm:ss.SSSZ", "dd/MM/yyyy hh:mm:ss.SSS a"}) {
      EXPECT_EQ(parse_time(format_time(t, f), f), t) << f << " " << t;
    }
  }
}

TEST(TimeFormatTest, ParsesZonesFractionsAndShortFields) {
  EXPECT_EQ(parse_time("2024-05-01T02:00:00+02:00", "yyyy-MM-dd'T'HH:mm:ssZ"), k2024May1);
  EXPECT_EQ(parse_time("2024-04-30T19:00:00-0500", "yyyy-MM-dd'T'HH:mm:ssZ"), k2024May1);
  EXPECT_EQ(parse_time("2024-05-01T00:00:00.5Z", "yyyy-MM-dd'T'HH:mm:ss.SSSZ"), k2024May1 + 500);
  EXPECT_EQ(parse_time("2024-05-01T00:00:00.123456789Z", "yyyy-MM-dd'T'HH:mm:ss.SSSZ"),
            k2024May1 + 123);
  EXPECT_EQ(parse_time("2024-5-1 0:0:0", "yyyy-MM-dd HH:mm:ss"), k2024May1);
  EXPECT_EQ(parse_time("12:30 AM 01.05.24", "hh:mm a dd.MM.yy"), k2024May1 + 30 * 60'000);
  EXPECT_EQ(parse_time("2024-05-01 12:00:00 PM", "yyyy-MM-dd hh:mm:ss a"), k2024May1 + 43'200'000);
}

TEST(TimeFormatTest, RefusesWhatDoesNotMatchOrIsNoDate) {
  const char* f = "yyyy-MM-dd HH:mm:ss";
  for (const char* bad :
       {"2024-13-01 00:00:00", "2023-02-29 00:00:00", "2024-04-31 00:00:00", "2024-05-01 24:00:00",
        "2024-05-01 00:60:00", "2024-05-01 00:00:00 ", "2024-05-01", "2024-05-01T00:00:00", "",
        "x024-05-01 00:00:00", "2024-05-01 00:00:0x"}) {
    EXPECT_FALSE(parse_time(bad, f).has_value()) << bad;
  }
  EXPECT_FALSE(parse_time("2024-05-01T00:00:00+24:00", "yyyy-MM-dd'T'HH:mm:ssZ").has_value());
  EXPECT_FALSE(parse_time("13:00 PM", "hh:mm a").has_value());
  EXPECT_FALSE(parse_time("2024-05-01", "yyyy-MM-dd'T'").has_value());
  // A long run of y reads at most 6 digits (no overflow on 30 of them).
  EXPECT_FALSE(parse_time(std::string(30, '9'), std::string(30, 'y')).has_value());
  EXPECT_EQ(parse_time("002024", "yyyyyy"), parse_time("2024", "yyyy"));
}

TEST(TimeFormatTest, AnyFormReadsRfc3339AndItsVariants) {
  EXPECT_EQ(parse_time_any("2024-05-01T00:00:00Z"), k2024May1);
  EXPECT_EQ(parse_time_any("2024-05-01T00:00:00.250+00:00"), k2024May1 + 250);
  EXPECT_EQ(parse_time_any("2024-05-01 00:00:01"), k2024May1 + 1000);
  EXPECT_EQ(parse_time_any("2024-05-01T00:00:01"), k2024May1 + 1000);
  EXPECT_EQ(parse_time_any("2024-05-01"), k2024May1);
  EXPECT_FALSE(parse_time_any("May 1st").has_value());
  EXPECT_EQ(to_datetime(Value("2024-05-01")).value(), Value(k2024May1));
  EXPECT_EQ(to_datetime(Value(12)).value(), Value(12));
  EXPECT_FALSE(to_datetime(Value("soon")).ok());
}

}  // namespace
}  // namespace ganglion::stream
