// JSON string literals: the one escaper every part uses (event's JSON writer, the HTTP
// server's error bodies, JSON log lines, status files). Quotes, backslashes and control
// characters are escaped (\n, \t, ... or \u00XX); other bytes, UTF-8 included, pass through.
#pragma once

#include <string>
#include <string_view>

namespace ganglion {

// Appends `s` as a quoted, escaped JSON string.
void append_json_string(std::string_view s, std::string& out);

// True when no array or object in `json` is nested deeper than `max_depth` ("[[1]]" has
// depth 2). Brackets inside strings do not count; the text is not otherwise validated.
// Untrusted JSON must pass this before a recursive parser or writer (nlohmann's copy and
// dump() recurse once per level: ~100,000 levels, a 200 KB body, overflow a thread's stack).
bool json_nesting_within(std::string_view json, std::size_t max_depth);

}  // namespace ganglion
