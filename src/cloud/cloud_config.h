// The controller's configuration schema (`ganglion cloud`): every option with type, default
// and help. `ganglion config reference cloud` could render it like the edge's.
#pragma once

#include "base/config.h"

namespace ganglion::cloud {

// The schema, built once. Defaults run a controller with no config file: data in
// ./ganglion-cloud-data, HTTPS API on 127.0.0.1:8443, MQTT over mutual TLS on 127.0.0.1:8883.
const ConfigSchema& cloud_schema();

}  // namespace ganglion::cloud
