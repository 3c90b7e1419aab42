// Dates as eKuiper writes and reads them: DATETIME values are int64 milliseconds since the
// epoch, UTC; text forms use Java-style patterns (the ones eKuiper documents for
// format_time and a stream's TIMESTAMP_FORMAT):
//
//   yyyy yy   year (yy: 2000-2099)         HH H  hour 0-23      a    AM / PM
//   MM M      month                        hh h  hour 1-12      Z    +0800, -05:00 or Z
//   dd d      day of the month             mm m  minute         'x'  literal text
//   SSS       fraction of a second         ss s  second         other characters: themselves
//
// Parsing takes one or two digits for M d H h m s whatever the run length, any number of
// fraction digits for a run of S (kept to the millisecond), and UTC when the pattern has no Z.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"
#include "event/value.h"

namespace ganglion::stream {

// `ms` in UTC as `pattern` says (Z writes +0000).
std::string format_time(std::int64_t ms, std::string_view pattern);

// The instant `text` names in `pattern`; nullopt when it does not match the pattern whole or
// names no valid date (month 13, February 30, hour 24, a zone beyond +-23:59).
std::optional<std::int64_t> parse_time(std::string_view text, std::string_view pattern);

// The forms a datetime string takes without a declared pattern, tried in order: RFC 3339
// (2024-05-01T12:30:00Z, with a fraction, with an offset), the same with a space for the T
// or without a zone (UTC), and a bare date.
std::optional<std::int64_t> parse_time_any(std::string_view text);

// cast(x, "datetime"): a string is read with parse_time_any() (an error names it when no
// form matches), anything else as to_bigint() reads it (milliseconds).
Result<Value> to_datetime(const Value& v);

}  // namespace ganglion::stream
