// Decoding uplink batches as they arrive on ganglion/v1/<node>/up/<class>.
//
// Two encodings are accepted:
//  * the uplink batch format version 1 (src/uplink/README.md, src/uplink/batch_format.h):
//    magic "GUB1", 32-byte header, node/class/region, a raw or zstd body of records
//    (u64 offset, i64 ts ms, u16 topic len, topic, u32 payload len, payload);
//  * a JSON fallback for simple senders and tests:
//    {"node": "...", "class": "...", "seq": N, "records": [{"ts": ms, "topic": "...",
//     "payload": <any JSON>}, ...]}
//
// The node and class inside a batch must equal those of the topic it came on (the broker's
// ACL already ties the topic to the sender's certificate). Payloads that are not JSON are
// stored as {"_raw": "<text>"}. This is untrusted input: every length is checked, the
// decompressed size is bounded by `max_body_bytes`, and errors are kInvalidArgument.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"
#include "cloud/store.h"

namespace ganglion::cloud {

inline constexpr std::string_view kUplinkBatchMagic = "GUB1";
inline constexpr std::size_t kUplinkBatchFixedHeader = 32;
// JSON from nodes and API clients nested deeper than this is refused before nlohmann parses
// it: copying or dumping a parsed document recurses once per level, and a few hundred KB of
// '[' would overflow the stack of the thread that handles it.
inline constexpr std::size_t kMaxJsonNesting = 256;

// Splits "ganglion/v1/<node>/<rest>" into node and rest; false for other topics.
bool split_node_topic(std::string_view topic, std::string& node, std::string& rest);

Result<IngestBatch> decode_uplink_batch(std::string_view payload, const std::string& node,
                                        const std::string& cls, std::size_t max_body_bytes);

// Makes a payload storable as JSON text (see above).
std::string payload_as_json(std::string_view payload);

}  // namespace ganglion::cloud
