// Reading figures from a Prometheus text exposition (an edge node's /metrics).
#pragma once

#include <string_view>

namespace ganglion::demo {

// The sum of every sample of metric `name` (exact name; any labels) whose label set
// contains `label` (for example `kind="local_only"`; empty: all). 0 when absent.
double metric_total(std::string_view text, std::string_view name, std::string_view label = {});

}  // namespace ganglion::demo
