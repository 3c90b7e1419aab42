#include "cloud/tokens.h"

#include <gtest/gtest.h>

namespace ganglion::cloud {
namespace {

TEST(Tokens, SecretIsRandomAndOnlyItsHashIsKept) {
  auto a = make_bootstrap_token({{"site", "eu-1"}}, 3'600'000, 1, 1000, "api:admin");
  auto b = make_bootstrap_token({}, 3'600'000, 1, 1000, "api:admin");
  EXPECT_NE(a.secret, b.secret);
  EXPECT_EQ(a.secret.size(), 4u + 32u);  // gbt_ + 128 bits in hex
  EXPECT_EQ(a.record.hash, token_hash(a.secret));
  EXPECT_EQ(a.record.hash.find(a.secret.substr(4)), std::string::npos);
  EXPECT_EQ(a.record.expires_at_ms, 1000 + 3'600'000);
}

TEST(Tokens, ExpiredUsedUpAndUnknownAreRefused) {
  auto t = make_bootstrap_token({}, 1000, 2, 0, "x").record;
  EXPECT_EQ(check_bootstrap_token(t, 999), TokenCheck::kValid);
  EXPECT_EQ(check_bootstrap_token(t, 1000), TokenCheck::kExpired);
  t.uses = 1;
  EXPECT_EQ(check_bootstrap_token(t, 10), TokenCheck::kValid);
  t.uses = 2;
  EXPECT_EQ(check_bootstrap_token(t, 10), TokenCheck::kUsedUp);
  EXPECT_EQ(check_bootstrap_token(std::nullopt, 10), TokenCheck::kUnknown);
}

TEST(Tokens, NodeIdsAreSafeAsCommonNamesAndTopicLevels) {
  EXPECT_TRUE(valid_node_id("edge-01.factory_a"));
  for (const char* bad : {"", "-x", "A", "a/b", "a+b", "a#", "$sys", "a b", "é"}) {
    EXPECT_FALSE(valid_node_id(bad)) << bad;
  }
  EXPECT_FALSE(valid_node_id(std::string(65, 'a')));
}

TEST(Tokens, LabelListsParseAndRejectJunk) {
  auto l = parse_label_list("site=eu-1,type=factory,empty=");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(*l, (LabelMap{{"site", "eu-1"}, {"type", "factory"}, {"empty", ""}}));
  EXPECT_FALSE(parse_label_list("site").ok());
  EXPECT_FALSE(parse_label_list("=x").ok());
  EXPECT_FALSE(parse_label_list("a\"b=x").ok());
}

}  // namespace
}  // namespace ganglion::cloud
