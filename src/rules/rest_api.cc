// The REST API of the rule manager, shaped after eKuiper's (bodies, status codes and the
// text of success messages), so curl examples and tools written for eKuiper work.
#include <spdlog/spdlog.h>

#include "event/json.h"
#include "functions/function_spec.h"
#include "net/http_server.h"
#include "rules/rule_manager.h"

namespace ganglion::rules {
namespace {

using net::HttpRequest;
using net::HttpResponse;

// eKuiper's error body: {"error": 1000, "message": "..."}; 404 for unknown names, 400 for
// everything else the caller got wrong.
HttpResponse failure(const Status& s) {
  int code = 400;
  if (s.code() == StatusCode::kNotFound) code = 404;
  if (s.code() == StatusCode::kInternal || s.code() == StatusCode::kIoError ||
      s.code() == StatusCode::kNoSpace) {
    code = 500;
  }
  std::string body = "{\"error\":1000,\"message\":";
  append_json_string(s.message(), body);
  body += "}";
  return HttpResponse::json(code, std::move(body));
}

Result<Value> json_body(const HttpRequest& req) {
  auto doc = parse_json(req.body);
  if (!doc.ok()) return InvalidArgument("request body: " + doc.status().message());
  if (!doc->is_object()) return InvalidArgument("request body: expects a JSON object");
  return *doc;
}

Result<std::string> sql_of(const HttpRequest& req) {
  GANGLION_ASSIGN_OR_RETURN(Value doc, json_body(req));
  const Value* sql = doc.find("sql");
  if (sql == nullptr || !sql->is_string() || sql->as_string().empty()) {
    return InvalidArgument("request body: \"sql\" is required");
  }
  return sql->as_string();
}

std::string json_names(const std::vector<std::string>& names) {
  ValueArray a;
  for (const auto& n : names) a.push_back(Value(n));
  return to_json(Value(std::move(a)));
}

// The name a CREATE statement defines (the manager has already validated it).
std::string created_name(std::string_view sql) {
  // "CREATE STREAM name (" / "CREATE TABLE `name` (": the third token.
  std::string s(sql);
  std::size_t i = 0;
  auto skip_ws = [&] {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  };
  for (int word = 0; word < 2; ++word) {
    skip_ws();
    while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  }
  skip_ws();
  std::string name;
  if (i < s.size() && s[i] == '`') {
    const auto end = s.find('`', i + 1);
    return s.substr(i + 1, end == std::string::npos ? std::string::npos : end - i - 1);
  }
  while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_'))
    name += s[i++];
  return name;
}

void add_stream_routes(RuleManager& m, net::HttpRouter& router, bool table) {
  const std::string base = table ? "/tables" : "/streams";
  const std::string noun = table ? "Table" : "Stream";
  router.add("POST", base, [&m, table, noun](const HttpRequest& req) {
    auto sql = sql_of(req);
    if (!sql.ok()) return failure(sql.status());
    if (Status s = m.create_stream(*sql, table); !s.ok()) return failure(s);
    return HttpResponse::text(201, noun + " " + created_name(*sql) + " is created.");
  });
  router.add("GET", base, [&m, table](const HttpRequest&) {
    return HttpResponse::json(200, json_names(m.list_streams(table)));
  });
  router.add("GET", base + "/{name}", [&m, table](const HttpRequest& req) {
    auto d = m.describe_stream(req.params.at("name"), table);
    return d.ok() ? HttpResponse::json(200, *d) : failure(d.status());
  });
  router.add("PUT", base + "/{name}", [&m, table, noun](const HttpRequest& req) {
    auto sql = sql_of(req);
    if (!sql.ok()) return failure(sql.status());
    const std::string& name = req.params.at("name");
    if (Status s = m.update_stream(name, *sql, table); !s.ok()) return failure(s);
    return HttpResponse::text(200, noun + " " + name + " is updated.");
  });
  router.add("DELETE", base + "/{name}", [&m, table, noun](const HttpRequest& req) {
    const std::string& name = req.params.at("name");
    if (Status s = m.drop_stream(name, table); !s.ok()) return failure(s);
    return HttpResponse::text(200, noun + " " + name + " is dropped.");
  });
}

Value function_info(const functions::FunctionInfo& f, const std::string* source) {
  ValueObject o;
  o.append("name", f.name);
  if (!f.file.empty()) o.append("file", f.file);
  if (f.trigger) {
    o.append("trigger", Value(ValueObject{{"filter", f.trigger->filter},
                                          {"qos", static_cast<int>(f.trigger->qos)}}));
  }
  o.append("version", static_cast<long long>(f.version));
  o.append("invocations", static_cast<long long>(f.invocations));
  o.append("errors", static_cast<long long>(f.errors));
  o.append("budget_exceeded", static_cast<long long>(f.budget_exceeded));
  o.append("memory_exceeded", static_cast<long long>(f.memory_exceeded));
  o.append("memory_bytes", static_cast<long long>(f.memory_bytes));
  o.append("state_keys", static_cast<long long>(f.state_keys));
  if (source != nullptr) o.append("source", *source);
  return Value(std::move(o));
}

}  // namespace

void RuleManager::add_routes(net::HttpRouter& router) {
  RuleManager& m = *this;
  add_stream_routes(m, router, false);
  add_stream_routes(m, router, true);

  router.add("POST", "/rules", [&m](const HttpRequest& req) {
    auto spec = parse_rule_spec(req.body);
    if (!spec.ok()) return failure(spec.status());
    const std::string id = spec->id;
    if (Status s = m.create_rule(std::move(*spec)); !s.ok()) return failure(s);
    return HttpResponse::text(201, "Rule " + id + " was created successfully.");
  });
  router.add("GET", "/rules", [&m](const HttpRequest&) {
    ValueArray a;
    for (const auto& r : m.list_rules())
      a.push_back(Value(ValueObject{{"id", r.id}, {"status", r.status}}));
    return HttpResponse::json(200, to_json(Value(std::move(a))));
  });
  router.add("GET", "/rules/{id}", [&m](const HttpRequest& req) {
    auto r = m.rule(req.params.at("id"));
    return r.ok() ? HttpResponse::json(200, to_json(rule_spec_to_value(*r))) : failure(r.status());
  });
  router.add("PUT", "/rules/{id}", [&m](const HttpRequest& req) {
    const std::string& id = req.params.at("id");
    auto doc = json_body(req);
    if (!doc.ok()) return failure(doc.status());
    if (doc->find("id") == nullptr) {
      ValueObject o = doc->as_object();
      o.set("id", id);
      *doc = Value(std::move(o));
    }
    auto spec = rule_spec_from_value(*doc);
    if (!spec.ok()) return failure(spec.status());
    if (spec->id != id)
      return failure(InvalidArgument("the id in the body (" + spec->id + ") is not " + id));
    if (Status s = m.update_rule(std::move(*spec)); !s.ok()) return failure(s);
    return HttpResponse::text(200, "Rule " + id + " was updated successfully.");
  });
  router.add("DELETE", "/rules/{id}", [&m](const HttpRequest& req) {
    const std::string& id = req.params.at("id");
    if (Status s = m.delete_rule(id); !s.ok()) return failure(s);
    return HttpResponse::text(200, "Rule " + id + " is dropped.");
  });
  router.add("POST", "/rules/{id}/start", [&m](const HttpRequest& req) {
    const std::string& id = req.params.at("id");
    if (Status s = m.start_rule(id); !s.ok()) return failure(s);
    return HttpResponse::text(200, "Rule " + id + " was started");
  });
  router.add("POST", "/rules/{id}/stop", [&m](const HttpRequest& req) {
    const std::string& id = req.params.at("id");
    if (Status s = m.stop_rule(id); !s.ok()) return failure(s);
    return HttpResponse::text(200, "Rule " + id + " was stopped.");
  });
  router.add("POST", "/rules/{id}/restart", [&m](const HttpRequest& req) {
    const std::string& id = req.params.at("id");
    if (Status s = m.restart_rule(id); !s.ok()) return failure(s);
    return HttpResponse::text(200, "Rule " + id + " was restarted");
  });
  router.add("GET", "/rules/{id}/status", [&m](const HttpRequest& req) {
    auto s = m.rule_status(req.params.at("id"));
    return s.ok() ? HttpResponse::json(200, *s) : failure(s.status());
  });

  router.add("POST", "/functions", [&m](const HttpRequest& req) {
    auto doc = json_body(req);
    if (!doc.ok()) return failure(doc.status());
    auto spec = functions::function_spec_from_value(*doc);
    if (!spec.ok()) return failure(spec.status());
    const std::string name = spec->name;
    const bool existed = m.functions().find(name) != nullptr;
    if (Status s = m.define_function(std::move(*spec)); !s.ok()) return failure(s);
    return HttpResponse::text(existed ? 200 : 201,
                              "Function " + name + (existed ? " was updated." : " was created."));
  });
  router.add("PUT", "/functions/{name}", [&m](const HttpRequest& req) {
    auto doc = json_body(req);
    if (!doc.ok()) return failure(doc.status());
    const std::string& name = req.params.at("name");
    if (doc->find("name") == nullptr) {
      ValueObject o = doc->as_object();
      o.set("name", name);
      *doc = Value(std::move(o));
    }
    auto spec = functions::function_spec_from_value(*doc);
    if (!spec.ok()) return failure(spec.status());
    if (spec->name != name) return failure(InvalidArgument("the name in the body is not " + name));
    if (Status s = m.define_function(std::move(*spec)); !s.ok()) return failure(s);
    return HttpResponse::text(200, "Function " + name + " was updated.");
  });
  router.add("GET", "/functions", [&m](const HttpRequest&) {
    ValueArray a;
    for (const auto& f : m.functions().list()) a.push_back(function_info(f, nullptr));
    return HttpResponse::json(200, to_json(Value(std::move(a))));
  });
  router.add("GET", "/functions/{name}", [&m](const HttpRequest& req) {
    const std::string& name = req.params.at("name");
    auto info = m.functions().describe(name);
    if (!info.ok()) return failure(info.status());
    auto spec = m.functions().spec(name);
    return HttpResponse::json(200,
                              to_json(function_info(*info, spec.ok() ? &spec->source : nullptr)));
  });
  router.add("DELETE", "/functions/{name}", [&m](const HttpRequest& req) {
    const std::string& name = req.params.at("name");
    if (Status s = m.remove_function(name); !s.ok()) return failure(s);
    return HttpResponse::text(200, "Function " + name + " is dropped.");
  });
}

}  // namespace ganglion::rules
