// libFuzzer target for the SCRAM messages of MQTT 5 enhanced authentication
// (src/broker/scram.h). The client-first and client-final messages arrive as the
// Authentication Data of CONNECT and AUTH packets from unauthenticated clients.
//
// Input: the first byte picks the mode (modulo 3), the rest is the data.
//  0. parse_scram_client_first(): on success, gs2 header + bare is the whole message and the
//     username is not empty.
//  1. parse_scram_client_final(): on success, the message is the part without the proof plus
//     ",p=" and the proof re-encoded (the base64 decoder is canonical).
//  2. A ScramServer exchange: the data up to the first '\n' is the client-first-message, the
//     rest the client-final-message, against fixed SCRAM-SHA-512 credentials. Also
//     base64_decode_canonical() of the whole data: whatever decodes re-encodes to the same text.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "base/base64.h"
#include "broker/scram.h"

namespace {

using namespace ganglion::broker;
using ganglion::base64_decode_canonical;
using ganglion::base64_encode;

[[noreturn]] void die(const char* what, std::string_view detail) {
  std::fprintf(stderr, "%s: %.*s\n", what, static_cast<int>(detail.size()), detail.data());
  std::abort();
}

const ScramCredentials& credentials() {
  static const ScramCredentials c = [] {
    auto r = scram_credentials_from_password(ScramHash::kSha512, "pencil", "fuzz-salt", 2);
    if (!r.ok()) die("credentials", r.status().message());
    return *r;
  }();
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const int mode = data[0] % 3;
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (mode) {
    case 0: {
      auto first = parse_scram_client_first(input);
      if (!first.ok()) break;
      if (first->gs2_header + first->bare != input) die("client-first split", input);
      if (first->username.empty() || first->nonce.empty()) die("empty username or nonce", input);
      break;
    }
    case 1: {
      auto final = parse_scram_client_final(input);
      if (!final.ok()) break;
      if (final->without_proof + ",p=" + base64_encode(final->proof) != input) {
        die("client-final does not re-encode", input);
      }
      break;
    }
    default: {
      const auto nl = input.find('\n');
      ScramServer server(ScramHash::kSha512);
      if (server.receive_client_first(input.substr(0, nl)).ok()) {
        (void)server.server_first(credentials(), "fuzznonce");
        const std::string_view rest =
            nl == std::string_view::npos ? std::string_view{} : input.substr(nl + 1);
        auto r = server.receive_client_final(rest);
        if (r.ok() && !r->starts_with("v=")) die("server-final without v=", *r);
      }
      if (auto decoded = base64_decode_canonical(input)) {
        if (base64_encode(*decoded) != input) die("base64 not canonical", input);
      }
      break;
    }
  }
  return 0;
}
