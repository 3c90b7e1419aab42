// Test fixture for the query engine: a catalog, a ManualClock, and a sink that records
// every emission as eKuiper's JSON array payload. Test-only.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "base/clock.h"
#include "event/event.h"
#include "event/json.h"
#include "stream/query.h"

namespace ganglion::stream::testing {

class QueryHarness {
 public:
  QueryHarness() = default;

  // CREATE STREAM/TABLE; fails the test on error.
  void create(std::string_view sql) { ASSERT_TRUE(catalog.add_sql(sql).ok()) << sql; }

  Status plan(std::string_view sql, QueryOptions options = {}) {
    auto q = plan_sql(sql, catalog, clock, options, [this](const Emission& e) {
      emissions.push_back(e);
      outputs.push_back(sink_payloads(e, false)[0]);
    });
    if (!q.ok()) return q.status();
    query = std::move(q).value();
    return Status::Ok();
  }

  // Pushes a JSON payload for `source`; fails the test when push() errors.
  void push(std::string_view source, std::string json) {
    Status s = query->push(
        source, Event::from_string(std::string(source), clock.wall_ms(), std::move(json)));
    ASSERT_TRUE(s.ok()) << s.to_string();
  }

  void advance_ms(std::int64_t ms) { clock.advance(std::chrono::milliseconds(ms)); }
  // Moves the clock to `ms` past the start of the current 10 s boundary-aligned epoch.
  std::int64_t now_ms() const { return clock.wall_ms(); }

  // All payloads so far, then forgets them.
  std::vector<std::string> take() {
    std::vector<std::string> out = std::move(outputs);
    outputs.clear();
    emissions.clear();
    return out;
  }

  ManualClock clock;  // wall time starts at 1'700'000'000 s, a multiple of every window size used
  Catalog catalog;
  std::unique_ptr<Query> query;
  std::vector<Emission> emissions;
  std::vector<std::string> outputs;
};

using Outputs = std::vector<std::string>;

}  // namespace ganglion::stream::testing
