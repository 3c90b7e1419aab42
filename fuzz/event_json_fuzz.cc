// libFuzzer target for the event JSON decoders (src/event/json.h): every payload a device
// publishes goes through them. Checks, beyond "no crash":
//  - what parse_json() accepts, to_json() writes back as JSON that parses to an equal value
//    and writes identically from the second round on (to_json is a fixed point);
//  - is_canonical_json() true on a valid document means to_json() reproduces it byte for
//    byte;
//  - parse_json_fields() and parse_json_filtered() agree with parse_json() on valid objects;
//  - a document parse_json_filtered() keeps is valid exactly when parse_json() says so.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "event/json.h"
#include "event/value.h"

namespace {

using ganglion::Value;

[[noreturn]] void die(const char* what, std::string_view a, std::string_view b = {}) {
  std::fprintf(stderr, "%s\n--- input ---\n%.*s\n--- other ---\n%.*s\n", what,
               static_cast<int>(a.size()), a.data(), static_cast<int>(b.size()), b.data());
  std::abort();
}

const std::array<std::string, 3> kFields = {"a", "deviceId", "temperature"};

bool keep_all(void*, const Value&) { return true; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  auto whole = ganglion::parse_json(json);
  const bool canonical = ganglion::is_canonical_json(json);
  if (whole.ok()) {
    const std::string printed = ganglion::to_json(*whole);
    auto again = ganglion::parse_json(printed);
    if (!again.ok()) die("to_json output does not parse", json, printed);
    if (!(*again == *whole)) die("to_json output parses to another value", json, printed);
    // A float -0.0 is written "-0", which reads back as the integer 0 (equal) and is then
    // written "0": stable from the second round on.
    const std::string printed2 = ganglion::to_json(*again);
    auto third = ganglion::parse_json(printed2);
    if (!third.ok() || ganglion::to_json(*third) != printed2)
      die("to_json is not stable", json, printed2);
    if (canonical && printed != json) die("canonical input is not reproduced", json, printed);
  }  // is_canonical_json() is only defined for documents parse_json() accepts.

  auto fields = ganglion::parse_json_fields(json, kFields);
  if (whole.ok() && !fields.ok()) die("parse_json_fields rejects a valid document", json);
  if (whole.ok() && whole->is_object() && fields.ok()) {
    for (const auto& f : kFields) {
      const Value* want = whole->find(f);
      const Value* got = fields->find(f);
      if ((want == nullptr) != (got == nullptr) || (want && !(*want == *got)))
        die("parse_json_fields disagrees with parse_json", json, f);
    }
  }

  auto filtered = ganglion::parse_json_filtered(json, kFields, keep_all, nullptr);
  if (whole.ok() != filtered.ok()) die("parse_json_filtered and parse_json disagree", json);
  if (filtered.ok()) {
    const Value& got = filtered->kept ? filtered->whole : filtered->partial;
    if (!(got == *whole)) die("parse_json_filtered returns another value", json);
  }
  auto unconverted = ganglion::parse_json_filtered(json, kFields, keep_all, nullptr, false);
  if (whole.ok() != unconverted.ok()) die("parse_json_filtered (no convert) disagrees", json);
  return 0;
}
