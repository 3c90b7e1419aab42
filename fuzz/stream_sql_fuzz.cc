// Random text into the SQL parser. Whatever parses must print back to SQL that parses
// again and prints identically (to_sql is a fixed point after one round). SELECT
// conditions are also compiled and evaluated against a fixed row, and a SELECT is planned
// as a rule over streams s and o and table tb and fed a few events (analytic functions and
// their OVER state, windows, joins): nothing may crash. Seeds: fuzz/corpus/stream_sql_fuzz;
// dictionary: fuzz/stream_sql_fuzz.dict (-dict=...).
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "event/value.h"
#include "stream/ast.h"
#include "stream/eval.h"
#include "stream/parser.h"
#include "stream/query.h"

namespace {

[[noreturn]] void die(const char* what, const std::string& a, const std::string& b) {
  std::fprintf(stderr, "%s\n--- first ---\n%s\n--- second ---\n%s\n", what, a.c_str(), b.c_str());
  std::abort();
}

void try_evaluate(const ganglion::sql::Expr& e, std::string_view input) {
  // std::regex backtracks exponentially on hostile patterns; keep the fuzzer on our code.
  if (input.find("regexp") != std::string_view::npos) return;
  static ganglion::ManualClock clock;
  static const ganglion::Value row(ganglion::ValueObject{
      {"a", 1},
      {"b", 2.5},
      {"s", "text"},
      {"n", ganglion::Value()},
      {"arr", ganglion::ValueArray{1, "x", 3.5}},
      {"o", ganglion::ValueObject{{"k", "v"}, {"arr", ganglion::ValueArray{1, 2}}}}});
  ganglion::sql::CompileOptions options;
  options.stream = "s";
  options.clock = &clock;
  auto compiled = ganglion::sql::compile(e, options);
  if (!compiled.ok()) return;
  ganglion::sql::Row r{&row, {}};
  (void)compiled->evaluate(r);
  (void)compiled->matches(r);
}

void try_plan(const ganglion::sql::SelectStatement& select, std::string_view input) {
  if (input.find("regexp") != std::string_view::npos) return;
  static ganglion::ManualClock clock;
  static const ganglion::stream::Catalog catalog = [] {
    ganglion::stream::Catalog c;
    (void)c.add_sql("CREATE STREAM s () WITH (DATASOURCE=\"s\")");
    (void)c.add_sql("CREATE STREAM o (a BIGINT, b FLOAT, s STRING) WITH (DATASOURCE=\"o\")");
    (void)c.add_sql("CREATE TABLE tb () WITH (DATASOURCE=\"tb\", KEY=\"a\")");
    return c;
  }();
  ganglion::stream::QueryOptions options;
  options.max_window_rows = 64;
  options.max_analytic_partitions = 16;
  auto q = ganglion::stream::plan(select, catalog, clock, options, nullptr);
  if (!q.ok()) return;
  static const char* const kPayloads[] = {
      R"({"a":1,"b":2.5,"s":"text","n":null,"arr":[1,"x",3.5],"o":{"k":"v"}})",
      R"({"a":2,"b":-1,"s":"","arr":[]})",
      R"({"a":1,"b":1e300,"s":"x","n":true})",
  };
  for (int round = 0; round < 2; ++round) {
    for (const char* p : kPayloads) {
      for (const std::string& src : (*q)->sources()) {
        (void)(*q)->push(src, ganglion::Event::from_string(src, clock.wall_ms(), p));
      }
      clock.advance(std::chrono::milliseconds(700));
    }
  }
  (*q)->flush();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 4096) return 0;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto st = ganglion::sql::parse_statement(input);
  if (st.ok()) {
    std::string printed = ganglion::sql::to_sql(*st);
    auto again = ganglion::sql::parse_statement(printed);
    if (!again.ok()) die("printed statement does not parse", printed, again.status().message());
    std::string printed2 = ganglion::sql::to_sql(*again);
    if (printed != printed2) die("printing is not stable", printed, printed2);
    if (const auto* sel = std::get_if<ganglion::sql::SelectStatement>(&*st)) {
      if (sel->where) try_evaluate(*sel->where, input);
      for (const auto& f : sel->fields) {
        if (f.expr) try_evaluate(*f.expr, input);
      }
      try_plan(*sel, input);
    }
  }
  auto e = ganglion::sql::parse_expression(input);
  if (e.ok()) {
    std::string printed = ganglion::sql::to_sql(**e);
    auto again = ganglion::sql::parse_expression(printed);
    if (!again.ok()) die("printed expression does not parse", printed, again.status().message());
    std::string printed2 = ganglion::sql::to_sql(**again);
    if (printed != printed2) die("expression printing is not stable", printed, printed2);
    try_evaluate(**e, input);
  }
  return 0;
}
