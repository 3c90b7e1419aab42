// Rule sinks: where a rule's output goes. One Sink per action of a rule, built from the
// action's properties (eKuiper's names), fed every Emission (the rows of one window close or
// one event) on the rule's executor.
//
//   mqtt      topic (required; Go-template fields "alerts/{{.deviceId}}"), qos 0..2,
//             retained, sendSingle, dataTemplate (payload template, e.g. {"t":{{.temp}}});
//             `server`, `clientId`, `username`... are accepted and ignored: the sink publishes
//             through the rule's own client of the local broker (client id
//             "ganglion-rule-<id>"), so the broker's ACLs apply to it.
//   log       one info line per payload through spdlog.
//   rest      url (http:// only), method (post|put|patch|get|delete, default post),
//             headers {k: v}, sendSingle, timeout (ms, default 5000), retryCount (default 0),
//             retryInterval (ms, default 1000), bufferLength (requests in flight or waiting for
//             a retry, default 1024; beyond: dropped and counted). Asynchronous: a slow server
//             never blocks the rule. A status >= 300 counts as a failure.
//   function  name (a Lua function, see functions/): handle(event) once per row with
//             event.payload = the row; what it emit()s is published through the rule's client.
//   uplink    class (required), topic (default "rules/<rule id>"), sendSingle: each payload
//             goes to Uplink::submit(class, ...) (store-and-forward to the cloud).
//   nop       counts and discards (benchmarks).
//
// Payloads follow eKuiper: a JSON array of the rows, or one JSON object per row with
// sendSingle (sink_payloads()). Templates with sendSingle=false render against the first row.
//
// Thread: deliver() is called on the rule's executor only. Completions of asynchronous work
// (publish acks, HTTP replies, retries) may run on other threads: they touch only the
// sink's shared state. Destroying a sink cancels its pending retries; replies still in flight
// only update counters nobody reads any more.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "base/status.h"
#include "event/event.h"
#include "event/value.h"
#include "rules/http_client.h"
#include "rules/rule_spec.h"
#include "stream/query.h"

namespace ganglion::broker {
class InProcessClient;
}
namespace ganglion::functions {
class FunctionRegistry;
}

namespace ganglion::rules {

// What an uplink sink calls (Uplink::submit in the edge node). Fails fast; must not block.
using UplinkSubmit = std::function<Status(std::string_view cls, const Event& event)>;

// Counters of one sink (eKuiper's sink_<type>_<i>_0_* metrics). Thread-safe.
struct SinkStats {
  std::atomic<std::uint64_t> records_in{0};   // payloads handed to the sink
  std::atomic<std::uint64_t> records_out{0};  // payloads delivered (acked, 2xx, logged...)
  std::atomic<std::uint64_t> errors{0};       // failed deliveries (after retries)
  std::atomic<std::uint64_t> dropped{0};      // refused because the sink's buffer was full
  std::atomic<std::uint64_t> retries{0};      // webhook attempts after the first
  std::atomic<std::int64_t> in_flight{0};     // asynchronous deliveries not finished
  std::atomic<std::int64_t> last_latency_us{0};

  void error(std::string message, std::int64_t now_ms);
  std::string last_error() const;
  std::int64_t last_error_ms() const;

 private:
  mutable std::mutex mu_;
  std::string last_error_;          // GUARDED_BY(mu_)
  std::int64_t last_error_ms_ = 0;  // GUARDED_BY(mu_)
};

// What sinks may use. Everything outlives the sinks of a rule.
struct SinkContext {
  std::string rule_id;
  Clock* clock = nullptr;
  broker::InProcessClient* client = nullptr;         // the rule's client (mqtt, function)
  functions::FunctionRegistry* functions = nullptr;  // function sink
  UplinkSubmit uplink;                               // uplink sink; empty: not enabled
  HttpSender* http = nullptr;                        // rest sink
};

class Sink {
 public:
  explicit Sink(std::string type) : type_(std::move(type)), stats_(std::make_shared<SinkStats>()) {}
  virtual ~Sink() = default;
  virtual void deliver(const stream::Emission& emission) = 0;
  const std::string& type() const { return type_; }
  const SinkStats& stats() const { return *stats_; }

 protected:
  std::string type_;
  std::shared_ptr<SinkStats> stats_;
};

// Builds the sink of `action`. Errors: kInvalidArgument naming the property
// ("actions[0].mqtt.topic: required"), unknown sink types, a function sink naming no
// defined function, an uplink sink when the uplink is not enabled.
Result<std::unique_ptr<Sink>> make_sink(const ActionSpec& action, std::size_t index,
                                        const SinkContext& context);

// Renders a Go-template-style string against a row: "{{.a}}" the field a, "{{.a.b}}" a nested
// field, "{{json .a}}" the field as JSON, "{{.}}" the whole row as JSON; spaces inside the
// braces are allowed. Strings render without quotes, other values as JSON, a missing field
// as "". Text outside {{ }} is copied.
std::string render_template(std::string_view tmpl, const Value& row);
// Checks that every "{{" has a "}}" and each action is one of the forms above.
Status check_template(std::string_view tmpl);

}  // namespace ganglion::rules
