// libFuzzer target for the uplink wire formats (src/uplink/batch_format.h) and the
// controller's decoder of what nodes send (src/cloud/ingest.h): hostile bytes must give an
// error or a batch, never a crash, a hang or an unbounded allocation.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "cloud/ingest.h"
#include "uplink/batch_format.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  (void)ganglion::uplink::decode_record(bytes);
  (void)ganglion::uplink::decode_batch(bytes);
  // The controller bounds the decompressed body; keep it small so zstd bombs stay cheap.
  (void)ganglion::cloud::decode_uplink_batch(bytes, "node-1", "telemetry", 1 << 20);
  (void)ganglion::cloud::payload_as_json(bytes);
  return 0;
}
