// SubscriptionTree: the broker's routing table, a trie over topic levels.
//
// Each node is one level of a topic filter. Literal levels live in a hash map keyed by the level
// (heterogeneous lookup, so matching never builds a std::string); the wildcard children '+' and
// '#' sit in their own slots so matching never hashes them. A node holds the normal
// subscriptions whose filter ends there (sorted by subscriber) and the shared-subscription
// groups ($share/<group>/<filter>) whose filter ends there.
//
// Matching a topic allocates nothing: the topic is split into string_views kept inline (up to
// TopicLevels::kInline levels), the walk follows the literal path iteratively and recurses only
// into '+' branches.
//
// A per-subscriber index (subscriber -> nodes holding its subscriptions) makes
// remove_subscriber() proportional to that subscriber's subscriptions, not to the tree.
//
// Thread safety: none. One tree belongs to one broker thread (or shard); callers synchronise.
// Inputs: filters and topics come already validated by the MQTT codec; `$share/<group>/` has
// already been stripped and the group name is passed separately. The tree still rejects a
// structurally malformed filter rather than storing it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "broker/topic_levels.h"

namespace ganglion::broker {

// A session handle chosen by the broker. 0 is reserved ("no subscriber"/"no publisher").
using SubscriberId = std::uint64_t;
inline constexpr SubscriberId kNoSubscriber = 0;

struct SubscriptionOptions {
  std::uint8_t max_qos = 0;           // 0..2
  bool no_local = false;              // MQTT 5: never deliver the subscriber's own messages
  bool retain_as_published = false;   // MQTT 5: keep the RETAIN flag on forwarded messages
  std::uint8_t retain_handling = 0;   // MQTT 5: 0 send, 1 send if new, 2 don't send
  std::uint32_t subscription_id = 0;  // MQTT 5 Subscription Identifier; 0 = none (valid ids
                                      // are 1..268435455, so 0 is free to mean "absent")
  friend bool operator==(const SubscriptionOptions&, const SubscriptionOptions&) = default;
};

struct Subscription {
  SubscriberId subscriber = kNoSubscriber;
  SubscriptionOptions options;
};
static_assert(sizeof(Subscription) == 16, "keep subscriptions compact");

// The members of one shared-subscription group on one filter. A message matching the filter
// goes to exactly one member; pick() chooses it round-robin.
class SharedGroup {
 public:
  const std::string& name() const { return name_; }
  // Sorted by subscriber id.
  std::span<const Subscription> members() const { return members_; }

  // Returns the next member, in round-robin order, for which is_online(subscriber) is true;
  // nullptr when no member is online. Advances the group's cursor past the chosen member.
  template <class IsOnline>
  const Subscription* pick(IsOnline&& is_online) {
    const std::size_t n = members_.size();
    for (std::size_t k = 0; k < n; ++k) {
      const std::size_t i = (cursor_ + k) % n;
      if (is_online(members_[i].subscriber)) {
        cursor_ = static_cast<std::uint32_t>((i + 1) % n);
        return &members_[i];
      }
    }
    return nullptr;
  }
  // Every member is online.
  const Subscription* pick() {
    return pick([](SubscriberId) { return true; });
  }

 private:
  friend class SubscriptionTree;
  std::string name_;
  std::vector<Subscription> members_;
  std::uint32_t cursor_ = 0;
};

// One delivery after merging overlapping subscriptions of the same subscriber.
struct MergedDelivery {
  SubscriberId subscriber = kNoSubscriber;
  std::uint8_t qos = 0;              // the highest max_qos of the matching subscriptions
  bool retain_as_published = false;  // true when any matching subscription asked for it
  std::uint32_t ids_offset = 0;      // see MergedMatches::subscription_ids()
  std::uint32_t ids_count = 0;
};

// Output of SubscriptionTree::match_merged(). Reuse one instance per thread: after the first
// few calls its vectors have the capacity they need and matching allocates nothing.
class MergedMatches {
 public:
  // One entry per subscriber, in unspecified order.
  std::span<const MergedDelivery> deliveries() const { return deliveries_; }
  // All Subscription Identifiers of the subscriptions merged into `d`, ascending, no zeros.
  std::span<const std::uint32_t> subscription_ids(const MergedDelivery& d) const {
    return std::span<const std::uint32_t>(ids_).subspan(d.ids_offset, d.ids_count);
  }
  // The matching shared groups; the caller pick()s one member of each. Valid until the tree
  // is next modified.
  std::span<SharedGroup* const> groups() const { return groups_; }

  // The delivery of `subscriber`, or nullptr. Linear; meant for tests and tools.
  const MergedDelivery* find(SubscriberId subscriber) const {
    for (const MergedDelivery& d : deliveries_) {
      if (d.subscriber == subscriber) return &d;
    }
    return nullptr;
  }

  void clear() {
    scratch_.clear();
    deliveries_.clear();
    ids_.clear();
    groups_.clear();
  }

 private:
  friend class SubscriptionTree;
  struct Slot {
    SubscriberId subscriber = kNoSubscriber;  // kNoSubscriber marks a free slot
    std::uint32_t delivery = 0;
  };
  std::vector<Subscription> scratch_;
  std::vector<Slot> slots_;  // open-addressing table subscriber -> index in deliveries_
  std::vector<MergedDelivery> deliveries_;
  std::vector<std::uint32_t> ids_;
  std::vector<SharedGroup*> groups_;
};

class SubscriptionTree {
 public:
  enum class SubscribeOutcome { kNew, kReplaced };

