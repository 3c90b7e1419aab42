#include "cloud/ingest.h"

#include <zstd.h>
#include <nlohmann/json.hpp>

#include "base/json_string.h"

namespace ganglion::cloud {
namespace {

// Big-endian reader that turns every overrun into ok == false.
struct Reader {
  std::string_view data;
  std::size_t pos = 0;
  bool ok = true;

  std::uint64_t uint(std::size_t n) {
    if (!ok || data.size() - pos < n) {
      ok = false;
      return 0;
    }
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(data[pos + i]);
    pos += n;
    return v;
  }
  std::string_view bytes(std::size_t n) {
    if (!ok || data.size() - pos < n) {
      ok = false;
      return {};
    }
    auto out = data.substr(pos, n);
    pos += n;
    return out;
  }
  std::string_view short_string() { return bytes(static_cast<std::size_t>(uint(1))); }
};

constexpr std::uint64_t kMinRecordBytes = 8 + 8 + 2 + 4;

Result<IngestBatch> decode_binary(std::string_view payload, const std::string& node,
                                  const std::string& cls, std::size_t max_body) {
  Reader r{payload};
  r.bytes(4);
  const auto version = r.uint(1);
  const auto compression = r.uint(1);
  r.uint(2);  // flags: ignored
  IngestBatch b;
  b.seq = r.uint(8);
  b.end = r.uint(8);
  const auto count = r.uint(4);
  const auto raw_bytes = r.uint(4);
  b.node = std::string(r.short_string());
  b.cls = std::string(r.short_string());
  r.short_string();  // region
  if (!r.ok) return InvalidArgument("batch: truncated header");
  if (version != 1) return InvalidArgument("batch: unknown version " + std::to_string(version));
  if (compression > 1)
    return InvalidArgument("batch: unknown compression " + std::to_string(compression));
  if (b.node != node || b.cls != cls)
    return InvalidArgument("batch: node/class do not match the topic");
  if (b.end < b.seq) return InvalidArgument("batch: end before sequence");
  if (raw_bytes > max_body) return InvalidArgument("batch: body larger than the limit");
  if (count * kMinRecordBytes > raw_bytes)
    return InvalidArgument("batch: record count larger than the body");
  const std::string_view rest = payload.substr(r.pos);
  std::string body;
  if (compression == 1) {
    const auto declared = ZSTD_getFrameContentSize(rest.data(), rest.size());
    if (declared == ZSTD_CONTENTSIZE_ERROR ||
        (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != raw_bytes)) {
      return InvalidArgument("batch: bad zstd frame");
    }
    body.resize(raw_bytes);
    const std::size_t n = ZSTD_decompress(body.data(), body.size(), rest.data(), rest.size());
    if (ZSTD_isError(n) || n != raw_bytes) return InvalidArgument("batch: bad zstd body");
  } else {
    if (rest.size() != raw_bytes) return InvalidArgument("batch: body size mismatch");
    body = std::string(rest);
  }
  Reader br{body};
  b.records.reserve(count);
  std::uint64_t previous = 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    IngestRecord rec;
    rec.offset = br.uint(8);
    rec.ts_ms = static_cast<std::int64_t>(br.uint(8));
    rec.topic = std::string(br.bytes(static_cast<std::size_t>(br.uint(2))));
    const auto payload_view = br.bytes(static_cast<std::size_t>(br.uint(4)));
    if (!br.ok) return InvalidArgument("batch: truncated record " + std::to_string(i));
    if (*rec.offset < b.seq || *rec.offset >= b.end || (i > 0 && *rec.offset <= previous)) {
      return InvalidArgument("batch: record offsets out of order or range");
    }
    previous = *rec.offset;
    rec.payload = payload_as_json(payload_view);
    b.records.push_back(std::move(rec));
  }
  if (br.pos != body.size()) return InvalidArgument("batch: trailing bytes after the records");
  return b;
}

Result<IngestBatch> decode_json(std::string_view payload, const std::string& node,
                                const std::string& cls) {
  if (!json_nesting_within(payload, kMaxJsonNesting)) {
    return InvalidArgument("batch: JSON nested deeper than " + std::to_string(kMaxJsonNesting));
  }
  auto j = nlohmann::json::parse(payload, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgument("batch: not a JSON object");
  IngestBatch b;
  auto str = [&](const char* k) -> std::optional<std::string> {
    auto it = j.find(k);
    if (it == j.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  auto n = str("node");
  auto c = str("class");
  if (!n || !c) return InvalidArgument("batch: \"node\" and \"class\" strings are required");
  if (*n != node || *c != cls) return InvalidArgument("batch: node/class do not match the topic");
  b.node = *n;
  b.cls = *c;
  auto seq = j.find("seq");
  if (seq == j.end() || !seq->is_number_unsigned())
    return InvalidArgument("batch: \"seq\" must be an unsigned integer");
  b.seq = seq->get<std::uint64_t>();
  auto records = j.find("records");
  if (records == j.end() || !records->is_array())
    return InvalidArgument("batch: \"records\" must be an array");
  for (const auto& r : *records) {
    if (!r.is_object()) return InvalidArgument("batch: a record is not an object");
    IngestRecord rec;
    auto ts = r.find("ts");
    if (ts == r.end() || !ts->is_number_integer())
      return InvalidArgument("batch: record \"ts\" (ms) is required");
    rec.ts_ms = ts->get<std::int64_t>();
    auto topic = r.find("topic");
    if (topic != r.end() && topic->is_string()) rec.topic = topic->get<std::string>();
    auto p = r.find("payload");
    rec.payload =
        p == r.end() ? "null" : p->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    b.records.push_back(std::move(rec));
  }
  return b;
}

}  // namespace

bool split_node_topic(std::string_view topic, std::string& node, std::string& rest) {
  constexpr std::string_view kPrefix = "ganglion/v1/";
  if (!topic.starts_with(kPrefix)) return false;
  topic.remove_prefix(kPrefix.size());
  const auto slash = topic.find('/');
  if (slash == std::string_view::npos || slash == 0) return false;
  node = std::string(topic.substr(0, slash));
  rest = std::string(topic.substr(slash + 1));
  return true;
}

std::string payload_as_json(std::string_view payload) {
  if (nlohmann::json::accept(payload)) return std::string(payload);
  return nlohmann::json{{"_raw", std::string(payload)}}.dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<IngestBatch> decode_uplink_batch(std::string_view payload, const std::string& node,
                                        const std::string& cls, std::size_t max_body_bytes) {
  if (payload.starts_with(kUplinkBatchMagic))
    return decode_binary(payload, node, cls, max_body_bytes);
  if (!payload.empty() && payload.front() == '{') return decode_json(payload, node, cls);
  return InvalidArgument("batch: neither the GUB1 format nor a JSON object");
}

}  // namespace ganglion::cloud
