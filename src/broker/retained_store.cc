#include "broker/retained_store.h"

#include <functional>
#include <unordered_map>

#include "broker/topic_levels.h"

namespace ganglion::broker {
namespace {

struct LevelHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

bool is_expired(const RetainedMessage& m, std::int64_t now_ms) {
  return m.expiry_ms != 0 && m.expiry_ms <= now_ms;
}

}  // namespace

struct RetainedStore::Node {
  Node* parent = nullptr;
  std::string_view key;  // a view of this node's key in parent->children
  std::unordered_map<std::string, std::unique_ptr<Node>, LevelHash, std::equal_to<>> children;
  std::unique_ptr<RetainedMessage> message;
};

RetainedStore::RetainedStore(RetainedLimits limits)
    : limits_(limits), root_(std::make_unique<Node>()) {}
RetainedStore::~RetainedStore() = default;

RetainedStore::Node* RetainedStore::find(std::string_view topic) const {
  const TopicLevels levels(topic);
  Node* node = root_.get();
  for (std::size_t i = 0; i < levels.size(); ++i) {
    auto it = node->children.find(levels[i]);
    if (it == node->children.end()) return nullptr;
    node = it->second.get();
  }
  return node;
}

void RetainedStore::erase_node_message(Node* node) {
  if (!node->message) return;
  if (node->message->expiry_ms != 0) by_expiry_.erase({node->message->expiry_ms, node});
  bytes_ -= node->message->bytes();
  --count_;
  node->message.reset();
}

void RetainedStore::prune(Node* node) {
  while (node != root_.get() && !node->message && node->children.empty()) {
    Node* parent = node->parent;
    parent->children.erase(parent->children.find(node->key));
    --node_count_;
    node = parent;
  }
}

Status RetainedStore::set(RetainedMessage message, std::int64_t now_ms) {
  if (!is_valid_topic_name(message.topic)) {
    return InvalidArgument("retained message needs a topic name without wildcards, got '" +
                           message.topic + "'");
  }
  if (!message.payload || message.payload->empty() || is_expired(message, now_ms)) {
    erase(message.topic);
    return Status::Ok();
  }

  Node* existing = find(message.topic);
  const RetainedMessage* old = existing ? existing->message.get() : nullptr;
  auto fits = [&] {
    const std::size_t old_bytes = old ? old->bytes() : 0;
    const std::size_t new_count = count_ + (old ? 0 : 1);
    return new_count <= limits_.max_messages &&
           bytes_ - old_bytes + message.bytes() <= limits_.max_bytes;
  };
  if (!fits()) {
    purge_expired(now_ms);  // may have erased `old` and pruned its node
    existing = find(message.topic);
    old = existing ? existing->message.get() : nullptr;
    if (!fits()) {
      return ResourceExhausted("retained store full (" + std::to_string(count_) + " messages, " +
                               std::to_string(bytes_) + " bytes)");
    }
  }

  const TopicLevels levels(message.topic);
  Node* node = root_.get();
  for (std::size_t i = 0; i < levels.size(); ++i) {
    auto it = node->children.find(levels[i]);
    if (it == node->children.end()) {
      it = node->children.emplace(std::string(levels[i]), std::make_unique<Node>()).first;
      it->second->parent = node;
      it->second->key = it->first;  // unordered_map keys never move
      ++node_count_;
    }
    node = it->second.get();
  }
  erase_node_message(node);
  bytes_ += message.bytes();
  ++count_;
  if (message.expiry_ms != 0) by_expiry_.insert({message.expiry_ms, node});
  node->message = std::make_unique<RetainedMessage>(std::move(message));
  return Status::Ok();
}

bool RetainedStore::erase(std::string_view topic) {
  Node* node = find(topic);
  if (node == nullptr || !node->message) return false;
  erase_node_message(node);
  prune(node);
  return true;
}

const RetainedMessage* RetainedStore::get(std::string_view topic, std::int64_t now_ms) {
  Node* node = find(topic);
  if (node == nullptr || !node->message) return nullptr;
  if (is_expired(*node->message, now_ms)) {
    erase_node_message(node);
    prune(node);
    return nullptr;
  }
  return node->message.get();
}

void RetainedStore::match(std::string_view filter, std::int64_t now_ms,
                          FunctionRef<void(const RetainedMessage&)> visitor) {
  const TopicLevels levels(filter);
  expired_scratch_.clear();

  auto emit = [&](Node* node) {
    if (!node->message) return;
    if (is_expired(*node->message, now_ms)) {
      expired_scratch_.push_back(node);
    } else {
      visitor(*node->message);
    }
  };
  auto starts_with_dollar = [](std::string_view level) {
    return !level.empty() && level[0] == '$';
  };
  // Every message at or below `node`'s children; at the root, '$' topics are left out.
  auto emit_subtree = [&](auto& self, Node* node, bool skip_dollar) -> void {
    for (auto& [key, child] : node->children) {
      if (skip_dollar && starts_with_dollar(key)) continue;
      emit(child.get());
      self(self, child.get(), false);
    }
  };
  auto walk = [&](auto& self, Node* node, std::size_t i) -> void {
    if (i == levels.size()) {
      emit(node);
      return;
    }
    const std::string_view level = levels[i];
    if (level == "#") {
      emit(node);  // "a/#" matches "a"
      emit_subtree(emit_subtree, node, i == 0);
    } else if (level == "+") {
      for (auto& [key, child] : node->children) {
        if (i == 0 && starts_with_dollar(key)) continue;
        self(self, child.get(), i + 1);
      }
    } else {
      auto it = node->children.find(level);
      if (it != node->children.end()) self(self, it->second.get(), i + 1);
    }
  };
  walk(walk, root_.get(), 0);

  for (Node* node : expired_scratch_) {
    erase_node_message(node);
    prune(node);
  }
  expired_scratch_.clear();
}

std::size_t RetainedStore::purge_expired(std::int64_t now_ms) {
  std::size_t n = 0;
  while (!by_expiry_.empty() && by_expiry_.begin()->first <= now_ms) {
    Node* node = by_expiry_.begin()->second;
    erase_node_message(node);  // also drops the index entry
    prune(node);
    ++n;
  }
  return n;
}

}  // namespace ganglion::broker
