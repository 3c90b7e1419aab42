// libFuzzer target for REST request bodies and query strings with their own decoders.
//
// Input: the first byte picks the decoder, the rest is the body or the query string.
//   0  rule document (src/rules/rule_spec.h): what parses must print back
//      (rule_spec_to_value) to a document that parses to the same value;
//   1  function document (src/functions/function_spec.h);
//   2  GET /v1/query?<rest> (src/cloud/query.h): parse_target, parse_query_params and
//      build_query; the SQL text must not depend on the values, only on their shape;
//   3  a label list "k=v,..." (POST /v1/tokens "labels", /v1/query "where").
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cloud/query.h"
#include "cloud/tokens.h"
#include "event/json.h"
#include "functions/function_spec.h"
#include "net/http_server.h"
#include "rules/rule_spec.h"

namespace {

[[noreturn]] void die(const char* what, std::string_view detail) {
  std::fprintf(stderr, "%s: %.*s\n", what, static_cast<int>(detail.size()), detail.data());
  std::abort();
}

void fuzz_rule(std::string_view body) {
  auto spec = ganglion::rules::parse_rule_spec(body);
  if (!spec.ok()) return;
  const ganglion::Value printed = ganglion::rules::rule_spec_to_value(*spec);
  auto again = ganglion::rules::rule_spec_from_value(printed);
  if (!again.ok()) die("printed rule does not parse", again.status().message());
  if (!(ganglion::rules::rule_spec_to_value(*again) == printed))
    die("rule round trip differs", ganglion::to_json(printed));
}

void fuzz_query(std::string_view query) {
  ganglion::net::HttpRequest req;
  ganglion::net::parse_target("/v1/query?" + std::string(query), req);
  constexpr std::int64_t kNow = 1'780'000'000'000;  // 2026
  auto params = ganglion::cloud::parse_query_params(req.query, kNow);
  if (!params.ok()) return;
  if (params->to_ms < params->from_ms || params->bucket_ms < 1000) die("range not checked", query);
  auto sql = ganglion::cloud::build_query(*params);
  if (!sql.ok()) return;
  // Everything from the request is a bound parameter: the SQL text must be the same as for
  // placeholder values with the same shape (aggregate, source, grouping, filter kinds).
  ganglion::cloud::QueryParams shape = *params;
  shape.metric = "m";
  if (shape.group_by != "node" && shape.group_by != "none") shape.group_by = "k";
  for (auto& [k, v] : shape.where) {
    if (k != "node") k = "k";
    v = "v";
  }
  shape.bucket_ms = 60'000;
  shape.from_ms = 0;
  shape.to_ms = 1;
  auto expected = ganglion::cloud::build_query(shape);
  if (!expected.ok() || expected->sql != sql->sql)
    die("query parameters reach the SQL text", sql->sql);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1 || size > 16384) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 4) {
    case 0:
      fuzz_rule(rest);
      break;
    case 1:
      (void)ganglion::functions::parse_function_spec(rest);
      break;
    case 2:
      fuzz_query(rest);
      break;
    case 3: {
      auto labels = ganglion::cloud::parse_label_list(rest);
      if (labels.ok()) {
        for (const auto& [k, v] : *labels) {
          if (!ganglion::cloud::valid_label_key(k) || !ganglion::cloud::valid_label_value(v))
            die("parse_label_list accepted a bad label", k + "=" + v);
        }
      }
      break;
    }
  }
  return 0;
}
