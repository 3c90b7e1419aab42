#include "cli/schema_flags.h"

#include <CLI/CLI.hpp>

namespace ganglion::cli {

SchemaFlags::SchemaFlags(CLI::App& cmd, const ConfigSchema& schema) {
  for (const auto& o : schema.options()) {
    values_[o.key];
    std::string help = o.help + " [" + std::string(to_string(o.type)) +
                       ", default: " + (o.default_value.empty() ? "empty" : o.default_value) + "]";
    cmd.add_option("--" + o.key, values_[o.key], help)->group("Options (also config file keys)");
  }
}

Status SchemaFlags::apply(Config& config) const {
  for (const auto& [key, text] : values_) {
    if (text.empty()) continue;
    GANGLION_RETURN_IF_ERROR(config.set(key, text, "--" + key));
  }
  return Status::Ok();
}

}  // namespace ganglion::cli
