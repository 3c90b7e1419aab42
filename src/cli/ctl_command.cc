// `ganglion ctl`: the operator's client of the controller's REST API.
//
// Address, token and CA come from flags, else GANGLION_URL / GANGLION_TOKEN / GANGLION_CA,
// else ~/.config/ganglion/ctl.yaml ("url: ...", "token: ...", "ca: ..." lines). Output is a
// table, or the API's JSON with -o json. Exit codes: 0 ok, 1 the request failed (connection,
// HTTP error), 2 usage or missing configuration.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "cloud/api_client.h"

namespace ganglion::cli {
namespace {

using json = nlohmann::json;

struct CtlSettings {
  std::string url, token, ca, output = "table";
};

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\"'");
  const auto e = s.find_last_not_of(" \t\"'\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// Flags win over the environment, which wins over the file.
void resolve(CtlSettings& s) {
  std::map<std::string, std::string> file;
  if (const char* home = std::getenv("HOME")) {
    std::ifstream in(std::string(home) + "/.config/ganglion/ctl.yaml");
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      const auto colon = line.find(':');
      if (colon != std::string::npos)
        file[trim(line.substr(0, colon))] = trim(line.substr(colon + 1));
    }
  }
  auto pick = [&](std::string& v, const char* env, const char* key) {
    if (!v.empty()) return;
    if (const char* e = std::getenv(env); e && *e) {
      v = e;
    } else if (auto it = file.find(key); it != file.end()) {
      v = it->second;
    }
  };
  pick(s.url, "GANGLION_URL", "url");
  pick(s.token, "GANGLION_TOKEN", "token");
  pick(s.ca, "GANGLION_CA", "ca");
}

std::string url_encode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

bool configured(const CtlSettings& s, int& code) {
  if (s.url.empty() || s.token.empty()) {
    std::cerr << "ganglion ctl: set the controller address and token (--url/--token, GANGLION_URL/"
                 "GANGLION_TOKEN, or ~/.config/ganglion/ctl.yaml)\n";
    code = kExitUsage;
    return false;
  }
  return true;
}

// Prints what went wrong with `r`, if anything; the parsed body otherwise.
std::optional<json> answer(const std::string& method, const std::string& target,
                           const Result<cloud::ApiResponse>& r, int& code) {
  if (!r.ok()) {
    std::cerr << "ganglion ctl: " << r.status().message() << "\n";
    code = r.status().code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
    return std::nullopt;
  }
  json j = json::parse(r->body, nullptr, false);
  if (r->status >= 300) {
    std::string msg =
        j.is_object() && j.contains("error") ? j["error"].get<std::string>() : r->body;
    std::cerr << "ganglion ctl: " << method << " " << target << ": HTTP " << r->status << ": "
              << msg << "\n";
    code = kExitFailure;
    return std::nullopt;
  }
  if (j.is_discarded()) {
    std::cerr << "ganglion ctl: the controller answered with something that is not JSON\n";
    code = kExitFailure;
    return std::nullopt;
  }
  code = kExitOk;
  return j;
}

// Runs one request; prints errors. Returns the parsed body, or nullopt with `code` set.
std::optional<json> call(const CtlSettings& s, const std::string& method, const std::string& target,
                         const std::string& body, int& code) {
  if (!configured(s, code)) return std::nullopt;
  cloud::ApiClientOptions o{s.url, s.token, s.ca};
  return answer(method, target, cloud::api_request(o, method, target, body), code);
}

// GETs every page of a list (`limit`/`continue`, `page_size` items each); the body is
// {"items": [...all...]}. Errors as call().
std::optional<json> call_list(const CtlSettings& s, const std::string& target,
                              std::size_t page_size, int& code) {
  if (!configured(s, code)) return std::nullopt;
  cloud::ApiClientOptions o{s.url, s.token, s.ca};
  return answer("GET", target, cloud::api_list(o, target, page_size), code);
}

void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size());
  for (std::size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& r : rows) {
    for (std::size_t i = 0; i < r.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], r[i].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    for (std::size_t i = 0; i < cells.size(); ++i) {
      std::cout << cells[i];
      if (i + 1 < cells.size()) std::cout << std::string(width[i] - cells[i].size() + 2, ' ');
    }
    std::cout << "\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
}

