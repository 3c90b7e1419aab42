// Topic names and topic filters split into levels, and the MQTT matching rules on them.
//
// Shared by SubscriptionTree, RetainedStore and Acl. Inputs are already validated by the MQTT
// codec (src/mqtt); these helpers never allocate for topics of up to kInline levels and never
// crash on malformed input.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>
#include <vector>

namespace ganglion::broker {

// The levels of a topic name or filter, as string_views into the caller's string (which must
// outlive this object). "a//b" has three levels, the middle one empty; "" has one empty level.
// Reusable: assign() keeps any heap capacity for the next topic.
class TopicLevels {
 public:
  static constexpr std::size_t kInline = 16;

  TopicLevels() = default;
  explicit TopicLevels(std::string_view s) { assign(s); }

  void assign(std::string_view s) {
    size_ = 0;
    heap_.clear();
    std::size_t start = 0;
    for (;;) {
      const std::size_t slash = s.find('/', start);
      if (slash == std::string_view::npos) {
        push(s.substr(start));
        break;
      }
      push(s.substr(start, slash - start));
      start = slash + 1;
    }
  }

  std::size_t size() const { return size_; }
  std::string_view operator[](std::size_t i) const {
    return size_ <= kInline ? inline_[i] : heap_[i];
  }
  // True when the first level starts with '$' ($SYS/..., $share is stripped by the codec).
  bool starts_with_dollar() const {
    return size_ > 0 && !(*this)[0].empty() && (*this)[0][0] == '$';
  }

 private:
  void push(std::string_view level) {
    if (size_ < kInline) {
      inline_[size_] = level;
    } else {
      if (size_ == kInline) heap_.assign(inline_.begin(), inline_.end());
      heap_.push_back(level);
    }
    ++size_;
  }

  std::array<std::string_view, kInline> inline_{};
  std::vector<std::string_view> heap_;
  std::size_t size_ = 0;
};

// Structural check of a topic filter: non-empty, '#' only as the whole last level, '+' only as
// a whole level. A defensive second line behind the codec, so the trie never stores nonsense.
inline bool is_valid_topic_filter(std::string_view filter) {
  if (filter.empty()) return false;
  std::size_t start = 0;
  for (;;) {
    const std::size_t slash = filter.find('/', start);
    const std::string_view level = filter.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (level.find_first_of("+#") != std::string_view::npos) {
      if (level.size() != 1) return false;
      if (level[0] == '#' && slash != std::string_view::npos) return false;
    }
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

// A topic name (what is published) carries no wildcards and is not empty.
inline bool is_valid_topic_name(std::string_view topic) {
  return !topic.empty() && topic.find_first_of("+#") == std::string_view::npos;
}

// True when the first level of a split topic (or filter) starts with '$'.
template <class Levels>
bool first_level_is_dollar(const Levels& levels) {
  return levels.size() > 0 && !std::string_view(levels[0]).empty() &&
         std::string_view(levels[0])[0] == '$';
}

// MQTT matching of one filter against one topic name, both already split (TopicLevels, or any
// indexable container of strings).
// '+' matches exactly one level, '#' matches the parent level and any number of levels below,
// and a topic whose first level starts with '$' is not matched by a filter starting with a
// wildcard.
template <class Filter, class Topic>
bool filter_matches(const Filter& filter, const Topic& topic) {
  if (filter.size() > 0 && first_level_is_dollar(topic) && (filter[0] == "+" || filter[0] == "#")) {
    return false;
  }
  std::size_t i = 0;
  for (; i < filter.size(); ++i) {
    if (filter[i] == "#") return true;
    if (i >= topic.size()) return false;
    if (filter[i] != "+" && std::string_view(filter[i]) != std::string_view(topic[i])) return false;
  }
  return i == topic.size();
}

// True when every topic matched by `inner` is also matched by `outer` (both filters).
// Used for subscribe authorisation: subscribing to a/# needs a rule covering a/#, not a/b.
template <class Outer, class Inner>
bool filter_covers(const Outer& outer, const Inner& inner) {
  const bool inner_dollar = first_level_is_dollar(inner);
  std::size_t i = 0;
  for (; i < outer.size(); ++i) {
    const std::string_view o = outer[i];
    if (i == 0 && inner_dollar && (o == "+" || o == "#")) return false;
    if (o == "#") return true;
    if (i >= inner.size()) return false;
    const std::string_view n = inner[i];
    if (n == "#") return false;  // inner reaches any depth; outer still has a finite level
    if (o == "+") continue;      // covers any single level, including '+'
    if (n == "+" || n != o) return false;
  }
  return i == inner.size();
}

}  // namespace ganglion::broker
