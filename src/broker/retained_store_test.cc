#include "broker/retained_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace ganglion::broker {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

RetainedMessage msg(std::string topic, std::string payload, std::int64_t expiry_ms = 0) {
  RetainedMessage m;
  m.topic = std::move(topic);
  m.payload = std::make_shared<const std::string>(std::move(payload));
  m.qos = 1;
  m.expiry_ms = expiry_ms;
  return m;
}

std::vector<std::string> topics(RetainedStore& store, std::string_view filter,
                                std::int64_t now_ms = 0) {
  std::vector<std::string> out;
  store.match(filter, now_ms, [&](const RetainedMessage& m) { out.push_back(m.topic); });
  std::sort(out.begin(), out.end());
  return out;
}

TEST(RetainedStore, SetStoresAndReplacesPerTopic) {
  RetainedStore store;
  ASSERT_TRUE(store.set(msg("a/b", "one"), 0).ok());
  ASSERT_TRUE(store.set(msg("a/b", "two!"), 0).ok());
  const RetainedMessage* m = store.get("a/b", 0);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(*m->payload, "two!");
  EXPECT_EQ(m->qos, 1);
  EXPECT_EQ(store.count(), 1u);
  EXPECT_EQ(store.total_bytes(), 3u + 4u);
  EXPECT_EQ(store.get("a", 0), nullptr);
  EXPECT_EQ(store.get("a/b/c", 0), nullptr);
}

TEST(RetainedStore, EmptyPayloadDeletesTheRetainedMessage) {
  RetainedStore store;
  ASSERT_TRUE(store.set(msg("a/b", "x"), 0).ok());
  ASSERT_TRUE(store.set(msg("a/b/c", "y"), 0).ok());
  ASSERT_TRUE(store.set(msg("a/b", ""), 0).ok());
  EXPECT_EQ(store.get("a/b", 0), nullptr);
  EXPECT_NE(store.get("a/b/c", 0), nullptr);
  RetainedMessage null_payload = msg("a/b/c", "");
  null_payload.payload = nullptr;
  ASSERT_TRUE(store.set(null_payload, 0).ok());
  EXPECT_EQ(store.count(), 0u);
  EXPECT_EQ(store.total_bytes(), 0u);
  EXPECT_EQ(store.node_count(), 1u);  // empty branches pruned
}

TEST(RetainedStore, RejectsWildcardOrEmptyTopics) {
  RetainedStore store;
  EXPECT_EQ(store.set(msg("a/+", "x"), 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store.set(msg("#", "x"), 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store.set(msg("", "x"), 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store.count(), 0u);
}

TEST(RetainedStore, EraseRemovesAndPrunes) {
  RetainedStore store;
  ASSERT_TRUE(store.set(msg("a/b/c", "x"), 0).ok());
  EXPECT_FALSE(store.erase("a/b"));
  EXPECT_TRUE(store.erase("a/b/c"));
  EXPECT_FALSE(store.erase("a/b/c"));
  EXPECT_EQ(store.node_count(), 1u);
}

class RetainedMatch : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* t : {"a", "a/b", "a/b/c", "a/c", "a//c", "b", "/x", "$SYS/uptime", "$SYS"}) {
      ASSERT_TRUE(store_.set(msg(t, "p"), 0).ok()) << t;
    }
  }
  RetainedStore store_;
};

TEST_F(RetainedMatch, ExactFilterFindsOneTopic) {
  EXPECT_THAT(topics(store_, "a/b"), ElementsAre("a/b"));
  EXPECT_THAT(topics(store_, "a/x"), IsEmpty());
}

TEST_F(RetainedMatch, PlusMatchesExactlyOneLevel) {
  EXPECT_THAT(topics(store_, "a/+"), ElementsAre("a/b", "a/c"));
  EXPECT_THAT(topics(store_, "a/+/c"), ElementsAre("a//c", "a/b/c"));
  EXPECT_THAT(topics(store_, "+"), ElementsAre("a", "b"));
  EXPECT_THAT(topics(store_, "+/x"), ElementsAre("/x"));
}

TEST_F(RetainedMatch, HashMatchesParentAndAllDescendants) {
  EXPECT_THAT(topics(store_, "a/#"), ElementsAre("a", "a//c", "a/b", "a/b/c", "a/c"));
  EXPECT_THAT(topics(store_, "a/b/#"), ElementsAre("a/b", "a/b/c"));
  EXPECT_THAT(topics(store_, "a/+/#"), ElementsAre("a//c", "a/b", "a/b/c", "a/c"));
}

TEST_F(RetainedMatch, DollarTopicsNotMatchedByRootWildcard) {
  EXPECT_THAT(topics(store_, "#"), ElementsAre("/x", "a", "a//c", "a/b", "a/b/c", "a/c", "b"));
  EXPECT_THAT(topics(store_, "+/uptime"), IsEmpty());
  EXPECT_THAT(topics(store_, "$SYS/#"), ElementsAre("$SYS", "$SYS/uptime"));
  EXPECT_THAT(topics(store_, "$SYS/+"), ElementsAre("$SYS/uptime"));
}