std::string labels_text(const json& labels) {
  std::string out;
  for (auto& [k, v] : labels.items())
    out += (out.empty() ? "" : ",") + k + "=" + v.get<std::string>();
  return out.empty() ? "-" : out;
}

std::string age_text(std::int64_t ms) {
  if (ms <= 0) return "never";
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  const std::int64_t s = std::max<std::int64_t>(0, (now - ms) / 1000);
  if (s < 120) return std::to_string(s) + "s ago";
  if (s < 7200) return std::to_string(s / 60) + "m ago";
  if (s < 172800) return std::to_string(s / 3600) + "h ago";
  return std::to_string(s / 86400) + "d ago";
}

void print_json(const json& j) { std::cout << j.dump(2) << "\n"; }

}  // namespace

void add_ctl_command(CLI::App& app, Runner& run) {
  auto* cmd = app.add_subcommand("ctl", "Operate the fleet through the controller's REST API");
  cmd->require_subcommand(1);
  auto s = std::make_shared<CtlSettings>();
  cmd->add_option("--url", s->url,
                  "Controller API, https://host:port (else GANGLION_URL or ctl.yaml)");
  cmd->add_option("--token", s->token, "API bearer token (else GANGLION_TOKEN or ctl.yaml)");
  cmd->add_option("--ca", s->ca, "PEM CA of the controller (else GANGLION_CA or ctl.yaml)");
  cmd->add_option("-o,--output", s->output, "table or json")
      ->check(CLI::IsMember({"table", "json"}));

  // Options of `ctl` (-o, --url, ...) may also follow the subcommand words.
  auto fallthrough = [](CLI::App* app, auto& self) -> void {
    for (auto* sub : app->get_subcommands({})) {
      sub->fallthrough();
      self(sub, self);
    }
  };
  auto set = [&run, s](std::function<int()> body) {
    run = [s, body = std::move(body)] {
      resolve(*s);
      return body();
    };
  };

  // get nodes
  auto* get = cmd->add_subcommand("get", "List resources");
  get->require_subcommand(1);
  auto* get_nodes = get->add_subcommand("nodes", "List nodes");
  auto selector = std::make_shared<std::string>();
  get_nodes->add_option("-l,--selector", *selector, "Label selector k=v[,k=v]");
  auto chunk_size = std::make_shared<std::size_t>(500);
  get_nodes
      ->add_option("--chunk-size", *chunk_size,
                   "Nodes per request: the list is read page by page (limit/continue)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{10'000}));
  get_nodes->callback([set, s, selector, chunk_size] {
    set([s, selector, chunk_size] {
      int code = 0;
      auto j = call_list(
          *s, "/v1/nodes" + (selector->empty() ? "" : "?selector=" + url_encode(*selector)),
          *chunk_size, code);
      if (!j) return code;
      if (s->output == "json") {
        print_json(*j);
        return kExitOk;
      }
      std::vector<std::vector<std::string>> rows;
      for (const auto& n : (*j)["items"]) {
        rows.push_back(
            {n["id"], n["status"], n["health"],
             n["version"].get<std::string>().empty() ? "-" : n["version"].get<std::string>(),
             age_text(n["last_heartbeat"].get<std::int64_t>()), labels_text(n["labels"])});
      }
      print_table({"NODE", "STATUS", "HEALTH", "VERSION", "LAST HEARTBEAT", "LABELS"}, rows);
      return kExitOk;
    });
  });
  auto* get_tokens = get->add_subcommand("tokens", "List bootstrap tokens (never their secrets)");
  get_tokens->callback([set, s] {
    set([s] {
      int code = 0;
      auto j = call(*s, "GET", "/v1/tokens", "", code);
      if (!j) return code;
      if (s->output == "json") {
        print_json(*j);
        return kExitOk;
      }
      std::vector<std::vector<std::string>> rows;
      for (const auto& t : (*j)["items"]) {
        rows.push_back({t["id"], t["state"],
                        std::to_string(t["uses"].get<std::int64_t>()) + "/" +
                            std::to_string(t["max_uses"].get<std::int64_t>()),
                        std::to_string(t["expires_at"].get<std::int64_t>()),
                        labels_text(t["labels"])});
      }
      print_table({"ID", "STATE", "USES", "EXPIRES AT", "LABELS"}, rows);
      return kExitOk;
    });
  });

  // describe node X
  auto* describe = cmd->add_subcommand("describe", "Show one resource in detail");
  describe->require_subcommand(1);
  auto* describe_node = describe->add_subcommand(
      "node", "Show a node: labels, health and its history, twin, ingestion");
  auto node_id = std::make_shared<std::string>();
  describe_node->add_option("node", *node_id, "Node id")->required();
  describe_node->callback([set, s, node_id] {
    set([s, node_id] {
      int code = 0;
      auto j = call(*s, "GET", "/v1/nodes/" + url_encode(*node_id), "", code);
      if (!j) return code;
      if (s->output == "json") {
        print_json(*j);
        return kExitOk;
      }
      const json& n = *j;
      std::cout << "Node:            " << n["id"].get<std::string>() << "\n"
                << "Status:          " << n["status"].get<std::string>() << "\n"
                << "Health:          " << n["health"].get<std::string>()
                << (n["health_reason"].get<std::string>().empty()
                        ? ""
                        : " (" + n["health_reason"].get<std::string>() + ")")
                << "\n"
                << "Version:         " << n["version"].get<std::string>() << "\n"
                << "Labels:          " << labels_text(n["labels"]) << "\n"
                << "Last heartbeat:  " << age_text(n["last_heartbeat"].get<std::int64_t>()) << "\n"
                << "Heartbeat:       " << n["heartbeat"].dump() << "\n"
                << "Certificate:     " << n["certificate"]["serial"].get<std::string>()
                << ", expires at " << n["certificate"]["expires_at"].get<std::int64_t>() << "\n"
                << "Twin:            desired v" << n["twin"]["desired_version"].get<std::int64_t>()
                << ", reported v" << n["twin"]["reported_version"].get<std::int64_t>() << "\n"
                << "Ingest:          " << n["ingest"].dump() << "\n"
                << "Health history:\n";
      for (const auto& h : n["health_history"]) {
        std::cout << "  " << h["ts"].get<std::int64_t>() << "  " << h["from"].get<std::string>()
                  << " -> " << h["to"].get<std::string>() << "  " << h["reason"].get<std::string>()
                  << "\n";
      }
      return kExitOk;
    });
  });

  // label node X k=v [k-]
  auto* label = cmd->add_subcommand("label", "Set or remove labels");
  label->require_subcommand(1);
  auto* label_node = label->add_subcommand("node", "Label a node: k=v sets, k- removes");
  auto label_node_id = std::make_shared<std::string>();
  auto label_pairs = std::make_shared<std::vector<std::string>>();
  label_node->add_option("node", *label_node_id, "Node id")->required();
  label_node->add_option("labels", *label_pairs, "k=v or k-")->required();
  label_node->callback([set, s, label_node_id, label_pairs] {
    set([s, label_node_id, label_pairs] {
      json labels = json::object();
      for (const auto& p : *label_pairs) {
        const auto eq = p.find('=');
        if (eq != std::string::npos) {
          labels[p.substr(0, eq)] = p.substr(eq + 1);
        } else if (!p.empty() && p.back() == '-') {
          labels[p.substr(0, p.size() - 1)] = nullptr;
        } else {
          std::cerr << "ganglion ctl: label \"" << p << "\": expected k=v or k-\n";
          return kExitUsage;
        }
      }
      int code = 0;
      auto j = call(*s, "PATCH", "/v1/nodes/" + url_encode(*label_node_id),
                    json{{"labels", labels}}.dump(), code);
      if (!j) return code;
      if (s->output == "json")
        print_json(*j);
      else
        std::cout << "node " << *label_node_id << " labelled: " << labels_text((*j)["labels"])
                  << "\n";
      return kExitOk;
    });
  });

  // token create
  auto* token = cmd->add_subcommand("token", "Bootstrap tokens for enrolment");
  token->require_subcommand(1);
  auto* token_create =
      token->add_subcommand("create", "Create a bootstrap token (the secret is shown once)");
  auto token_labels = std::make_shared<std::string>();
  auto token_ttl = std::make_shared<std::string>("1h");
  auto token_uses = std::make_shared<std::int64_t>(1);
  token_create->add_option("--labels", *token_labels,
                           "Labels for nodes enrolling with it: k=v[,k=v]");
  token_create->add_option("--ttl", *token_ttl, "Validity (e.g. 15m, 1h, 7d)")
      ->capture_default_str();
  token_create->add_option("--uses", *token_uses, "How many enrolments it allows")
      ->capture_default_str();
  token_create->callback([set, s, token_labels, token_ttl, token_uses] {
    set([s, token_labels, token_ttl, token_uses] {
      int code = 0;
      json body{{"labels", *token_labels}, {"ttl", *token_ttl}, {"uses", *token_uses}};
      auto j = call(*s, "POST", "/v1/tokens", body.dump(), code);
      if (!j) return code;
      if (s->output == "json")
        print_json(*j);
      else
        std::cout << (*j)["token"].get<std::string>() << "\n";
      return kExitOk;
    });
  });
  auto* token_delete = token->add_subcommand("delete", "Delete a bootstrap token");
  auto token_id = std::make_shared<std::string>();
  token_delete->add_option("id", *token_id, "Token id (from `get tokens`)")->required();
  token_delete->callback([set, s, token_id] {
    set([s, token_id] {
      int code = 0;
      auto j = call(*s, "DELETE", "/v1/tokens/" + url_encode(*token_id), "", code);
      if (!j) return code;
      if (s->output == "json")
        print_json(*j);
      else
        std::cout << "token " << *token_id << " deleted\n";
      return kExitOk;
    });
  });

  // revoke X
  auto* revoke = cmd->add_subcommand("revoke", "Revoke a node's certificate and disconnect it");
  auto revoke_id = std::make_shared<std::string>();
  revoke->add_option("node", *revoke_id, "Node id")->required();
  revoke->callback([set, s, revoke_id] {
    set([s, revoke_id] {
      int code = 0;
      auto j = call(*s, "POST", "/v1/nodes/" + url_encode(*revoke_id) + "/revoke", "{}", code);
      if (!j) return code;
      if (s->output == "json")
        print_json(*j);
      else
        std::cout << "node " << *revoke_id << " revoked\n";
      return kExitOk;
    });
  });

  // query
  auto* query = cmd->add_subcommand("query", "Aggregate a metric over ingested records");
  auto q = std::make_shared<std::map<std::string, std::string>>();
  for (const char* name :
       {"metric", "agg", "bucket", "group-by", "where", "from", "to", "source"}) {
    auto* opt =
        query->add_option(std::string("--") + name, (*q)[name], "See GET /v1/query in docs/api.md");
    if (std::string(name) == "metric") opt->required();
  }
  query->callback([set, s, q] {
    set([s, q] {
      std::string target = "/v1/query?";
      for (const auto& [k, v] : *q) {
        if (v.empty()) continue;
        target += (k == "group-by" ? std::string("group_by") : k) + "=" + url_encode(v) + "&";
      }
      target.pop_back();
      int code = 0;
      auto j = call(*s, "GET", target, "", code);
      if (!j) return code;
      if (s->output == "json") {
        print_json(*j);
        return kExitOk;
      }
      std::vector<std::vector<std::string>> rows;
      for (const auto& series : (*j)["series"]) {
        for (const auto& p : series["points"]) {
          std::ostringstream v;
          v << std::setprecision(6) << p["value"].get<double>();
          rows.push_back({series["group"].get<std::string>().empty()
                              ? "-"
                              : series["group"].get<std::string>(),
                          std::to_string(p["ts"].get<std::int64_t>()), v.str(),
                          std::to_string(p["samples"].get<std::int64_t>())});
        }
      }
      print_table({"GROUP", "BUCKET (ms)", (*j)["agg"].get<std::string>(), "SAMPLES"}, rows);
      return kExitOk;
    });
  });
  fallthrough(cmd, fallthrough);
}

}  // namespace ganglion::cli
