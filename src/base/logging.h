// Logging: spdlog, as readable text for people or as JSON lines for machines.
//
// Every part logs through spdlog's default logger (spdlog::info(...)); init_logging() picks
// the format, level and sink once at start-up. Secrets (passwords, tokens, keys) are never
// passed to a log call.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"

namespace spdlog {
class formatter;
namespace sinks {
class sink;
}
}  // namespace spdlog

namespace ganglion {

enum class LogFormat { kText, kJson };

Result<LogFormat> parse_log_format(std::string_view s);

// Sets the default logger: stderr, the given format and level ("trace", "debug", "info",
// "warn", "error", "off"). Returns kInvalidArgument on an unknown level.
Status init_logging(LogFormat format, std::string_view level, std::string_view name = "ganglion");

// A formatter writing one JSON object per line:
// {"ts":"2026-11-29T10:00:00.123Z","level":"info","logger":"ganglion","msg":"..."}
std::unique_ptr<spdlog::formatter> make_json_formatter();

}  // namespace ganglion
