#include "base/crc32c.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace ganglion {
namespace {

TEST(Crc32c, MatchesKnownVectors) {
  // RFC 3720 B.4 and the classic check value.
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  std::string zeros(32, '\0');
  EXPECT_EQ(crc32c(zeros), 0x8A9136AAu);
  std::string ones(32, '\xff');
  EXPECT_EQ(crc32c(ones), 0x62A8AB43u);
}

TEST(Crc32c, HardwareAndPortablePathsAgreeAndExtend) {
  std::mt19937 rng(7);
  for (int len = 0; len < 300; ++len) {
    std::string s(len, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    const auto whole = crc32c(s);
    EXPECT_EQ(whole, crc32c_extend_portable(0, s.data(), s.size()));
    const std::size_t cut = len / 3;
    EXPECT_EQ(whole, crc32c_extend(crc32c(s.data(), cut), s.data() + cut, s.size() - cut));
  }
}

}  // namespace
}  // namespace ganglion
