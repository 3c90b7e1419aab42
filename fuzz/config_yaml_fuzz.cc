// libFuzzer target for the configuration reader (src/base/config.h) against the real
// schemas of the edge (src/edge/edge_config.h) and the controller (src/cloud/cloud_config.h).
//
// Input: the first byte picks the schema (bit 0: edge or cloud) and the form (bit 1: a YAML
// file, or command-line style lines given to Config::set(): a byte picking the option, then
// the value); the rest is the text.
// A YAML error must be a Status whose message starts with "<file>:<line>:<column>: " — never
// a crash or an exception. A valid edge file is then turned into the uplink's options (class
// specs, routes, field rules: the uplink's own small parsers) and a DataPolicy.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>

#include "base/config.h"
#include "cloud/cloud_config.h"
#include "edge/edge_config.h"
#include "uplink/policy.h"
#include "uplink/uplink.h"

namespace {

[[noreturn]] void die(const char* what, std::string_view detail) {
  std::fprintf(stderr, "%s: %.*s\n", what, static_cast<int>(detail.size()), detail.data());
  std::abort();
}

// "<name>:<line>:<column>: ..." with decimal line and column.
bool has_position(std::string_view message, std::string_view name) {
  if (message.substr(0, name.size()) != name) return false;
  message.remove_prefix(name.size());
  for (int part = 0; part < 2; ++part) {
    if (message.empty() || message[0] != ':') return false;
    message.remove_prefix(1);
    std::size_t digits = 0;
    while (digits < message.size() && std::isdigit(static_cast<unsigned char>(message[digits])))
      ++digits;
    if (digits == 0) return false;
    message.remove_prefix(digits);
  }
  return message.substr(0, 2) == ": ";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1 || size > 16384) return 0;
  const bool edge = (data[0] & 1) == 0;
  const bool yaml = (data[0] & 2) == 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const ganglion::ConfigSchema& schema =
      edge ? ganglion::edge::edge_schema() : ganglion::cloud::cloud_schema();
  const std::string_view name = edge ? "edge.yaml" : "cloud.yaml";
  ganglion::Config config(schema);
  try {
    if (yaml) {
      ganglion::Status s = config.load_yaml(text, name);
      if (!s.ok()) {
        if (s.code() != ganglion::StatusCode::kInvalidArgument)
          die("config error is not kInvalidArgument", s.message());
        if (!has_position(s.message(), name))
          die("config error without file:line:column", s.message());
        return 0;
      }
    } else {
      std::string_view rest = text;
      while (!rest.empty()) {
        const auto nl = rest.find('\n');
        const std::string_view line = rest.substr(0, nl);
        rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
        if (line.empty()) continue;
        // The first byte picks the option (guessing key names would waste the run).
        const auto& options = schema.options();
        const std::string& key = options[static_cast<unsigned char>(line[0]) % options.size()].key;
        (void)config.set(key, line.substr(1), "--" + key);
      }
    }
    if (edge) {
      auto options = ganglion::uplink::uplink_options_from_config(config);
      if (options.ok()) (void)ganglion::uplink::DataPolicy::create(options->policy);
    }
  } catch (const std::exception& e) {
    die("exception escaped the config reader", e.what());
  }
  return 0;
}
