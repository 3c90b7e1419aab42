// `ganglion stream|rule|function ...`: the operator's client of an edge node's rule API
// (eKuiper-compatible REST: /streams, /tables, /rules, /functions).
//
// The node is found with --url (default http://127.0.0.1:7080) or, with --data.dir, from the
// node's <data.dir>/endpoints.json. Exit codes: 0 ok, 1 the request failed (connection or an
// error answer, whose message is printed), 2 usage (bad flags, unreadable files).
#include <CLI/CLI.hpp>

#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "event/json.h"
#include "rules/http_client.h"

namespace ganglion::cli {
namespace {

struct Target {
  std::string url = "http://127.0.0.1:7080";
  std::string data_dir;
  bool json = false;
};

void add_target_flags(CLI::App& cmd, Target& t) {
  cmd.add_option("--url", t.url, "The node's HTTP API")->capture_default_str();
  cmd.add_option("--data.dir", t.data_dir,
                 "Find the node through <data.dir>/endpoints.json instead of --url");
  cmd.add_flag("--json", t.json, "Print the API's JSON as is");
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The base URL, or nullopt (message printed) when endpoints.json cannot be read.
std::optional<std::string> base_url(const Target& t) {
  if (t.data_dir.empty()) {
    std::string u = t.url;
    while (!u.empty() && u.back() == '/') u.pop_back();
    return u;
  }
  auto text = read_file(t.data_dir + "/endpoints.json");
  auto doc = text ? parse_json(*text) : Result<Value>(NotFound("missing"));
  const Value* http = doc.ok() ? doc->find("http") : nullptr;
  if (http == nullptr || !http->is_string()) {
    std::cerr << "ganglion: cannot read the node's address from " << t.data_dir
              << "/endpoints.json\n";
    return std::nullopt;
  }
  return "http://" + http->as_string();
}

// Sends one request; prints the error answer. Returns the reply body on 2xx.
int call(const Target& t, const std::string& method, const std::string& path,
         const std::string& body, std::string* out) {
  auto base = base_url(t);
  if (!base) return kExitUsage;
  rules::HttpCall c;
  c.method = method;
  c.url = *base + path;
  c.body = body;
  c.timeout = std::chrono::seconds(30);
  auto r = rules::http_request(c);
  if (!r.ok()) {
    std::cerr << "ganglion: " << method << " " << c.url << ": " << r.status().message() << "\n";
    return kExitFailure;
  }
  if (r->status >= 300) {
    auto doc = parse_json(r->body);
    const Value* msg = doc.ok() ? doc->find("message") : nullptr;
    if (msg == nullptr && doc.ok()) msg = doc->find("error");
    std::cerr << "ganglion: " << (msg != nullptr && msg->is_string() ? msg->as_string() : r->body)
              << "\n";
    return kExitFailure;
  }
  if (out != nullptr) *out = r->body;
  return kExitOk;
}

// Prints a 2xx body: text as is, JSON pretty enough (one document per line).
int call_print(const Target& t, const std::string& method, const std::string& path,
               const std::string& body = "") {
  std::string out;
  int rc = call(t, method, path, body, &out);
  if (rc == kExitOk) {
    std::cout << out;
    if (!out.empty() && out.back() != '\n') std::cout << "\n";
  }
  return rc;
}

std::string sql_body(const std::string& sql) {
  std::string b = "{\"sql\":";
  append_json_string(sql, b);
  return b + "}";
}

// "mqtt:topic=alerts/{{.id}},qos=1" -> {"mqtt": {"topic": "alerts/{{.id}}", "qos": 1}}.
// Values: integers, true/false, else strings.
Result<Value> parse_action_flag(const std::string& text) {
  const auto colon = text.find(':');
  const std::string type = text.substr(0, colon);
  if (type.empty())
    return InvalidArgument("--action '" + text + "': expected TYPE[:key=value,...]");
  ValueObject props;
  if (colon != std::string::npos) {
    std::string rest = text.substr(colon + 1);
    std::size_t pos = 0;
    while (pos <= rest.size() && !rest.empty()) {
      auto comma = rest.find(',', pos);
      std::string kv =
          rest.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
      const auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) {
        return InvalidArgument("--action '" + text + "': '" + kv + "' is not key=value");
      }
      std::string key = kv.substr(0, eq), value = kv.substr(eq + 1);
      if (!value.empty() && value.find_first_not_of("0123456789") == std::string::npos &&
          value.size() < 18) {
        props.append(key, static_cast<long long>(std::stoll(value)));
      } else if (value == "true" || value == "false") {
        props.append(key, value == "true");
      } else {
        props.append(key, value);
      }
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
  }
  return Value(ValueObject{{type, Value(std::move(props))}});
}

void print_rule_list(const std::string& body) {
  auto doc = parse_json(body);
  if (!doc.ok() || !doc->is_array()) {
    std::cout << body << "\n";
    return;
  }
  std::printf("%-24s %s\n", "ID", "STATUS");
  for (const Value& r : doc->as_array()) {
    const Value* id = r.find("id");
    const Value* st = r.find("status");
    std::printf("%-24s %s\n", id ? id->to_display_string().c_str() : "",
                st ? st->to_display_string().c_str() : "");
  }
}

void add_stream(CLI::App& app, Runner& run, bool table) {
  const std::string noun = table ? "table" : "stream";
  const std::string base = table ? "/tables" : "/streams";
  auto* cmd =
      app.add_subcommand(noun, "Manage the edge node's " + noun + "s (CREATE " +
                                   (table ? std::string("TABLE") : std::string("STREAM")) + ")");
  cmd->require_subcommand(1);
  auto t = std::make_shared<Target>();
  auto name = std::make_shared<std::string>();

  auto* create = cmd->add_subcommand("create", "Create from a CREATE statement");
  create
      ->add_option("sql", *name,
                   "The statement, e.g. \"CREATE STREAM demo () WITH (DATASOURCE=\\\"demo/#\\\")\"")
      ->required();
  add_target_flags(*create, *t);
  create->callback([&run, t, name, base] {
    run = [t, name, base] { return call_print(*t, "POST", base, sql_body(*name)); };
  });

  auto* list = cmd->add_subcommand("list", "List the names");
  add_target_flags(*list, *t);
  list->callback([&run, t, base] { run = [t, base] { return call_print(*t, "GET", base); }; });

  for (const char* verb : {"describe", "drop"}) {
    auto* sub = cmd->add_subcommand(
        verb, std::string(verb) == "drop" ? "Delete" : "Show fields and options");
    sub->add_option("name", *name)->required();
    add_target_flags(*sub, *t);
    const std::string method = std::string(verb) == "drop" ? "DELETE" : "GET";
    sub->callback([&run, t, name, base, method] {
      run = [t, name, base, method] { return call_print(*t, method, base + "/" + *name); };
    });
  }
  auto* update = cmd->add_subcommand("update", "Replace the definition (its rules restart)");
  auto sql = std::make_shared<std::string>();
  update->add_option("name", *name)->required();
  update->add_option("sql", *sql)->required();
  add_target_flags(*update, *t);
  update->callback([&run, t, name, sql, base] {
    run = [t, name, sql, base] {
      return call_print(*t, "PUT", base + "/" + *name, sql_body(*sql));
    };
  });
}

void add_rule(CLI::App& app, Runner& run) {
  auto* cmd = app.add_subcommand("rule", "Manage the edge node's streaming SQL rules");
  cmd->require_subcommand(1);
  auto t = std::make_shared<Target>();
  auto id = std::make_shared<std::string>();

  struct CreateArgs {
    std::string sql, file;
    std::vector<std::string> actions, options;
    bool stopped = false;
  };
  auto a = std::make_shared<CreateArgs>();
  for (const char* verb : {"create", "update"}) {
    const bool is_create = std::string(verb) == "create";
    auto* sub = cmd->add_subcommand(
        verb, is_create ? "Create a rule (starts it)" : "Replace a rule (restarts it)");
    sub->add_option("id", *id, "Rule id (optional with -f: taken from the file)");
    sub->add_option("--sql", a->sql, "The SELECT statement");
    sub->add_option(
        "--action", a->actions,
        "A sink: TYPE[:key=value,...], e.g. mqtt:topic=alerts/{{.id}},qos=1 or log (repeat)");
    sub->add_option("--option", a->options,
                    "A rule option key=value, e.g. bufferLength=2048 (repeat)");
    sub->add_option("-f,--file", a->file, "The rule as eKuiper's JSON document");
    sub->add_flag("--stopped", a->stopped, "Create it without starting it");
    add_target_flags(*sub, *t);
    sub->callback([&run, t, id, a, is_create] {
      run = [t, id, a, is_create]() -> int {
        Value doc;
        if (!a->file.empty()) {
          auto text = read_file(a->file);
          if (!text) {
            std::cerr << "ganglion rule: cannot read " << a->file << "\n";
            return kExitUsage;
          }
          auto parsed = parse_json(*text);
          if (!parsed.ok() || !parsed->is_object()) {
            std::cerr << "ganglion rule: " << a->file << ": not a JSON object\n";
            return kExitUsage;
          }
          doc = *parsed;
        } else {
          if (id->empty() || a->sql.empty() || a->actions.empty()) {
            std::cerr
                << "ganglion rule: give ID, --sql and at least one --action (or -f rule.json)\n";
            return kExitUsage;
          }
          ValueArray actions;
          for (const auto& text : a->actions) {
            auto act = parse_action_flag(text);
            if (!act.ok()) {
              std::cerr << "ganglion rule: " << act.status().message() << "\n";
              return kExitUsage;
            }
            actions.push_back(*act);
          }
          ValueObject options;
          for (const auto& kv : a->options) {
            auto parsed = parse_action_flag("o:" + kv);
            if (!parsed.ok()) {
              std::cerr << "ganglion rule: --option '" << kv << "': expected key=value\n";
              return kExitUsage;
            }
            for (const auto& [k, v] : parsed->find("o")->as_object()) options.append(k, v);
          }
          doc = Value(ValueObject{{"id", *id},
                                  {"sql", a->sql},
                                  {"actions", Value(std::move(actions))},
                                  {"options", Value(std::move(options))}});
        }
        ValueObject o = doc.as_object();
        if (!id->empty()) o.set("id", *id);
        if (a->stopped) o.set("triggered", false);
        const Value* rid = o.find("id");
        if (rid == nullptr || !rid->is_string()) {
          std::cerr << "ganglion rule: the rule has no id\n";
          return kExitUsage;
        }
        const std::string body = to_json(Value(o));
        return is_create ? call_print(*t, "POST", "/rules", body)
                         : call_print(*t, "PUT", "/rules/" + rid->as_string(), body);
      };
    });
  }

  auto* list = cmd->add_subcommand("list", "List rules and their status");
  add_target_flags(*list, *t);
  list->callback([&run, t] {
    run = [t] {
      std::string out;
      int rc = call(*t, "GET", "/rules", "", &out);
      if (rc == kExitOk) t->json ? void(std::cout << out << "\n") : print_rule_list(out);
      return rc;
    };
  });
  struct Verb {
    const char* name;
    const char* help;
    const char* method;
    const char* suffix;
  };
  static constexpr Verb kVerbs[] = {
      {"describe", "Show the rule's definition", "GET", ""},
      {"status", "Show the rule's metrics", "GET", "/status"},
      {"start", "Start the rule", "POST", "/start"},
      {"stop", "Stop the rule", "POST", "/stop"},
      {"restart", "Restart the rule", "POST", "/restart"},
      {"drop", "Delete the rule", "DELETE", ""},
  };
  for (const Verb& v : kVerbs) {
    auto* sub = cmd->add_subcommand(v.name, v.help);
    sub->add_option("id", *id)->required();
    add_target_flags(*sub, *t);
    sub->callback([&run, t, id, v] {
      run = [t, id, v] { return call_print(*t, v.method, "/rules/" + *id + v.suffix); };
    });
  }
}

void add_function(CLI::App& app, Runner& run) {
  auto* cmd = app.add_subcommand("function", "Manage the edge node's Lua functions");
  cmd->require_subcommand(1);
  auto t = std::make_shared<Target>();
  auto name = std::make_shared<std::string>();
  auto file = std::make_shared<std::string>();
  auto trigger = std::make_shared<std::string>();
  auto* create = cmd->add_subcommand("create", "Define or replace a function from a Lua file");
  create->add_option("name", *name)->required();
  create->add_option("-f,--file", *file, "The Lua source")->required();
  create->add_option("--trigger", *trigger, "Run it for every message on this topic filter");
  add_target_flags(*create, *t);
  create->callback([&run, t, name, file, trigger] {
    run = [t, name, file, trigger]() -> int {
      auto source = read_file(*file);
      if (!source) {
        std::cerr << "ganglion function: cannot read " << *file << "\n";
        return kExitUsage;
      }
      ValueObject o{{"name", *name}, {"source", *source}};
      if (!trigger->empty()) o.append("trigger", *trigger);
      return call_print(*t, "POST", "/functions", to_json(Value(std::move(o))));
    };
  });
  auto* list = cmd->add_subcommand("list", "List functions with their counters");
  add_target_flags(*list, *t);
  list->callback([&run, t] { run = [t] { return call_print(*t, "GET", "/functions"); }; });
  for (const char* verb : {"describe", "drop"}) {
    auto* sub = cmd->add_subcommand(
        verb, std::string(verb) == "drop" ? "Delete the function" : "Show the function");
    sub->add_option("name", *name)->required();
    add_target_flags(*sub, *t);
    const std::string method = std::string(verb) == "drop" ? "DELETE" : "GET";
    sub->callback([&run, t, name, method] {
      run = [t, name, method] { return call_print(*t, method, "/functions/" + *name); };
    });
  }
}

}  // namespace

void add_rule_commands(CLI::App& app, Runner& run) {
  add_stream(app, run, false);
  add_stream(app, run, true);
  add_rule(app, run);
  add_function(app, run);
}

}  // namespace ganglion::cli
