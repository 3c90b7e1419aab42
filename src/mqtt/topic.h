// Topic names, topic filters and matching (MQTT 5.0 spec 4.7, 4.8.2; same rules in 3.1.1).
//
// Pure functions over string_views; nothing here allocates except the error messages.
// UTF-8 well-formedness is checked by the codec when strings come off the wire; these
// functions check only the topic rules.
#pragma once

#include <optional>
#include <string_view>

#include "base/status.h"

namespace ganglion::mqtt {

// A topic name (what PUBLISH carries): 1..65535 bytes, no '+' or '#', no U+0000.
// Errors carry reason code 0x90 Topic Name invalid.
Status validate_topic_name(std::string_view topic);

// A topic filter (what SUBSCRIBE/UNSUBSCRIBE carry): 1..65535 bytes, no U+0000, '#' only as
// the whole last level, '+' only as a whole level. A "$share/<group>/<filter>" filter is
// also checked as a shared subscription (see parse_shared_subscription).
// Errors carry reason code 0x8F Topic Filter invalid.
Status validate_topic_filter(std::string_view filter);

// True when `filter` contains '+' or '#'.
bool has_wildcards(std::string_view filter);

// True when the topic name `topic` matches the topic filter `filter`. Both must be valid
// (a shared filter must first be reduced to its inner filter). Per spec 4.7.2, a filter
// starting with a wildcard does not match topics starting with '$'.
bool matches(std::string_view filter, std::string_view topic);

// "$share/<group>/<filter>" split into its parts; views into the argument.
struct SharedSubscription {
  std::string_view group;   // non-empty, no '/', '+' or '#'
  std::string_view filter;  // a valid, non-empty topic filter
};

// True when `filter` starts with "$share/" (spec 4.8.2).
bool is_shared_subscription(std::string_view filter);

// Splits a shared subscription. Errors (0x8F Topic Filter invalid) when `filter` starts with
// "$share/" but the group or the inner filter is missing or invalid; nullopt when `filter`
// is not a shared subscription at all.
Result<std::optional<SharedSubscription>> parse_shared_subscription(std::string_view filter);

}  // namespace ganglion::mqtt
