// On-disk format of the durable log (one directory per data class).
//
//   <dir>/<class>/00000000000000000000.seg   segments, named by the offset of their first record
//   <dir>/<class>/00000000000000004096.seg   (20 decimal digits, so names sort like offsets)
//   <dir>/<class>/consumer.offset            the acknowledged consumer offset (atomic rewrite)
//
// A segment is a header followed by records, appended only. All integers are little-endian.
//
//   segment header (kSegmentHeaderSize = 32 bytes)
//     +0   u64  magic        kSegmentMagic ("GNGLSEG1")
//     +8   u32  version      kFormatVersion
//     +12  u32  reserved     0
//     +16  u64  base_offset  offset of the first record (equals the number in the file name)
//     +24  u32  crc32c       of bytes [0, 24)
//     +28  u32  reserved     0
//
//   record (kRecordHeaderSize = 24 bytes + payload)
//     +0   u32  length       payload bytes, <= kMaxPayloadBytes
//     +4   u32  crc32c       of bytes [8, 24 + length): offset, timestamp and payload
//     +8   u64  offset       dense, increasing by one per record across segments
//     +16  i64  timestamp   producer's wall-clock time in milliseconds since the Unix epoch
//     +24  ...  payload
//
// Why this shape: the CRC covers the offset, so a record copied or left over at the wrong
// place never validates; the length comes first so a reader knows how much to fetch before it
// checks anything. A torn write leaves a short or CRC-failing record at the end of the last
// segment; recovery cuts it off. A record that fails its CRC in the middle of a segment is
// skipped by resynchronising: the reader scans forward for the next position holding a record
// whose offset is plausible and whose CRC matches (see ScanSegment in segment_log.cc).
//
// Version history: 1 — initial.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace ganglion::log {

inline constexpr std::uint64_t kSegmentMagic = 0x31474553'4C474E47ULL;  // "GNGLSEG1" LE
inline constexpr std::uint32_t kFormatVersion = 1;
inline constexpr std::size_t kSegmentHeaderSize = 32;
inline constexpr std::size_t kRecordHeaderSize = 24;
inline constexpr std::uint32_t kMaxPayloadBytes = 16u << 20;  // 16 MiB
inline constexpr std::string_view kSegmentSuffix = ".seg";
inline constexpr std::string_view kConsumerFile = "consumer.offset";
inline constexpr int kSegmentNameDigits = 20;

inline void put_u32(char* p, std::uint32_t v) { std::memcpy(p, &v, 4); }  // LE hosts only
inline void put_u64(char* p, std::uint64_t v) { std::memcpy(p, &v, 8); }
inline std::uint32_t get_u32(const char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline std::uint64_t get_u64(const char* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "format helpers assume little-endian");

// "<20 digits>.seg" for a base offset.
std::string segment_file_name(std::uint64_t base_offset);
// Parses a segment file name; false when `name` is not one.
bool parse_segment_file_name(std::string_view name, std::uint64_t& base_offset);

// Encodes a segment header into `out` (kSegmentHeaderSize bytes).
void encode_segment_header(std::uint64_t base_offset, char* out);
// True when `p` (kSegmentHeaderSize bytes) is a valid header; sets base_offset.
bool decode_segment_header(const char* p, std::uint64_t& base_offset);

// Appends one framed record to `out`.
void append_record(std::string& out, std::uint64_t offset, std::int64_t timestamp_ms,
                   std::string_view payload);

}  // namespace ganglion::log
