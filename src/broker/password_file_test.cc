#include "broker/password_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/mem_env.h"

namespace ganglion::broker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Few iterations keep the tests fast; the cost parameter is exercised, not the default.
constexpr std::uint32_t kFast = 1000;

TEST(PasswordHash, HashHasDocumentedShapeAndFreshSalt) {
  auto a = hash_password("secret", kFast);
  auto b = hash_password("secret", kFast);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_THAT(*a, StartsWith("$pbkdf2-sha512$1000$"));
  EXPECT_NE(*a, *b);  // random salt
  EXPECT_TRUE(verify_password(*a, "secret"));
  EXPECT_TRUE(verify_password(*b, "secret"));
}

TEST(PasswordHash, WrongPasswordDoesNotVerify) {
  auto h = hash_password("secret", kFast);
  ASSERT_TRUE(h.ok());
  EXPECT_FALSE(verify_password(*h, "Secret"));
  EXPECT_FALSE(verify_password(*h, ""));
  EXPECT_FALSE(verify_password(*h, "secret "));
}

TEST(PasswordHash, KnownVectorVerifies) {
  // PBKDF2-HMAC-SHA512("password", "salt", 1) from RFC 6070-style published vectors.
  const std::string encoded =
      "$pbkdf2-sha512$1$c2FsdA==$"
      "hn9wzxreAs/zdSWZo6U9xK80x6ZpgVrl1RNVThyM8lLALUcKKFoFAbrZmb/pQ8CPBQI119aLHaVeY/c7YKV/zg==";
  EXPECT_TRUE(verify_password(encoded, "password"));
  EXPECT_FALSE(verify_password(encoded, "passwore"));
}

