// RuleSpec and StreamSpec: the documents the rule manager accepts, stores and returns, in the
// shapes LF Edge eKuiper documents for its REST API, so existing tooling works unchanged.
//
// A rule (POST /rules, stored in <data.dir>/rules/rules.json):
//
//   {"id": "rule1",                                   [A-Za-z0-9_.-], 1..64 (labels metrics)
//    "name": "optional display name",
//    "sql": "SELECT * FROM demo WHERE temperature > 50",
//    "actions": [{"mqtt": {"topic": "alerts/{{.deviceId}}", "qos": 1, "retained": false,
//                          "sendSingle": true}},
//                {"log": {}},
//                {"rest": {"url": "http://127.0.0.1:9000/hook", "method": "post", "timeout":
//                5000}},
//                {"function": {"name": "myfn"}},
//                {"uplink": {"class": "alert"}}],
//    "options": {"isEventTime": false, "lateTolerance": 1000, "sendMetaToSink": false,
//                "bufferLength": 1024},
//    "triggered": true}                               false: created stopped
//
// Each action is an object with exactly one key, the sink type; its properties are checked
// when the sink is built (sinks.h), not here. Unknown rule options are kept and returned but
// not used (eKuiper has many: qos, checkpointInterval, restartStrategy...).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "event/value.h"

namespace ganglion::rules {

struct ActionSpec {
  std::string type;  // "mqtt", "log", "rest", "function", "uplink", "nop"
  Value props;       // an object (possibly empty)
};

struct RuleOptions {
  std::int64_t late_tolerance_ms = 1000;  // lateTolerance (event time only)
  std::size_t buffer_length = 1024;       // bufferLength: events queued per rule, beyond: dropped
  bool is_event_time = false;             // isEventTime: informative; event time comes from
                                          // the stream's TIMESTAMP option
  bool send_meta_to_sink = false;         // sendMetaToSink: accepted, not used
};

struct RuleSpec {
  std::string id;
  std::string name;
  std::string sql;
  std::vector<ActionSpec> actions;
  RuleOptions options;
  Value options_doc;  // the "options" object as given (returned by GET /rules/{id})
  bool triggered = true;
};

// Parses a rule document. Errors: kInvalidArgument naming the key ("actions[1]: an action
// is an object with one key, the sink type"), or the JSON error.
Result<RuleSpec> parse_rule_spec(std::string_view json);
Result<RuleSpec> rule_spec_from_value(const Value& doc);
// The document back (id, name, sql, actions, options, triggered).
Value rule_spec_to_value(const RuleSpec& spec);

// Checks a rule id: [A-Za-z0-9_.-], 1..64 characters.
Status validate_rule_id(std::string_view id);

// Reads an optional property of an action's `props`, checking its type; errors name
// "<where>.<key>".
Result<std::string> string_prop(const Value& props, std::string_view key, std::string_view where,
                                std::string fallback = "");
Result<std::int64_t> int_prop(const Value& props, std::string_view key, std::string_view where,
                              std::int64_t fallback);
Result<bool> bool_prop(const Value& props, std::string_view key, std::string_view where,
                       bool fallback);

}  // namespace ganglion::rules
