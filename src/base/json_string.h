// JSON string literals: the one escaper every part uses (event's JSON writer, the HTTP
// server's error bodies, JSON log lines, status files). Quotes, backslashes and control
// characters are escaped (\n, \t, ... or \u00XX); other bytes, UTF-8 included, pass through.
#pragma once

#include <string>
#include <string_view>

namespace ganglion {

// Appends `s` as a quoted, escaped JSON string.
void append_json_string(std::string_view s, std::string& out);

}  // namespace ganglion
