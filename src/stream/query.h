// Query: one continuous SELECT (an eKuiper rule's SQL) planned into a push-based pipeline.
//
//   event --decode/schema check--> analytic functions --> [table lookup join] --WHERE-->
//   window --> [stream join, table lookup join, WHERE] --> GROUP BY + aggregates -->
//   [analytic functions over aggregates] --> HAVING --> ORDER BY --> LIMIT --> projection
//   --> sink
//
// Analytic functions (lag, latest, changed_col, had_changed, acc_*, with OVER (PARTITION BY
// ... WHEN ...)) keep their state in the Query, per distinct call and partition key, and see
// every event of the FROM stream whether WHERE keeps it or not (eKuiper's semantics).
//
// Start here:
//   Catalog catalog;                       // CREATE STREAM / CREATE TABLE definitions
//   catalog.add_sql("CREATE STREAM demo () WITH (DATASOURCE=\"demo\")");
//   auto q = plan_sql("SELECT avg(t) AS a FROM demo GROUP BY TUMBLINGWINDOW(ss, 10)",
//                     catalog, clock, options, [](const Emission& e) { ... });
//   (*q)->push("demo", event);             // for every event of every source the rule reads
//
// Output: each window close (or, without a window, each event that passes WHERE) calls the
// sink once with the rows it produced, in order. eKuiper's sinks send them as one JSON array
// (`[{"a":1}]`, also for a single non-window row) or, with the rule option sendSingle, one
// JSON object per row: sink_payloads() builds exactly that. Empty windows emit nothing.
//
// Time: windows use processing time (the Clock's wall time at push()), aligned to multiples
// of the window's hop (size for tumbling) since the epoch as eKuiper aligns them; timers come
// from the Clock, and the query never sleeps. When the FROM stream has TIMESTAMP, windows use
// event time: watermark = max event time seen - QueryOptions::late_tolerance_ms, an event
// older than the watermark is dropped (metrics().dropped_late), a window closes when the
// watermark reaches its end. Event time advances only with events (no idle timeout).
//
// Ownership: the Query keeps copies of everything it needs from the statement and catalog.
// It must not outlive the Clock (and a custom FunctionRegistry) it was planned with.
// Thread: push() and the window timers (which fire on the Clock's thread) are serialised by
// an internal mutex, so a Query may be driven by one thread while SystemClock timers fire on
// another. The sink runs with that mutex held, on the thread of push() or of the timer: it
// must not call back into the same Query. Destroying the Query cancels its timers; a timer
// already running finishes first (the destructor waits for it).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "event/event.h"
#include "event/value.h"
#include "stream/ast.h"
#include "stream/catalog.h"
#include "stream/functions.h"

namespace ganglion::stream {

// Rule options that shape execution (eKuiper names in comments).
struct QueryOptions {
  std::int64_t late_tolerance_ms = 0;       // lateTolerance (event time only)
  std::size_t max_window_rows = 1'000'000;  // rows (or groups) held per window, beyond:
                                            // the oldest are dropped and counted
  std::size_t max_table_rows = 100'000;     // rows kept by a table without KEY
  // Distinct OVER (PARTITION BY ...) keys kept per analytic call; an event with a new key
  // beyond this reads NULL for that call (counted in dropped_overflow).
  std::size_t max_analytic_partitions = 100'000;
  bool send_single = false;  // sendSingle: see sink_payloads()
  // For `SELECT * ... WHERE <few fields>` on a schemaless stream: parse each payload once,
  // convert only the WHERE fields, and convert the rest only for events that pass (then
  // shared with later readers through Event::share_fields()). Events another reader has
  // already parsed use the shared parse. With many rules rejecting the same events, false
  // (always the shared full parse) can be cheaper.
  bool selective_decode = true;
  const sql::FunctionRegistry* functions = nullptr;  // nullptr: builtins
};

// The rows of one Emission, used like a `const std::vector<Value>&`. A row is an object
// Value, except that the row of `SELECT * FROM s WHERE ...` on a schemaless JSON stream is
// held as the event's payload bytes (already validated as a JSON object): the Value is built
// only when a sink first reads a row (operator[], front(), begin(), values()), and
// sink_payloads() forwards the bytes without building it when they are in the form it
// would write anyway. size() and empty() never build rows.
// Thread: the first read of a row builds every row in place, so one Emission must not be
// read by two threads at once (copies may: each builds its own).
class EmissionRows {
 public:
  EmissionRows() = default;
  EmissionRows(std::vector<Value> rows) : values_(std::move(rows)) {}  // NOLINT
  EmissionRows(std::initializer_list<Value> rows) : values_(rows) {}

