#include "mqtt/topic.h"

#include <cstdint>
#include <cstring>
#include <string>

#include "mqtt/packet.h"

namespace ganglion::mqtt {

namespace {

constexpr std::string_view kSharePrefix = "$share/";
constexpr std::size_t kMaxTopicLength = 65535;

Status bad_name(std::string_view why, std::string_view topic) {
  std::string m(why);
  m += ": \"";
  m += topic.substr(0, 128);
  m += '"';
  return error(ReasonCode::kTopicNameInvalid, m);
}

Status bad_filter(std::string_view why, std::string_view filter) {
  std::string m(why);
  m += ": \"";
  m += filter.substr(0, 128);
  m += '"';
  return error(ReasonCode::kTopicFilterInvalid, m);
}

// The plain filter rules, without the $share handling.
Status check_plain_filter(std::string_view filter, std::string_view whole) {
  if (filter.empty()) return bad_filter("topic filter is empty", whole);
  const std::size_t n = filter.size();
  for (std::size_t i = 0; i < n; ++i) {
    const char c = filter[i];
    if (c == '\0') return bad_filter("topic filter contains U+0000", whole);
    if (c == '+') {
      if ((i > 0 && filter[i - 1] != '/') || (i + 1 < n && filter[i + 1] != '/')) {
        return bad_filter("'+' must occupy a whole topic level", whole);
      }
    } else if (c == '#') {
      if (i + 1 != n) return bad_filter("'#' must be the last character of the filter", whole);
      if (i > 0 && filter[i - 1] != '/') {
        return bad_filter("'#' must occupy a whole topic level", whole);
      }
    }
  }
  return Status::Ok();
}

}  // namespace

Status validate_topic_name(std::string_view topic) {
  if (topic.empty()) return bad_name("topic name is empty", topic);
  if (topic.size() > kMaxTopicLength) return bad_name("topic name longer than 65535 bytes", topic);
  // Hot path (every PUBLISH): scan 8 bytes at a time for '+', '#' or NUL.
  constexpr std::uint64_t kOnes = 0x0101010101010101ull;
  constexpr std::uint64_t kHighs = 0x8080808080808080ull;
  auto has_byte = [](std::uint64_t w, std::uint8_t b) {
    const std::uint64_t x = w ^ (kOnes * b);
    return ((x - kOnes) & ~x & kHighs) != 0;
  };
  std::size_t i = 0;
  for (; i + 8 <= topic.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, topic.data() + i, 8);
    if (has_byte(w, '+') || has_byte(w, '#') || has_byte(w, 0)) break;
  }
  for (; i < topic.size(); ++i) {
    const char c = topic[i];
    if (c == '+' || c == '#') return bad_name("topic name contains a wildcard", topic);
    if (c == '\0') return bad_name("topic name contains U+0000", topic);
  }
  return Status::Ok();
}

bool has_wildcards(std::string_view filter) {
  return filter.find_first_of("+#") != std::string_view::npos;
}

bool is_shared_subscription(std::string_view filter) {
  return filter.substr(0, kSharePrefix.size()) == kSharePrefix;
}

Result<std::optional<SharedSubscription>> parse_shared_subscription(std::string_view filter) {
  if (!is_shared_subscription(filter)) return std::optional<SharedSubscription>();
  const std::string_view rest = filter.substr(kSharePrefix.size());
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos) {
    return bad_filter("shared subscription needs \"$share/<group>/<filter>\"", filter);
  }
  SharedSubscription s{rest.substr(0, slash), rest.substr(slash + 1)};
  if (s.group.empty()) return bad_filter("shared subscription group is empty", filter);
  if (s.group.find_first_of("+#") != std::string_view::npos) {
    return bad_filter("shared subscription group contains a wildcard", filter);
  }
  GANGLION_RETURN_IF_ERROR(check_plain_filter(s.filter, filter));
  return std::optional<SharedSubscription>(s);
}

Status validate_topic_filter(std::string_view filter) {
  if (filter.size() > kMaxTopicLength) {
    return bad_filter("topic filter longer than 65535 bytes", filter);
  }
  if (is_shared_subscription(filter)) return parse_shared_subscription(filter).status();
  return check_plain_filter(filter, filter);
}

bool matches(std::string_view filter, std::string_view topic) {
  // Spec 4.7.2: wildcards at the start never match a '$' topic ($SYS/...).
  if (!topic.empty() && topic.front() == '$' && !filter.empty() &&
      (filter.front() == '+' || filter.front() == '#')) {
    return false;
  }
  std::size_t f = 0;
  std::size_t t = 0;
  const std::size_t fn = filter.size();
  const std::size_t tn = topic.size();
  while (f < fn) {
    const char c = filter[f];
    if (c == '#') return true;  // matches this level and everything below, also the parent
    if (c == '+') {
      // Consume one whole level of the topic (possibly empty).
      while (t < tn && topic[t] != '/') ++t;
      ++f;
    } else {
      // Compare literally up to the end of this filter level.
      while (f < fn && filter[f] != '/') {
        if (t >= tn || topic[t] != filter[f]) return false;
        ++f;
        ++t;
      }
      if (t < tn && topic[t] != '/') return false;
    }
    // Both sides are now at a level separator or the end.
    if (f == fn) return t == tn;
    // filter[f] == '/'
    if (t == tn) {
      // "a/#" matches "a": the filter's remainder must be exactly "/#".
      return fn - f == 2 && filter[f + 1] == '#';
    }
    ++f;
    ++t;
  }
  return t == tn;
}

}  // namespace ganglion::mqtt
