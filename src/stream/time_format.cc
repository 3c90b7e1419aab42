#include "stream/time_format.h"

#include <algorithm>
#include <array>
#include <cstdio>

namespace ganglion::stream {
namespace {

constexpr std::int64_t kMsPerDay = 86'400'000;

// Days since 1970-01-01 of a proleptic Gregorian date, and back (H. Hinnant's algorithms):
// no time_t, no time zone database, the same answer for every year.
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct Civil {
  std::int64_t year;
  unsigned month, day;
};

Civil civil_from_days(std::int64_t z) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2), m, d};
}

unsigned days_in_month(std::int64_t y, unsigned m) {
  static constexpr std::array<unsigned, 12> kDays = {31, 28, 31, 30, 31, 30,
                                                     31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kDays[m - 1];
}

// The length of the run of `f[i]` starting at i.
std::size_t run_at(std::string_view f, std::size_t i) {
  std::size_t n = 1;
  while (i + n < f.size() && f[i + n] == f[i]) ++n;
  return n;
}

}  // namespace

std::string format_time(std::int64_t ms, std::string_view f) {
  std::int64_t days = ms / kMsPerDay, rem = ms % kMsPerDay;
  if (rem < 0) {
    rem += kMsPerDay;
    --days;
  }
  const Civil c = civil_from_days(days);
  const int hour = static_cast<int>(rem / 3'600'000), minute = static_cast<int>(rem / 60'000 % 60),
            second = static_cast<int>(rem / 1000 % 60), millis = static_cast<int>(rem % 1000);
  std::string out;
  auto num = [&](long long v, std::size_t width) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%0*lld", static_cast<int>(width), v);
    out += buf;
  };
  for (std::size_t i = 0; i < f.size();) {
    const char ch = f[i];
    const std::size_t n = run_at(f, i);
    if (ch == '\'') {
      std::size_t end = f.find('\'', i + 1);
      if (end == f.npos) end = f.size();
      out.append(f.substr(i + 1, end - i - 1));
      i = end + 1;
      continue;
    }
    const std::size_t w = std::min<std::size_t>(n, 2);
    switch (ch) {
      case 'y':
        if (n == 2)
          num(((c.year % 100) + 100) % 100, 2);
        else
          num(c.year, n);
        break;
      case 'M':
        num(c.month, w);
        break;
      case 'd':
        num(c.day, w);
        break;
      case 'H':
        num(hour, w);
        break;
      case 'h':
        num(hour % 12 == 0 ? 12 : hour % 12, w);
        break;
      case 'm':
        num(minute, w);
        break;
      case 's':
        num(second, w);
        break;
      case 'S': {
        char buf[8];
        std::snprintf(buf, sizeof buf, "%03d", millis);
        out.append(buf, std::min<std::size_t>(n, 3));
        break;
      }
      case 'a':
        out += hour < 12 ? "AM" : "PM";
        break;
      case 'Z':
        out += "+0000";
        break;
      default:
        out.append(n, ch);
    }
    i += n;
  }
  return out;
}

