#include "edge/edge_config.h"

namespace ganglion::edge {

const ConfigSchema& edge_schema() {
  static const ConfigSchema schema = [] {
    ConfigSchema s;
    s.add({.key = "node.id",
           .type = OptionType::kString,
           .default_value = "edge-local",
           .help =
               "This node's identity: in metrics, uplink batches and the controller's registry."});
    s.add({.key = "data.dir",
           .type = OptionType::kString,
           .default_value = "ganglion-data",
           .help = "Folder for everything the node keeps: sessions, retained messages, the "
                   "uplink log, desired state. Created if missing."});
    s.add({.key = "http.listen",
           .type = OptionType::kString,
           .default_value = "127.0.0.1:7080",
           .help = "host:port of the node's HTTP endpoint (/healthz, /readyz, /metrics, API). "
                   "Port 0 picks a free port."});
    s.add({.key = "http.max_body",
           .type = OptionType::kBytes,
           .default_value = "1MiB",
           .help = "Largest request body the HTTP endpoint accepts.",
           .min = 1024,
           .max = 64LL << 20});
    s.add({.key = "mqtt.listeners",
           .type = OptionType::kStringList,
           .default_value = "tcp://127.0.0.1:1883",
           .help = "MQTT listeners as <transport>://<address>: tcp://host:port, "
                   "tls://host:port, ws://host:port (MQTT over WebSocket), unix:///path. "
                   "Port 0 picks a free port."});
    s.add({.key = "mqtt.tls.certificate",
           .type = OptionType::kString,
           .default_value = "",
           .help = "PEM certificate chain of the broker, for tls:// listeners."});
    s.add({.key = "mqtt.tls.key",
           .type = OptionType::kString,
           .default_value = "",
           .help = "PEM private key of the broker, for tls:// listeners."});
    s.add({.key = "mqtt.tls.ca",
           .type = OptionType::kString,
           .default_value = "",
           .help = "PEM CA certificates that sign client certificates (mutual TLS)."});
    s.add({.key = "mqtt.tls.require_client_certificate",
           .type = OptionType::kBool,
           .default_value = "false",
           .help = "Refuse TLS clients without a certificate signed by mqtt.tls.ca; the "
                   "certificate's CN becomes the client's username."});
    s.add({.key = "mqtt.allow_anonymous",
           .type = OptionType::kBool,
           .default_value = "true",
           .help = "Accept clients without a username (or client certificate)."});
    s.add({.key = "mqtt.password_file",
           .type = OptionType::kString,
           .default_value = "",
           .help = "File of users and salted PBKDF2 hashes (written by `ganglion passwd`)."});
    s.add({.key = "mqtt.auth_methods",
           .type = OptionType::kStringList,
           .default_value = "SCRAM-SHA-512",
           .help = "MQTT 5 enhanced authentication methods (AUTH packets) offered against "
                   "mqtt.password_file. Only SCRAM-SHA-512 can be served from the file's "
                   "PBKDF2-HMAC-SHA512 hashes; empty: a CONNECT naming a method is refused "
                   "(0x8C). Without a password file no method is offered."});
    s.add({.key = "mqtt.acl_file",
           .type = OptionType::kString,
           .default_value = "",
           .help = "ACL rules per user and pattern (%u, %c), Mosquitto acl_file syntax plus "
                   "`deny`. Empty: every topic is open."});
    s.add({.key = "mqtt.max_connections",
           .type = OptionType::kInt,
           .default_value = "100000",
           .help = "Connected clients at most; more are refused (CONNACK 0x97).",
           .min = 1,
           .max = 10'000'000});
    s.add({.key = "mqtt.max_connect_rate",
           .type = OptionType::kInt,
           .default_value = "0",
           .help = "CONNECTs accepted per second (burst twice that); 0 = unlimited.",
           .min = 0,
           .max = 1'000'000});
    s.add({.key = "mqtt.max_packet_size",
           .type = OptionType::kBytes,
           .default_value = "1MiB",
           .help = "Largest MQTT packet accepted; larger ones end the connection (0x95).",
           .min = 64,
           .max = 268'435'460});
    s.add({.key = "mqtt.receive_maximum",
           .type = OptionType::kInt,
           .default_value = "1024",
           .help = "QoS 2 messages a client may have awaiting PUBREL (announced in CONNACK).",
           .min = 1,
           .max = 65535});
    s.add({.key = "mqtt.max_inflight",
           .type = OptionType::kInt,
           .default_value = "1024",
           .help = "QoS 1/2 messages sent to a client and not yet acknowledged.",
           .min = 1,
           .max = 65535});
    s.add({.key = "mqtt.max_queued_messages",
           .type = OptionType::kInt,
           .default_value = "10000",
           .help = "Messages queued per session beyond the in-flight window (offline clients "
                   "included).",
           .min = 0,
           .max = 100'000'000});
    s.add({.key = "mqtt.max_queued_bytes",
           .type = OptionType::kBytes,
           .default_value = "64MiB",
           .help = "Bytes queued per session beyond the in-flight window.",
           .min = 0});
    s.add({.key = "mqtt.queue_full_policy",
           .type = OptionType::kString,
           .default_value = "drop-newest",
           .help = "What a full session queue does.",
           .choices = {"drop-newest", "drop-oldest", "disconnect"}});
    s.add({.key = "mqtt.max_topic_length",
           .type = OptionType::kInt,
           .default_value = "1024",
           .help = "Longest topic name or filter, in bytes.",
           .min = 1,
           .max = 65535});
    s.add({.key = "mqtt.max_topic_levels",
           .type = OptionType::kInt,
           .default_value = "32",
           .help = "Most levels in a topic name or filter.",
           .min = 1,
           .max = 1024});
    s.add({.key = "mqtt.max_keep_alive",
           .type = OptionType::kInt,
           .default_value = "3600",
           .help = "Longest keep-alive (seconds) granted to MQTT 5 clients; longer or 0 is "
                   "lowered to this (Server Keep Alive).",
           .min = 0,
           .max = 65535});
    s.add({.key = "mqtt.connect_timeout",
           .type = OptionType::kDuration,
           .default_value = "10s",
           .help = "A connection that has not sent a complete CONNECT by then is closed (slow or "
                   "idle clients holding sockets; the TLS handshake counts too).",
           .min = 100,
           .max = 3'600'000});
    s.add({.key = "mqtt.max_session_expiry",
           .type = OptionType::kDuration,
           .default_value = "7d",
           .help = "Longest time an offline persistent session is kept (also for 3.1.1 "
                   "clean-session=false clients).",
           .min = 0,
           .max = 4'294'967'295'000LL});
    s.add({.key = "mqtt.retain_available",
           .type = OptionType::kBool,
           .default_value = "true",
           .help = "Whether clients may publish retained messages."});
    s.add({.key = "mqtt.maximum_qos",
           .type = OptionType::kInt,
           .default_value = "2",
           .help = "Highest QoS accepted and granted.",
           .min = 0,
           .max = 2});
    s.add({.key = "mqtt.persistence",
           .type = OptionType::kBool,
           .default_value = "true",
           .help = "Keep persistent sessions (subscriptions, queued QoS 1/2 messages) and "
                   "retained messages on disk under <data.dir>/broker, so they survive a "
                   "restart. QoS 1/2 messages for persistent sessions are acknowledged only "
                   "once on disk."});
    s.add({.key = "mqtt.fsync",
           .type = OptionType::kBool,
           .default_value = "true",
           .help = "fdatasync the broker journal before acknowledging (group commit). Off: "
                   "survives a process crash but not a power loss."});
    s.add({.key = "mqtt.sys_interval",
           .type = OptionType::kDuration,
           .default_value = "10s",
           .help = "How often $SYS/broker/... statistics are published; 0ms disables them.",
           .min = 0});
    s.add({.key = "bridge.url",
           .type = OptionType::kString,
           .default_value = "",
           .help = "Upstream MQTT broker to bridge to: tcp://host:port or tls://host:port. "
                   "Empty: no bridge."});
    s.add({.key = "bridge.client_id",
           .type = OptionType::kString,
           .default_value = "",
           .help = "Client id at the upstream broker (also the bridge's local session). "
                   "Empty: <node.id>-bridge."});
    s.add({.key = "bridge.username",
           .type = OptionType::kString,
           .default_value = "",
           .help = "Username at the upstream broker; empty sends none."});
    s.add({.key = "bridge.password",
           .type = OptionType::kString,
           .default_value = "",
           .help = "Password at the upstream broker."});
    s.add({.key = "bridge.version",
           .type = OptionType::kString,
           .default_value = "5",
           .help = "MQTT version spoken upstream.",
           .choices = {"311", "5"}});
    s.add({.key = "bridge.tls.ca",
           .type = OptionType::kString,
           .default_value = "",
           .help = "PEM CA certificates that sign the upstream broker's certificate (tls://). "
                   "Empty: the system's CAs. The host name in bridge.url is checked (and sent "
                   "as SNI)."});
    s.add({.key = "bridge.tls.certificate",
           .type = OptionType::kString,
           .default_value = "",
           .help = "PEM client certificate for mutual TLS with the upstream broker."});
    s.add({.key = "bridge.tls.key",
           .type = OptionType::kString,
           .default_value = "",
           .help = "PEM private key of bridge.tls.certificate."});
    s.add({.key = "bridge.out",
           .type = OptionType::kStringList,
           .default_value = "",
           .help = "Local topics forwarded upstream, one rule each: \"<filter> [<qos>] "
                   "[<remote-prefix>] [<local-prefix>]\" (qos 0-2, default 1; \"-\" for an empty "
                   "prefix). The local topic <local-prefix><filter> goes to <remote-prefix> + the "
                   "rest. QoS 1/2 messages are acknowledged locally only after the upstream "
                   "broker acknowledged them, so they wait in the local session while it is down. "
                   "Example: \"sensors/# 1 sites/plant-7/\"."});
    s.add({.key = "bridge.in",
           .type = OptionType::kStringList,
           .default_value = "",
           .help = "Upstream topics forwarded to the local broker, same syntax as bridge.out: "
                   "<remote-prefix><filter> upstream becomes <local-prefix> + the rest locally. "
                   "A filter in both lists is bridged both ways without echo."});
    s.add({.key = "bridge.keep_alive",
           .type = OptionType::kDuration,
           .default_value = "60s",
           .help = "MQTT keep-alive towards the upstream broker.",
           .min = 0,
           .max = 65'535'000});
    s.add({.key = "bridge.reconnect_min",
           .type = OptionType::kDuration,
           .default_value = "1s",
           .help = "First reconnect delay cap; each failed attempt doubles it up to "
                   "bridge.reconnect_max, and the actual delay is random below the cap "
                   "(full jitter).",
           .min = 1});
    s.add({.key = "bridge.reconnect_max",
           .type = OptionType::kDuration,
           .default_value = "60s",
           .help = "Largest reconnect delay to the upstream broker.",
           .min = 1});
    s.add({.key = "uplink.url",
           .type = OptionType::kString,
           .default_value = "",
           .help = "Receiver of the store-and-forward uplink (the cloud, or any MQTT 5 broker): "
                   "tcp://host:port or tls://host:port. Batches go to "
                   "ganglion/v1/<node.id>/up/<class> with QoS 1. Empty: no uplink."});
    s.add({.key = "uplink.client_id",
           .type = OptionType::kString,
           .default_value = "",
           .help = "Client id at the receiver, also the uplink's persistent session at the local "
                   "broker. Empty: <node.id>-uplink."});
    s.add({.key = "uplink.username",
           .type = OptionType::kString,
           .default_value = "",
           .help = "Username at the receiver; empty sends none."});
    s.add({.key = "uplink.password",
           .type = OptionType::kString,
           .default_value = "",
           .help = "Password at the receiver."});
    s.add({.key = "uplink.tls.ca",
           .type = OptionType::kString,
           .default_value = "",
           .help = "PEM CA certificates that sign the receiver's certificate (tls://). Empty: the "
                   "system's CAs. The host name in uplink.url is checked and sent as SNI."});
    s.add({.key = "uplink.tls.certificate",
           .type = OptionType::kString,
           .default_value = "",
           .help = "PEM client certificate for mutual TLS with the receiver."});
    s.add({.key = "uplink.tls.key",
           .type = OptionType::kString,
           .default_value = "",
           .help = "PEM private key of uplink.tls.certificate."});
    s.add({.key = "uplink.keep_alive",
           .type = OptionType::kDuration,
           .default_value = "30s",
           .help = "MQTT keep-alive towards the receiver.",
           .min = 0,
           .max = 65'535'000});
    s.add({.key = "uplink.reconnect_min",
           .type = OptionType::kDuration,
           .default_value = "1s",
           .help = "First reconnect delay cap; doubles per failed attempt up to "
                   "uplink.reconnect_max, the actual delay random below it (full jitter). A "
                   "batch the receiver refuses is sent again after 5 times this.",
           .min = 1});
    s.add({.key = "uplink.reconnect_max",
           .type = OptionType::kDuration,
           .default_value = "60s",
           .help = "Largest reconnect delay to the receiver.",
           .min = 1});
    s.add({.key = "uplink.routes",
           .type = OptionType::kStringList,
           .default_value = "",
           .help = "Local topics that go up, one rule each: \"<topic-filter> <class>\", e.g. "
                   "\"factory/+/alerts/# alert\". Taken from the local broker with QoS 1 in a "
                   "persistent session and acknowledged to it only once durable in the uplink "
                   "log (or dropped and counted when the log refuses them)."});
    s.add({.key = "uplink.classes",
           .type = OptionType::kStringList,
           .default_value = "alert priority=2 full=refuse-newest linger=0ms,"
                            "telemetry priority=1 ttl=7d full=drop-oldest,"
                            "bulk priority=0 ttl=3d full=drop-oldest",
           .help = "Uplink classes: \"<name> [priority=N] [ttl=<duration>] [quota=<bytes>] "
                   "[full=drop-oldest|refuse-newest] [linger=<duration>]\". Higher priority "
                   "drains first and is dropped last; ttl 0 or absent keeps records until sent; "
                   "quota absent: only uplink.disk_budget applies; full: what a full quota or "
                   "budget does (drop-oldest deletes the oldest unsent records, refuse-newest "
                   "refuses new ones; both counted in ganglion_uplink_dropped_total)."});
    s.add({.key = "uplink.disk_budget",
           .type = OptionType::kBytes,
           .default_value = "1GiB",
           .help = "Disk bytes of the whole uplink log (<data.dir>/uplink). Lower-priority "
                   "drop-oldest classes give way first.",
           .min = 4096});
    s.add({.key = "uplink.segment_bytes",
           .type = OptionType::kBytes,
           .default_value = "16MiB",
           .help = "Size of one log segment file (at most a quarter of uplink.disk_budget).",
           .min = 4096,
           .max = 1LL << 30});
    s.add({.key = "uplink.fsync",
           .type = OptionType::kString,
           .default_value = "interval",
           .help = "When the uplink log fsyncs: always (before acknowledging each message, "
                   "group commit), interval (every uplink.fsync_interval; messages are "
                   "acknowledged to the broker after that fsync), never (survives a process "
                   "crash, not a power loss).",
           .choices = {"always", "interval", "never"}});
    s.add({.key = "uplink.fsync_interval",
           .type = OptionType::kDuration,
           .default_value = "100ms",
           .help = "fsync period of the uplink log under uplink.fsync: interval.",
           .min = 1});
    s.add({.key = "uplink.bandwidth",
           .type = OptionType::kBytes,
           .default_value = "0",
           .help = "Bandwidth budget for batches in bytes per second (after compression); 0 = "
                   "unlimited. Higher classes get it first.",
           .min = 0});
    s.add({.key = "uplink.burst",
           .type = OptionType::kBytes,
           .default_value = "0",
           .help = "Bytes that may go at once above the budget (token bucket size); 0 = one "
                   "second of uplink.bandwidth.",
           .min = 0});
    s.add({.key = "uplink.batch_max_records",
           .type = OptionType::kInt,
           .default_value = "1000",
           .help = "Records per batch at most.",
           .min = 1,
           .max = 1'000'000});
    s.add({.key = "uplink.batch_max_bytes",
           .type = OptionType::kBytes,
           .default_value = "256KiB",
           .help = "Record bytes per batch before compression, about (at least one record).",
           .min = 1024,
           .max = 64LL << 20});
    s.add({.key = "uplink.batch_linger",
           .type = OptionType::kDuration,
           .default_value = "500ms",
           .help = "How long a batch that is not full waits for more records (per class: "
                   "linger= in uplink.classes).",
           .min = 0});
    s.add({.key = "uplink.window",
           .type = OptionType::kInt,
           .default_value = "1",
           .help = "Batches in flight per class. 1 keeps the receiver's view strictly in order "
                   "even across refusals; more fills a long round trip.",
           .min = 1,
           .max = 64});
    s.add({.key = "uplink.compression",
           .type = OptionType::kString,
           .default_value = "zstd",
           .help = "Batch body compression.",
           .choices = {"zstd", "none"}});
    s.add({.key = "uplink.zstd_level",
           .type = OptionType::kInt,
           .default_value = "3",
           .help = "zstd compression level.",
           .min = 1,
           .max = 19});
    s.add({.key = "uplink.destination_region",
           .type = OptionType::kString,
           .default_value = "",
           .help =
               "Region of the receiver. When uplink.policy.allowed_regions is set and this "
               "is not in it, nothing is sent (records stay in the log; GET /uplink says why)."});
    s.add({.key = "uplink.policy.region",
           .type = OptionType::kString,
           .default_value = "",
           .help = "This site's region, carried in every batch."});
    s.add({.key = "uplink.policy.allowed_regions",
           .type = OptionType::kStringList,
           .default_value = "",
           .help = "Regions this site's data may go to; empty: any."});
    s.add({.key = "uplink.policy.local_only",
           .type = OptionType::kStringList,
           .default_value = "",
           .help = "Topic filters whose messages never leave the site, e.g. "
                   "\"factory/+/camera/#\" (dropped before the log, counted)."});
    s.add({.key = "uplink.policy.fields",
           .type = OptionType::kStringList,
           .default_value = "",
           .help = "Field rules on JSON payloads before they enter the log: \"<topic-filter> "
                   "<drop|redact|hash> <path>\", path dotted for nested fields (a.b.c). redact "
                   "writes \"***\"; hash writes hex HMAC-SHA256 with uplink.policy.hash_key. A "
                   "non-JSON payload under a matching rule is not uplinked (counted)."});
    s.add({.key = "uplink.policy.hash_key",
           .type = OptionType::kString,
           .default_value = "",
           .help = "HMAC key for hash rules (required when one exists). Never shown by the API."});
    s.add({.key = "cloud.url",
           .type = OptionType::kString,
           .default_value = "",
           .help =
               "The controller: https://host:port. The node enrols there once (bootstrap "
               "token -> CSR -> certificate, kept under <data.dir>/cloud), then keeps an MQTT 5 "
               "mutual-TLS link for heartbeats, its reported twin and desired state; the uplink "
               "uses the same identity unless uplink.url is set. Empty: a standalone node."});
    s.add({.key = "cloud.token",
           .type = OptionType::kString,
           .default_value = "",
           .help = "Bootstrap token for the first enrolment (single use; not needed once "
                   "<data.dir>/cloud holds a certificate). Never logged."});
    s.add({.key = "cloud.ca",
           .type = OptionType::kString,
           .default_value = "",
           .help = "PEM CA to verify the controller's HTTPS certificate on the first enrolment. "
                   "Empty: trust on first use: the CA the controller returns is pinned, which an "
                   "attacker on the path during the very first start could abuse."});
    s.add({.key = "cloud.mqtt_url",
           .type = OptionType::kString,
           .default_value = "",
           .help = "The controller's MQTT endpoint as this node reaches it (tls://host:port), "
                   "when that differs from the address handed at enrolment: a proxy, NAT or "
                   "port forward. Empty: the enrolment's. Used by the cloud link and the uplink."});
    s.add({.key = "cloud.heartbeat_interval",
           .type = OptionType::kDuration,
           .default_value = "10s",
           .help = "How often a heartbeat goes to ganglion/v1/<node.id>/heartbeat while connected.",
           .min = 100,
           .max = 3'600'000});
    s.add({.key = "cloud.labels",
           .type = OptionType::kStringList,
           .default_value = "",
           .help = "Labels of this node as k=v (e.g. site=plant-7,line=3), sent at enrolment and "
                   "in the reported twin; deployments select nodes by them."});
    s.add({.key = "cloud.enrol_wait",
           .type = OptionType::kDuration,
           .default_value = "30s",
           .help = "How long start-up waits for the first enrolment when the controller is "
                   "unreachable. After that the node serves locally and keeps trying; the uplink "
                   "then gets the enrolled identity at the next start.",
           .min = 0,
           .max = 3'600'000});
    s.add({.key = "io.threads",
           .type = OptionType::kInt,
           .default_value = "0",
           .help = "Event-loop threads; 0 means one per CPU core.",
           .min = 0,
           .max = 256});
    s.add({.key = "log.level",
           .type = OptionType::kString,
           .default_value = "info",
           .help = "Least severe level logged.",
           .choices = {"trace", "debug", "info", "warn", "error", "off"}});
    s.add({.key = "log.format",
           .type = OptionType::kString,
           .default_value = "text",
           .help = "text for people, json for one JSON object per line.",
           .choices = {"text", "json"}});
    return s;
  }();
  return schema;
}

}  // namespace ganglion::edge