TEST(PasswordHash, RejectsBadIterations) {
  EXPECT_EQ(hash_password("x", 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(hash_password("x", kMaxPbkdf2Iterations + 1).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(PasswordHash, MalformedHashNeverVerifies) {
  for (const char* bad : {"", "plain", "$pbkdf2-sha512$1000$c2FsdA==", "$md5$1$c2FsdA==$c2FsdA==",
                          "$pbkdf2-sha512$0$c2FsdA==$c2FsdA==",
                          "$pbkdf2-sha512$x$c2FsdA==$c2FsdA==", "$pbkdf2-sha512$1$!!!!$c2FsdA=="}) {
    EXPECT_FALSE(verify_password(bad, "")) << bad;
  }
}

TEST(PasswordFile, AddVerifyUpdateRemove) {
  PasswordFile file;
  ASSERT_TRUE(file.add_user("alice", "wonderland", kFast).ok());
  ASSERT_TRUE(file.add_user("bob", "builder", kFast).ok());
  EXPECT_EQ(file.add_user("alice", "again", kFast).code(), StatusCode::kAlreadyExists);
  EXPECT_TRUE(file.verify("alice", "wonderland"));
  EXPECT_FALSE(file.verify("alice", "builder"));
  EXPECT_FALSE(file.verify("carol", "wonderland"));
  ASSERT_TRUE(file.update_password("alice", "looking-glass", kFast).ok());
  EXPECT_FALSE(file.verify("alice", "wonderland"));
  EXPECT_TRUE(file.verify("alice", "looking-glass"));
  EXPECT_EQ(file.update_password("carol", "x", kFast).code(), StatusCode::kNotFound);
  ASSERT_TRUE(file.remove_user("bob").ok());
  EXPECT_EQ(file.remove_user("bob").code(), StatusCode::kNotFound);
  EXPECT_FALSE(file.verify("bob", "builder"));
  EXPECT_THAT(file.usernames(), ElementsAre("alice"));
}

TEST(PasswordFile, RejectsBadUsernames) {
  PasswordFile file;
  EXPECT_EQ(file.add_user("", "x", kFast).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(file.add_user("a:b", "x", kFast).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(file.add_user("a\nb", "x", kFast).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(file.size(), 0u);
}

TEST(PasswordFile, RejectsUsernamesThatWouldReloadAsAComment) {
  // Found by fuzz/broker_auth_fuzz: "#admin" was accepted, saved as "#admin:$pbkdf2...",
  // and the next load skipped that line as a comment: the user silently disappeared.
  PasswordFile file;
  EXPECT_EQ(file.add_user("#admin", "x", kFast).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(file.add_user("ad#min", "x", kFast).ok());
  auto loaded = PasswordFile::parse(file.serialize());
  ASSERT_TRUE(loaded.ok());
  EXPECT_TRUE(loaded->contains("ad#min"));
}

TEST(PasswordFile, SaveAndLoadRoundTripThroughEnv) {
  MemEnv env;
  ASSERT_TRUE(env.create_dirs("/etc/ganglion").ok());
  PasswordFile file;
  ASSERT_TRUE(file.add_user("dev-01", "p1", kFast).ok());
  ASSERT_TRUE(file.add_user("agent", "p2", kFast).ok());
  ASSERT_TRUE(file.save(env, "/etc/ganglion/passwd").ok());
  env.drop_unsynced();  // saved atomically and durably
  auto loaded = PasswordFile::load(env, "/etc/ganglion/passwd");
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  EXPECT_THAT(loaded->usernames(), ElementsAre("agent", "dev-01"));
  EXPECT_TRUE(loaded->verify("dev-01", "p1"));
  EXPECT_TRUE(loaded->verify("agent", "p2"));
  EXPECT_EQ(loaded->serialize(), file.serialize());
}

TEST(PasswordFile, ParsesCommentsBlankLinesAndCrlf) {
  auto h = hash_password("pw", kFast);
  ASSERT_TRUE(h.ok());
  auto file = PasswordFile::parse("# users\n\nu1:" + *h + "\r\n");
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  EXPECT_TRUE(file->verify("u1", "pw"));
}

TEST(PasswordFile, ReadsMosquittoPbkdf2Lines) {
  const std::string line =
      "m:$7$1$c2FsdA==$"
      "hn9wzxreAs/zdSWZo6U9xK80x6ZpgVrl1RNVThyM8lLALUcKKFoFAbrZmb/pQ8CPBQI119aLHaVeY/c7YKV/zg==\n";
  auto file = PasswordFile::parse(line);
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  EXPECT_TRUE(file->verify("m", "password"));
  EXPECT_EQ(file->serialize(), line);  // written back unchanged
}

TEST(PasswordFile, CorruptFileErrorNamesTheLine) {
  auto h = hash_password("pw", kFast);
  ASSERT_TRUE(h.ok());
  const std::string good = "u1:" + *h + "\n";
  struct Case {
    std::string text;
    std::string want;
  };
  const Case cases[] = {
      {good + "\nno-colon-here\n", "line 3"},
      {good + "u2:$pbkdf2-sha512$1000$c2FsdA==\n", "line 2"},
      {good + good, "duplicate user 'u1'"},
      {"u3:$6$salt$hash\n", "unsupported hash scheme"},
      {"u4:$pbkdf2-sha512$1000$c2FsdA==$dG9vc2hvcnQ=\n", "64 bytes"},
      {":" + *h + "\n", "line 1"},
      {good.substr(0, good.size() - 10) + "\n", "line 1"},  // truncated hash
  };
  for (const Case& c : cases) {
    auto file = PasswordFile::parse(c.text);
    ASSERT_FALSE(file.ok()) << c.text;
    EXPECT_EQ(file.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(file.status().message(), HasSubstr(c.want)) << c.text;
  }
}

TEST(PasswordFile, LoadReportsMissingFileWithPath) {
  MemEnv env;
  auto file = PasswordFile::load(env, "/nope/passwd");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(file.status().message(), HasSubstr("/nope/passwd"));
}

}  // namespace
}  // namespace ganglion::broker