std::optional<std::int64_t> parse_time(std::string_view text, std::string_view f) {
  std::int64_t year = 1970;
  unsigned month = 1, day = 1;
  int hour = 0, minute = 0, second = 0, millis = 0, offset_min = 0;
  int pm = -1;  // -1: no AM/PM in the pattern
  bool hour12 = false;
  std::size_t p = 0;  // position in text
  // Reads between `min` and `max` digits.
  auto digits = [&](std::size_t min, std::size_t max, std::int64_t& v) {
    std::size_t k = 0;
    v = 0;
    while (k < max && p < text.size() && text[p] >= '0' && text[p] <= '9') {
      v = v * 10 + (text[p] - '0');
      ++p;
      ++k;
    }
    return k >= min;
  };
  for (std::size_t i = 0; i < f.size();) {
    const char ch = f[i];
    const std::size_t n = run_at(f, i);
    std::int64_t v = 0;
    switch (ch) {
      case '\'': {
        std::size_t end = f.find('\'', i + 1);
        if (end == f.npos) end = f.size();
        const std::string_view lit = f.substr(i + 1, end - i - 1);
        if (text.substr(p, lit.size()) != lit) return std::nullopt;
        p += lit.size();
        i = end + 1;
        continue;
      }
      case 'y':
        if (n == 2) {
          if (!digits(2, 2, v)) return std::nullopt;
          year = 2000 + v;
        } else {
          // At most 6 digits, whatever the run: a long run must not overflow `v`.
          if (!digits(std::min<std::size_t>(n, 4), std::clamp<std::size_t>(n, 4, 6), v))
            return std::nullopt;
          year = v;
        }
        break;
      case 'M':
        if (!digits(1, 2, v) || v < 1 || v > 12) return std::nullopt;
        month = static_cast<unsigned>(v);
        break;
      case 'd':
        if (!digits(1, 2, v) || v < 1 || v > 31) return std::nullopt;
        day = static_cast<unsigned>(v);
        break;
      case 'H':
      case 'h':
        if (!digits(1, 2, v) || v > 23) return std::nullopt;
        hour = static_cast<int>(v);
        hour12 = ch == 'h';
        break;
      case 'm':
        if (!digits(1, 2, v) || v > 59) return std::nullopt;
        minute = static_cast<int>(v);
        break;
      case 's':
        if (!digits(1, 2, v) || v > 60) return std::nullopt;  // 60: a leap second reads as :59
        second = static_cast<int>(std::min<std::int64_t>(v, 59));
        break;
      case 'S': {
        const std::size_t start = p;
        if (!digits(1, 18, v)) return std::nullopt;
        std::size_t k = p - start;
        while (k > 3) {
          v /= 10;
          --k;
        }
        while (k < 3) {
          v *= 10;
          ++k;
        }
        millis = static_cast<int>(v);
        break;
      }
      case 'a':
        if (text.substr(p, 2) == "AM" || text.substr(p, 2) == "am") {
          pm = 0;
        } else if (text.substr(p, 2) == "PM" || text.substr(p, 2) == "pm") {
          pm = 1;
        } else {
          return std::nullopt;
        }
        p += 2;
        break;
      case 'Z': {
        if (p < text.size() && (text[p] == 'Z' || text[p] == 'z')) {
          ++p;
          break;
        }
        if (p >= text.size() || (text[p] != '+' && text[p] != '-')) return std::nullopt;
        const int sign = text[p] == '-' ? -1 : 1;
        ++p;
        std::int64_t hh = 0, mm = 0;
        if (!digits(2, 2, hh)) return std::nullopt;
        if (p < text.size() && text[p] == ':') ++p;
        if (!digits(2, 2, mm) || hh > 23 || mm > 59) return std::nullopt;
        offset_min = sign * static_cast<int>(hh * 60 + mm);
        break;
      }
      default:
        for (std::size_t k = 0; k < n; ++k) {
          if (p >= text.size() || text[p] != ch) return std::nullopt;
          ++p;
        }
    }
    i += n;
  }
  if (p != text.size()) return std::nullopt;
  if (hour12 || pm >= 0) {
    if (hour12 && (hour < 1 || hour > 12)) return std::nullopt;
    if (pm >= 0) hour = hour % 12 + (pm == 1 ? 12 : 0);
  }
  if (day > days_in_month(year, month)) return std::nullopt;
  return days_from_civil(year, month, day) * kMsPerDay + hour * 3'600'000LL + minute * 60'000LL +
         second * 1000LL + millis - offset_min * 60'000LL;
}

std::optional<std::int64_t> parse_time_any(std::string_view text) {
  static constexpr std::string_view kForms[] = {
      "yyyy-MM-dd'T'HH:mm:ss.SSSZ", "yyyy-MM-dd'T'HH:mm:ssZ",   "yyyy-MM-dd'T'HH:mm:ss.SSS",
      "yyyy-MM-dd'T'HH:mm:ss",      "yyyy-MM-dd HH:mm:ss.SSSZ", "yyyy-MM-dd HH:mm:ssZ",
      "yyyy-MM-dd HH:mm:ss.SSS",    "yyyy-MM-dd HH:mm:ss",      "yyyy-MM-dd",
  };
  for (std::string_view form : kForms) {
    if (auto ms = parse_time(text, form)) return ms;
  }
  return std::nullopt;
}

Result<Value> to_datetime(const Value& v) {
  if (!v.is_string()) return to_bigint(v);
  if (auto ms = parse_time_any(v.as_string())) return Value(*ms);
  std::string shown = v.as_string().substr(0, 40);
  return InvalidArgument("cannot read '" + shown +
                         "' as a datetime (expected RFC 3339, e.g. 2024-05-01T12:30:00Z)");
}

}  // namespace ganglion::stream
