#include "stream/functions.h"

#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <ctime>
#include <numbers>
#include <regex>

#include "base/base64.h"
#include "event/json.h"
#include "stream/time_format.h"

namespace ganglion::sql {
namespace {

std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string describe(const Value& v) {
  std::string t = v.to_display_string();
  if (t.size() > 32) t = t.substr(0, 32) + "...";
  return std::string(v.type_name()) + "(" + t + ")";
}

Status bad_arg(std::string_view fn, std::string_view expected, const Value& got) {
  return InvalidArgument(std::string(fn) + ": expects " + std::string(expected) + ", got " +
                         describe(got));
}

#define REQUIRE_NUMBER(fn, v) \
  if (!(v).is_number()) return bad_arg(fn, "a number", v)
#define REQUIRE_INT(fn, v) \
  if (!(v).is_int()) return bad_arg(fn, "an integer", v)
#define REQUIRE_STRING(fn, v) \
  if (!(v).is_string()) return bad_arg(fn, "a string", v)

// ---- math ----
template <double (*F)(double)>
Status unary_math(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_NUMBER("math function", a[0]);
  out = Value(F(a[0].number()));
  return Status::Ok();
}
double cot(double x) { return 1.0 / std::tan(x); }
double degrees(double x) { return x * 180.0 / std::numbers::pi; }
double radians(double x) { return x * std::numbers::pi / 180.0; }
double ln(double x) { return std::log(x); }
double log10d(double x) { return std::log10(x); }
double sqrtd(double x) { return std::sqrt(x); }
double expd(double x) { return std::exp(x); }
double sind(double x) { return std::sin(x); }
double cosd(double x) { return std::cos(x); }
double tand(double x) { return std::tan(x); }
double asind(double x) { return std::asin(x); }
double acosd(double x) { return std::acos(x); }
double atand(double x) { return std::atan(x); }
double sinhd(double x) { return std::sinh(x); }
double coshd(double x) { return std::cosh(x); }
double tanhd(double x) { return std::tanh(x); }

Status fn_abs(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_NUMBER("abs", a[0]);
  if (a[0].is_int()) {
    std::int64_t i = a[0].as_int();
    out = Value(i < 0 ? static_cast<std::int64_t>(0 - static_cast<std::uint64_t>(i)) : i);
  } else {
    out = Value(std::fabs(a[0].as_float()));
  }
  return Status::Ok();
}

template <double (*F)(double)>
Status int_preserving(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_NUMBER("math function", a[0]);
  if (a[0].is_int()) {
    out = a[0];
  } else {
    out = Value(F(a[0].as_float()));
  }
  return Status::Ok();
}
double ceild(double x) { return std::ceil(x); }
double floord(double x) { return std::floor(x); }

Status fn_round(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_NUMBER("round", a[0]);
  if (a.size() == 1) {
    if (a[0].is_int()) {
      out = a[0];
    } else {
      out = Value(std::round(a[0].as_float()));
    }
    return Status::Ok();
  }
  REQUIRE_INT("round", a[1]);
  std::int64_t d = std::clamp<std::int64_t>(a[1].as_int(), -300, 300);
  double p = std::pow(10.0, static_cast<double>(d));
  out = Value(std::round(a[0].number() * p) / p);
  return Status::Ok();
}

Status fn_trunc(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_NUMBER("trunc", a[0]);
  REQUIRE_INT("trunc", a[1]);
  std::int64_t d = std::clamp<std::int64_t>(a[1].as_int(), -300, 300);
  double p = std::pow(10.0, static_cast<double>(d));
  out = Value(std::trunc(a[0].number() * p) / p);
  return Status::Ok();
}

Status fn_sign(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_NUMBER("sign", a[0]);
  double x = a[0].number();
  out = Value(x > 0 ? 1 : x < 0 ? -1 : 0);
  return Status::Ok();
}

Status fn_log(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_NUMBER("log", a[0]);
  if (a.size() == 1) {
    out = Value(std::log10(a[0].number()));
    return Status::Ok();
  }
  REQUIRE_NUMBER("log", a[1]);
  out = Value(std::log(a[1].number()) / std::log(a[0].number()));
  return Status::Ok();
}

Status fn_power(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_NUMBER("power", a[0]);
  REQUIRE_NUMBER("power", a[1]);
  out = Value(std::pow(a[0].number(), a[1].number()));
  return Status::Ok();
}

Status fn_atan2(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_NUMBER("atan2", a[0]);
  REQUIRE_NUMBER("atan2", a[1]);
  out = Value(std::atan2(a[0].number(), a[1].number()));
  return Status::Ok();
}

Status fn_mod(const CallContext&, std::span<const Value> a, Value& out) {
  return arith(ArithOp::kMod, a[0], a[1], out);
}

template <ArithOp Op>
Status fn_bit(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_INT("bit function", a[0]);
  REQUIRE_INT("bit function", a[1]);
  return arith(Op, a[0], a[1], out);
}

Status fn_bitnot(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_INT("bitnot", a[0]);
  out = Value(~a[0].as_int());
  return Status::Ok();
}

Status fn_pi(const CallContext&, std::span<const Value>, Value& out) {
  out = Value(std::numbers::pi);
  return Status::Ok();
}

Status fn_rand(const CallContext&, std::span<const Value>, Value& out) {
  thread_local std::uint64_t state = 0x9E3779B97F4A7C15ull;
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  out = Value(static_cast<double>(state >> 11) / 9007199254740992.0);
  return Status::Ok();
}

// ---- strings ----
// Number of UTF-8 code points (bytes that are not continuation bytes).
std::size_t utf8_length(std::string_view s) {
  return static_cast<std::size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}
// Byte offset of code point `n` (clamped to the end).
std::size_t utf8_offset(std::string_view s, std::size_t n) {
  std::size_t i = 0;
  while (i < s.size() && n > 0) {
    ++i;
    while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) ++i;
    --n;
  }
  return i;
}

Status fn_concat(const CallContext&, std::span<const Value> a, Value& out) {
  std::string s;
  for (const Value& v : a) {
    if (!v.is_null()) s += v.to_display_string();
  }
  out = Value(std::move(s));
  return Status::Ok();
}

Status fn_length(const CallContext&, std::span<const Value> a, Value& out) {
  if (a[0].is_array()) {
    out = Value(static_cast<std::int64_t>(a[0].as_array().size()));
  } else if (a[0].is_object()) {
    out = Value(static_cast<std::int64_t>(a[0].as_object().size()));
  } else {
    REQUIRE_STRING("length", a[0]);
    out = Value(static_cast<std::int64_t>(utf8_length(a[0].as_string())));
  }
  return Status::Ok();
}

Status fn_numbytes(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_STRING("numbytes", a[0]);
  out = Value(static_cast<std::int64_t>(a[0].as_string().size()));
  return Status::Ok();
}

template <int (*F)(int)>
Status map_chars(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_STRING("lower/upper", a[0]);
  std::string s = a[0].as_string();
  for (char& c : s) c = static_cast<char>(F(static_cast<unsigned char>(c)));
  out = Value(std::move(s));
  return Status::Ok();
}
int to_lower(int c) { return std::tolower(c); }
int to_upper(int c) { return std::toupper(c); }

template <bool Left, bool Right>
Status fn_trim(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_STRING("trim", a[0]);
  std::string_view s = a[0].as_string();
  auto sp = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  if (Left)
    while (!s.empty() && sp(s.front())) s.remove_prefix(1);
  if (Right)
    while (!s.empty() && sp(s.back())) s.remove_suffix(1);
  out = Value(std::string(s));
  return Status::Ok();
}

template <bool Left>
Status fn_pad(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_STRING("lpad/rpad", a[0]);
  REQUIRE_INT("lpad/rpad", a[1]);
  std::int64_t n = a[1].as_int();
  if (n < 0 || n > 1'000'000) return bad_arg("lpad/rpad", "a count in [0, 1000000]", a[1]);
  std::string pad(static_cast<std::size_t>(n), ' ');
  out = Value(Left ? pad + a[0].as_string() : a[0].as_string() + pad);
  return Status::Ok();
}

Status fn_startswith(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_STRING("startswith", a[0]);
  REQUIRE_STRING("startswith", a[1]);
  out = Value(a[0].as_string().starts_with(a[1].as_string()));
  return Status::Ok();
}

Status fn_endswith(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_STRING("endswith", a[0]);
  REQUIRE_STRING("endswith", a[1]);
  out = Value(a[0].as_string().ends_with(a[1].as_string()));
  return Status::Ok();
}

Status fn_indexof(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_STRING("indexof", a[0]);
  REQUIRE_STRING("indexof", a[1]);
  std::size_t p = a[0].as_string().find(a[1].as_string());
  out = Value(p == std::string::npos ? std::int64_t{-1}
                                     : static_cast<std::int64_t>(utf8_length(
                                           std::string_view(a[0].as_string()).substr(0, p))));
  return Status::Ok();
}

// substring(s, start[, end]): zero-based code points, end exclusive (eKuiper).
Status fn_substring(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_STRING("substring", a[0]);
  REQUIRE_INT("substring", a[1]);
  std::string_view s = a[0].as_string();
  std::int64_t len = static_cast<std::int64_t>(utf8_length(s));
  std::int64_t start = a[1].as_int(), end = len;
  if (a.size() == 3) {
    REQUIRE_INT("substring", a[2]);
    end = a[2].as_int();
  }
  if (start < 0 || end < 0) return InvalidArgument("substring: start and end must not be negative");
  start = std::min(start, len);
  end = std::clamp(end, start, len);
  std::size_t b = utf8_offset(s, static_cast<std::size_t>(start));
  std::size_t e = utf8_offset(s, static_cast<std::size_t>(end));
  out = Value(std::string(s.substr(b, e - b)));
  return Status::Ok();
}

Status fn_reverse(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_STRING("reverse", a[0]);
  std::string_view s = a[0].as_string();
  std::string r;
  r.reserve(s.size());
  std::size_t end = s.size();
  while (end > 0) {
    std::size_t b = end - 1;
    while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
    r.append(s.substr(b, end - b));
    end = b;
  }
  out = Value(std::move(r));
  return Status::Ok();
}

// split_value(s, sep, index): the index-th piece (zero-based); NULL when out of range.
Status fn_split_value(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_STRING("split_value", a[0]);
  REQUIRE_STRING("split_value", a[1]);
  REQUIRE_INT("split_value", a[2]);
  std::string_view s = a[0].as_string(), sep = a[1].as_string();
  std::int64_t want = a[2].as_int();
  if (sep.empty()) return InvalidArgument("split_value: the separator must not be empty");
  if (want < 0) return InvalidArgument("split_value: the index must not be negative");
  std::int64_t i = 0;
  std::size_t start = 0;
  for (;;) {
    std::size_t p = s.find(sep, start);
    if (i == want) {
      out = Value(std::string(s.substr(start, p == s.npos ? s.npos : p - start)));
      return Status::Ok();
    }
    if (p == s.npos) break;
    start = p + sep.size();
    ++i;
  }
  out = Value();
  return Status::Ok();
}

// format(x, d): x rounded to d decimals with thousands separators: 12332.1234 -> 12,332.12.
Status fn_format(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_NUMBER("format", a[0]);
  REQUIRE_INT("format", a[1]);
  int d = static_cast<int>(std::clamp<std::int64_t>(a[1].as_int(), 0, 30));
  double x = a[0].number();
  if (!std::isfinite(x) || std::fabs(x) > 1e30) {
    out = Value(a[0].to_display_string());
    return Status::Ok();
  }
  char buf[128];
  std::snprintf(buf, sizeof buf, "%.*f", d, x);
  std::string_view s(buf);
  std::string res;
  bool neg = s.starts_with('-');
  if (neg) s.remove_prefix(1);
  std::size_t dot = s.find('.');
  std::string_view ip = s.substr(0, dot);
  for (std::size_t i = 0; i < ip.size(); ++i) {
    if (i > 0 && (ip.size() - i) % 3 == 0) res += ',';
    res += ip[i];
  }
  if (dot != s.npos) res.append(s.substr(dot));
  out = Value(neg ? "-" + res : res);
  return Status::Ok();
}

Status fn_chr(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_INT("chr", a[0]);
  std::int64_t cp = a[0].as_int();
  if (cp < 0 || cp > 0x10FFFF) return bad_arg("chr", "a code point", a[0]);
  std::string s;
  auto u = static_cast<std::uint32_t>(cp);
  if (u < 0x80) {
    s += static_cast<char>(u);
  } else if (u < 0x800) {
    s += static_cast<char>(0xC0 | (u >> 6));
    s += static_cast<char>(0x80 | (u & 0x3F));
  } else if (u < 0x10000) {
    s += static_cast<char>(0xE0 | (u >> 12));
    s += static_cast<char>(0x80 | ((u >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (u & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (u >> 18));
    s += static_cast<char>(0x80 | ((u >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((u >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (u & 0x3F));
  }
  out = Value(std::move(s));
  return Status::Ok();
}

// ---- regular expressions ----
// std::regex (ECMAScript). Patterns are compiled once per thread and reused while the same
// pattern keeps coming (the usual case: a literal pattern). The matcher recurses per input
// character, so subjects are capped to keep the stack safe.
constexpr std::size_t kMaxRegexSubject = 16 * 1024;

Result<const std::regex*> cached_regex(std::string_view fn, const std::string& pattern) {
  thread_local std::string last_pattern;
  thread_local std::regex last;
  thread_local bool valid = false;
  if (!valid || pattern != last_pattern) {
    try {
      last = std::regex(pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      valid = false;
      return InvalidArgument(std::string(fn) + ": invalid regular expression '" + pattern + "'");
    }
    last_pattern = pattern;
    valid = true;
  }
  return &last;
}

Status fn_regexp_matches(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_STRING("regexp_matches", a[0]);
  REQUIRE_STRING("regexp_matches", a[1]);
  if (a[0].as_string().size() > kMaxRegexSubject)
    return InvalidArgument("regexp_matches: input too long");
  GANGLION_ASSIGN_OR_RETURN(const std::regex* re, cached_regex("regexp_matches", a[1].as_string()));
  try {
    out = Value(std::regex_search(a[0].as_string(), *re));
  } catch (const std::regex_error&) {
    return InvalidArgument("regexp_matches: regular expression too complex");
  }
  return Status::Ok();
}

Status fn_regexp_replace(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_STRING("regexp_replace", a[0]);
  REQUIRE_STRING("regexp_replace", a[1]);
  REQUIRE_STRING("regexp_replace", a[2]);
  if (a[0].as_string().size() > kMaxRegexSubject)
    return InvalidArgument("regexp_replace: input too long");
  GANGLION_ASSIGN_OR_RETURN(const std::regex* re, cached_regex("regexp_replace", a[1].as_string()));
  try {
    out = Value(std::regex_replace(a[0].as_string(), *re, a[2].as_string()));
  } catch (const std::regex_error&) {
    return InvalidArgument("regexp_replace: regular expression too complex");
  }
  return Status::Ok();
}

Status fn_regexp_substr(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_STRING("regexp_substr", a[0]);
  REQUIRE_STRING("regexp_substr", a[1]);
  if (a[0].as_string().size() > kMaxRegexSubject)
    return InvalidArgument("regexp_substr: input too long");
  GANGLION_ASSIGN_OR_RETURN(const std::regex* re, cached_regex("regexp_substr", a[1].as_string()));
  std::smatch m;
  try {
    if (std::regex_search(a[0].as_string(), m, *re)) {
      out = Value(m.str(0));
    } else {
      out = Value();
    }
  } catch (const std::regex_error&) {
    return InvalidArgument("regexp_substr: regular expression too complex");
  }
  return Status::Ok();
}

// ---- conversion ----
Status fn_cast(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_STRING("cast", a[1]);
  std::string t = lower_ascii(a[1].as_string());
  Result<Value> r = Value();
  if (t == "bigint") {
    r = to_bigint(a[0]);
  } else if (t == "float") {
    r = to_float(a[0]);
  } else if (t == "string") {
    r = to_string_value(a[0]);
  } else if (t == "boolean") {
    r = to_boolean(a[0]);
  } else if (t == "bytea") {
    r = to_bytea(a[0]);
  } else if (t == "datetime") {
    r = stream::to_datetime(a[0]);
  } else {
    return InvalidArgument("cast: unknown type '" + a[1].as_string() +
                           "' (bigint, float, string, boolean, datetime, bytea)");
  }
  if (!r.ok()) return r.status().with_context("cast");
  out = std::move(r).value();
  return Status::Ok();
}

Status fn_to_json(const CallContext&, std::span<const Value> a, Value& out) {
  out = Value(to_json(a[0]));
  return Status::Ok();
}

Status fn_parse_json(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_STRING("parse_json", a[0]);
  auto r = parse_json(a[0].as_string());
  if (!r.ok()) return r.status().with_context("parse_json");
  out = std::move(r).value();
  return Status::Ok();
}

Status fn_encode(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_STRING("encode", a[1]);
  if (lower_ascii(a[1].as_string()) != "base64")
    return InvalidArgument("encode: only base64 is supported");
  if (a[0].is_bytes()) {
    out = Value(base64_encode(a[0].as_bytes().data));
  } else {
    REQUIRE_STRING("encode", a[0]);
    out = Value(base64_encode(a[0].as_string()));
  }
  return Status::Ok();
}

Status fn_decode(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_STRING("decode", a[0]);
  REQUIRE_STRING("decode", a[1]);
  if (lower_ascii(a[1].as_string()) != "base64")
    return InvalidArgument("decode: only base64 is supported");
  auto d = base64_decode(a[0].as_string());
  if (!d) return bad_arg("decode", "base64 text", a[0]);
  out = Value(std::move(*d));
  return Status::Ok();
}

Status fn_hex2dec(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_STRING("hex2dec", a[0]);
  std::string_view s = a[0].as_string();
  if (s.starts_with("0x") || s.starts_with("0X")) s.remove_prefix(2);
  std::int64_t v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v, 16);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size() || s.empty()) {
    return bad_arg("hex2dec", "a hexadecimal string", a[0]);
  }
  out = Value(v);
  return Status::Ok();
}

Status fn_dec2hex(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_INT("dec2hex", a[0]);
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, static_cast<std::uint64_t>(a[0].as_int()), 16);
  out = Value("0x" + std::string(buf, r.ptr));
  return Status::Ok();
}

// ---- hashing ----
template <const EVP_MD* (*Md)()>
Status fn_hash(const CallContext&, std::span<const Value> a, Value& out) {
  std::string_view in;
  if (a[0].is_string()) {
    in = a[0].as_string();
  } else if (a[0].is_bytes()) {
    in = a[0].as_bytes().data;
  } else {
    return bad_arg("hash", "a string", a[0]);
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(in.data(), in.size(), md, &len, Md(), nullptr) != 1) {
    return Internal("hash: digest failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    hex += kHex[md[i] >> 4];
    hex += kHex[md[i] & 15];
  }
  out = Value(std::move(hex));
  return Status::Ok();
}

// ---- date and time (DATETIME is int64 ms since the epoch, UTC) ----
Status fn_now(const CallContext& ctx, std::span<const Value>, Value& out) {
  out = Value(ctx.clock->wall_ms());
  return Status::Ok();
}

// Java-style patterns as eKuiper documents them (stream/time_format.h).
Status fn_format_time(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_INT("format_time", a[0]);
  REQUIRE_STRING("format_time", a[1]);
  out = Value(stream::format_time(a[0].as_int(), a[1].as_string()));
  return Status::Ok();
}

// ---- NULL handling and collections ----
Status fn_coalesce(const CallContext&, std::span<const Value> a, Value& out) {
  for (const Value& v : a) {
    if (!v.is_null()) {
      out = v;
      return Status::Ok();
    }
  }
  out = Value();
  return Status::Ok();
}

Status fn_isnull(const CallContext&, std::span<const Value> a, Value& out) {
  out = Value(a[0].is_null());
  return Status::Ok();
}

Status fn_nullif(const CallContext&, std::span<const Value> a, Value& out) {
  if (!a[0].is_null() && !a[1].is_null() && a[0] == a[1]) {
    out = Value();
  } else {
    out = a[0];
  }
  return Status::Ok();
}

Status fn_cardinality(const CallContext&, std::span<const Value> a, Value& out) {
  if (a[0].is_array()) {
    out = Value(static_cast<std::int64_t>(a[0].as_array().size()));
    return Status::Ok();
  }
  if (a[0].is_object()) {
    out = Value(static_cast<std::int64_t>(a[0].as_object().size()));
    return Status::Ok();
  }
  return bad_arg("cardinality", "an array", a[0]);
}

// ---- JSON path: $, .name, ['name'], [index], [*] ----
Status json_path(std::string_view fn, const Value& root, std::string_view path,
                 std::vector<Value>& results) {
  if (!path.starts_with('$'))
    return InvalidArgument(std::string(fn) + ": path must start with '$'");
  std::vector<const Value*> cur{&root}, next;
  std::size_t i = 1;
  auto bad = [&] {
    return InvalidArgument(std::string(fn) + ": invalid path '" + std::string(path) + "'");
  };
  while (i < path.size()) {
    next.clear();
    if (path[i] == '.') {
      std::size_t b = ++i;
      while (i < path.size() && path[i] != '.' && path[i] != '[') ++i;
      std::string_view key = path.substr(b, i - b);
      if (key.empty()) return bad();
      for (const Value* v : cur) {
        if (key == "*" && v->is_object()) {
          for (const auto& [k, e] : v->as_object()) next.push_back(&e);
        } else if (const Value* f = v->find(key)) {
          next.push_back(f);
        }
      }
    } else if (path[i] == '[') {
      std::size_t close = path.find(']', i);
      if (close == path.npos) return bad();
      std::string_view in = path.substr(i + 1, close - i - 1);
      i = close + 1;
      if (in.size() >= 2 && (in.front() == '\'' || in.front() == '"') && in.back() == in.front()) {
        std::string_view key = in.substr(1, in.size() - 2);
        for (const Value* v : cur) {
          if (const Value* f = v->find(key)) next.push_back(f);
        }
      } else if (in == "*") {
        for (const Value* v : cur) {
          if (v->is_array())
            for (const Value& e : v->as_array()) next.push_back(&e);
        }
      } else {
        std::int64_t idx = 0;
        auto r = std::from_chars(in.data(), in.data() + in.size(), idx);
        if (r.ec != std::errc() || r.ptr != in.data() + in.size()) return bad();
        for (const Value* v : cur) {
          if (!v->is_array()) continue;
          const auto& arr = v->as_array();
          std::int64_t n = static_cast<std::int64_t>(arr.size());
          std::int64_t k = idx < 0 ? n + idx : idx;
          if (k >= 0 && k < n) next.push_back(&arr[static_cast<std::size_t>(k)]);
        }
      }
    } else {
      return bad();
    }
    cur.swap(next);
  }
  for (const Value* v : cur) results.push_back(*v);
  return Status::Ok();
}

Status fn_json_path_exists(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_STRING("json_path_exists", a[1]);
  std::vector<Value> r;
  GANGLION_RETURN_IF_ERROR(json_path("json_path_exists", a[0], a[1].as_string(), r));
  out = Value(!r.empty());
  return Status::Ok();
}

Status fn_json_path_query(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_STRING("json_path_query", a[1]);
  std::vector<Value> r;
  GANGLION_RETURN_IF_ERROR(json_path("json_path_query", a[0], a[1].as_string(), r));
  // A single match comes back as itself, several as an array (eKuiper's behaviour).
  if (r.empty()) {
    out = Value();
  } else if (r.size() == 1) {
    out = std::move(r[0]);
  } else {
    out = Value(std::move(r));
  }
  return Status::Ok();
}

Status fn_json_path_query_first(const CallContext&, std::span<const Value> a, Value& out) {
  REQUIRE_STRING("json_path_query_first", a[1]);
  std::vector<Value> r;
  GANGLION_RETURN_IF_ERROR(json_path("json_path_query_first", a[0], a[1].as_string(), r));
  out = r.empty() ? Value() : std::move(r[0]);
  return Status::Ok();
}

FunctionRegistry make_builtins() {
  FunctionRegistry r;
  auto add = [&r](std::string name, int min, int max, ScalarFn fn, bool handles_null = false,
                  bool vol = false) {
    FunctionDef d;
    d.name = std::move(name);
    d.kind = FunctionKind::kScalar;
    d.min_args = min;
    d.max_args = max;
    d.scalar = fn;
    d.handles_null = handles_null;
    d.volatile_result = vol;
    (void)r.add(std::move(d));
  };
  // math
  add("abs", 1, 1, fn_abs);
  add("acos", 1, 1, unary_math<acosd>);
  add("asin", 1, 1, unary_math<asind>);
  add("atan", 1, 1, unary_math<atand>);
  add("atan2", 2, 2, fn_atan2);
  add("bitand", 2, 2, fn_bit<ArithOp::kBitAnd>);
  add("bitor", 2, 2, fn_bit<ArithOp::kBitOr>);
  add("bitxor", 2, 2, fn_bit<ArithOp::kBitXor>);
  add("bitnot", 1, 1, fn_bitnot);
  add("ceil", 1, 1, int_preserving<ceild>);
  add("ceiling", 1, 1, int_preserving<ceild>);
  add("cos", 1, 1, unary_math<cosd>);
  add("cosh", 1, 1, unary_math<coshd>);
  add("cot", 1, 1, unary_math<cot>);
  add("degrees", 1, 1, unary_math<degrees>);
  add("exp", 1, 1, unary_math<expd>);
  add("floor", 1, 1, int_preserving<floord>);
  add("ln", 1, 1, unary_math<ln>);
  add("log", 1, 2, fn_log);
  add("log10", 1, 1, unary_math<log10d>);
  add("mod", 2, 2, fn_mod);
  add("pi", 0, 0, fn_pi);
  add("power", 2, 2, fn_power);
  add("pow", 2, 2, fn_power);
  add("radians", 1, 1, unary_math<radians>);
  add("rand", 0, 0, fn_rand, false, true);
  add("round", 1, 2, fn_round);
  add("sign", 1, 1, fn_sign);
  add("sin", 1, 1, unary_math<sind>);
  add("sinh", 1, 1, unary_math<sinhd>);
  add("sqrt", 1, 1, unary_math<sqrtd>);
  add("tan", 1, 1, unary_math<tand>);
  add("tanh", 1, 1, unary_math<tanhd>);
  add("trunc", 2, 2, fn_trunc);
  // strings
  add("concat", 1, kVariadic, fn_concat, true);
  add("endswith", 2, 2, fn_endswith);
  add("format", 2, 2, fn_format);
  add("indexof", 2, 2, fn_indexof);
  add("length", 1, 1, fn_length);
  add("lower", 1, 1, map_chars<to_lower>);
  add("lpad", 2, 2, fn_pad<true>);
  add("ltrim", 1, 1, fn_trim<true, false>);
  add("numbytes", 1, 1, fn_numbytes);
  add("regexp_matches", 2, 2, fn_regexp_matches);
  add("regexp_replace", 3, 3, fn_regexp_replace);
  add("regexp_substr", 2, 2, fn_regexp_substr);
  add("reverse", 1, 1, fn_reverse);
  add("rpad", 2, 2, fn_pad<false>);
  add("rtrim", 1, 1, fn_trim<false, true>);
  add("split_value", 3, 3, fn_split_value);
  add("startswith", 2, 2, fn_startswith);
  add("substring", 2, 3, fn_substring);
  add("trim", 1, 1, fn_trim<true, true>);
  add("upper", 1, 1, map_chars<to_upper>);
  add("chr", 1, 1, fn_chr);
  // conversion
  add("cast", 2, 2, fn_cast);
  add("to_json", 1, 1, fn_to_json, true);
  add("parse_json", 1, 1, fn_parse_json);
  add("encode", 2, 2, fn_encode);
  add("decode", 2, 2, fn_decode);
  add("hex2dec", 1, 1, fn_hex2dec);
  add("dec2hex", 1, 1, fn_dec2hex);
  // hashing
  add("md5", 1, 1, fn_hash<EVP_md5>);
  add("sha1", 1, 1, fn_hash<EVP_sha1>);
  add("sha224", 1, 1, fn_hash<EVP_sha224>);
  add("sha256", 1, 1, fn_hash<EVP_sha256>);
  add("sha384", 1, 1, fn_hash<EVP_sha384>);
  add("sha512", 1, 1, fn_hash<EVP_sha512>);
  // time
  add("now", 0, 1, fn_now, true, true);
  add("tstamp", 0, 0, fn_now, true, true);
  add("format_time", 2, 2, fn_format_time);
  // NULL handling, collections
  add("coalesce", 1, kVariadic, fn_coalesce, true);
  add("isnull", 1, 1, fn_isnull, true);
  add("nullif", 2, 2, fn_nullif, true);
  add("cardinality", 1, 1, fn_cardinality);
  // JSON path
  add("json_path_exists", 2, 2, fn_json_path_exists);
  add("json_path_query", 2, 2, fn_json_path_query);
  add("json_path_query_first", 2, 2, fn_json_path_query_first);
  // Aggregate and analytic functions are declared here by name and arity only.
  auto declare = [&r](FunctionKind kind, std::string name, int min, int max) {
    FunctionDef d;
    d.name = std::move(name);
    d.kind = kind;
    d.min_args = min;
    d.max_args = max;
    d.handles_null = true;
    (void)r.add(std::move(d));
  };
  // Aggregates: stream/aggregate.h implements them.
  auto agg = [&](std::string name, int min, int max) {
    declare(FunctionKind::kAggregate, std::move(name), min, max);
  };
  agg("count", 0, 1);  // count(*) has no argument
  agg("sum", 1, 1);
  agg("avg", 1, 1);
  agg("min", 1, 1);
  agg("max", 1, 1);
  agg("stddev", 1, 1);
  agg("stddevs", 1, 1);
  agg("var", 1, 1);
  agg("vars", 1, 1);
  agg("median", 1, 1);
  agg("percentile_cont", 2, 2);
  agg("percentile_disc", 2, 2);
  agg("collect", 0, 1);    // collect(*)
  agg("merge_agg", 0, 1);  // merge_agg(*)
  agg("deduplicate", 2, 2);
  agg("last_value", 1, 2);
  // Analytic functions: stream/analytic.h implements them and the
  // query engine keeps their state (per rule, per OVER (PARTITION BY ...) key).
  auto analytic = [&](std::string name, int min, int max) {
    declare(FunctionKind::kAnalytic, std::move(name), min, max);
  };
  analytic("lag", 1, 4);
  analytic("latest", 1, 2);
  analytic("changed_col", 2, 2);
  analytic("had_changed", 2, kVariadic);
  analytic("changed_cols", 3, kVariadic);  // a SELECT column that expands to several
  analytic("acc_sum", 1, 3);
  analytic("acc_min", 1, 3);
  analytic("acc_max", 1, 3);
  analytic("acc_avg", 1, 3);
  analytic("acc_count", 1, 3);
  return r;
}

}  // namespace

Status FunctionRegistry::add(FunctionDef def) {
  std::string key = lower_ascii(def.name);
  def.name = key;
  if (by_name_.count(key) != 0)
    return AlreadyExists("function '" + key + "' is already registered");
  by_name_.emplace(std::move(key), std::move(def));
  return Status::Ok();
}

const FunctionDef* FunctionRegistry::find(std::string_view name) const {
  auto it = by_name_.find(lower_ascii(name));
  return it == by_name_.end() ? nullptr : &it->second;
}

const FunctionRegistry& FunctionRegistry::builtins() {
  static const FunctionRegistry r = make_builtins();
  return r;
}

std::string FunctionRegistry::arity_error(const FunctionDef& def, int argc) {
  if (argc >= def.min_args && (def.max_args == kVariadic || argc <= def.max_args)) return "";
  auto plural = [](int n) { return std::to_string(n) + (n == 1 ? " argument" : " arguments"); };
  std::string m = "function '" + def.name + "' expects ";
  if (def.max_args == kVariadic) {
    m += "at least " + plural(def.min_args);
  } else if (def.min_args == def.max_args) {
    m += plural(def.min_args);
  } else {
    m += std::to_string(def.min_args) + " to " + plural(def.max_args);
  }
  m += ", got " + std::to_string(argc);
  return m;
}

}  // namespace ganglion::sql
