#include "mqtt/topic.h"

#include <gtest/gtest.h>

#include "mqtt/packet.h"

namespace ganglion::mqtt {
namespace {

TEST(TopicTest, ExactFilterMatchesOnlyItsTopic) {
  EXPECT_TRUE(matches("sport/tennis", "sport/tennis"));
  EXPECT_FALSE(matches("sport/tennis", "sport/tennis/player1"));
  EXPECT_FALSE(matches("sport/tennis", "sport/tenni"));
  EXPECT_FALSE(matches("sport", "sportx"));
  EXPECT_FALSE(matches("sport/tennis", "sport"));
}

TEST(TopicTest, MultiLevelWildcardMatchesParentAndDescendants) {
  // Spec 4.7.1.2 examples.
  EXPECT_TRUE(matches("sport/tennis/player1/#", "sport/tennis/player1"));
  EXPECT_TRUE(matches("sport/tennis/player1/#", "sport/tennis/player1/ranking"));
  EXPECT_TRUE(matches("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon"));
  EXPECT_TRUE(matches("sport/#", "sport"));
  EXPECT_TRUE(matches("#", "a/b/c"));
  EXPECT_TRUE(matches("#", "/"));
  EXPECT_FALSE(matches("sport/tennis/#", "sport/ten"));
}

TEST(TopicTest, SingleLevelWildcardMatchesExactlyOneLevel) {
  // Spec 4.7.1.3 examples.
  EXPECT_TRUE(matches("sport/tennis/+", "sport/tennis/player1"));
  EXPECT_TRUE(matches("sport/tennis/+", "sport/tennis/player2"));
  EXPECT_FALSE(matches("sport/tennis/+", "sport/tennis/player1/ranking"));
  EXPECT_FALSE(matches("sport/+", "sport"));
  EXPECT_TRUE(matches("sport/+", "sport/"));
  EXPECT_TRUE(matches("+/+", "/finance"));
  EXPECT_TRUE(matches("/+", "/finance"));
  EXPECT_FALSE(matches("+", "/finance"));
  EXPECT_TRUE(matches("+", "finance"));
  EXPECT_TRUE(matches("+/tennis/#", "sport/tennis/player1"));
  EXPECT_TRUE(matches("a/+/c", "a//c"));
}

TEST(TopicTest, LeadingWildcardDoesNotMatchDollarTopics) {
  EXPECT_FALSE(matches("#", "$SYS/broker/clients"));
  EXPECT_FALSE(matches("+/monitor/Clients", "$SYS/monitor/Clients"));
  EXPECT_TRUE(matches("$SYS/#", "$SYS/monitor/Clients"));
  EXPECT_TRUE(matches("$SYS/monitor/+", "$SYS/monitor/Clients"));
}

TEST(TopicTest, EmptyLevelsAreDistinct) {
  EXPECT_TRUE(matches("a//b", "a//b"));
  EXPECT_FALSE(matches("a/b", "a//b"));
  EXPECT_TRUE(matches("/", "/"));
}

TEST(TopicTest, ValidatesTopicNames) {
  EXPECT_TRUE(validate_topic_name("a/b/c").ok());
  EXPECT_TRUE(validate_topic_name("/").ok());
  EXPECT_TRUE(validate_topic_name("$SYS/x").ok());
  EXPECT_EQ(reason_of(validate_topic_name("")), ReasonCode::kTopicNameInvalid);
  EXPECT_EQ(reason_of(validate_topic_name("a/+/c")), ReasonCode::kTopicNameInvalid);
  EXPECT_EQ(reason_of(validate_topic_name("a/#")), ReasonCode::kTopicNameInvalid);
  EXPECT_FALSE(validate_topic_name(std::string_view("a\0b", 3)).ok());
  EXPECT_FALSE(validate_topic_name(std::string(65536, 'a')).ok());
}

TEST(TopicTest, ValidatesTopicFilters) {
  for (const char* ok : {"#", "+", "a/#", "+/+", "a/+/b", "/", "//", "+/#", "$SYS/#", "a//#"}) {
    EXPECT_TRUE(validate_topic_filter(ok).ok()) << ok;
  }
  for (const char* bad : {"", "a#", "a/#/b", "#/a", "a+", "a/b+", "+a", "a/+b/c", "##"}) {
    const Status s = validate_topic_filter(bad);
    EXPECT_EQ(reason_of(s), ReasonCode::kTopicFilterInvalid) << bad;
  }
}

TEST(TopicTest, ParsesSharedSubscriptions) {
  auto r = parse_shared_subscription("$share/group1/sensors/+/temp");
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->group, "group1");
  EXPECT_EQ((*r)->filter, "sensors/+/temp");

  auto plain = parse_shared_subscription("sensors/#");
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->has_value());
  EXPECT_TRUE(is_shared_subscription("$share/g/#"));
  EXPECT_FALSE(is_shared_subscription("$shared/g/#"));
}

TEST(TopicTest, RejectsMalformedSharedSubscriptions) {
  for (const char* bad : {"$share/", "$share/group", "$share//a", "$share/g+/a", "$share/g#/a",
                          "$share/group/", "$share/group/a#"}) {
    EXPECT_EQ(reason_of(validate_topic_filter(bad)), ReasonCode::kTopicFilterInvalid) << bad;
  }
  EXPECT_TRUE(validate_topic_filter("$share/g/#").ok());
}

TEST(TopicTest, HasWildcards) {
  EXPECT_TRUE(has_wildcards("a/+"));
  EXPECT_TRUE(has_wildcards("#"));
  EXPECT_FALSE(has_wildcards("a/b"));
}

}  // namespace
}  // namespace ganglion::mqtt

namespace ganglion::mqtt {
namespace {

TEST(TopicTest, FindsWildcardsAtEveryPositionOfLongNames) {
  for (std::size_t len = 1; len < 40; ++len) {
    for (std::size_t at = 0; at < len; ++at) {
      for (const char bad : {'+', '#', '\0'}) {
        std::string t(len, 'a');
        t[at] = bad;
        EXPECT_FALSE(validate_topic_name(t).ok()) << len << " " << at;
      }
    }
    EXPECT_TRUE(validate_topic_name(std::string(len, 'a')).ok());
  }
}

TEST(TopicTest, PropertiesEmptyMeansNothingSet) {
  Properties p;
  EXPECT_TRUE(p.empty());
  p.shared_subscription_available = 0;
  EXPECT_FALSE(p.empty());
}

}  // namespace
}  // namespace ganglion::mqtt
