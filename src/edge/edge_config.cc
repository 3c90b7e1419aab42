#include "edge/edge_config.h"

namespace ganglion::edge {

const ConfigSchema& edge_schema() {
  static const ConfigSchema schema = [] {
    ConfigSchema s;
    s.add({.key = "node.id", .type = OptionType::kString, .default_value = "edge-local",
           .help = "This node's identity: in metrics, uplink batches and the controller's registry."});
    s.add({.key = "data.dir", .type = OptionType::kString, .default_value = "ganglion-data",
           .help = "Folder for everything the node keeps: sessions, retained messages, the "
                   "uplink log, desired state. Created if missing."});
    s.add({.key = "http.listen", .type = OptionType::kString, .default_value = "127.0.0.1:7080",
           .help = "host:port of the node's HTTP endpoint (/healthz, /readyz, /metrics, API). "
                   "Port 0 picks a free port."});
    s.add({.key = "http.max_body", .type = OptionType::kBytes, .default_value = "1MiB",
           .help = "Largest request body the HTTP endpoint accepts.", .min = 1024,
           .max = 64LL << 20});
    s.add({.key = "io.threads", .type = OptionType::kInt, .default_value = "0",
           .help = "Event-loop threads; 0 means one per CPU core.", .min = 0, .max = 256});
    s.add({.key = "log.level", .type = OptionType::kString, .default_value = "info",
           .help = "Least severe level logged.",
           .choices = {"trace", "debug", "info", "warn", "error", "off"}});
    s.add({.key = "log.format", .type = OptionType::kString, .default_value = "text",
           .help = "text for people, json for one JSON object per line.",
           .choices = {"text", "json"}});
    return s;
  }();
  return schema;
}

}  // namespace ganglion::edge
