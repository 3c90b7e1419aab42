// Analytics queries over ingested records: GET /v1/query parameters -> SQL.
//
//   metric=<field>     a top-level or dotted JSON field of the record payloads ("temp",
//                      "motor.rpm"): [A-Za-z0-9_.]{1,128}, never spliced into SQL text
//   agg=avg|min|max|sum|count           (default avg)
//   bucket=1m          time bucket (duration, >= 1s; default 1m)
//   group_by=node|site|<label>          (default node); labels are the nodes' labels
//   where=site=eu-1[,k=v...]            filters on node labels (node=<id> filters the node)
//   from=, to=         Unix ms, or relative to now: "-15m" (default: the last hour)
//   source=raw|rollup  raw records (default) or the per-minute rollup (bucket a multiple of
//                      1m; the metric must be a top-level numeric field)
//
// Everything user-supplied goes in as a bound parameter; only whitelisted words (the
// aggregate) are part of the SQL text.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/status.h"
#include "cloud/store.h"

namespace ganglion::cloud {

struct QueryParams {
  std::string metric;
  std::string agg = "avg";
  std::int64_t bucket_ms = 60'000;
  std::string group_by = "node";
  std::vector<std::pair<std::string, std::string>> where;
  std::int64_t from_ms = 0;
  std::int64_t to_ms = 0;
  bool rollup = false;
};

// Errors: kInvalidArgument naming the parameter.
Result<QueryParams> parse_query_params(const std::map<std::string, std::string>& query,
                                       std::int64_t now_ms);
Result<SqlQuery> build_query(const QueryParams& params);

}  // namespace ganglion::cloud
