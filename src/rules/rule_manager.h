// RuleManager: the edge node's streaming rules (eKuiper-compatible): the catalog of streams
// and tables, the rules (SQL + actions), their lifecycle, their sources and sinks, the Lua
// functions they use, persistence, metrics and the REST API (/streams, /tables, /rules,
// /functions).
//
//   broker --(one InProcessClient "ganglion-rules", one subscription per stream DATASOURCE,
//             shared by every rule reading the stream)--> Event
//     --> for each running rule reading it: bounded queue (options.bufferLength; full: dropped
//         and counted) --> the rule's own executor: Query::push (stream/query.h)
//     --> Emission --> the rule's sinks (sinks.h), on the same executor; windows closed by a
//         timer are handed over to it too, so the Clock's thread never runs a sink.
//
// Isolation: the source handler only enqueues, so a slow or failing rule never delays the
// broker's delivery or other rules; each rule has its own executor and its own client of the
// broker ("ganglion-rule-<id>", ACLs apply to what it publishes); webhooks are asynchronous
// with timeouts. Evaluation errors, payloads that do not fit the schema and failed sink
// deliveries are counted per rule and skipped.
//
// Create validates everything first (rule id, SQL parse and plan against the catalog, every
// action's properties) and creates nothing on error. SQL errors carry line, column, the
// offending line and a caret under the spot, and say what was expected.
//
// Persistence: <dir>/streams.json, rules.json (with whether each rule runs) and
// functions.json, rewritten atomically through the Env after each change and restored by
// open(): streams, then functions, then rules (started if they were running). A rule that no
// longer plans after a restart (its stream changed) is kept, stopped, with the error.
//
// Metrics (label rule): ganglion_rule_records_in_total, _records_out_total,
// _dropped_total{reason=queue_full|decode|late|overflow}, _errors_total (evaluation),
// _sink_errors_total, _filtered_total, _running, _queue_length, _memory_bytes (queued input
// bytes), ganglion_rule_process_latency_seconds (histogram: enqueue to processed).
// Refreshed every second and on GET /rules/{id}/status.
//
// Thread: every public method is thread-safe (one mutex serialises control operations; rule
// executors and the source handler never take it). stop() must not be called from a rule's
// executor.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/config.h"
#include "base/env.h"
#include "base/metrics.h"
#include "base/status.h"
#include "functions/function_registry.h"
#include "rules/executor.h"
#include "rules/http_client.h"
#include "rules/rule_spec.h"
#include "rules/sinks.h"

namespace ganglion::broker {
class Broker;
}
namespace ganglion::net {
class HttpRouter;
}
namespace ganglion::uplink {
class Uplink;
}

namespace ganglion::rules {

struct RuleManagerOptions {
  std::string dir;  // where definitions persist; empty: nothing is persisted
  // The interval of the metrics refresh; zero: only on demand (refresh_metrics()).
  Duration metrics_interval = std::chrono::seconds(1);
  // How long a call that adds a source subscription (create/start a rule) waits for the
  // broker's SUBACK, so that events published once the call returned reach the rule. Zero:
  // no wait (tests with manual executors).
  Duration subscribe_wait = std::chrono::seconds(2);
};

// The collaborators; each must outlive the manager.
struct RuleManagerParts {
  Env* env = nullptr;
  Clock* clock = nullptr;
  broker::Broker* broker = nullptr;
  MetricsRegistry* metrics = nullptr;
  ExecutorFactory executors;         // one per rule, one for sources, one for triggers
  std::shared_ptr<HttpSender> http;  // webhook sinks (nullptr: rest sinks refused)
  UplinkSubmit uplink;               // uplink sinks (empty: refused)
};

// One row of GET /rules.
struct RuleSummary {
  std::string id;
  std::string status;  // "Running", "Stopped: canceled manually.", "Stopped: <error>"
};

class RuleManager {
 public:
  RuleManager(RuleManagerParts parts, RuleManagerOptions options);
  ~RuleManager();  // stop()
  RuleManager(const RuleManager&) = delete;
  RuleManager& operator=(const RuleManager&) = delete;

  // Connects to the broker and restores what `dir` holds. Errors: unreadable or corrupt
  // files (kCorruption naming the file).
  Status open();
  // Stops every rule and trigger and disconnects (definitions stay on disk). Idempotent.
  void stop();

  // For the edge node: dir <data.dir>/rules, worker threads, the Beast webhook client, the
  // uplink when enabled (may be null). Opened.
  static Result<std::unique_ptr<RuleManager>> start(const Config& config, Env& env, Clock& clock,
                                                    broker::Broker& broker, uplink::Uplink* uplink,
                                                    MetricsRegistry& metrics);

  // --- streams and tables (CREATE STREAM / CREATE TABLE) -------------------------------
  // kInvalidArgument (positioned SQL error, or a TABLE given to the stream API and vice
  // versa), kAlreadyExists.
  Status create_stream(std::string_view create_sql, bool table);
  // Replaces the definition (same name) and restarts the running rules that read it.
  Status update_stream(std::string_view name, std::string_view create_sql, bool table);
  // kFailedPrecondition while rules read it (their ids are named), kNotFound.
  Status drop_stream(std::string_view name, bool table);
  std::vector<std::string> list_streams(bool table) const;
  // eKuiper's description: {"Name", "StreamType", "StreamFields": [{"Name","FieldType"}],
  // "Options": {...}, "Statement"}.
  Result<std::string> describe_stream(std::string_view name, bool table) const;

  // --- rules ---------------------------------------------------------------------------
  // Validates and plans; on error nothing is created. Starts it unless spec.triggered is
  // false. kAlreadyExists, kInvalidArgument.
  Status create_rule(RuleSpec spec);
  // Replaces the definition (validated first; on error the old rule keeps running) and
  // restarts it if it was running.
  Status update_rule(RuleSpec spec);
  Status delete_rule(std::string_view id);
  Status start_rule(std::string_view id);
  Status stop_rule(std::string_view id);
  Status restart_rule(std::string_view id);
  std::vector<RuleSummary> list_rules() const;
  Result<RuleSpec> rule(std::string_view id) const;
  bool running(std::string_view id) const;
  // eKuiper-style metrics object (see README.md).
  Result<std::string> rule_status(std::string_view id) const;

  // --- functions -----------------------------------------------------------------------
  // Defines or replaces a Lua function (persisted); a trigger subscribes it to a topic filter.
  Status define_function(functions::FunctionSpec spec);
  Status remove_function(std::string_view name);
  functions::FunctionRegistry& functions() { return functions_; }

  // Registers the REST API on `router` (see README.md for the routes and bodies).
  void add_routes(net::HttpRouter& router);

  // Copies the rules' counters into the metrics registry.
  void refresh_metrics();

  // For tests: processes nothing, just tells how many events wait in the rule's queue.
  std::size_t queued(std::string_view id) const;

 private:
  struct Impl;
  struct Rule;
  functions::FunctionRegistry functions_;
  std::shared_ptr<Impl> impl_;
};

}  // namespace ganglion::rules
