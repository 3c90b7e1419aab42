#include "broker/acl.h"

#include <gtest/gtest.h>

#include "base/mem_env.h"

namespace ganglion::broker {
namespace {

AclPolicy parse_ok(std::string_view text, AclOptions options = {}) {
  auto p = AclPolicy::parse(text, options);
  EXPECT_TRUE(p.ok()) << p.status().to_string();
  return std::move(p).value();
}

ClientIdentity user(std::string name, std::string client_id = "c1") {
  return ClientIdentity{std::move(name), std::move(client_id)};
}

ClientIdentity anonymous(std::string client_id = "anon") {
  return ClientIdentity{std::nullopt, std::move(client_id)};
}

constexpr std::string_view kFile = R"(
# plant floor
topic read public/#

user alice
topic readwrite plant/#
topic deny plant/secret/#
topic plant/status

user bob
topic write plant/cmd

pattern write devices/%c/up
pattern read users/%u/#
)";

TEST(Acl, UserSectionGrantsOnlyThatUser) {
  AclPolicy policy = parse_ok(kFile);
  auto alice = policy.compile(user("alice"));
  auto bob = policy.compile(user("bob"));
  EXPECT_TRUE(alice->can_publish("plant/line1/temp"));
  EXPECT_TRUE(alice->can_receive("plant/line1/temp"));
  EXPECT_FALSE(bob->can_receive("plant/line1/temp"));
  EXPECT_TRUE(bob->can_publish("plant/cmd"));
  EXPECT_FALSE(bob->can_receive("plant/cmd"));
}

TEST(Acl, RulesBeforeAnyUserApplyToAnonymousClients) {
  AclPolicy policy = parse_ok(kFile);
  auto anon = policy.compile(anonymous());
  EXPECT_TRUE(anon->can_receive("public/news"));
  EXPECT_FALSE(anon->can_publish("public/news"));
  EXPECT_FALSE(policy.compile(user("alice"))->can_receive("public/news"));
}

TEST(Acl, DenyRuleWinsOverAllow) {
  AclPolicy policy = parse_ok(kFile);
  auto alice = policy.compile(user("alice"));
  EXPECT_FALSE(alice->can_publish("plant/secret/key"));
  EXPECT_FALSE(alice->can_receive("plant/secret"));
  EXPECT_TRUE(alice->can_receive("plant/secretary"));
}

TEST(Acl, MissingAccessWordMeansReadWrite) {
  AclPolicy policy = parse_ok("user u\ntopic a/b\ntopic read\n");
  auto u = policy.compile(user("u"));
  EXPECT_TRUE(u->can_publish("a/b"));
  EXPECT_TRUE(u->can_receive("a/b"));
  EXPECT_TRUE(u->can_publish("read"));  // Mosquitto: a lone word is the topic
}

TEST(Acl, PatternSubstitutesUsernameAndClientId) {
  AclPolicy policy = parse_ok(kFile);
  auto carol = policy.compile(user("carol", "sensor-7"));
  EXPECT_TRUE(carol->can_publish("devices/sensor-7/up"));
  EXPECT_FALSE(carol->can_publish("devices/sensor-8/up"));
  EXPECT_TRUE(carol->can_receive("users/carol/inbox"));
  EXPECT_TRUE(carol->can_subscribe("users/carol/#"));
  EXPECT_FALSE(carol->can_receive("users/dave/inbox"));
}

TEST(Acl, PatternWithUsernameGrantsNothingToAnonymousClients) {
  AclPolicy policy = parse_ok(kFile);
  auto anon = policy.compile(anonymous("dev1"));
  EXPECT_FALSE(anon->can_receive("users//x"));
  EXPECT_TRUE(anon->can_publish("devices/dev1/up"));
}

TEST(Acl, WildcardOrSlashInIdentityNeverWidensAGrant) {
  AclPolicy policy = parse_ok("pattern readwrite devices/%c/up\npattern deny secret/%u/x\n",
                              AclOptions{.allow_unmatched = true});
  auto sneaky = policy.compile(user("a/b", "+"));
  EXPECT_FALSE(policy.compile(user("a/b", "+"))->can_publish("secret/a/b/x"));
  EXPECT_FALSE(sneaky->can_publish("secret/anything"));  // deny widened to secret/#
  // The allow pattern was dropped; allow_unmatched still applies to unrelated topics.
  EXPECT_TRUE(sneaky->can_publish("other"));
  AclPolicy strict = parse_ok("pattern readwrite devices/%c/up\n");
  auto hash = strict.compile(user("u", "#"));
  EXPECT_FALSE(hash->can_publish("devices/x/up"));
  EXPECT_FALSE(hash->can_subscribe("devices/+/up"));
}

TEST(Acl, DefaultDenyWhenNoRuleMatchesIsConfigurable) {
  EXPECT_FALSE(parse_ok(kFile).compile(user("nobody"))->can_publish("x"));
  EXPECT_TRUE(parse_ok(kFile, AclOptions{.allow_unmatched = true})
                  .compile(user("nobody"))
                  ->can_publish("x"));
  EXPECT_FALSE(parse_ok("").compile(user("u"))->can_publish("x"));
  auto open = AclPolicy::allow_all().compile(user("u"));
  EXPECT_TRUE(open->can_publish("x"));
  EXPECT_TRUE(open->can_subscribe("#"));
}

TEST(Acl, SubscribeNeedsARuleCoveringTheWholeFilter) {
  AclPolicy policy = parse_ok("user u\ntopic read a/b\ntopic read s/+/t\ntopic read x/#\n");
  auto u = policy.compile(user("u"));
  EXPECT_TRUE(u->can_subscribe("a/b"));
  EXPECT_FALSE(u->can_subscribe("a/#"));
  EXPECT_FALSE(u->can_subscribe("a/+"));
  EXPECT_TRUE(u->can_subscribe("s/1/t"));
  EXPECT_TRUE(u->can_subscribe("s/+/t"));
  EXPECT_FALSE(u->can_subscribe("s/#"));
  EXPECT_TRUE(u->can_subscribe("x/#"));
  EXPECT_TRUE(u->can_subscribe("x"));  // x/# covers its parent
  EXPECT_TRUE(u->can_subscribe("x/+/y/#"));
  EXPECT_FALSE(u->can_subscribe("+/b"));
}

TEST(Acl, SubscribeCheckUsesReadNotWriteAccess) {
  AclPolicy policy = parse_ok("user u\ntopic write a/#\n");
  EXPECT_FALSE(policy.compile(user("u"))->can_subscribe("a/b"));
}

TEST(Acl, SubscribeCoveredByDenyIsDeniedOverlappingIsAllowed) {
  AclPolicy policy = parse_ok("user u\ntopic read a/#\ntopic deny a/secret/#\n");
  auto u = policy.compile(user("u"));
  EXPECT_FALSE(u->can_subscribe("a/secret/x"));
  EXPECT_FALSE(u->can_subscribe("a/secret/#"));
  EXPECT_TRUE(u->can_subscribe("a/+/x"));  // overlaps: deliveries are filtered instead
  EXPECT_FALSE(u->can_receive("a/secret/x"));
  EXPECT_TRUE(u->can_receive("a/public/x"));
}

TEST(Acl, RootWildcardRuleDoesNotGrantDollarTopics) {
  AclPolicy policy = parse_ok("user u\ntopic read #\ntopic read $SYS/broker/#\n");
  auto u = policy.compile(user("u"));
  EXPECT_FALSE(u->can_receive("$SYS/clients"));
  EXPECT_FALSE(u->can_subscribe("$SYS/#"));
  EXPECT_TRUE(u->can_subscribe("$SYS/broker/load"));
  EXPECT_TRUE(u->can_subscribe("#"));
}

TEST(Acl, ParseErrorsNameTheLine) {
  auto bad_keyword = AclPolicy::parse("user a\ntopic read x\nallow x\n");
  ASSERT_FALSE(bad_keyword.ok());
  EXPECT_EQ(bad_keyword.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad_keyword.status().message().find("line 3"), std::string::npos)
      << bad_keyword.status().message();

  auto bad_filter = AclPolicy::parse("\n\ntopic read a/#/b\n");
  ASSERT_FALSE(bad_filter.ok());
  EXPECT_NE(bad_filter.status().message().find("line 3"), std::string::npos);

  auto no_user = AclPolicy::parse("user\n");
  ASSERT_FALSE(no_user.ok());
  EXPECT_NE(no_user.status().message().find("line 1"), std::string::npos);
}

TEST(Acl, CompileIsCachedPerIdentity) {
  AclPolicy policy = parse_ok(kFile);
  auto a1 = policy.compile(user("alice", "x"));
  auto a2 = policy.compile(user("alice", "x"));
  auto a3 = policy.compile(user("alice", "y"));
  EXPECT_EQ(a1.get(), a2.get());
  EXPECT_NE(a1.get(), a3.get());
  EXPECT_NE(policy.compile(anonymous("x")).get(), policy.compile(user("", "x")).get());
}

TEST(Acl, LoadsThroughEnvAndReportsMissingFile) {
  MemEnv env;
  ASSERT_TRUE(env.create_dirs("/etc/ganglion").ok());
  ASSERT_TRUE(env.write_file_atomic("/etc/ganglion/acl", "user u\ntopic read a\n").ok());
  auto policy = AclPolicy::load(env, "/etc/ganglion/acl");
  ASSERT_TRUE(policy.ok()) << policy.status().to_string();
  EXPECT_TRUE(policy->compile(user("u"))->can_receive("a"));
  EXPECT_EQ(policy->rule_count(), 1u);
  auto missing = AclPolicy::load(env, "/etc/ganglion/nope");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace ganglion::broker
