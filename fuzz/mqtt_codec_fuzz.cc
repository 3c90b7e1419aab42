// libFuzzer target for the MQTT codec (src/mqtt/codec.h).
//
// The first input byte picks the decoder's side and version; the rest is fed in chunks whose
// sizes come from the input too, so fragmentation is explored. Every packet that decodes is
// encoded again and must decode to an equal packet with byte-identical re-encoding.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mqtt/codec.h"
#include "mqtt/topic.h"

namespace {

using ganglion::mqtt::Decoder;
using ganglion::mqtt::DecoderOptions;
using ganglion::mqtt::Packet;
using ganglion::mqtt::ProtocolVersion;
using ganglion::mqtt::Role;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "mqtt_codec_fuzz: %s\n", what);
    std::abort();
  }
}

void round_trip(const Packet& p, ProtocolVersion v) {
  std::string wire;
  const ganglion::Status s = ganglion::mqtt::encode(p, v, wire);
  check(s.ok(), "a decoded packet failed to encode");
  auto again = ganglion::mqtt::decode_packet(wire, v, Role::kAny);
  if (!again.ok()) std::fprintf(stderr, "%s\n", again.status().to_string().c_str());
  check(again.ok(), "a re-encoded packet failed to decode");
  check(*again == p, "decode(encode(p)) != p");
  std::string wire2;
  check(ganglion::mqtt::encode(*again, v, wire2).ok(), "second encode failed");
  check(wire2 == wire, "encoding is not stable");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t mode = data[0];
  const std::uint8_t chunk = static_cast<std::uint8_t>(data[1] | 1);
  std::string_view input(reinterpret_cast<const char*>(data + 2), size - 2);

  DecoderOptions opts;
  switch (mode % 4) {
    case 0:
      opts.role = Role::kServer;
      break;  // version learnt from CONNECT
    case 1:
      opts.role = Role::kClient;
      opts.version = ProtocolVersion::kV311;
      break;
    case 2:
      opts.role = Role::kClient;
      opts.version = ProtocolVersion::kV5;
      break;
    default:
      opts.role = Role::kAny;
      opts.version = ProtocolVersion::kV5;
      break;
  }
  if (mode & 0x80) opts.maximum_packet_size = 64;
  Decoder d(opts);
  while (!input.empty()) {
    const std::size_t n = std::min<std::size_t>(chunk, input.size());
    d.feed(input.substr(0, n));
    input.remove_prefix(n);
    for (;;) {
      auto r = d.next();
      if (!r.ok()) {
        check(ganglion::mqtt::reason_of(r.status()).has_value(), "error without reason code");
        return 0;
      }
      if (!r->has_value()) break;
      round_trip(**r, *d.version());
    }
  }

  // The topic helpers must not crash on arbitrary strings either.
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto half = text.size() / 2;
  const std::string_view filter = text.substr(0, half), topic = text.substr(half);
  if (ganglion::mqtt::validate_topic_filter(filter).ok() &&
      ganglion::mqtt::validate_topic_name(topic).ok()) {
    auto shared = ganglion::mqtt::parse_shared_subscription(filter);
    check(shared.ok(), "a valid filter failed to parse as shared");
    (void)ganglion::mqtt::matches(*shared ? (*shared)->filter : filter, topic);
  }
  return 0;
}