TEST(RetainedStore, ExpiredMessagesAreSkippedAndErased) {
  RetainedStore store;
  ASSERT_TRUE(store.set(msg("s/1", "a", /*expiry_ms=*/1000), 0).ok());
  ASSERT_TRUE(store.set(msg("s/2", "b", /*expiry_ms=*/2000), 0).ok());
  ASSERT_TRUE(store.set(msg("s/3", "c"), 0).ok());  // never expires
  EXPECT_THAT(topics(store, "s/+", 999), ElementsAre("s/1", "s/2", "s/3"));
  EXPECT_THAT(topics(store, "s/+", 1000), ElementsAre("s/2", "s/3"));
  EXPECT_EQ(store.count(), 2u);  // s/1 was erased by the match
  EXPECT_EQ(store.get("s/2", 2500), nullptr);
  EXPECT_EQ(store.count(), 1u);
  EXPECT_NE(store.get("s/3", 1'000'000'000), nullptr);
}

TEST(RetainedStore, PurgeExpiredDropsInExpiryOrder) {
  RetainedStore store;
  ASSERT_TRUE(store.set(msg("x/1", "a", 300), 0).ok());
  ASSERT_TRUE(store.set(msg("x/2", "b", 100), 0).ok());
  ASSERT_TRUE(store.set(msg("x/3", "c", 200), 0).ok());
  ASSERT_TRUE(store.set(msg("x/2", "b2", 500), 0).ok());  // replacing moves its expiry
  EXPECT_EQ(store.purge_expired(250), 1u);                // x/3
  EXPECT_EQ(store.purge_expired(400), 1u);                // x/1
  EXPECT_EQ(store.count(), 1u);
  EXPECT_NE(store.get("x/2", 400), nullptr);
  EXPECT_EQ(store.purge_expired(500), 1u);
  EXPECT_EQ(store.node_count(), 1u);
}

TEST(RetainedStore, AlreadyExpiredMessageDeletesInsteadOfStoring) {
  RetainedStore store;
  ASSERT_TRUE(store.set(msg("t", "old"), 0).ok());
  ASSERT_TRUE(store.set(msg("t", "new", 50), 100).ok());
  EXPECT_EQ(store.get("t", 100), nullptr);
  EXPECT_EQ(store.count(), 0u);
}

TEST(RetainedStore, LimitsRejectNewMessagesButAllowReplacement) {
  RetainedStore store(RetainedLimits{.max_messages = 2, .max_bytes = 100});
  ASSERT_TRUE(store.set(msg("a", "1"), 0).ok());
  ASSERT_TRUE(store.set(msg("b", "2"), 0).ok());
  EXPECT_EQ(store.set(msg("c", "3"), 0).code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(store.set(msg("a", "replaced"), 0).ok());
  EXPECT_EQ(store.set(msg("a", std::string(200, 'x')), 0).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(*store.get("a", 0)->payload, "replaced");  // the old message was kept
  EXPECT_EQ(store.count(), 2u);
}

TEST(RetainedStore, LimitsMakeRoomByDroppingExpiredMessages) {
  RetainedStore store(RetainedLimits{.max_messages = 1});
  ASSERT_TRUE(store.set(msg("a", "1", 10), 0).ok());
  EXPECT_EQ(store.set(msg("b", "2"), 5).code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(store.set(msg("b", "2"), 10).ok());
  EXPECT_EQ(store.get("a", 10), nullptr);
  EXPECT_NE(store.get("b", 10), nullptr);
}

TEST(RetainedStore, PropertiesCountTowardsBytesAndAreShared) {
  RetainedStore store;
  RetainedMessage m = msg("t", "abc");
  m.properties = std::make_shared<const std::string>("\x01\x01");
  auto payload = m.payload;
  ASSERT_TRUE(store.set(m, 0).ok());
  EXPECT_EQ(store.total_bytes(), 1u + 3u + 2u);
  EXPECT_EQ(store.get("t", 0)->payload.get(), payload.get());  // not copied
}

// Straight from the MQTT text, independent of TopicLevels.
bool naive_matches(const std::string& filter, const std::string& topic) {
  auto split = [](const std::string& x) {
    std::vector<std::string> out(1);
    for (char c : x) {
      if (c == '/') {
        out.emplace_back();
      } else {
        out.back() += c;
      }
    }
    return out;
  };
  const auto f = split(filter);
  const auto t = split(topic);
  if (topic[0] == '$' && (f[0] == "+" || f[0] == "#")) return false;
  for (std::size_t i = 0; i < f.size(); ++i) {
    if (f[i] == "#") return true;
    if (i >= t.size() || (f[i] != "+" && f[i] != t[i])) return false;
  }
  return f.size() == t.size();
}

TEST(RetainedStore, RandomizedMatchAgreesWithNaiveMatcher) {
  std::mt19937 rng(99);
  const std::vector<std::string> words = {"a", "b", "", "$S"};
  auto random_path = [&](bool filter) {
    std::string out;
    const int levels = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < levels; ++i) {
      if (i) out += '/';
      const unsigned r = rng() % 8;
      if (filter && r == 0) {
        out += '+';
      } else if (filter && r == 1 && i + 1 == levels) {
        out += '#';
      } else {
        out += words[rng() % words.size()];
      }
    }
    return out.empty() ? std::string("a") : out;
  };
  for (int round = 0; round < 20; ++round) {
    RetainedStore store;
    std::set<std::string> model;
    for (int i = 0; i < 60; ++i) {
      const std::string t = random_path(false);
      if (rng() % 5 == 0) {
        EXPECT_EQ(store.erase(t), model.erase(t) == 1);
      } else {
        ASSERT_TRUE(store.set(msg(t, "p"), 0).ok()) << t;
        model.insert(t);
      }
    }
    ASSERT_EQ(store.count(), model.size());
    for (int q = 0; q < 100; ++q) {
      const std::string f = random_path(true);
      std::vector<std::string> want;
      for (const std::string& t : model) {
        if (naive_matches(f, t)) want.push_back(t);
      }
      ASSERT_EQ(topics(store, f), want) << "filter '" << f << "'";
    }
  }
}

}  // namespace
}  // namespace ganglion::broker
