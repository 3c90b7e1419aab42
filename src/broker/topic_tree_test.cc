#include "broker/topic_tree.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace ganglion::broker {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

SubscriptionOptions qos(std::uint8_t q, std::uint32_t id = 0) {
  SubscriptionOptions o;
  o.max_qos = q;
  o.subscription_id = id;
  return o;
}

// Subscribers of the normal subscriptions matching `topic`, one entry per matching filter.
std::vector<SubscriberId> matched(SubscriptionTree& tree, std::string_view topic) {
  std::vector<SubscriberId> out;
  tree.match(
      topic, [&](const Subscription& s) { out.push_back(s.subscriber); }, [](SharedGroup&) {});
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> matched_groups(SubscriptionTree& tree, std::string_view topic) {
  std::vector<std::string> out;
  tree.match(
      topic, [](const Subscription&) {}, [&](SharedGroup& g) { out.push_back(g.name()); });
  std::sort(out.begin(), out.end());
  return out;
}

void sub(SubscriptionTree& tree, std::string_view filter, SubscriberId id,
         SubscriptionOptions o = {}) {
  ASSERT_TRUE(tree.subscribe(filter, "", id, o).ok()) << filter;
}

TEST(SubscriptionTree, ExactFilterMatchesOnlyThatTopic) {
  SubscriptionTree tree;
  sub(tree, "a/b", 1);
  EXPECT_THAT(matched(tree, "a/b"), ElementsAre(1));
  EXPECT_THAT(matched(tree, "a"), IsEmpty());
  EXPECT_THAT(matched(tree, "a/b/c"), IsEmpty());
  EXPECT_THAT(matched(tree, "a/B"), IsEmpty());
}

TEST(SubscriptionTree, PlusMatchesExactlyOneLevel) {
  SubscriptionTree tree;
  sub(tree, "a/+/c", 1);
  sub(tree, "+", 2);
  EXPECT_THAT(matched(tree, "a/b/c"), ElementsAre(1));
  EXPECT_THAT(matched(tree, "a//c"), ElementsAre(1));  // an empty level is a level
  EXPECT_THAT(matched(tree, "a/c"), IsEmpty());
  EXPECT_THAT(matched(tree, "a/b/x/c"), IsEmpty());
  EXPECT_THAT(matched(tree, "x"), ElementsAre(2));
  EXPECT_THAT(matched(tree, "x/y"), IsEmpty());
  EXPECT_THAT(matched(tree, "/x"), IsEmpty());  // two levels: "" and "x"
}

TEST(SubscriptionTree, HashMatchesParentAndAnyDepth) {
  SubscriptionTree tree;
  sub(tree, "a/#", 1);
  EXPECT_THAT(matched(tree, "a"), ElementsAre(1));
  EXPECT_THAT(matched(tree, "a/b"), ElementsAre(1));
  EXPECT_THAT(matched(tree, "a/b/c/d"), ElementsAre(1));
  EXPECT_THAT(matched(tree, "a/"), ElementsAre(1));
  EXPECT_THAT(matched(tree, "b"), IsEmpty());
  EXPECT_THAT(matched(tree, "ab"), IsEmpty());
}

TEST(SubscriptionTree, RootHashMatchesEverythingExceptDollarTopics) {
  SubscriptionTree tree;
  sub(tree, "#", 1);
  EXPECT_THAT(matched(tree, "a"), ElementsAre(1));
  EXPECT_THAT(matched(tree, "/"), ElementsAre(1));
  EXPECT_THAT(matched(tree, "a/b/c"), ElementsAre(1));
  EXPECT_THAT(matched(tree, "$SYS/broker/uptime"), IsEmpty());
}

TEST(SubscriptionTree, DollarTopicsNotMatchedByRootWildcard) {
  SubscriptionTree tree;
  sub(tree, "+/broker/uptime", 1);
  sub(tree, "#", 2);
  sub(tree, "$SYS/#", 3);
  sub(tree, "$SYS/+/uptime", 4);
  EXPECT_THAT(matched(tree, "$SYS/broker/uptime"), ElementsAre(3, 4));
  EXPECT_THAT(matched(tree, "$SYS"), ElementsAre(3));
  // Only the first level counts: "a/$x" is an ordinary topic.
  EXPECT_THAT(matched(tree, "a/$x"), ElementsAre(2));
}

TEST(SubscriptionTree, EmptyLevelsAreRealLevels) {
  SubscriptionTree tree;
  sub(tree, "a//b", 1);
  sub(tree, "/+", 2);
  sub(tree, "+/+", 3);
  EXPECT_THAT(matched(tree, "a//b"), ElementsAre(1));
  EXPECT_THAT(matched(tree, "a/b"), ElementsAre(3));
  EXPECT_THAT(matched(tree, "/x"), ElementsAre(2, 3));
  EXPECT_THAT(matched(tree, "/"), ElementsAre(2, 3));
}

TEST(SubscriptionTree, PlusThenHashMatchesTheParentLevel) {
  SubscriptionTree tree;
  sub(tree, "+/#", 1);
  EXPECT_THAT(matched(tree, "a"), ElementsAre(1));
  EXPECT_THAT(matched(tree, "a/b/c"), ElementsAre(1));
}

TEST(SubscriptionTree, ResubscribingReplacesOptions) {
  SubscriptionTree tree;
  auto first = tree.subscribe("a/b", "", 7, qos(0));
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first, SubscriptionTree::SubscribeOutcome::kNew);
  auto second = tree.subscribe("a/b", "", 7, qos(2, 9));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*second, SubscriptionTree::SubscribeOutcome::kReplaced);
  EXPECT_EQ(tree.subscription_count(), 1u);
  std::vector<SubscriptionOptions> seen;
  tree.match(
      "a/b", [&](const Subscription& s) { seen.push_back(s.options); }, [](SharedGroup&) {});
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], qos(2, 9));
}

