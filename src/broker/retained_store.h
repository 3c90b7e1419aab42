// RetainedStore: the retained message of each topic, found by topic filter on subscribe.
//
// A trie over topic levels (the same shape as SubscriptionTree, walked the other way: here the
// stored keys are topic names and the query is a filter), so delivering retained messages to a
// new "a/+/c" subscription visits only the matching branches, never every topic.
//
// Time is passed in (`now_ms`, the same clock as RetainedMessage::expiry_ms); nothing here
// reads a clock. Expired messages are never returned: a lookup or match that meets one erases
// it, and purge_expired() drops them all in expiry order.
//
// Thread safety: none; one store belongs to one broker thread (or callers synchronise).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "broker/function_ref.h"

namespace ganglion::broker {

struct RetainedMessage {
  std::string topic;
  std::shared_ptr<const std::string> payload;  // shared with in-flight copies, never copied
  std::uint8_t qos = 0;
  std::shared_ptr<const std::string> properties;  // opaque encoded MQTT 5 properties; may be null
  std::int64_t expiry_ms = 0;                     // absolute time on the caller's clock; 0 = never

  // What the message costs against RetainedLimits::max_bytes.
  std::size_t bytes() const {
    return topic.size() + (payload ? payload->size() : 0) + (properties ? properties->size() : 0);
  }
};

struct RetainedLimits {
  std::size_t max_messages = std::numeric_limits<std::size_t>::max();
  std::size_t max_bytes = std::numeric_limits<std::size_t>::max();  // sum of bytes()
};

class RetainedStore {
 public:
  explicit RetainedStore(RetainedLimits limits = {});
  ~RetainedStore();
  RetainedStore(const RetainedStore&) = delete;
  RetainedStore& operator=(const RetainedStore&) = delete;

  // Stores `message` as the retained message of message.topic, replacing any previous one.
  // An empty or null payload deletes the topic's retained message instead (MQTT 3.3.1.3), and
  // so does a message that has already expired at `now_ms`.
  // Errors: kInvalidArgument when the topic is empty or contains a wildcard;
  // kResourceExhausted when storing it would exceed the limits even after dropping expired
  // messages (the previous message of the topic is kept).
  Status set(RetainedMessage message, std::int64_t now_ms);

  // Deletes the retained message of `topic`; false when there was none.
  bool erase(std::string_view topic);

  // The retained message of `topic`, or nullptr (also when it has expired; it is then erased).
  // The pointer is valid until the store is next modified.
  const RetainedMessage* get(std::string_view topic, std::int64_t now_ms);

  // Calls visitor for every unexpired retained message whose topic matches `filter`, with the
  // MQTT rules ('+' one level, '#' parent and below, no root wildcard for '$' topics).
  // Expired messages met on the way are erased after the walk. The visitor must not modify
  // the store. Order is unspecified.
  void match(std::string_view filter, std::int64_t now_ms,
             FunctionRef<void(const RetainedMessage&)> visitor);

  // Erases every message with 0 < expiry_ms <= now_ms; returns how many.
  std::size_t purge_expired(std::int64_t now_ms);

  std::size_t count() const { return count_; }
  std::size_t total_bytes() const { return bytes_; }
  std::size_t node_count() const { return node_count_; }  // including the root
  const RetainedLimits& limits() const { return limits_; }

 private:
  struct Node;

  Node* find(std::string_view topic) const;
  void erase_node_message(Node* node);
  void prune(Node* node);

  RetainedLimits limits_;
  std::unique_ptr<Node> root_;
  std::set<std::pair<std::int64_t, Node*>> by_expiry_;  // messages with an expiry only
  std::vector<Node*> expired_scratch_;
  std::size_t count_ = 0;
  std::size_t bytes_ = 0;
  std::size_t node_count_ = 1;
};

}  // namespace ganglion::broker
