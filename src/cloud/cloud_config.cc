#include "cloud/cloud_config.h"

namespace ganglion::cloud {

const ConfigSchema& cloud_schema() {
  static const ConfigSchema schema = [] {
    ConfigSchema s;
    s.add({.key = "cloud.data_dir",
           .type = OptionType::kString,
           .default_value = "ganglion-cloud-data",
           .help = "Folder for everything the controller keeps: the store (SQLite), the PKI "
                   "(CA, server and signing keys, mode 0600), the broker's sessions and "
                   "endpoints.json. Created if missing."});
    s.add({.key = "cloud.api.listen",
           .type = OptionType::kString,
           .default_value = "127.0.0.1:8443",
           .help =
               "host:port of the HTTPS REST API (enrolment included). Port 0 picks a free port."});
    s.add({.key = "cloud.api.max_body",
           .type = OptionType::kBytes,
           .default_value = "1MiB",
           .help = "Largest request body the API accepts.",
           .min = 1024,
           .max = 64LL << 20});
    s.add({.key = "cloud.api.threads",
           .type = OptionType::kInt,
           .default_value = "2",
           .help = "Threads of the REST API's own event loops, apart from the nodes' MQTT "
                   "loops (io.threads), so that API requests never queue behind MQTT work. "
                   "Handlers that write to the store (enrolment, labels, tokens) block their "
                   "loop while they wait for the disk: two let reads pass a slow write. 0 runs "
                   "the API on the nodes' loops (the behaviour before; for comparison).",
           .min = 0,
           .max = 64});
    s.add({.key = "cloud.mqtt.listen",
           .type = OptionType::kString,
           .default_value = "tls://127.0.0.1:8883",
           .help = "MQTT 5 listener for nodes: tls://host:port, mutual TLS with certificates "
                   "issued by the controller's CA. Port 0 picks a free port."});
    s.add({.key = "cloud.mqtt.public_url",
           .type = OptionType::kString,
           .default_value = "",
           .help = "The MQTT URL handed to enrolling nodes (tls://host:port). Empty: the "
                   "listener's bound address."});
    s.add({.key = "cloud.mqtt.max_packet_size",
           .type = OptionType::kBytes,
           .default_value = "4MiB",
           .help = "Largest MQTT packet (an uplink batch) accepted from a node.",
           .min = 1024,
           .max = 268'435'460});
    s.add({.key = "cloud.tls.names",
           .type = OptionType::kStringList,
           .default_value = "127.0.0.1,localhost",
           .help = "DNS names and IP addresses put in the controller's TLS certificate "
                   "(subject alternative names)."});
    s.add({.key = "cloud.cert_validity",
           .type = OptionType::kDuration,
           .default_value = "30d",
           .help = "Validity of node certificates issued at enrolment and renewal.",
           .min = 60'000,
           .max = 3650LL * 86'400'000});
    s.add({.key = "cloud.heartbeat.interval",
           .type = OptionType::kDuration,
           .default_value = "30s",
           .help = "Heartbeat period expected from nodes; a heartbeat later than 1.5 times this "
                   "makes a node degraded.",
           .min = 100,
           .max = 86'400'000});
    s.add({.key = "cloud.heartbeat.offline_grace",
           .type = OptionType::kDuration,
           .default_value = "2m",
           .help = "Without a heartbeat for this long a node is offline.",
           .min = 100,
           .max = 30LL * 86'400'000});
    s.add({.key = "cloud.health.check_interval",
           .type = OptionType::kDuration,
           .default_value = "1s",
           .help = "How often node health is re-evaluated.",
           .min = 10,
           .max = 3'600'000});
    s.add({.key = "cloud.store.flush_interval",
           .type = OptionType::kDuration,
           .default_value = "1s",
           .help = "How often the latest heartbeats and reported twins, kept in memory, are "
                   "written to the store (in one transaction). A crash loses at most this much "
                   "of them; uplink batches are always stored before they are acknowledged.",
           .min = 10,
           .max = 60'000});
    s.add({.key = "cloud.ingest.max_batch_bytes",
           .type = OptionType::kBytes,
           .default_value = "64MiB",
           .help = "Largest decompressed uplink batch body; larger ones are rejected.",
           .min = 1024,
           .max = 1LL << 30});
    s.add({.key = "cloud.retention.raw",
           .type = OptionType::kDuration,
           .default_value = "7d",
           .help = "Raw ingested records older than this are deleted (per-minute rollups stay).",
           .min = 1000});
    s.add({.key = "cloud.retention.rollup",
           .type = OptionType::kDuration,
           .default_value = "400d",
           .help = "Per-minute rollups older than this are deleted.",
           .min = 60'000});
    s.add({.key = "cloud.retention.interval",
           .type = OptionType::kDuration,
           .default_value = "1m",
           .help = "How often rollups are computed and retention is applied.",
           .min = 100,
           .max = 86'400'000});
    s.add({.key = "io.threads",
           .type = OptionType::kInt,
           .default_value = "0",
           .help = "Event-loop threads; 0 = one per hardware thread.",
           .min = 0,
           .max = 256});
    s.add({.key = "log.level",
           .type = OptionType::kString,
           .default_value = "info",
           .help = "Log level.",
           .choices = {"trace", "debug", "info", "warn", "error", "off"}});
    s.add({.key = "log.format",
           .type = OptionType::kString,
           .default_value = "text",
           .help = "Log format: text for people, json for machines.",
           .choices = {"text", "json"}});
    return s;
  }();
  return schema;
}

}  // namespace ganglion::cloud