TEST(SubscriptionTree, RejectsMalformedFilters) {
  SubscriptionTree tree;
  for (const char* bad : {"", "a/#/b", "a/b#", "a+/b", "##"}) {
    auto r = tree.subscribe(bad, "", 1, {});
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
  EXPECT_FALSE(tree.subscribe("a", "", kNoSubscriber, {}).ok());
  EXPECT_TRUE(tree.empty());
  EXPECT_EQ(tree.node_count(), 1u);
}

TEST(SubscriptionTree, UnsubscribeRemovesOnlyThatSubscriptionAndPrunesNodes) {
  SubscriptionTree tree;
  sub(tree, "a/b/c", 1);
  sub(tree, "a/b/c", 2);
  sub(tree, "a/+/#", 1);
  const std::size_t nodes_before = tree.node_count();
  EXPECT_TRUE(tree.unsubscribe("a/b/c", "", 1));
  EXPECT_FALSE(tree.unsubscribe("a/b/c", "", 1));
  EXPECT_FALSE(tree.unsubscribe("a/x", "", 1));
  EXPECT_THAT(matched(tree, "a/b/c"), ElementsAre(1, 2));  // 1 still via a/+/#
  EXPECT_EQ(tree.node_count(), nodes_before);
  EXPECT_TRUE(tree.unsubscribe("a/b/c", "", 2));
  EXPECT_TRUE(tree.unsubscribe("a/+/#", "", 1));
  EXPECT_TRUE(tree.empty());
  EXPECT_EQ(tree.node_count(), 1u);
  EXPECT_EQ(tree.subscriber_count(), 0u);
}

TEST(SubscriptionTree, RemoveSubscriberDropsAllItsSubscriptions) {
  SubscriptionTree tree;
  sub(tree, "a/b", 1);
  sub(tree, "a/#", 1);
  sub(tree, "a/b", 2);
  ASSERT_TRUE(tree.subscribe("a/b", "g", 1, {}).ok());
  ASSERT_TRUE(tree.subscribe("a/b", "h", 1, {}).ok());
  ASSERT_TRUE(tree.subscribe("x/+", "g", 1, {}).ok());
  EXPECT_EQ(tree.subscription_count(), 6u);
  EXPECT_EQ(tree.remove_subscriber(1), 5u);
  EXPECT_EQ(tree.remove_subscriber(1), 0u);
  EXPECT_EQ(tree.subscription_count(), 1u);
  EXPECT_THAT(matched(tree, "a/b"), ElementsAre(2));
  EXPECT_THAT(matched_groups(tree, "a/b"), IsEmpty());
  EXPECT_EQ(tree.remove_subscriber(2), 1u);
  EXPECT_EQ(tree.node_count(), 1u);
}

TEST(SubscriptionTree, SharedGroupIsReportedOnceWithItsMembers) {
  SubscriptionTree tree;
  ASSERT_TRUE(tree.subscribe("sensors/+", "workers", 1, {}).ok());
  ASSERT_TRUE(tree.subscribe("sensors/+", "workers", 2, {}).ok());
  ASSERT_TRUE(tree.subscribe("sensors/+", "audit", 3, {}).ok());
  sub(tree, "sensors/+", 1);  // the same subscriber also has a normal subscription
  std::map<std::string, std::vector<SubscriberId>> groups;
  std::vector<SubscriberId> normal;
  tree.match(
      "sensors/t1", [&](const Subscription& s) { normal.push_back(s.subscriber); },
      [&](SharedGroup& g) {
        for (const Subscription& m : g.members()) groups[g.name()].push_back(m.subscriber);
      });
  EXPECT_THAT(normal, ElementsAre(1));
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_THAT(groups["workers"], ElementsAre(1, 2));
  EXPECT_THAT(groups["audit"], ElementsAre(3));
}

TEST(SubscriptionTree, SharedGroupDeliversToOneMemberRoundRobin) {
  SubscriptionTree tree;
  for (SubscriberId id : {1, 2, 3}) ASSERT_TRUE(tree.subscribe("jobs", "g", id, {}).ok());
  std::vector<SubscriberId> picked;
  for (int i = 0; i < 6; ++i) {
    tree.match(
        "jobs", [](const Subscription&) { FAIL(); },
        [&](SharedGroup& g) { picked.push_back(g.pick()->subscriber); });
  }
  EXPECT_THAT(picked, ElementsAre(1, 2, 3, 1, 2, 3));
}

TEST(SubscriptionTree, SharedGroupPickSkipsOfflineMembers) {
  SubscriptionTree tree;
  for (SubscriberId id : {1, 2, 3}) ASSERT_TRUE(tree.subscribe("jobs", "g", id, {}).ok());
  std::set<SubscriberId> offline = {2};
  auto online = [&](SubscriberId id) { return offline.count(id) == 0; };
  std::vector<SubscriberId> picked;
  auto deliver = [&] {
    tree.match(
        "jobs", [](const Subscription&) {},
        [&](SharedGroup& g) {
          const Subscription* m = g.pick(online);
          picked.push_back(m ? m->subscriber : 0);
        });
  };
  for (int i = 0; i < 4; ++i) deliver();
  EXPECT_THAT(picked, ElementsAre(1, 3, 1, 3));
  offline = {1, 2, 3};
  picked.clear();
  deliver();
  EXPECT_THAT(picked, ElementsAre(0));
}

TEST(SubscriptionTree, SharedGroupSurvivesMemberLeaving) {
  SubscriptionTree tree;
  for (SubscriberId id : {1, 2, 3}) ASSERT_TRUE(tree.subscribe("jobs", "g", id, {}).ok());
  std::vector<SubscriberId> picked;
  auto deliver = [&] {
    tree.match(
        "jobs", [](const Subscription&) {},
        [&](SharedGroup& g) { picked.push_back(g.pick()->subscriber); });
  };
  deliver();
  deliver();
  deliver();  // cursor back at 0
  EXPECT_TRUE(tree.unsubscribe("jobs", "g", 3));
  deliver();
  deliver();
  deliver();
  EXPECT_THAT(picked, ElementsAre(1, 2, 3, 1, 2, 1));
  EXPECT_TRUE(tree.unsubscribe("jobs", "g", 1));
  EXPECT_TRUE(tree.unsubscribe("jobs", "g", 2));
  EXPECT_THAT(matched_groups(tree, "jobs"), IsEmpty());
  EXPECT_EQ(tree.node_count(), 1u);
}

TEST(SubscriptionTree, SameFilterDifferentGroupsAreSeparate) {
  SubscriptionTree tree;
  ASSERT_TRUE(tree.subscribe("t", "a", 1, {}).ok());
  auto r = tree.subscribe("t", "b", 1, {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, SubscriptionTree::SubscribeOutcome::kNew);
  EXPECT_THAT(matched_groups(tree, "t"), ElementsAre("a", "b"));
  EXPECT_FALSE(tree.unsubscribe("t", "c", 1));
  EXPECT_TRUE(tree.unsubscribe("t", "a", 1));
  EXPECT_THAT(matched_groups(tree, "t"), ElementsAre("b"));
}

TEST(SubscriptionTree, MergedMatchTakesMaxQosAndAllSubscriptionIds) {
  SubscriptionTree tree;
  sub(tree, "a/b", 1, qos(0, 10));
  sub(tree, "a/+", 1, qos(2, 11));
  sub(tree, "a/#", 1, qos(1));  // no identifier
  sub(tree, "#", 2, qos(1, 5));
  sub(tree, "x", 3, qos(2));
  MergedMatches out;
  tree.match_merged("a/b", kNoSubscriber, out);
  ASSERT_EQ(out.deliveries().size(), 2u);
  const MergedDelivery* d1 = out.find(1);
  ASSERT_NE(d1, nullptr);
  EXPECT_EQ(d1->qos, 2);
  EXPECT_THAT(out.subscription_ids(*d1), ElementsAre(10, 11));
  const MergedDelivery* d2 = out.find(2);
  ASSERT_NE(d2, nullptr);
  EXPECT_EQ(d2->qos, 1);
  EXPECT_THAT(out.subscription_ids(*d2), ElementsAre(5));
  EXPECT_EQ(out.find(3), nullptr);
}

TEST(SubscriptionTree, MergedMatchDropsNoLocalSubscriptionsOfThePublisher) {
  SubscriptionTree tree;
  SubscriptionOptions no_local = qos(2, 1);
  no_local.no_local = true;
  sub(tree, "a/b", 1, no_local);
  sub(tree, "a/#", 1, qos(0, 2));
  sub(tree, "a/b", 2, no_local);
  MergedMatches out;
  tree.match_merged("a/b", 1, out);
  ASSERT_EQ(out.deliveries().size(), 2u);
  // The publisher still gets its copy via a/# — at that subscription's QoS only.
  const MergedDelivery* self = out.find(1);
  ASSERT_NE(self, nullptr);
  EXPECT_EQ(self->qos, 0);
  EXPECT_THAT(out.subscription_ids(*self), ElementsAre(2));
  const MergedDelivery* other = out.find(2);  // no-local only concerns one's own messages
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(other->qos, 2);
}

TEST(SubscriptionTree, MergedMatchOrsRetainAsPublishedAndListsGroups) {
  SubscriptionTree tree;
  SubscriptionOptions rap;
  rap.retain_as_published = true;
  sub(tree, "a/b", 1, rap);
  sub(tree, "a/+", 1, {});
  ASSERT_TRUE(tree.subscribe("a/b", "g", 2, {}).ok());
  MergedMatches out;
  tree.match_merged("a/b", kNoSubscriber, out);
  ASSERT_EQ(out.deliveries().size(), 1u);
  EXPECT_TRUE(out.deliveries()[0].retain_as_published);
  ASSERT_EQ(out.groups().size(), 1u);
  EXPECT_EQ(out.groups()[0]->name(), "g");
  tree.match_merged("zzz", kNoSubscriber, out);  // reuse clears
  EXPECT_TRUE(out.deliveries().empty());
  EXPECT_TRUE(out.groups().empty());
}

TEST(SubscriptionTree, DeepTopicsBeyondInlineLevelsMatch) {
  SubscriptionTree tree;
  std::string deep;
  for (int i = 0; i < 40; ++i) deep += (i ? "/l" : "l") + std::to_string(i);
  sub(tree, deep, 1);
  sub(tree, "l0/+/l2/#", 2);
  EXPECT_THAT(matched(tree, deep), ElementsAre(1, 2));
}

// ---- randomized comparison against a naive matcher ----

// Written independently of TopicLevels: straight from the MQTT 5 text.
std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == '/') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

bool naive_matches(const std::vector<std::string>& f, const std::vector<std::string>& t) {
  if (!t[0].empty() && t[0][0] == '$' && (f[0] == "+" || f[0] == "#")) return false;
  for (std::size_t i = 0; i < f.size(); ++i) {
    if (f[i] == "#") return true;  // matches parent and any depth
    if (i >= t.size()) return false;
    if (f[i] == "+") continue;
    if (f[i] != t[i]) return false;
  }
  return f.size() == t.size();
}

TEST(SubscriptionTree, RandomizedMatchAgreesWithNaiveMatcher) {
  std::mt19937 rng(20240607);
  const std::vector<std::string> words = {"a", "b", "c", "", "$SYS", "$x", "dev"};
  auto pick = [&](std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
  };
  auto random_topic = [&] {
    std::string t;
    const std::size_t levels = 1 + pick(4);
    for (std::size_t i = 0; i < levels; ++i) {
      if (i) t += '/';
      t += words[pick(words.size())];
    }
    return t;
  };
  auto random_filter = [&] {
    std::string f;
    const std::size_t levels = 1 + pick(4);
    for (std::size_t i = 0; i < levels; ++i) {
      if (i) f += '/';
      const std::size_t r = pick(10);
      if (r < 2) {
        f += '+';
      } else if (r == 2 && i + 1 == levels) {
        f += '#';
      } else {
        f += words[pick(words.size())];
      }
    }
    return f.empty() ? std::string("+") : f;  // "" is not a valid filter
  };

  std::map<std::string, std::vector<std::string>> split_cache;
  for (int round = 0; round < 20; ++round) {
    SubscriptionTree tree;
    // (subscriber, filter) -> present; subscribe and unsubscribe at random.
    std::set<std::pair<SubscriberId, std::string>> model;
    for (int op = 0; op < 300; ++op) {
      const SubscriberId id = 1 + pick(20);
      const std::string filter = random_filter();
      if (pick(4) == 0) {
        EXPECT_EQ(tree.unsubscribe(filter, "", id), model.erase({id, filter}) == 1);
      } else if (pick(40) == 0) {
        std::size_t n = 0;
        for (auto it = model.begin(); it != model.end();) {
          if (it->first == id) {
            it = model.erase(it);
            ++n;
          } else {
            ++it;
          }
        }
        EXPECT_EQ(tree.remove_subscriber(id), n);
      } else {
        ASSERT_TRUE(tree.subscribe(filter, "", id, {}).ok());
        model.insert({id, filter});
      }
    }
    ASSERT_EQ(tree.subscription_count(), model.size());
    for (int q = 0; q < 300; ++q) {
      const std::string topic = random_topic();
      const auto topic_levels = split(topic);
      std::multiset<SubscriberId> expected;
      for (const auto& [id, filter] : model) {
        auto [it, fresh] = split_cache.try_emplace(filter);
        if (fresh) it->second = split(filter);
        if (naive_matches(it->second, topic_levels)) expected.insert(id);
      }
      std::multiset<SubscriberId> actual;
      tree.match(
          topic, [&](const Subscription& s) { actual.insert(s.subscriber); }, [](SharedGroup&) {});
      ASSERT_EQ(actual, expected) << "topic '" << topic << "'";
    }
    // Removing everyone leaves only the root.
    for (SubscriberId id = 1; id <= 20; ++id) tree.remove_subscriber(id);
    EXPECT_EQ(tree.node_count(), 1u);
  }
}

TEST(SubscriptionTree, RandomizedMergedMatchAgreesWithNaiveMerge) {
  std::mt19937 rng(7);
  const std::vector<std::string> filters = {"a/b", "a/+", "a/#", "#", "+/b", "+/+", "a/b/#", "x"};
  const std::vector<std::string> topics = {"a/b", "a", "a/c", "x", "q/b", "a/b/c"};
  for (int round = 0; round < 50; ++round) {
    SubscriptionTree tree;
    // (subscriber, filter) -> options
    std::map<std::pair<SubscriberId, std::string>, SubscriptionOptions> model;
    for (int op = 0; op < 40; ++op) {
      SubscriptionOptions o;
      o.max_qos = static_cast<std::uint8_t>(rng() % 3);
      o.subscription_id = static_cast<std::uint32_t>(rng() % 4);  // 0 = none; repeats happen
      o.no_local = rng() % 4 == 0;
      o.retain_as_published = rng() % 3 == 0;
      const SubscriberId id = 1 + rng() % 6;
      const std::string& f = filters[rng() % filters.size()];
      ASSERT_TRUE(tree.subscribe(f, "", id, o).ok());
      model[{id, f}] = o;
    }
    MergedMatches out;
    for (const std::string& topic : topics) {
      const SubscriberId publisher = 1 + rng() % 6;
      tree.match_merged(topic, publisher, out);
      std::map<SubscriberId, std::pair<int, bool>> want;  // qos, rap
      std::map<SubscriberId, std::set<std::uint32_t>> want_ids;
      for (const auto& [key, o] : model) {
        if (!naive_matches(split(key.second), split(topic))) continue;
        if (o.no_local && key.first == publisher) continue;
        auto [it, fresh] = want.try_emplace(key.first, o.max_qos, o.retain_as_published);
        it->second.first = std::max<int>(it->second.first, o.max_qos);
        it->second.second = it->second.second || o.retain_as_published;
        if (o.subscription_id != 0) want_ids[key.first].insert(o.subscription_id);
      }
      ASSERT_EQ(out.deliveries().size(), want.size()) << topic;
      for (const MergedDelivery& d : out.deliveries()) {
        ASSERT_TRUE(want.count(d.subscriber)) << topic;
        EXPECT_EQ(d.qos, want[d.subscriber].first) << topic;
        EXPECT_EQ(d.retain_as_published, want[d.subscriber].second) << topic;
        auto ids = out.subscription_ids(d);
        EXPECT_EQ(std::set<std::uint32_t>(ids.begin(), ids.end()), want_ids[d.subscriber]);
        EXPECT_EQ(ids.size(), want_ids[d.subscriber].size());
      }
    }
  }
}

}  // namespace
}  // namespace ganglion::broker
