// libFuzzer target for the demo's readers (src/demo): the simulator's ground-truth JSONL and
// the Prometheus text of /metrics. Arbitrary text gives an error or figures, never a crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "demo/metrics_text.h"
#include "demo/scoring.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)ganglion::demo::read_ground_truth(text);
  (void)ganglion::demo::metric_total(text, "ganglion_uplink_backlog_records");
  (void)ganglion::demo::metric_total(text, "ganglion_uplink_policy_applied_total",
                                     "kind=\"local_only\"");
  return 0;
}
