#include "base/base64.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace ganglion {
namespace {

TEST(Base64Test, RoundTripsAndMatchesRfc4648) {
  for (std::string s :
       std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)}) {
    EXPECT_EQ(base64_decode(base64_encode(s)), s);
    EXPECT_EQ(base64_decode_canonical(base64_encode(s)), s);
  }
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("hello"), "aGVsbG8=");
  EXPECT_EQ(base64_decode_canonical("Zm9vYg==").value_or("?"), "foob");
  EXPECT_EQ(base64_decode_canonical("Zm9vYmE=").value_or("?"), "fooba");
}

TEST(Base64Test, LenientForDataStrictForProtocolFields) {
  // Devices leave out padding: the lenient decoder takes it.
  EXPECT_EQ(base64_decode("Zg").value_or("?"), "f");
  EXPECT_FALSE(base64_decode("a*b=").has_value());
  EXPECT_FALSE(base64_decode("Z").has_value());
  // SCRAM and password files: only what base64_encode() writes.
  for (std::string_view bad : {"Zg", "Zg=", "Z===", "Zh==", "Zm9=", "Zg==Zg==", "Zm9v\n", "=Zm9"}) {
    EXPECT_FALSE(base64_decode_canonical(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace ganglion
