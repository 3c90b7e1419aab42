// Configuration: YAML files read against a schema declared in code.
//
// Every option has a dotted key ("http.listen"), a type, a default and a help text. A YAML
// file nests keys as maps (http: {listen: ...}). Unknown keys, wrong types and out-of-range
// values are errors naming the file, line and column and what was expected. Every option can
// also be set from the command line (`--http.listen 127.0.0.1:0`), validated the same way.
// The schema renders its own reference page (reference_markdown()).
//
// Config loading happens at start-up: errors are returned as Status (kInvalidArgument) for
// the caller to print and exit with code 2.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/env.h"
#include "base/status.h"

namespace ganglion {

enum class OptionType {
  kString,
  kInt,
  kBool,
  kDouble,
  kDuration,    // "250ms", "10s", "5m", "1h", "2d"; stored in milliseconds
  kBytes,       // "512", "64KiB", "10MiB", "2GiB", "1GB"; stored in bytes
  kStringList,  // a YAML sequence of strings; on the command line, comma-separated
};

std::string_view to_string(OptionType type);

struct OptionSpec {
  std::string key;
  OptionType type = OptionType::kString;
  std::string default_value;  // in the textual form accepted on the command line
  std::string help;
  std::optional<std::int64_t> min;  // for kInt, kDuration (ms), kBytes
  std::optional<std::int64_t> max;
  std::vector<std::string> choices;  // for kString: the allowed values, if restricted
};

class ConfigSchema {
 public:
  // Declares an option. Keys are unique; a key may not be a prefix section of another.
  ConfigSchema& add(OptionSpec spec);
  const std::vector<OptionSpec>& options() const { return options_; }
  const OptionSpec* find(std::string_view key) const;
  // True when `prefix` names a section (some key starts with "prefix.").
  bool is_section(std::string_view prefix) const;
  // A Markdown page with one row per option: key, type, default, range, help.
  std::string reference_markdown(std::string_view title) const;

 private:
  std::vector<OptionSpec> options_;
};

// A checked value with where it came from, for messages ("default", "file:3:5", "--flag").
struct ConfigValue {
  std::string text;  // normalised textual form
  std::int64_t i = 0;
  double d = 0;
  bool b = false;
  std::vector<std::string> list;
  std::string origin;
};

class Config {
 public:
  explicit Config(const ConfigSchema& schema);  // every option at its default

  // Reads a YAML file (through env) and applies it over the current values.
  Status load_yaml_file(Env& env, const std::string& path);
  // Parses YAML text; `name` is used in messages in place of a file name.
  Status load_yaml(std::string_view text, std::string_view name);
  // Sets one option from text, as given on the command line; `origin` names the source.
  Status set(std::string_view key, std::string_view text, std::string_view origin);

  const std::string& str(std::string_view key) const;
  std::int64_t integer(std::string_view key) const;  // kInt, kDuration (ms), kBytes
  double number(std::string_view key) const;
  bool flag(std::string_view key) const;
  const std::vector<std::string>& list(std::string_view key) const;
  const std::string& origin(std::string_view key) const;

 private:
  const ConfigValue& value(std::string_view key) const;
  Status parse_into(const OptionSpec& spec, std::string_view text, ConfigValue& out) const;

  const ConfigSchema* schema_;
  std::map<std::string, ConfigValue, std::less<>> values_;
};

// Parses "10s"-style durations into milliseconds.
Result<std::int64_t> parse_duration_ms(std::string_view text);
// Parses "64MiB"-style sizes into bytes.
Result<std::int64_t> parse_bytes(std::string_view text);

}  // namespace ganglion
