#include "uplink/batch_format.h"

#include <zstd.h>

#include <cstring>

namespace ganglion::uplink {
namespace {

void put_u8(std::string& out, std::uint8_t v) { out.push_back(static_cast<char>(v)); }
void put_u16(std::string& out, std::uint16_t v) {
  put_u8(out, static_cast<std::uint8_t>(v >> 8));
  put_u8(out, static_cast<std::uint8_t>(v));
}
void put_u32(std::string& out, std::uint32_t v) {
  put_u16(out, static_cast<std::uint16_t>(v >> 16));
  put_u16(out, static_cast<std::uint16_t>(v));
}
void put_u64(std::string& out, std::uint64_t v) {
  put_u32(out, static_cast<std::uint32_t>(v >> 32));
  put_u32(out, static_cast<std::uint32_t>(v));
}
void put_short_string(std::string& out, std::string_view s) {
  const std::size_t n = std::min<std::size_t>(s.size(), 255);
  put_u8(out, static_cast<std::uint8_t>(n));
  out.append(s.substr(0, n));
}

// Bounds-checked big-endian reader.
struct Reader {
  std::string_view in;
  std::size_t pos = 0;
  bool ok = true;

  bool need(std::size_t n) {
    if (!ok || in.size() - pos < n) ok = false;
    return ok;
  }
  std::uint64_t uint(std::size_t bytes) {
    if (!need(bytes)) return 0;
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < bytes; ++i) v = (v << 8) | static_cast<std::uint8_t>(in[pos + i]);
    pos += bytes;
    return v;
  }
  std::string_view bytes(std::size_t n) {
    if (!need(n)) return {};
    std::string_view v = in.substr(pos, n);
    pos += n;
    return v;
  }
  std::string_view short_string() { return bytes(uint(1)); }
};

}  // namespace

Result<std::string> encode_record(std::string_view topic, std::string_view payload,
                                  std::uint64_t stored_id) {
  if (topic.size() > 0xffff) return InvalidArgument("uplink record: topic longer than 65535 bytes");
  std::string out;
  out.reserve(11 + topic.size() + payload.size());
  if (stored_id == 0) {
    put_u8(out, kRecordVersion);
  } else {
    put_u8(out, kRecordVersionStoredId);
    put_u64(out, stored_id);
  }
  put_u16(out, static_cast<std::uint16_t>(topic.size()));
  out.append(topic);
  out.append(payload);
  return out;
}

Result<RecordFields> decode_record(std::string_view bytes) {
  Reader r{bytes};
  const auto version = r.uint(1);
  if (!r.ok || (version != kRecordVersion && version != kRecordVersionStoredId)) {
    return Corruption("uplink record: unknown version");
  }
  const std::uint64_t stored_id = version == kRecordVersionStoredId ? r.uint(8) : 0;
  const auto n = r.uint(2);
  std::string_view topic = r.bytes(n);
  if (!r.ok) return Corruption("uplink record: truncated topic");
  return RecordFields{topic, bytes.substr(r.pos), stored_id};
}

BatchBuilder::BatchBuilder(Compression compression, int level)
    : compression_(compression), level_(level) {
  if (compression_ == Compression::kZstd) cctx_ = ZSTD_createCCtx();
}

BatchBuilder::~BatchBuilder() { ZSTD_freeCCtx(static_cast<ZSTD_CCtx*>(cctx_)); }

void BatchBuilder::add(std::uint64_t offset, std::int64_t timestamp_ms, std::string_view record) {
  auto fields = decode_record(record);
  if (!fields.ok()) {
    ++skipped_;
    return;
  }
  put_u64(body_, offset);
  put_u64(body_, static_cast<std::uint64_t>(timestamp_ms));
  put_u16(body_, static_cast<std::uint16_t>(fields->topic.size()));
  body_.append(fields->topic);
  put_u32(body_, static_cast<std::uint32_t>(fields->payload.size()));
  body_.append(fields->payload);
  ++count_;
}

