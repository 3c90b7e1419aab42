// Uplink: the edge node's store-and-forward path to the cloud, from "a message enters the
// uplink" to "the receiver acknowledged it".
//
//   local broker --(routes: InProcessClient, persistent session, QoS 1, deferred ack)--+
//   Uplink::submit(class, event)  (stream rules' uplink sink) ------------------------+
//        --> DataPolicy (local-only, drop/redact/hash fields)  --> LogStore (durable, per class)
//        --> Sender (batches, zstd, priority, bandwidth) --> MqttClient (MQTT 5, TLS/mTLS)
//        --> PUBACK --> consumer offset committed --> segments deleted
//
// Delivery: a message taken from the broker is acknowledged to the broker only once its
// record is durable in the log (per uplink.fsync), so a message the broker acknowledged to a
// device is never lost between broker and log. When the log refuses it (class quota with
// refuse-newest, total budget, full disk, I/O error) the message is dropped, counted per class
// and reason, logged, and acknowledged anyway, so devices and local processing never stall
// behind a full disk. Messages the data policy keeps on site are acknowledged and counted.
//
// Thread model: the uplink runs on its own thread and io_context (the routes' client, the
// sender and the MQTT client), so batching and compression never delay the broker's loops.
// submit(), stats and JSON are thread-safe. start()/stop() from the node's thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/config.h"
#include "base/env.h"
#include "base/metrics.h"
#include "base/status.h"
#include "client/mqtt_client.h"
#include "event/event.h"
#include "log/log_store.h"
#include "uplink/policy.h"
#include "uplink/sender.h"

namespace ganglion::broker {
class Broker;
}
namespace ganglion::net {
class HttpRouter;
}

namespace ganglion::uplink {

// One class of the uplink, from "<name> [priority=N] [ttl=7d] [quota=512MiB]
// [full=drop-oldest|refuse-newest] [linger=500ms]" (uplink.classes).
struct ClassSpec {
  std::string name;
  int priority = 0;
  Duration ttl = Duration::zero();  // zero: records never expire
  std::uint64_t quota = 0;          // zero: only the total budget applies
  log::QuotaPolicy full = log::QuotaPolicy::kDropOldest;
  std::optional<Duration> linger;  // unset: uplink.batch_linger
};
Result<ClassSpec> parse_class_spec(std::string_view text);

// "<topic-filter> <class>" (uplink.routes).
struct Route {
  std::string filter;
  std::string cls;
};
Result<Route> parse_route(std::string_view text);

struct UplinkOptions {
  std::string node = "edge-local";
  std::string dir;  // the log's folder (<data.dir>/uplink)
  std::vector<ClassSpec> classes;
  std::uint64_t disk_budget = 1ull << 30;
  log::FsyncPolicy fsync = log::FsyncPolicy::kInterval;
  Duration fsync_interval = std::chrono::milliseconds(100);
  std::uint64_t segment_bytes = 16u << 20;
  std::vector<Route> routes;
  PolicyOptions policy;
  std::string destination_region;  // the receiver's region, checked against the policy
  SenderOptions sender;
  client::MqttClientOptions remote;
  std::string local_client_id = "ganglion-uplink";
  std::uint32_t local_session_expiry = 7 * 86'400;
  std::uint16_t local_inflight = 1024;
};

// The uplink.* keys of the edge configuration. remote.url empty: the uplink is disabled.
// Errors: kInvalidArgument naming the key.
Result<UplinkOptions> uplink_options_from_config(const Config& config);

struct DropCounts {
  std::uint64_t quota = 0;        // log refused: class quota or total budget
  std::uint64_t disk = 0;         // log failed: full disk, I/O error
  std::uint64_t local_only = 0;   // data policy: never leaves the site
  std::uint64_t unparseable = 0;  // data policy: field rule on a non-JSON payload
};

class Uplink {
 public:
  // Opens (recovers) the log, checks the policy, starts its thread, subscribes the routes on
  // `broker` (may be null: submit() only) and starts connecting upstream. `metrics` (may be
  // null) receives the ganglion_uplink_* families. env, clock, broker and metrics must
  // outlive the Uplink. Errors: kInvalidArgument for bad options, else the log's error.
  static Result<std::unique_ptr<Uplink>> start(UplinkOptions options, Env& env, Clock& clock,
                                               broker::Broker* broker, MetricsRegistry* metrics);
  ~Uplink();
  Uplink(const Uplink&) = delete;
  Uplink& operator=(const Uplink&) = delete;

  // Stops sending and taking messages (the broker keeps queuing for the persistent session),
  // closes the log (flushing it) and joins the thread. Idempotent.
  void stop();

  // Logs `event` (topic and payload) in class `cls` after the data policy; `done` (may be
  // empty) runs once the record is durable or failed, on the log's committer thread.
  // Fails fast, without calling `done`: kNotFound (unknown class), kResourceExhausted /
  // kNoSpace / kIoError (the log refuses: counted), kFailedPrecondition (stopped).
  // A message the policy keeps local returns ok (counted) and calls `done` with ok.
  Status submit(std::string_view cls, const Event& event, std::function<void(Status)> done = {});

  // GET /uplink and GET /uplink/policy.
  void add_http_routes(net::HttpRouter& router);
  std::string status_json() const;
  std::string policy_json() const;

  SenderStats sender_stats() const;
  DropCounts drops(std::string_view cls) const;
  client::ClientStats link_stats() const;
  // Refreshes the ganglion_uplink_* metrics (also done every tick).
  void refresh_metrics();

 private:
  struct Impl;
  explicit Uplink(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace ganglion::uplink
