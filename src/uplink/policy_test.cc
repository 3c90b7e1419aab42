#include "uplink/policy.h"

#include <gtest/gtest.h>

namespace ganglion::uplink {
namespace {

std::unique_ptr<DataPolicy> make(std::vector<std::string> local, std::vector<std::string> fields,
                                 std::string key = "k3y") {
  PolicyOptions o;
  o.local_only = std::move(local);
  for (const auto& f : fields) o.fields.push_back(*parse_field_rule(f));
  o.hash_key = std::move(key);
  o.region = "eu-west";
  auto p = DataPolicy::create(std::move(o));
  EXPECT_TRUE(p.ok()) << p.status().to_string();
  return std::move(*p);
}

TEST(DataPolicy, LocalOnlyTopicsNeverLeaveAndAreCounted) {
  auto p = make({"factory/+/camera/#"}, {});
  EXPECT_EQ(p->apply("factory/a/camera/1", "jpeg").verdict, Verdict::kLocalOnly);
  EXPECT_EQ(p->apply("factory/b/camera/2/raw", "jpeg").verdict, Verdict::kLocalOnly);
  auto pass = p->apply("factory/a/telemetry/1", "{}");
  EXPECT_EQ(pass.verdict, Verdict::kForward);
  EXPECT_FALSE(pass.rewritten);
  auto s = p->stats();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].kind, "local_only");
  EXPECT_EQ(s[0].matched, 2u);
  EXPECT_EQ(s[0].applied, 2u);
}

TEST(DataPolicy, DropsNestedField) {
  auto p = make({}, {"factory/# drop operator.badge"});
  auto out = p->apply("factory/a/alerts/x", R"({"operator":{"name":"Ann","badge":"B-17"},"v":2})");
  ASSERT_EQ(out.verdict, Verdict::kForward);
  ASSERT_TRUE(out.rewritten);
  EXPECT_EQ(out.payload, R"({"operator":{"name":"Ann"},"v":2})");
}

TEST(DataPolicy, RedactsField) {
  auto p = make({}, {"shop/# redact card"});
  auto out = p->apply("shop/till-1", R"({"card":"4111111111111111","amount":12.5})");
  ASSERT_TRUE(out.rewritten);
  EXPECT_EQ(out.payload, R"({"card":"***","amount":12.5})");
}

TEST(DataPolicy, HashesWithKeyedHmacSha256) {
  // RFC 4231 test case 2.
  EXPECT_EQ(hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  auto p = make({}, {"factory/# hash worker_id"}, "Jefe");
  auto out = p->apply("factory/a/t", R"({"worker_id":"what do ya want for nothing?","n":1})");
  ASSERT_TRUE(out.rewritten);
  EXPECT_EQ(
      out.payload,
      R"({"worker_id":"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843","n":1})");
  // Non-string values are hashed as their JSON text.
  auto num = p->apply("factory/a/t", R"({"worker_id":42})");
  EXPECT_EQ(num.payload, "{\"worker_id\":\"" + hmac_sha256_hex("Jefe", "42") + "\"}");
}

TEST(DataPolicy, LeavesMessagesWithoutTheFieldAlone) {
  auto p = make({}, {"factory/# drop secret"});
  auto out = p->apply("factory/a/t", R"({"v":1})");
  EXPECT_EQ(out.verdict, Verdict::kForward);
  EXPECT_FALSE(out.rewritten);
  EXPECT_EQ(p->stats()[0].matched, 1u);
  EXPECT_EQ(p->stats()[0].applied, 0u);
  // Other topics are not even parsed.
  EXPECT_EQ(p->apply("other/t", "not json").verdict, Verdict::kForward);
}

TEST(DataPolicy, FailsClosedOnNonJsonPayloadUnderAFieldRule) {
  auto p = make({}, {"factory/# redact card"});
  EXPECT_EQ(p->apply("factory/x", "card=4111").verdict, Verdict::kUnparseable);
  EXPECT_EQ(p->apply("factory/x", "[1,2]").verdict, Verdict::kUnparseable);
  EXPECT_EQ(p->unparseable(), 2u);
}

TEST(DataPolicy, AppliesSeveralRulesInOrder) {
  auto p = make(
      {}, {"factory/# drop operator.badge", "factory/# hash worker_id", "factory/# redact a.b.c"});
  auto out =
      p->apply("factory/1", R"({"worker_id":"w1","operator":{"badge":1},"a":{"b":{"c":5,"d":6}}})");
  ASSERT_TRUE(out.rewritten);
  EXPECT_EQ(out.payload, "{\"worker_id\":\"" + hmac_sha256_hex("k3y", "w1") +
                             "\",\"operator\":{},\"a\":{\"b\":{\"c\":\"***\",\"d\":6}}}");
  for (const auto& e : p->stats()) EXPECT_EQ(e.applied, 1u) << e.kind;
}

TEST(DataPolicy, RejectsBadConfiguration) {
  EXPECT_FALSE(parse_field_rule("factory/#").ok());
  EXPECT_FALSE(parse_field_rule("factory/# scramble x").ok());
  EXPECT_FALSE(parse_field_rule("fac#tory drop x").ok());
  EXPECT_FALSE(parse_field_rule("factory/# drop a..b").ok());
  PolicyOptions o;
  o.fields.push_back(*parse_field_rule("factory/# hash worker_id"));
  EXPECT_EQ(DataPolicy::create(o).status().code(), StatusCode::kInvalidArgument);  // no key
  PolicyOptions bad;
  bad.local_only = {"a/#/b"};
  EXPECT_FALSE(DataPolicy::create(bad).ok());
}

TEST(DataPolicy, ChecksTheDestinationRegion) {
  PolicyOptions o;
  o.region = "eu-west";
  auto any = DataPolicy::create(o);
  EXPECT_TRUE((*any)->check_destination("us-east").ok());
  o.allowed_regions = {"eu-west", "eu-central"};
  auto eu = DataPolicy::create(o);
  EXPECT_TRUE((*eu)->check_destination("eu-central").ok());
  EXPECT_EQ((*eu)->check_destination("us-east").code(), StatusCode::kPermissionDenied);
}

TEST(DataPolicy, ReportsItselfAsJson) {
  auto p = make({"cam/#"}, {"f/# redact x"});
  (void)p->apply("cam/1", "");
  const std::string j = p->to_json();
  EXPECT_NE(j.find("\"region\":\"eu-west\""), std::string::npos) << j;
  EXPECT_NE(j.find("{\"filter\":\"cam/#\",\"matched\":1,\"dropped\":1}"), std::string::npos) << j;
  EXPECT_NE(j.find("\"action\":\"redact\",\"path\":\"x\""), std::string::npos) << j;
  EXPECT_EQ(j.find("k3y"), std::string::npos) << "the key never shows";
}

}  // namespace
}  // namespace ganglion::uplink