Result<std::string> BatchBuilder::finish(std::string_view node, std::string_view cls,
                                         std::string_view region, std::uint64_t sequence,
                                         std::uint64_t end) {
  std::string out;
  const std::size_t bound =
      compression_ == Compression::kZstd ? ZSTD_compressBound(body_.size()) : body_.size();
  out.reserve(kBatchFixedHeader + 3 + node.size() + cls.size() + region.size() + bound);
  out.append(kBatchMagic);
  put_u8(out, kBatchVersion);
  put_u8(out, static_cast<std::uint8_t>(compression_));
  put_u16(out, 0);
  put_u64(out, sequence);
  put_u64(out, end);
  put_u32(out, static_cast<std::uint32_t>(count_));
  put_u32(out, static_cast<std::uint32_t>(body_.size()));
  put_short_string(out, node);
  put_short_string(out, cls);
  put_short_string(out, region);
  if (compression_ == Compression::kZstd) {
    auto* cctx = static_cast<ZSTD_CCtx*>(cctx_);
    ZSTD_CCtx_reset(cctx, ZSTD_reset_session_only);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level_);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
    const std::size_t head = out.size();
    out.resize(head + bound);
    const std::size_t n =
        ZSTD_compress2(cctx, out.data() + head, bound, body_.data(), body_.size());
    if (ZSTD_isError(n)) {
      body_.clear();
      count_ = skipped_ = 0;
      return Internal(std::string("zstd: ") + ZSTD_getErrorName(n));
    }
    out.resize(head + n);
  } else {
    out.append(body_);
  }
  body_.clear();
  count_ = skipped_ = 0;
  return out;
}

Result<DecodedBatch> decode_batch(std::string_view bytes) {
  Reader r{bytes};
  if (r.bytes(4) != kBatchMagic) return Corruption("uplink batch: bad magic");
  DecodedBatch b;
  auto& h = b.header;
  h.version = static_cast<std::uint8_t>(r.uint(1));
  if (h.version != kBatchVersion) return Corruption("uplink batch: unknown version");
  const auto comp = r.uint(1);
  if (comp > 1) return Corruption("uplink batch: unknown compression");
  h.compression = static_cast<Compression>(comp);
  r.uint(2);
  h.sequence = r.uint(8);
  h.end = r.uint(8);
  h.count = static_cast<std::uint32_t>(r.uint(4));
  h.raw_body_bytes = static_cast<std::uint32_t>(r.uint(4));
  h.node = std::string(r.short_string());
  h.cls = std::string(r.short_string());
  h.region = std::string(r.short_string());
  if (!r.ok) return Corruption("uplink batch: truncated header");
  std::string_view rest = bytes.substr(r.pos);
  std::string body;
  if (h.compression == Compression::kZstd) {
    if (h.raw_body_bytes > (256u << 20)) return Corruption("uplink batch: body too large");
    body.resize(h.raw_body_bytes);
    const std::size_t n = ZSTD_decompress(body.data(), body.size(), rest.data(), rest.size());
    if (ZSTD_isError(n) || n != h.raw_body_bytes) return Corruption("uplink batch: bad zstd body");
  } else {
    body = std::string(rest);
    if (body.size() != h.raw_body_bytes) return Corruption("uplink batch: body size mismatch");
  }
  Reader br{body};
  for (std::uint32_t i = 0; i < h.count; ++i) {
    BatchRecord rec;
    rec.offset = br.uint(8);
    rec.timestamp_ms = static_cast<std::int64_t>(br.uint(8));
    rec.topic = std::string(br.bytes(br.uint(2)));
    rec.payload = std::string(br.bytes(br.uint(4)));
    if (!br.ok) return Corruption("uplink batch: truncated record");
    b.records.push_back(std::move(rec));
  }
  if (br.pos != body.size()) return Corruption("uplink batch: trailing bytes");
  return b;
}

}  // namespace ganglion::uplink
