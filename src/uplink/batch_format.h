// The bytes the uplink keeps in its log and sends upstream. Both formats are versioned; a
// receiver (the cloud's ingest, tests/uplink_test.py, any MQTT consumer) needs only this page.
//
// 1. Uplink record: one message as stored in the durable log (one log record each). The log
//    record already carries its offset and timestamp (log/format.h), so the record adds the
//    topic, and for a message that came from the broker's journal its stored id:
//
//      u8  kRecordVersion (1) or kRecordVersionStoredId (2)
//      u64 stored id (big-endian; version 2 only): the id under which the broker journaled
//          the delivery (broker::DeliveryAck::stored_id), so that after a crash the uplink
//          recognises the broker's redelivery of a message it had already logged
//      u16 topic length (big-endian), topic bytes (UTF-8)
//      payload bytes (the rest; after the data policy was applied)
//    The stored id stays on the node: batches carry topic and payload only.
//
// 2. Batch: the payload of one MQTT PUBLISH (QoS 1) to ganglion/v1/<node>/up/<class>.
//    All integers big-endian.
//
//      off len
//       0   4  magic "GUB1"
//       4   1  format version (kBatchVersion = 1)
//       5   1  compression of the body: 0 none, 1 zstd (one zstd frame, content checksum on)
//       6   2  flags, 0 (receivers ignore unknown flags)
//       8   8  sequence: first log offset the batch covers (its first record's offset, or
//              lower when records before it expired); equals the previous batch's `end`
//      16   8  end: one past the offset of the last record (offsets may have gaps)
//      24   4  record count
//      28   4  body size before compression
//      32   -  node id   (u8 length + bytes)
//          -  class     (u8 length + bytes)
//          -  region    (u8 length + bytes; the site's region, may be empty)
//          -  body (compressed as said above) up to the end of the payload
//
//    Body, once decompressed: `count` records back to back, in offset order:
//
//      u64 offset   i64 timestamp (ms since the Unix epoch, when the node logged it)
//      u16 topic length, topic   u32 payload length, payload
//
// Exactly-once ingest: a batch is sent again (same bytes, DUP or as a new PUBLISH) until
// PUBACK; after a crash of the node, the records after the last committed consumer offset
// are sent again, possibly cut into batches differently. Offsets in a class only grow, so a
// receiver keeps per (node, class) the `end` of the last batch it ingested and drops every
// record whose offset is below it: duplicates are exactly the records with offset < end.
// Equivalently it may dedupe by (node, class, sequence) when batch boundaries are stable,
// and by (node, class, record offset) always.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace ganglion::uplink {

inline constexpr std::uint8_t kRecordVersion = 1;
inline constexpr std::uint8_t kRecordVersionStoredId = 2;
inline constexpr std::string_view kBatchMagic = "GUB1";
inline constexpr std::uint8_t kBatchVersion = 1;
inline constexpr std::size_t kBatchFixedHeader = 32;
inline constexpr std::size_t kRecordOverhead = 8 + 8 + 2 + 4;  // per record in the body

enum class Compression : std::uint8_t { kNone = 0, kZstd = 1 };

// Encodes an uplink record (format 1 above; version 2 when `stored_id` is not 0). Errors:
// kInvalidArgument for a topic over 65535 bytes.
Result<std::string> encode_record(std::string_view topic, std::string_view payload,
                                  std::uint64_t stored_id = 0);

struct RecordFields {
  std::string_view topic;
  std::string_view payload;
  std::uint64_t stored_id = 0;  // 0: the record has none (version 1)
};
// Views into `bytes`. Errors: kCorruption for a bad version or a short record.
Result<RecordFields> decode_record(std::string_view bytes);

struct BatchRecord {
  std::uint64_t offset = 0;
  std::int64_t timestamp_ms = 0;
  std::string topic;
  std::string payload;
};

struct BatchHeader {
  std::uint8_t version = kBatchVersion;
  Compression compression = Compression::kZstd;
  std::uint64_t sequence = 0;
  std::uint64_t end = 0;
  std::uint32_t count = 0;
  std::uint32_t raw_body_bytes = 0;
  std::string node;
  std::string cls;
  std::string region;
};

// Builds one batch: add records in offset order, then finish(). Reusable after finish().
// Not thread-safe.
class BatchBuilder {
 public:
  // `level`: zstd compression level (1..19).
  explicit BatchBuilder(Compression compression = Compression::kZstd, int level = 3);
  ~BatchBuilder();
  BatchBuilder(const BatchBuilder&) = delete;
  BatchBuilder& operator=(const BatchBuilder&) = delete;

  // Adds one record from the log: `record` is an encoded uplink record (format 1). A record
  // that does not decode is skipped and counted in skipped() (it never came from this
  // version of the uplink; the log's CRC already vouches for the bytes).
  void add(std::uint64_t offset, std::int64_t timestamp_ms, std::string_view record);
  std::size_t count() const { return count_; }
  std::size_t raw_bytes() const { return body_.size(); }
  std::size_t skipped() const { return skipped_; }

  // The batch bytes; `end` is one past the last offset covered (records skipped as expired
  // or undecodable included). Errors: kInternal when zstd fails. Resets the builder.
  Result<std::string> finish(std::string_view node, std::string_view cls, std::string_view region,
                             std::uint64_t sequence, std::uint64_t end);

 private:
  Compression compression_;
  int level_;
  void* cctx_ = nullptr;  // ZSTD_CCtx
  std::string body_;
  std::size_t count_ = 0;
  std::size_t skipped_ = 0;
};

// Decodes a whole batch (for tests, tools and a receiver in C++). Errors: kCorruption.
struct DecodedBatch {
  BatchHeader header;
  std::vector<BatchRecord> records;
};
Result<DecodedBatch> decode_batch(std::string_view bytes);

}  // namespace ganglion::uplink
