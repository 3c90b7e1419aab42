#include "log/format.h"

#include <charconv>
#include <cstdio>

#include "base/crc32c.h"

namespace ganglion::log {

std::string segment_file_name(std::uint64_t base_offset) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%0*llu", kSegmentNameDigits,
                static_cast<unsigned long long>(base_offset));
  std::string name(buf);
  name += kSegmentSuffix;
  return name;
}

bool parse_segment_file_name(std::string_view name, std::uint64_t& base_offset) {
  if (name.size() != kSegmentNameDigits + kSegmentSuffix.size()) return false;
  if (name.substr(kSegmentNameDigits) != kSegmentSuffix) return false;
  const char* first = name.data();
  const char* last = first + kSegmentNameDigits;
  for (const char* c = first; c != last; ++c) {
    if (*c < '0' || *c > '9') return false;
  }
  auto [ptr, ec] = std::from_chars(first, last, base_offset);
  return ec == std::errc() && ptr == last;
}

void encode_segment_header(std::uint64_t base_offset, char* out) {
  std::memset(out, 0, kSegmentHeaderSize);
  put_u64(out, kSegmentMagic);
  put_u32(out + 8, kFormatVersion);
  put_u64(out + 16, base_offset);
  put_u32(out + 24, crc32c(out, 24));
}

bool decode_segment_header(const char* p, std::uint64_t& base_offset) {
  if (get_u64(p) != kSegmentMagic) return false;
  if (get_u32(p + 8) != kFormatVersion) return false;
  if (get_u32(p + 24) != crc32c(p, 24)) return false;
  base_offset = get_u64(p + 16);
  return true;
}

void append_record(std::string& out, std::uint64_t offset, std::int64_t timestamp_ms,
                   std::string_view payload) {
  const std::size_t at = out.size();
  out.resize(at + kRecordHeaderSize + payload.size());
  char* p = out.data() + at;
  put_u32(p, static_cast<std::uint32_t>(payload.size()));
  put_u64(p + 8, offset);
  put_u64(p + 16, static_cast<std::uint64_t>(timestamp_ms));
  if (!payload.empty()) std::memcpy(p + kRecordHeaderSize, payload.data(), payload.size());
  put_u32(p + 4, crc32c(p + 8, kRecordHeaderSize - 8 + payload.size()));
}

}  // namespace ganglion::log
