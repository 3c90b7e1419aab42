// The edge node's configuration schema: every option with type, default and help.
// `ganglion config reference edge` renders it to docs/configuration-edge.md.
#pragma once

#include "base/config.h"

namespace ganglion::edge {

// The schema, built once. Defaults run a node with no config file: data in ./ganglion-data,
// every listener on 127.0.0.1.
const ConfigSchema& edge_schema();

}  // namespace ganglion::edge
