#include "base/config.h"

#include <yaml-cpp/yaml.h>

#include <fmt/format.h>
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <functional>
#include <stdexcept>

namespace ganglion {
namespace {

std::string describe(const OptionSpec& spec) {
  std::string s(to_string(spec.type));
  if (spec.min && spec.max) {
    s += fmt::format(" in {}..{}", *spec.min, *spec.max);
  } else if (spec.min) {
    s += fmt::format(" >= {}", *spec.min);
  } else if (spec.max) {
    s += fmt::format(" <= {}", *spec.max);
  }
  if (!spec.choices.empty()) {
    s += " (one of";
    for (const auto& c : spec.choices) s += " \"" + c + "\"";
    s += ")";
  }
  return s;
}

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

Result<std::int64_t> parse_int(std::string_view text) {
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || text.empty()) {
    return InvalidArgument("not an integer");
  }
  return v;
}

// Splits "10s" into number and unit and multiplies by the unit's factor.
Result<std::int64_t> parse_with_units(std::string_view text,
                                      const std::vector<std::pair<std::string_view, double>>& units,
                                      bool unit_required) {
  std::size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    ++i;
  if (i == 0) return InvalidArgument("no number");
  double n = 0;
  try {
    n = std::stod(std::string(text.substr(0, i)));
  } catch (const std::exception&) {
    return InvalidArgument("bad number");
  }
  std::string_view unit = text.substr(i);
  if (unit.empty()) {
    if (unit_required) return InvalidArgument("missing unit");
    if (n > 9.2e18) return InvalidArgument("too large");  // the cast would be undefined
    return static_cast<std::int64_t>(n);
  }
  for (const auto& [name, factor] : units) {
    if (unit == name) {
      const double v = n * factor;
      if (v > 9.2e18) return InvalidArgument("too large");
      return static_cast<std::int64_t>(std::llround(v));
    }
  }
  return InvalidArgument("unknown unit");
}

}  // namespace

std::string_view to_string(OptionType type) {
  switch (type) {
    case OptionType::kString:
      return "string";
    case OptionType::kInt:
      return "integer";
    case OptionType::kBool:
      return "boolean";
    case OptionType::kDouble:
      return "number";
    case OptionType::kDuration:
      return "duration";
    case OptionType::kBytes:
      return "size";
    case OptionType::kStringList:
      return "list of strings";
  }
  return "?";
}

Result<std::int64_t> parse_duration_ms(std::string_view text) {
  static const std::vector<std::pair<std::string_view, double>> kUnits = {
      {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000}};
  auto r = parse_with_units(text, kUnits, true);
  if (!r.ok()) return InvalidArgument("expected a duration such as 500ms, 10s, 5m, 1h or 2d");
  return r;
}

Result<std::int64_t> parse_bytes(std::string_view text) {
  static const std::vector<std::pair<std::string_view, double>> kUnits = {
      {"B", 1},           {"KB", 1e3},           {"MB", 1e6},
      {"GB", 1e9},        {"TB", 1e12},          {"KiB", 1024.0},
      {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0}};
  auto r = parse_with_units(text, kUnits, false);
  if (!r.ok()) return InvalidArgument("expected a size such as 4096, 64KiB, 10MiB or 2GiB");
  return r;
}

ConfigSchema& ConfigSchema::add(OptionSpec spec) {
  if (find(spec.key)) throw std::logic_error("config option declared twice: " + spec.key);
  options_.push_back(std::move(spec));
  return *this;
}

const OptionSpec* ConfigSchema::find(std::string_view key) const {
  for (const auto& o : options_) {
    if (o.key == key) return &o;
  }
  return nullptr;
}

bool ConfigSchema::is_section(std::string_view prefix) const {
  for (const auto& o : options_) {
    if (o.key.size() > prefix.size() && o.key.compare(0, prefix.size(), prefix) == 0 &&
        o.key[prefix.size()] == '.') {
      return true;
    }
  }
  return false;
}

std::string ConfigSchema::reference_markdown(std::string_view title) const {
  std::string out = fmt::format("# {}\n\n", title);
  out +=
      "Generated from the schema declared in code (`ganglion config reference`); do not edit.\n"
      "Every option can be set in the YAML file (nested maps follow the dots) or on the command\n"
      "line as `--<key> <value>`.\n\n";
  out += "| option | type | default | help |\n| --- | --- | --- | --- |\n";
  for (const auto& o : options_) {
    std::string def = o.default_value.empty() ? "(empty)" : "`" + o.default_value + "`";
    out += fmt::format("| `{}` | {} | {} | {} |\n", o.key, describe(o), def, o.help);
  }
  return out;
}

Config::Config(const ConfigSchema& schema) : schema_(&schema) {
  for (const auto& o : schema.options()) {
    ConfigValue v;
    Status s = parse_into(o, o.default_value, v);
    if (!s.ok()) throw std::logic_error("bad default for " + o.key + ": " + s.message());
    v.origin = "default";
    values_[o.key] = std::move(v);
  }
}