  std::size_t size() const { return values_.size(); }
  bool empty() const { return values_.empty(); }
  void reserve(std::size_t n) { values_.reserve(n); }
  void push_back(Value row);
  void clear();
  // Appends a row held as JSON bytes. Precondition: parse_json(*json) gives an object.
  void push_json(std::shared_ptr<const std::string> json);

  const std::vector<Value>& values() const {
    if (pending_) build();
    return values_;
  }
  operator const std::vector<Value>&() const { return values(); }  // NOLINT
  std::vector<Value>::const_iterator begin() const { return values().begin(); }
  std::vector<Value>::const_iterator end() const { return values().end(); }
  const Value& operator[](std::size_t i) const { return values()[i]; }
  const Value& front() const { return values().front(); }
  const Value& back() const { return values().back(); }

  // The JSON bytes row `i` is held as, or nullptr when it was built as a Value.
  const std::string* json(std::size_t i) const {
    return i < json_.size() ? json_[i].get() : nullptr;
  }

 private:
  void build() const;

  mutable std::vector<Value> values_;  // NULL placeholders for rows not built yet
  std::vector<std::shared_ptr<const std::string>> json_;  // empty, or one per row
  mutable bool pending_ = false;
};

// One output of the query: the rows produced by one window close or one event.
struct Emission {
  EmissionRows rows;              // each an object, fields in SELECT order
  std::int64_t window_start = 0;  // 0 when not windowed
  std::int64_t window_end = 0;
};

using Sink = std::function<void(const Emission&)>;

// Latency of push() (decode to emit) in microseconds, upper bounds of the buckets; the last
// bucket counts everything slower.
inline constexpr std::array<std::int64_t, 10> kLatencyBucketsUs = {1,   5,    10,   50,    100,
                                                                   500, 1000, 5000, 10000, 100000};

struct QueryMetrics {
  std::uint64_t records_in = 0;        // events pushed for the FROM stream and joined streams
  std::uint64_t table_updates = 0;     // events pushed for tables
  std::uint64_t records_out = 0;       // rows emitted
  std::uint64_t emissions = 0;         // sink calls
  std::uint64_t filtered = 0;          // rows WHERE (or HAVING) rejected
  std::uint64_t dropped_decode = 0;    // invalid JSON, not an object, schema mismatch
  std::uint64_t dropped_late = 0;      // event time older than the watermark
  std::uint64_t dropped_overflow = 0;  // beyond max_window_rows / max_table_rows
  std::uint64_t errors = 0;            // evaluation errors (the row or value is skipped)
  std::string last_error;              // reason of the latest drop or error
  std::array<std::uint64_t, kLatencyBucketsUs.size() + 1> latency_us = {};
};

class Query {
 public:
  virtual ~Query() = default;

  // Feeds one event of stream or table `source` (its name in the catalog, not an alias).
  // A table event updates the table and emits nothing. Errors: kNotFound for a source the
  // query does not read. Bad payloads and evaluation errors are not errors of push(): they
  // are counted in metrics() and the event is skipped.
  virtual Status push(std::string_view source, const Event& event) = 0;

  // Closes every window whose end is at or before the current time (processing time) or
  // the watermark (event time) now, without waiting for a timer; for tests and shutdown.
  virtual void flush() = 0;

  virtual QueryMetrics metrics() const = 0;

  // The sources the query reads: the FROM stream first, then joined streams and tables.
  virtual const std::vector<std::string>& sources() const = 0;
  // True when the rule emits per window (and thus needs timers or event time).
  virtual bool windowed() const = 0;
};

// Plans `select` against `catalog`. Errors (kInvalidArgument, with line and column where
// the problem is in the SQL): unknown stream or field, GROUP BY or aggregates without a
// window, a stream join without a window, nested aggregates, bad window arguments,
// unknown function, bad analytic call (lag offset not a constant, CHANGED_COLS outside the
// SELECT list, an analytic call over an aggregate in WHERE).
Result<std::unique_ptr<Query>> plan(const sql::SelectStatement& select, const Catalog& catalog,
                                    Clock& clock, QueryOptions options, Sink sink);
// Parses then plans.
Result<std::unique_ptr<Query>> plan_sql(std::string_view select_sql, const Catalog& catalog,
                                        Clock& clock, QueryOptions options, Sink sink);

// The sink payloads of an emission as eKuiper sends them: one JSON array of all rows, or
// with `send_single` one JSON object per row.
std::vector<std::string> sink_payloads(const Emission& emission, bool send_single);

}  // namespace ganglion::stream