  SubscriptionTree();
  ~SubscriptionTree();
  SubscriptionTree(const SubscriptionTree&) = delete;
  SubscriptionTree& operator=(const SubscriptionTree&) = delete;

  // Adds a subscription of `subscriber` to `filter` (group empty: a normal subscription;
  // otherwise a member of shared group `group` on `filter`). Subscribing again to the same
  // (filter, group) replaces the options (MQTT 3.8.4) and returns kReplaced.
  // Errors: kInvalidArgument for a structurally malformed filter or subscriber 0.
  Result<SubscribeOutcome> subscribe(std::string_view filter, std::string_view group,
                                     SubscriberId subscriber, const SubscriptionOptions& options);

  // Removes one subscription; false when it did not exist. Prunes nodes left empty.
  bool unsubscribe(std::string_view filter, std::string_view group, SubscriberId subscriber);

  // Removes every subscription of `subscriber` (session end); returns how many.
  std::size_t remove_subscriber(SubscriberId subscriber);

  // Calls on_subscription(const Subscription&) for each matching normal subscription and
  // on_group(SharedGroup&) once for each matching shared group. A subscriber with several
  // overlapping filters is reported once per filter (see match_merged()). `topic` is a topic
  // name (no wildcards). The callbacks must not modify the tree.
  template <class OnSubscription, class OnGroup>
  void match(std::string_view topic, OnSubscription&& on_subscription, OnGroup&& on_group);

  // Matches `topic` and merges overlapping subscriptions per subscriber (MQTT 5 3.3.4): one
  // delivery per subscriber with the highest QoS and every Subscription Identifier.
  //   * no-local: subscriptions with no_local set are dropped *before* merging when their
  //     subscriber is `publisher` (pass kNoSubscriber when the publisher is not a session), so
  //     a no-local subscription neither delivers nor raises the QoS of the publisher's copy.
  //   * retain-as-published: OR of the merged subscriptions — if any of them asked to keep the
  //     RETAIN flag, the single copy keeps it (it is the most informative choice and loses no
  //     information the subscriber asked for).
  // Shared groups are not merged (each group gets its own copy, MQTT 4.8.2); they are listed in
  // out.groups(). `out` is cleared first.
  void match_merged(std::string_view topic, SubscriberId publisher, MergedMatches& out);

  std::size_t subscription_count() const { return subscription_count_; }  // normal + shared
  std::size_t subscriber_count() const { return index_.size(); }
  std::size_t node_count() const { return node_count_; }  // including the root
  bool empty() const { return subscription_count_ == 0; }

 private:
  struct LevelHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  struct Node {
    Node* parent = nullptr;
    std::string_view key;  // this node's level: a view of its key in parent->children, or "+"/"#"
    std::unordered_map<std::string, std::unique_ptr<Node>, LevelHash, std::equal_to<>> children;
    std::unique_ptr<Node> plus;
    std::unique_ptr<Node> hash;
    std::vector<Subscription> subscriptions;  // sorted by subscriber
    std::vector<SharedGroup> groups;

    bool empty() const {
      return subscriptions.empty() && groups.empty() && children.empty() && !plus && !hash;
    }
  };

  template <class S, class G>
  static void visit(Node& node, S& on_subscription, G& on_group) {
    for (const Subscription& s : node.subscriptions) on_subscription(s);
    for (SharedGroup& g : node.groups) on_group(g);
  }
  template <class S, class G>
  static void walk(Node& start, const TopicLevels& levels, std::size_t i, bool dollar,
                   S& on_subscription, G& on_group);

  Node* find_node(const TopicLevels& filter) const;
  Node* find_or_create_node(const TopicLevels& filter);
  void prune(Node* node);
  // Removes `subscriber` from `node` (normal and every group); returns how many were removed.
  std::size_t scrub(Node* node, SubscriberId subscriber);
  void index_remove_one(SubscriberId subscriber, Node* node);

  std::unique_ptr<Node> root_;
  std::unordered_map<SubscriberId, std::vector<Node*>> index_;
  std::size_t subscription_count_ = 0;
  std::size_t node_count_ = 1;
};

// ---- implementation of the templates ----

template <class S, class G>
void SubscriptionTree::walk(Node& start, const TopicLevels& levels, std::size_t i, bool dollar,
                            S& on_subscription, G& on_group) {
  Node* node = &start;
  for (; i < levels.size(); ++i) {
    // MQTT 4.7.2: wildcards at the first level do not match topics starting with '$'.
    if (!(i == 0 && dollar)) {
      if (node->hash) visit(*node->hash, on_subscription, on_group);
      if (node->plus) walk(*node->plus, levels, i + 1, dollar, on_subscription, on_group);
    }
    auto it = node->children.find(levels[i]);
    if (it == node->children.end()) return;
    node = it->second.get();
  }
  visit(*node, on_subscription, on_group);
  // "a/#" also matches "a".
  if (node->hash) visit(*node->hash, on_subscription, on_group);
}

template <class OnSubscription, class OnGroup>
void SubscriptionTree::match(std::string_view topic, OnSubscription&& on_subscription,
                             OnGroup&& on_group) {
  const TopicLevels levels(topic);
  walk(*root_, levels, 0, levels.starts_with_dollar(), on_subscription, on_group);
}

}  // namespace ganglion::broker
