// Exposes every option of a config schema as a command-line flag (--key value).
#pragma once

#include <map>
#include <string>

#include "base/config.h"

namespace CLI {
class App;
}

namespace ganglion::cli {

class SchemaFlags {
 public:
  // Adds one flag per option to `cmd`, grouped under "Options (config file keys)".
  SchemaFlags(CLI::App& cmd, const ConfigSchema& schema);
  // Applies the flags that were given over `config`; errors name the flag.
  Status apply(Config& config) const;

 private:
  std::map<std::string, std::string> values_;  // key -> text; "" when not given
  std::map<std::string, bool> given_;
};

}  // namespace ganglion::cli