Status Config::parse_into(const OptionSpec& spec, std::string_view raw, ConfigValue& out) const {
  const std::string text = trim(raw);
  auto fail = [&](std::string_view found) {
    return InvalidArgument(
        fmt::format("{}: expected {}, found \"{}\"", spec.key, describe(spec), found));
  };
  out.text = text;
  auto check_range = [&](std::int64_t v) -> Status {
    if ((spec.min && v < *spec.min) || (spec.max && v > *spec.max)) return fail(text);
    return Status::Ok();
  };
  switch (spec.type) {
    case OptionType::kString:
      if (!spec.choices.empty() &&
          std::find(spec.choices.begin(), spec.choices.end(), text) == spec.choices.end()) {
        return fail(text);
      }
      return Status::Ok();
    case OptionType::kInt: {
      auto v = parse_int(text);
      if (!v.ok()) return fail(text);
      out.i = *v;
      return check_range(out.i);
    }
    case OptionType::kBool:
      if (text == "true" || text == "yes" || text == "on" || text == "1") {
        out.b = true;
      } else if (text == "false" || text == "no" || text == "off" || text == "0") {
        out.b = false;
      } else {
        return fail(text);
      }
      return Status::Ok();
    case OptionType::kDouble: {
      char* end = nullptr;
      errno = 0;
      out.d = std::strtod(text.c_str(), &end);
      if (text.empty() || errno != 0 || end != text.c_str() + text.size()) return fail(text);
      return Status::Ok();
    }
    case OptionType::kDuration: {
      auto v = parse_duration_ms(text);
      if (!v.ok()) return fail(text);
      out.i = *v;
      return check_range(out.i);
    }
    case OptionType::kBytes: {
      auto v = parse_bytes(text);
      if (!v.ok()) return fail(text);
      out.i = *v;
      return check_range(out.i);
    }
    case OptionType::kStringList: {
      out.list.clear();
      std::size_t start = 0;
      while (start <= text.size() && !text.empty()) {
        auto comma = text.find(',', start);
        auto item = trim(std::string_view(text).substr(
            start, comma == std::string::npos ? std::string::npos : comma - start));
        if (!item.empty()) out.list.push_back(item);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
      return Status::Ok();
    }
  }
  return Status::Ok();
}

Status Config::set(std::string_view key, std::string_view text, std::string_view origin) {
  const OptionSpec* spec = schema_->find(key);
  if (!spec) return InvalidArgument(fmt::format("{}: unknown option \"{}\"", origin, key));
  ConfigValue v;
  Status s = parse_into(*spec, text, v);
  if (!s.ok()) return s.with_context(origin);
  v.origin = std::string(origin);
  values_[spec->key] = std::move(v);
  return Status::Ok();
}

Status Config::load_yaml_file(Env& env, const std::string& path) {
  auto text = env.read_file(path);
  if (!text.ok())
    return InvalidArgument("cannot read config file " + path + ": " + text.status().message());
  return load_yaml(*text, path);
}

namespace {

std::string where(std::string_view name, const YAML::Mark& m) {
  return fmt::format("{}:{}:{}", name, m.line + 1, m.column + 1);
}

}  // namespace

Status Config::load_yaml(std::string_view text, std::string_view name) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::ParserException& e) {
    return InvalidArgument(fmt::format("{}: invalid YAML: {}", where(name, e.mark), e.msg));
  }
  if (!root || root.IsNull()) return Status::Ok();  // an empty file sets nothing
  if (!root.IsMap()) {
    return InvalidArgument(
        fmt::format("{}: expected a map of options at the top level", where(name, root.Mark())));
  }
  // Walk nested maps, turning paths into dotted keys.
  std::function<Status(const YAML::Node&, const std::string&)> walk =
      [&](const YAML::Node& map, const std::string& prefix) -> Status {
    for (const auto& kv : map) {
      if (!kv.first.IsScalar()) {
        return InvalidArgument(
            fmt::format("{}: expected an option name", where(name, kv.first.Mark())));
      }
      const std::string key = prefix.empty() ? kv.first.Scalar() : prefix + "." + kv.first.Scalar();
      const YAML::Node& v = kv.second;
      const std::string at = where(name, v.IsNull() ? kv.first.Mark() : v.Mark());
      if (const OptionSpec* spec = schema_->find(key)) {
        std::string textual;
        if (spec->type == OptionType::kStringList) {
          if (!v.IsSequence()) {
            return InvalidArgument(fmt::format("{}: {}: expected a list of strings", at, key));
          }
          for (const auto& item : v) {
            if (!item.IsScalar()) {
              return InvalidArgument(
                  fmt::format("{}: {}: expected a string", where(name, item.Mark()), key));
            }
            if (!textual.empty()) textual += ",";
            textual += item.Scalar();
          }
        } else if (v.IsScalar()) {
          textual = v.Scalar();
        } else if (v.IsNull()) {
          textual = "";
        } else {
          return InvalidArgument(fmt::format("{}: {}: expected {}, found a {}", at, key,
                                             describe(*spec), v.IsMap() ? "map" : "list"));
        }
        GANGLION_RETURN_IF_ERROR(set(key, textual, at));
      } else if (schema_->is_section(key)) {
        if (!v.IsMap()) {
          return InvalidArgument(
              fmt::format("{}: {}: expected a map (a section of options)", at, key));
        }
        GANGLION_RETURN_IF_ERROR(walk(v, key));
      } else {
        return InvalidArgument(
            fmt::format("{}: unknown option \"{}\"", where(name, kv.first.Mark()), key));
      }
    }
    return Status::Ok();
  };
  try {
    return walk(root, "");
  } catch (const YAML::Exception& e) {
    return InvalidArgument(fmt::format("{}: {}", where(name, e.mark), e.msg));
  }
}

const ConfigValue& Config::value(std::string_view key) const {
  auto it = values_.find(key);
  if (it == values_.end())
    throw std::logic_error("config option not declared: " + std::string(key));
  return it->second;
}

const std::string& Config::str(std::string_view key) const { return value(key).text; }
std::int64_t Config::integer(std::string_view key) const { return value(key).i; }
double Config::number(std::string_view key) const { return value(key).d; }
bool Config::flag(std::string_view key) const { return value(key).b; }
const std::vector<std::string>& Config::list(std::string_view key) const { return value(key).list; }
const std::string& Config::origin(std::string_view key) const { return value(key).origin; }

}  // namespace ganglion
