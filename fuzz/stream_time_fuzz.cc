// libFuzzer target for the datetime reader of streams (src/stream/time_format.h): a
// TIMESTAMP_FORMAT pattern and a device's timestamp string, both from the input (pattern,
// newline, text). Checks, beyond "no crash":
//  - what parse_time() reads, format_time() writes back in RFC 3339, and parse_time_any()
//    reads that to the same instant;
//  - format_time() with the input's pattern never throws or overruns, whatever the pattern.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "stream/time_format.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::size_t nl = in.find('\n');
  const std::string_view pattern = nl == in.npos ? in : in.substr(0, nl);
  const std::string_view text = nl == in.npos ? std::string_view() : in.substr(nl + 1);
  using namespace ganglion::stream;
  for (const auto& ms : {parse_time(text, pattern), parse_time_any(text)}) {
    if (!ms) continue;
    const std::string rfc = format_time(*ms, "yyyy-MM-dd'T'HH:mm:ss.SSSZ");
    // Years 0-9999 print in four digits, which RFC 3339 reads back.
    if (*ms >= -62167219200000 && *ms < 253402300800000 && parse_time_any(rfc) != ms) {
      std::fprintf(stderr, "round trip: %lld -> %s\n", static_cast<long long>(*ms), rfc.c_str());
      std::abort();
    }
    (void)format_time(*ms, pattern.substr(0, 256));
  }
  (void)format_time(static_cast<std::int64_t>(size) * 86'400'013, pattern.substr(0, 256));
  return 0;
}
