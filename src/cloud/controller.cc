#include "cloud/controller.h"

#include <utility>  // Boost 1.74's Asio needs this before its headers.

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include <charconv>
#include <future>
#include <limits>
#include <shared_mutex>
#include <unordered_set>

#include "base/json_string.h"
#include "base/timer_scope.h"
#include "broker/acl.h"
#include "broker/broker.h"
#include "broker/inprocess_client.h"
#include "broker/listener.h"
#include "broker/session_store.h"
#include "cloud/health.h"
#include "cloud/ingest.h"
#include "cloud/pki.h"
#include "cloud/query.h"
#include "cloud/store.h"
#include "cloud/store_writer.h"
#include "cloud/tokens.h"
#include "net/http_server.h"

namespace ganglion::cloud {
namespace {

using json = nlohmann::json;
using net::HttpRequest;
using net::HttpResponse;

// Who may do what on the node broker. Nodes (username = certificate CN = node id) publish
// under their own prefix and read their desired state and commands; the controller's own
// in-process client reads everything nodes send.
constexpr const char* kControllerUser = "$controller";
constexpr const char* kAclText = R"(
user $controller
topic read ganglion/v1/+/heartbeat
topic read ganglion/v1/+/reported
topic read ganglion/v1/+/up/#
pattern write ganglion/v1/%u/#
pattern read ganglion/v1/%u/desired
pattern read ganglion/v1/%u/commands
)";

constexpr std::size_t kMaxPage = 10'000;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::int64_t to_ms(Duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

json node_json_without_heartbeat(const NodeRecord& n) {
  return json{
      {"id", n.id},
      {"labels", n.labels},
      {"status", n.revoked ? "revoked" : "active"},
      {"health", n.health},
      {"health_reason", n.health_reason},
      {"health_since", n.health_since_ms},
      {"version", n.version},
      {"enrolled_at", n.enrolled_at_ms},
      {"last_heartbeat", n.last_heartbeat_ms},
      {"certificate", {{"serial", n.cert_serial}, {"expires_at", n.cert_expires_at_ms / 1000}}},
      {"twin", {{"desired_version", n.desired_version}, {"reported_version", n.reported_version}}}};
}

// The Node object of docs/api.md as text, appended to `out`: like dump(node_json(n)) but the
// heartbeat (already JSON text from the store) is copied, not parsed and printed again.
void append_node_json(std::string& out, const NodeRecord& n) {
  json j = node_json_without_heartbeat(n);
  std::string text = dump(j);
  // `text` ends with '}': splice the heartbeat in before it.
  text.pop_back();
  out += text;
  out += ",\"heartbeat\":";
  const bool object = n.last_heartbeat.size() >= 2 && n.last_heartbeat.front() == '{' &&
                      n.last_heartbeat.back() == '}';
  out += object ? n.last_heartbeat : std::string("{}");
  out += '}';
}

json node_json(const NodeRecord& n) {
  json j = node_json_without_heartbeat(n);
  json hb = json::parse(n.last_heartbeat, nullptr, false);
  j["heartbeat"] = hb.is_discarded() || !hb.is_object() ? json::object() : hb;
  return j;
}

HttpResponse json_response(int status, const json& j) {
  return HttpResponse::json(status, dump(j));
}

HttpResponse status_response(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
      return HttpResponse::error(400, s.message());
    case StatusCode::kNotFound:
      return HttpResponse::error(404, s.message());
    case StatusCode::kAlreadyExists:
      return HttpResponse::error(409, s.message());
    case StatusCode::kPermissionDenied:
      return HttpResponse::error(403, s.message());
    default:
      return HttpResponse::error(500, "internal error");
  }
}

// RFC 7386 JSON Merge Patch.
void merge_patch(json& target, const json& patch) {
  if (!patch.is_object()) {
    target = patch;
    return;
  }
  if (!target.is_object()) target = json::object();
  for (auto& [k, v] : patch.items()) {
    if (v.is_null()) {
      target.erase(k);
    } else {
      merge_patch(target[k], v);
    }
  }
}

// Server-sent events to every open /v1/events stream.
class EventHub {
 public:
  void add(std::shared_ptr<net::ResponseStream> s) {
    std::lock_guard lock(mu_);
    streams_.push_back(std::move(s));
  }
  void publish(std::string_view type, const json& data) {
    send("event: " + std::string(type) + "\ndata: " + dump(data) + "\n\n");
  }
  void ping() { send(": ping\n\n"); }
  std::size_t size() {
    std::lock_guard lock(mu_);
    return streams_.size();
  }
  void close_all() {
    std::lock_guard lock(mu_);
    for (auto& s : streams_) s->close();
    streams_.clear();
  }

 private:
  void send(const std::string& text) {
    std::lock_guard lock(mu_);
    std::erase_if(streams_,
                  [&](const std::shared_ptr<net::ResponseStream>& s) { return !s->write(text); });
  }
  std::mutex mu_;
  std::vector<std::shared_ptr<net::ResponseStream>> streams_;
};

struct Caller {
  std::string actor;
  Role role = Role::kViewer;
};

}  // namespace

struct Controller::Parts {
  std::unique_ptr<Store> store;
  // Heartbeats, reported twins, health changes and uplink batches go through the writer
  // (group commit, write-behind); everything else writes to the store directly.
  std::unique_ptr<StoreWriter> writer;
  std::unique_ptr<CertificateAuthority> ca;
  std::string ca_file;
  std::unique_ptr<broker::Broker> broker;
  std::unique_ptr<broker::MqttListener> listener;
  std::unique_ptr<broker::InProcessClient> client;
  std::shared_ptr<net::HttpRouter> router = std::make_shared<net::HttpRouter>();
  std::unique_ptr<net::HttpServer> http;
  std::unique_ptr<TimerScope> timers;
  EventHub events;
  std::string mqtt_url;

  // Registry cache: who may connect, and health. Guarded by mu.
  std::mutex mu;
  std::unique_ptr<HealthTracker> health;
  std::shared_mutex identities_mu;
  std::unordered_set<std::string> active;  // enrolled, not revoked

  // Settings.
  Duration cert_validity{};
  std::size_t max_batch_bytes = 0;
  std::int64_t retention_raw_ms = 0, retention_rollup_ms = 0;
  Duration check_interval{}, retention_interval{}, flush_interval{};
  int ticks = 0;
  std::shared_ptr<std::function<void()>> health_tick, retention_tick, flush_tick;

  // Metrics.
  Family<Counter>* enrollments = nullptr;
  Family<Counter>* batches = nullptr;
  Family<Counter>* records = nullptr;
  Family<Counter>* duplicates = nullptr;
  Family<Counter>* rejected = nullptr;
  Counter* heartbeats = nullptr;
  Family<Gauge>* nodes_by_health = nullptr;
  Histogram* commit_seconds = nullptr;
  Family<Counter>* transactions = nullptr;
  Histogram* group_batches = nullptr;
  Histogram* group_seconds = nullptr;
};

namespace {

// Everything below needs Parts, Clock and the metrics; a small context keeps signatures short.
struct Ctx {
  Controller::Parts* p;  // NOLINT
  Clock& clock;
  MetricsRegistry& metrics;
  std::int64_t now_ms() const { return clock.wall_ms(); }

  void audit(const std::string& actor, const std::string& action, const std::string& target,
             const std::string& outcome, const std::string& detail = {}) const {
    Status s = p->store->audit({0, now_ms(), actor, action, target, outcome, detail});
    if (!s.ok()) spdlog::error("audit write failed: {}", s.to_string());
  }

  // Bearer token -> caller, or the 401/403 response.
  std::variant<Caller, HttpResponse> authorize(const HttpRequest& req, Role need) const {
    const std::string& h = req.header("authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (!std::string_view(h).starts_with(kBearer)) {
      HttpResponse r = HttpResponse::error(401, "missing bearer token");
      r.headers.emplace_back("WWW-Authenticate", "Bearer");
      return r;
    }
    auto token =
        p->store->api_token_by_hash(token_hash(std::string_view(h).substr(kBearer.size())));
    if (!token.ok() || token->revoked) {
      HttpResponse r = HttpResponse::error(401, "invalid bearer token");
      r.headers.emplace_back("WWW-Authenticate", "Bearer error=\"invalid_token\"");
      return r;
    }
    Caller c{"api:" + token->name, token->role};
    if (static_cast<int>(token->role) < static_cast<int>(need)) {
      audit(c.actor, req.method + " " + req.path, "", "denied",
            "role " + std::string(to_string(token->role)));
      return HttpResponse::error(
          403, "role " + std::string(to_string(token->role)) + " may not do this");
    }
    return c;
  }

  void announce_health(const HealthChange& c) const {
    p->writer->health(c);  // stored with the writer's next commit
    spdlog::info("node {} is {} (was {}){}{}", c.node, c.to, c.from, c.reason.empty() ? "" : ": ",
                 c.reason);
    p->events.publish(
        "node.health",
        {{"node", c.node}, {"from", c.from}, {"to", c.to}, {"reason", c.reason}, {"ts", c.ts_ms}});
  }

  void publish_desired(const NodeRecord& n) const {
    json props = json::parse(n.desired, nullptr, false);
    if (props.is_discarded()) props = json::object();
    const std::string canonical = dump(props);
    json doc{{"version", n.desired_version},
             {"digest", "sha256:" + sha256_hex(canonical)},
             {"properties", props}};
    auto m = std::make_shared<broker::Message>();
    m->topic = "ganglion/v1/" + n.id + "/desired";
    m->payload = mqtt::SharedBytes(dump(doc));
    m->qos = 1;
    m->retain = true;
    p->broker->publish(m);
  }

  // A node as the store has it, with the writer's newer heartbeat, reported twin and health.
  Result<NodeRecord> node(const std::string& id) const {
    auto n = p->store->node(id);
    if (n.ok()) p->writer->overlay(*n);
    return n;
  }

  bool is_active(const std::string& node) const {
    std::shared_lock lock(p->identities_mu);
    return p->active.contains(node);
  }
};

// --- MQTT side --------------------------------------------------------------------------

void on_heartbeat(const Ctx& c, const std::string& node, std::string_view payload) {
  json j = json_nesting_within(payload, kMaxJsonNesting) ? json::parse(payload, nullptr, false)
                                                         : json(json::value_t::discarded);
  if (j.is_discarded() || !j.is_object()) {
    spdlog::warn("node {}: heartbeat is not a JSON object; ignored", node);
    return;
  }
  c.p->heartbeats->inc();
  std::string version =
      j.contains("version") && j["version"].is_string() ? j["version"].get<std::string>() : "";
  std::vector<std::string> problems;
  if (auto it = j.find("problems"); it != j.end() && it->is_array()) {
    for (const auto& v : *it) problems.push_back(v.is_string() ? v.get<std::string>() : dump(v));
  }
  c.p->writer->heartbeat({node, c.now_ms(), version, dump(j)});  // write-behind
  std::optional<HealthChange> change;
  {
    std::lock_guard lock(c.p->mu);
    change = c.p->health->on_heartbeat(node, std::move(problems));
  }
  if (change) c.announce_health(*change);
}

void on_reported(const Ctx& c, const std::string& node, std::string_view payload) {
  json j = json_nesting_within(payload, kMaxJsonNesting) ? json::parse(payload, nullptr, false)
                                                         : json(json::value_t::discarded);
  if (j.is_discarded() || !j.is_object()) {
    spdlog::warn("node {}: reported twin is not a JSON object; ignored", node);
    return;
  }
  const std::int64_t version = c.p->writer->reported(node, dump(j), c.now_ms(), [&] {
    auto n = c.p->store->node(node);
    return n.ok() ? n->reported_version : std::int64_t{0};
  });
  c.p->events.publish("twin.reported", {{"node", node}, {"version", version}});
}

// Decodes the batch and hands it to the writer, which acknowledges it (`ack`) once its group
// is committed; a batch not stored stays unacknowledged.
void on_batch(const Ctx& c, const std::string& node, const std::string& cls,
              std::string_view payload, const broker::DeliveryAck& ack) {
  auto batch = decode_uplink_batch(payload, node, cls, c.p->max_batch_bytes);
  if (!batch.ok()) {
    // Acknowledged anyway: sending the same bytes again cannot succeed. Counted and kept
    // as the node's last ingest error.
    c.p->rejected->with({node}).inc();
    spdlog::warn("node {}: uplink batch on class {} rejected: {}", node, cls,
                 batch.status().message());
    (void)c.p->store->ingest_rejected(node, batch.status().message(), c.now_ms());
    ack();
    return;
  }
  const MonoTime t0 = c.clock.now();
  const std::uint64_t seq = batch->seq;
  c.p->writer->submit(
      std::move(*batch), [c, node, cls, seq, t0, ack](Result<IngestOutcome> outcome) {
        c.p->commit_seconds->observe(std::chrono::duration<double>(c.clock.now() - t0).count());
        if (!outcome.ok()) {
          spdlog::error("node {}: uplink batch {}/{} not stored: {}", node, cls, seq,
                        outcome.status().to_string());
          return;  // not acknowledged: delivered again when the consumer's session resumes
        }
        if (outcome->duplicate) {
          c.p->duplicates->with({node}).inc();
        } else {
          c.p->batches->with({node}).inc();
          c.p->records->with({node}).inc(outcome->stored);
        }
        ack();
      });
}

void handle_message(const Ctx& c, const mqtt::Publish& m, const broker::DeliveryAck& ack) {
  std::string node, rest;
  if (!split_node_topic(m.topic, node, rest) || !c.is_active(node)) {
    ack();
    return;
  }
  if (rest == "heartbeat") {
    on_heartbeat(c, node, m.payload.view());
  } else if (rest == "reported") {
    on_reported(c, node, m.payload.view());
  } else if (rest.starts_with("up/")) {
    const std::string cls = rest.substr(3);
    if (cls.empty() || cls.find('/') != std::string::npos || cls.size() > 64) {
      c.p->rejected->with({node}).inc();
      (void)c.p->store->ingest_rejected(node, "bad class in topic", c.now_ms());
    } else {
      on_batch(c, node, cls, m.payload.view(), ack);  // acknowledges once stored
      return;
    }
  }
  ack();
}

// --- HTTP side --------------------------------------------------------------------------

#define GANGLION_AUTHORIZE(caller, ctx, req, role)                  \
  auto caller##_or = (ctx).authorize((req), (role));                \
  if (auto* r = std::get_if<HttpResponse>(&caller##_or)) return *r; \
  const Caller& caller = std::get<Caller>(caller##_or)

std::optional<json> parse_body(const HttpRequest& req) {
  // Copying or dumping a parsed document recurses once per level (see kMaxJsonNesting).
  if (!json_nesting_within(req.body, kMaxJsonNesting)) return std::nullopt;
  json j = json::parse(req.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

std::string str_field(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

HttpResponse enroll(const Ctx& c, const HttpRequest& req) {
  auto body = parse_body(req);
  const std::string node_id = body ? str_field(*body, "node_id") : "";
  const std::string token = body ? str_field(*body, "token") : "";
  const std::string csr = body ? str_field(*body, "csr") : "";
  auto deny = [&](const std::string& actor, std::string_view why) {
    c.p->enrollments->with({"unauthorized"}).inc();
    c.audit(actor, "node.enroll", node_id, "denied", std::string(why));
    spdlog::warn("enrolment of \"{}\" from {} refused: {}", node_id, req.remote, why);
    return HttpResponse::error(401, "bootstrap token invalid, expired or used up");
  };
  if (token.empty()) return deny("anonymous", "no token");
  auto found = c.p->store->bootstrap_token_by_hash(token_hash(token));
  std::optional<BootstrapToken> t;
  if (found.ok()) t = *found;
  const TokenCheck check = check_bootstrap_token(t, c.now_ms());
  const std::string actor = t ? "bootstrap-token:" + t->id : "bootstrap-token:unknown";
  if (check != TokenCheck::kValid) return deny(actor, to_string(check));
  auto bad = [&](const std::string& why) {
    c.p->enrollments->with({"bad_request"}).inc();
    c.audit(actor, "node.enroll", node_id, "failed", why);
    return HttpResponse::error(400, why);
  };
  if (!valid_node_id(node_id))
    return bad("node_id: 1-64 characters [a-z0-9._-], starting with a letter or digit");
  auto issued = c.p->ca->sign_node_csr(csr, node_id, c.clock.wall_now(), c.p->cert_validity);
  if (!issued.ok()) return bad(issued.status().message());
  auto existing = c.p->store->node(node_id);
  LabelMap labels = t->labels;
  if (existing.ok()) {
    if (existing->revoked || existing->key_sha256 != issued->key_sha256) {
      c.p->enrollments->with({"conflict"}).inc();
      c.audit(actor, "node.enroll", node_id, "denied",
              existing->revoked ? "node revoked" : "node id taken by another key");
      return HttpResponse::error(409, "node id already enrolled with another identity");
    }
    for (auto& [k, v] : existing->labels) labels.emplace(k, v);  // token labels win
  }
  NodeRecord n;
  n.id = node_id;
  n.labels = labels;
  n.enrolled_at_ms = c.now_ms();
  n.key_sha256 = issued->key_sha256;
  n.cert_serial = issued->serial;
  n.cert_expires_at_ms = issued->not_after_ms;
  n.token_id = t->id;
  // One transaction for the token use, the node and its audit entry, shared with whatever
  // else the writer commits meanwhile (other enrolments, uplink batches): one fsync per group
  // instead of two per enrolment. This API thread waits for it.
  std::promise<Status> stored;
  auto stored_status = stored.get_future();
  c.p->writer->enroll(Enrolment{t->hash, n,
                                AuditEntry{0, n.enrolled_at_ms, actor, "node.enroll", node_id, "ok",
                                           "serial " + issued->serial}},
                      [&stored](Status st) { stored.set_value(std::move(st)); });
  Status s = stored_status.get();
  if (s.code() == StatusCode::kPermissionDenied)
    return deny(actor, "used up (concurrent enrolment)");
  if (!s.ok()) {
    spdlog::error("enrolment of {} not stored: {}", node_id, s.to_string());
    return HttpResponse::error(500, "internal error");
  }
  {
    std::unique_lock lock(c.p->identities_mu);
    c.p->active.insert(node_id);
  }
  if (!existing.ok()) {
    std::lock_guard lock(c.p->mu);
    c.p->health->track(node_id, "offline", std::nullopt);
  }
  c.p->enrollments->with({"ok"}).inc();
  c.p->events.publish("node.enrolled", {{"node", node_id}, {"labels", labels}});
  spdlog::info("node {} enrolled (certificate {}, token {})", node_id, issued->serial, t->id);
  return json_response(200, {{"node_id", node_id},
                             {"certificate", issued->pem},
                             {"ca", c.p->ca->certificate_pem()},
                             {"mqtt_url", c.p->mqtt_url},
                             {"expires_at", issued->not_after_ms / 1000}});
}

HttpResponse renew(const Ctx& c, const HttpRequest& req) {
  const std::string& cn = req.peer_certificate_cn;
  if (cn.empty())
    return HttpResponse::error(401,
                               "renewal needs the current certificate as TLS client certificate");
  auto body = parse_body(req);
  if (!body) return HttpResponse::error(400, "body: expected a JSON object");
  const std::string node_id = str_field(*body, "node_id");
  const std::string actor = "node:" + cn;
  auto n = c.p->store->node(cn);
  if (node_id != cn || !n.ok() || n->revoked || n->cert_serial != req.peer_certificate_serial) {
    c.audit(actor, "node.renew", node_id, "denied",
            "certificate not current, revoked or for another node");
    return HttpResponse::error(401, "certificate not current, revoked or for another node");
  }
  auto issued = c.p->ca->sign_node_csr(str_field(*body, "csr"), node_id, c.clock.wall_now(),
                                       c.p->cert_validity);
  if (!issued.ok()) {
    c.audit(actor, "node.renew", node_id, "failed", issued.status().message());
    return HttpResponse::error(400, issued.status().message());
  }
  Status s = c.p->store->set_certificate(node_id, issued->serial, issued->not_after_ms,
                                         issued->key_sha256);
  if (!s.ok()) return status_response(s);
  c.audit(actor, "node.renew", node_id, "ok", "serial " + issued->serial);
  return json_response(200, {{"node_id", node_id},
                             {"certificate", issued->pem},
                             {"ca", c.p->ca->certificate_pem()},
                             {"mqtt_url", c.p->mqtt_url},
                             {"expires_at", issued->not_after_ms / 1000}});
}

bool matches_selector(const NodeRecord& n, const LabelMap& selector) {
  for (const auto& [k, v] : selector) {
    auto it = n.labels.find(k);
    if (it == n.labels.end() || it->second != v) return false;
  }
  return true;
}

void add_api_routes(const Ctx& c, net::HttpRouter& r) {
  r.add("GET", "/healthz",
        [](const HttpRequest&) { return HttpResponse::json(200, "{\"status\":\"ok\"}"); });
  r.add("GET", "/metrics", [c](const HttpRequest& req) {
    GANGLION_AUTHORIZE(caller, c, req, Role::kViewer);
    (void)caller;
    std::map<std::string, int> counts{{"healthy", 0}, {"degraded", 0}, {"offline", 0}};
    {
      std::scoped_lock lock(c.p->mu);
      std::shared_lock ilock(c.p->identities_mu);
      for (const auto& id : c.p->active) counts[c.p->health->state(id)]++;
    }
    for (auto& [h, n] : counts) c.p->nodes_by_health->with({h}).set(n);
    HttpResponse res = HttpResponse::text(200, c.metrics.render());
    res.content_type = "text/plain; version=0.0.4; charset=utf-8";
    return res;
  });
  r.add("POST", "/v1/enroll", [c](const HttpRequest& req) { return enroll(c, req); });
  r.add("POST", "/v1/renew", [c](const HttpRequest& req) { return renew(c, req); });

  r.add("GET", "/v1/nodes", [c](const HttpRequest& req) {
    GANGLION_AUTHORIZE(caller, c, req, Role::kViewer);
    (void)caller;
    LabelMap selector;
    if (auto it = req.query.find("selector"); it != req.query.end()) {
      auto sel = parse_label_list(it->second);
      if (!sel.ok()) return HttpResponse::error(400, "selector: " + sel.status().message());
      selector = *sel;
    }
    // Paging: `limit` (1..kMaxPage) and the `continue` token of the previous page (also
    // accepted as `after=<node id>`). Without `limit`, every node, as before.
    std::size_t limit = std::numeric_limits<std::size_t>::max();
    if (auto it = req.query.find("limit"); it != req.query.end()) {
      std::size_t v = 0;
      const auto* end = it->second.data() + it->second.size();
      auto [ptr, ec] = std::from_chars(it->second.data(), end, v);
      if (ec != std::errc() || ptr != end || v < 1 || v > kMaxPage)
        return HttpResponse::error(400, "limit: expected an integer from 1 to 10000");
      limit = v;
    }
    std::string after;
    if (auto it = req.query.find("continue"); it != req.query.end()) after = it->second;
    if (auto it = req.query.find("after"); it != req.query.end()) after = it->second;
    auto page = c.p->store->nodes_page(after, limit, selector);
    if (!page.ok()) return status_response(page.status());
    std::string body = "{\"items\":[";
    bool first = true;
    for (auto& n : page->items) {
      c.p->writer->overlay(n);
      if (!first) body += ',';
      first = false;
      append_node_json(body, n);
    }
    body += ']';
    if (page->more && !page->items.empty()) {
      body += ",\"continue\":";
      body += dump(json(page->items.back().id));
    }
    body += '}';
    return HttpResponse::json(200, std::move(body));
  });
  r.add("GET", "/v1/nodes/{id}", [c](const HttpRequest& req) {
    GANGLION_AUTHORIZE(caller, c, req, Role::kViewer);
    (void)caller;
    const std::string& id = req.params.at("id");
    auto n = c.node(id);
    if (!n.ok()) return status_response(n.status());
    json j = node_json(*n);
    json history = json::array();
    // Changes not yet committed first (then the store's): a change committed in between is
    // in both lists and shown once.
    std::vector<HealthChange> unwritten = c.p->writer->unwritten_health(id);
    if (auto h = c.p->store->health_history(id, 50); h.ok()) {
      for (const auto& u : unwritten) {
        const bool stored = std::any_of(h->begin(), h->end(), [&](const HealthChange& e) {
          return e.ts_ms == u.ts_ms && e.from == u.from && e.to == u.to && e.reason == u.reason;
        });
        if (!stored) h->push_back(u);
      }
      if (h->size() > 50) h->erase(h->begin(), h->end() - 50);
      for (const auto& e : *h)
        history.push_back({{"ts", e.ts_ms}, {"from", e.from}, {"to", e.to}, {"reason", e.reason}});
    }
    j["health_history"] = history;
    json ingest = {{"batches", 0},  {"records", 0},     {"duplicates", 0},
                   {"rejected", 0}, {"last_ingest", 0}, {"last_error", ""}};
    // This node's row only: reading every node's (10,000 rows) made the call O(fleet).
    if (auto s = c.p->store->node_ingest_stats(id); s.ok()) {
      ingest = {{"batches", s->batches},
                {"records", s->records},
                {"duplicates", s->duplicates},
                {"rejected", s->rejected},
                {"last_ingest", s->last_ingest_ms},
                {"last_error", s->last_error}};
    }
    if (auto count = c.p->store->record_count(id); count.ok()) ingest["stored_records"] = *count;
    j["ingest"] = ingest;
    return json_response(200, j);
  });
  r.add("PATCH", "/v1/nodes/{id}", [c](const HttpRequest& req) {
    GANGLION_AUTHORIZE(caller, c, req, Role::kOperator);
    const std::string& id = req.params.at("id");
    auto body = parse_body(req);
    if (!body || !body->contains("labels") || !(*body)["labels"].is_object()) {
      return HttpResponse::error(400, "body: expected {\"labels\": {key: value or null}}");
    }
    auto n = c.node(id);
    if (!n.ok()) return status_response(n.status());
    LabelMap labels = n->labels;
    for (auto& [k, v] : (*body)["labels"].items()) {
      if (!valid_label_key(k)) return HttpResponse::error(400, "bad label key \"" + k + "\"");
      if (v.is_null()) {
        labels.erase(k);
      } else if (v.is_string() && valid_label_value(v.get<std::string>())) {
        labels[k] = v.get<std::string>();
      } else {
        return HttpResponse::error(400, "bad label value for \"" + k + "\"");
      }
    }
    Status s = c.p->store->set_labels(id, labels);
    c.audit(caller.actor, "node.label", id, s.ok() ? "ok" : "failed", dump(json(labels)));
    if (!s.ok()) return status_response(s);
    c.p->events.publish("node.labels", {{"node", id}, {"labels", labels}});
    n->labels = labels;
    return json_response(200, node_json(*n));
  });
  r.add("POST", "/v1/nodes/{id}/revoke", [c](const HttpRequest& req) {
    GANGLION_AUTHORIZE(caller, c, req, Role::kOperator);
    const std::string& id = req.params.at("id");
    Status s = c.p->store->set_revoked(id);
    c.audit(caller.actor, "node.revoke", id, s.ok() ? "ok" : "failed", s.ok() ? "" : s.message());
    if (!s.ok()) return status_response(s);
    {
      std::unique_lock lock(c.p->identities_mu);
      c.p->active.erase(id);
    }
    const std::size_t dropped =
        c.p->broker->disconnect_username(id, mqtt::ReasonCode::kAdministrativeAction);
    c.p->events.publish("node.revoked", {{"node", id}});
    spdlog::info("node {} revoked by {} ({} live connection(s) closed)", id, caller.actor, dropped);
    return json_response(200, {{"node", id}, {"status", "revoked"}, {"disconnected", dropped}});
  });
  r.add("GET", "/v1/nodes/{id}/twin", [c](const HttpRequest& req) {
    GANGLION_AUTHORIZE(caller, c, req, Role::kViewer);
    (void)caller;
    auto n = c.node(req.params.at("id"));
    if (!n.ok()) return status_response(n.status());
    return json_response(200, {{"node", n->id},
                               {"desired",
                                {{"version", n->desired_version},
                                 {"properties", json::parse(n->desired, nullptr, false)}}},
                               {"reported",
                                {{"version", n->reported_version},
                                 {"updated_at", n->reported_at_ms},
                                 {"properties", json::parse(n->reported, nullptr, false)}}}});
  });
  r.add("PATCH", "/v1/nodes/{id}/twin", [c](const HttpRequest& req) {
    GANGLION_AUTHORIZE(caller, c, req, Role::kOperator);
    const std::string& id = req.params.at("id");
    auto body = parse_body(req);
    if (!body || !body->contains("desired") || !(*body)["desired"].is_object()) {
      return HttpResponse::error(
          400, "body: expected {\"desired\": <JSON merge patch of the desired properties>}");
    }
    auto n = c.node(id);
    if (!n.ok()) return status_response(n.status());
    json desired = json::parse(n->desired, nullptr, false);
    if (desired.is_discarded()) desired = json::object();
    merge_patch(desired, (*body)["desired"]);
    n->desired = dump(desired);
    n->desired_version += 1;
    Status s = c.p->store->set_desired(id, n->desired, n->desired_version);
    c.audit(caller.actor, "twin.desired", id, s.ok() ? "ok" : "failed",
            "version " + std::to_string(n->desired_version));
    if (!s.ok()) return status_response(s);
    c.publish_desired(*n);
    c.p->events.publish("twin.desired", {{"node", id}, {"version", n->desired_version}});
    return json_response(
        200,
        {{"node", id}, {"desired", {{"version", n->desired_version}, {"properties", desired}}}});
  });

  r.add("POST", "/v1/tokens", [c](const HttpRequest& req) {
    GANGLION_AUTHORIZE(caller, c, req, Role::kOperator);
    auto body = parse_body(req);
    if (!body) return HttpResponse::error(400, "body: expected a JSON object");
    LabelMap labels;
    if (auto it = body->find("labels"); it != body->end()) {
      if (it->is_string()) {
        auto l = parse_label_list(it->get<std::string>());
        if (!l.ok()) return HttpResponse::error(400, "labels: " + l.status().message());
        labels = *l;
      } else if (it->is_object()) {
        for (auto& [k, v] : it->items()) {
          if (!valid_label_key(k) || !v.is_string() || !valid_label_value(v.get<std::string>())) {
            return HttpResponse::error(400, "labels: bad label \"" + k + "\"");
          }
          labels[k] = v.get<std::string>();
        }
      } else {
        return HttpResponse::error(400, "labels: expected an object or \"k=v,...\"");
      }
    }
    std::int64_t ttl_ms = 3'600'000;
    if (auto it = body->find("ttl"); it != body->end()) {
      auto d = it->is_string() ? parse_duration_ms(it->get<std::string>())
                               : Result<std::int64_t>(InvalidArgument("x"));
      if (!d.ok() || *d <= 0 || *d > 365LL * 86'400'000)
        return HttpResponse::error(400, "ttl: expected a duration up to 365d");
      ttl_ms = *d;
    }
    std::int64_t uses = 1;
    if (auto it = body->find("uses"); it != body->end()) {
      if (!it->is_number_integer() || it->get<std::int64_t>() < 1 ||
          it->get<std::int64_t>() > 1'000'000) {
        return HttpResponse::error(400, "uses: expected an integer from 1 to 1000000");
      }
      uses = it->get<std::int64_t>();
    }
    NewBootstrapToken t = make_bootstrap_token(labels, ttl_ms, uses, c.now_ms(), caller.actor);
    Status s = c.p->store->add_bootstrap_token(t.record);
    c.audit(caller.actor, "token.create", t.record.id, s.ok() ? "ok" : "failed",
            "labels " + dump(json(labels)) + ", uses " + std::to_string(uses));
    if (!s.ok()) return status_response(s);
    return json_response(201, {{"id", t.record.id},
                               {"token", t.secret},
                               {"labels", labels},
                               {"expires_at", t.record.expires_at_ms / 1000},
                               {"uses", uses}});
  });
  r.add("GET", "/v1/tokens", [c](const HttpRequest& req) {
    GANGLION_AUTHORIZE(caller, c, req, Role::kOperator);
    (void)caller;
    auto tokens = c.p->store->bootstrap_tokens();
    if (!tokens.ok()) return status_response(tokens.status());
    json items = json::array();
    for (const auto& t : *tokens) {
      items.push_back({{"id", t.id},
                       {"labels", t.labels},
                       {"created_at", t.created_at_ms / 1000},
                       {"expires_at", t.expires_at_ms / 1000},
                       {"max_uses", t.max_uses},
                       {"uses", t.uses},
                       {"created_by", t.created_by},
                       {"state", to_string(check_bootstrap_token(t, c.now_ms()))}});
    }
    return json_response(200, {{"items", items}});
  });
  r.add("DELETE", "/v1/tokens/{id}", [c](const HttpRequest& req) {
    GANGLION_AUTHORIZE(caller, c, req, Role::kOperator);
    const std::string& id = req.params.at("id");
    Status s = c.p->store->delete_bootstrap_token(id);
    c.audit(caller.actor, "token.delete", id, s.ok() ? "ok" : "failed");
    if (!s.ok()) return status_response(s);
    return json_response(200, {{"id", id}, {"deleted", true}});
  });
  r.add("POST", "/v1/api-tokens", [c](const HttpRequest& req) {
    GANGLION_AUTHORIZE(caller, c, req, Role::kAdmin);
    auto body = parse_body(req);
    const std::string name = body ? str_field(*body, "name") : "";
    auto role = parse_role(body ? str_field(*body, "role") : "");
    if (name.empty() || name.size() > 64 || !role) {
      return HttpResponse::error(
          400, "body: expected {\"name\": \"...\", \"role\": \"admin|operator|viewer\"}");
    }
    NewApiToken t = make_api_token(name, *role, c.now_ms());
    Status s = c.p->store->add_api_token(t.record);
    c.audit(caller.actor, "apitoken.create", name, s.ok() ? "ok" : "failed",
            "role " + std::string(to_string(*role)));
    if (!s.ok()) return status_response(s);
    return json_response(
        201,
        {{"id", t.record.id}, {"name", name}, {"role", to_string(*role)}, {"token", t.secret}});
  });

  r.add("GET", "/v1/query", [c](const HttpRequest& req) {
    GANGLION_AUTHORIZE(caller, c, req, Role::kViewer);
    (void)caller;
    auto params = parse_query_params(req.query, c.now_ms());
    if (!params.ok()) return HttpResponse::error(400, params.status().message());
    auto sql = build_query(*params);
    if (!sql.ok()) return HttpResponse::error(400, sql.status().message());
    auto rows = c.p->store->query(*sql);
    if (!rows.ok()) return status_response(rows.status());
    json series = json::array();
    json* current = nullptr;
    std::string current_group;
    for (const auto& row : *rows) {
      if (!current || row.group != current_group) {
        series.push_back({{"group", row.group}, {"points", json::array()}});
        current = &series.back();
        current_group = row.group;
      }
      (*current)["points"].push_back(
          {{"ts", row.bucket_ms}, {"value", row.value}, {"samples", row.samples}});
    }
    return json_response(200, {{"metric", params->metric},
                               {"agg", params->agg},
                               {"bucket_ms", params->bucket_ms},
                               {"group_by", params->group_by},
                               {"from", params->from_ms},
                               {"to", params->to_ms},
                               {"source", params->rollup ? "rollup" : "raw"},
                               {"series", series}});
  });
  r.add("GET", "/v1/events", [c](const HttpRequest& req) {
    GANGLION_AUTHORIZE(caller, c, req, Role::kViewer);
    (void)caller;
    HttpResponse res;
    res.content_type = "text/event-stream";
    res.stream = [c](std::shared_ptr<net::ResponseStream> s) {
      s->write(": ganglion fleet events\n\n");
      c.p->events.add(std::move(s));
    };
    return res;
  });
  r.add("GET", "/v1/audit", [c](const HttpRequest& req) {
    GANGLION_AUTHORIZE(caller, c, req, Role::kAdmin);
    (void)caller;
    std::int64_t since = 0;
    std::size_t limit = 100;
    try {
      if (auto it = req.query.find("since"); it != req.query.end()) since = std::stoll(it->second);
      if (auto it = req.query.find("limit"); it != req.query.end())
        limit = std::clamp<std::size_t>(std::stoul(it->second), 1, 1000);
    } catch (const std::exception&) {
      return HttpResponse::error(400, "since and limit: expected integers");
    }
    auto entries = c.p->store->audit_log(since, limit);
    if (!entries.ok()) return status_response(entries.status());
    json items = json::array();
    for (const auto& e : *entries) {
      items.push_back({{"id", e.id},
                       {"ts", e.ts_ms},
                       {"actor", e.actor},
                       {"action", e.action},
                       {"target", e.target},
                       {"outcome", e.outcome},
                       {"detail", e.detail}});
    }
    return json_response(200, {{"items", items}});
  });
}

}  // namespace

Controller::Controller(const Config& config, Env& env, Clock& clock, net::IoPool& pool)
    : config_(config), env_(env), clock_(clock), pool_(pool), parts_(std::make_unique<Parts>()) {}

Controller::~Controller() {
  stop();
  release();
}

std::uint16_t Controller::api_port() const {
  return parts_ && parts_->http ? parts_->http->port() : 0;
}
std::string Controller::mqtt_url() const { return parts_ ? parts_->mqtt_url : ""; }

Status Controller::start() {
  Parts& p = *parts_;
  const std::string data_dir = config_.str("cloud.data_dir");
  GANGLION_RETURN_IF_ERROR(env_.create_dirs(data_dir).with_context("cannot create data folder"));
  p.cert_validity = std::chrono::milliseconds(config_.integer("cloud.cert_validity"));
  p.max_batch_bytes = static_cast<std::size_t>(config_.integer("cloud.ingest.max_batch_bytes"));
  p.retention_raw_ms = config_.integer("cloud.retention.raw");
  p.retention_rollup_ms = config_.integer("cloud.retention.rollup");
  p.check_interval = std::chrono::milliseconds(config_.integer("cloud.health.check_interval"));
  p.retention_interval = std::chrono::milliseconds(config_.integer("cloud.retention.interval"));
  p.flush_interval = std::chrono::milliseconds(config_.integer("cloud.store.flush_interval"));
  HealthPolicy policy{std::chrono::milliseconds(config_.integer("cloud.heartbeat.interval")),
                      std::chrono::milliseconds(config_.integer("cloud.heartbeat.offline_grace"))};
  p.health = std::make_unique<HealthTracker>(clock_, policy);

  p.enrollments = &metrics_.counter("ganglion_cloud_enrollments_total",
                                    "Enrolment attempts by outcome.", {"outcome"});
  p.batches =
      &metrics_.counter("ganglion_cloud_ingest_batches_total", "Uplink batches stored.", {"node"});
  p.records = &metrics_.counter("ganglion_cloud_ingest_records_total", "Records stored.", {"node"});
  p.duplicates = &metrics_.counter("ganglion_cloud_ingest_duplicates_total",
                                   "Uplink batches received again and dropped.", {"node"});
  p.rejected = &metrics_.counter("ganglion_cloud_ingest_rejected_total",
                                 "Malformed uplink batches.", {"node"});
  p.heartbeats = &metrics_.counter("ganglion_cloud_heartbeats_total", "Heartbeats received.").get();
  p.nodes_by_health =
      &metrics_.gauge("ganglion_cloud_nodes", "Active nodes by health.", {"health"});
  p.commit_seconds =
      &metrics_
           .histogram("ganglion_cloud_ingest_commit_seconds",
                      "Time from receiving an uplink batch until it is stored durably (waiting "
                      "for its group commit included).",
                      exponential_buckets(0.0005, 2, 14))
           .get();
  p.transactions = &metrics_.counter("ganglion_cloud_store_group_commits_total",
                                     "Group commits of the store writer by outcome.", {"outcome"});
  p.group_batches =
      &metrics_
           .histogram("ganglion_cloud_store_group_batches", "Uplink batches per group commit.",
                      exponential_buckets(1, 2, 11))
           .get();
  p.group_seconds = &metrics_
                         .histogram("ganglion_cloud_store_group_commit_seconds",
                                    "Duration of one group commit (node state and batches).",
                                    exponential_buckets(0.0005, 2, 14))
                         .get();

  // Store.
  GANGLION_ASSIGN_OR_RETURN(p.store, open_sqlite_store(join_path(data_dir, "cloud.db")));
  restrict_to_owner(join_path(data_dir, "cloud.db"));
  StoreWriter::Options wo;
  wo.on_commit = [parts = &p](const StoreWriter::CommitInfo& info) {
    parts->transactions->with({info.ok ? "ok" : "failed"}).inc();
    parts->group_batches->observe(static_cast<double>(info.batches));
    parts->group_seconds->observe(std::chrono::duration<double>(info.elapsed).count());
  };
  p.writer = std::make_unique<StoreWriter>(*p.store, clock_, std::move(wo));
  p.writer->start();

  // PKI.
  const std::string pki_dir = join_path(data_dir, "pki");
  GANGLION_ASSIGN_OR_RETURN(p.ca,
                            CertificateAuthority::load_or_create(env_, pki_dir, clock_.wall_now()));
  GANGLION_RETURN_IF_ERROR(load_or_create_signing_key(env_, pki_dir).status());
  GANGLION_ASSIGN_OR_RETURN(
      auto server, p.ca->issue_server_certificate(config_.list("cloud.tls.names"),
                                                  clock_.wall_now(), std::chrono::hours(24 * 365)));
  const std::string server_cert = join_path(pki_dir, "server.pem");
  const std::string server_key = join_path(pki_dir, "server.key");
  p.ca_file = join_path(pki_dir, "ca.pem");
  GANGLION_RETURN_IF_ERROR(env_.write_file_atomic(server_key, server.key));
  restrict_to_owner(server_key);
  GANGLION_RETURN_IF_ERROR(env_.write_file_atomic(server_cert, server.certificate));

  // The first admin token.
  GANGLION_ASSIGN_OR_RETURN(auto api_tokens, p.store->api_tokens());
  if (api_tokens.empty()) {
    NewApiToken admin = make_api_token("admin", Role::kAdmin, clock_.wall_ms());
    GANGLION_RETURN_IF_ERROR(p.store->add_api_token(admin.record));
    initial_admin_token_ = admin.secret;
    (void)p.store->audit(
        {0, clock_.wall_ms(), "system", "apitoken.create", "admin", "ok", "first start"});
  }

  // Registry cache.
  GANGLION_ASSIGN_OR_RETURN(auto nodes, p.store->nodes());
  for (const auto& n : nodes) {
    if (n.revoked) continue;
    p.active.insert(n.id);
    std::optional<Duration> age;
    if (n.last_heartbeat_ms > 0)
      age = std::chrono::milliseconds(
          std::max<std::int64_t>(0, clock_.wall_ms() - n.last_heartbeat_ms));
    p.health->track(n.id, n.health, age);
  }

  // Broker for nodes.
  broker::BrokerOptions bo;
  bo.max_packet_size = static_cast<std::uint32_t>(config_.integer("cloud.mqtt.max_packet_size"));
  bo.allow_anonymous = false;
  bo.certificate_cn_as_username = true;
  bo.sys_interval = std::chrono::milliseconds(0);
  bo.version = "ganglion-cloud";
  p.broker = std::make_unique<broker::Broker>(bo, clock_, metrics_);
  auto acl = broker::AclPolicy::parse(kAclText);
  if (!acl.ok()) return Internal(acl.status().message());
  p.broker->set_acl(std::make_shared<broker::AclPolicy>(std::move(*acl)));
  p.broker->set_identity_filter([parts = &p](const std::string& username) {
    std::shared_lock lock(parts->identities_mu);
    return parts->active.contains(username);
  });
  broker::SessionStoreOptions so;
  so.dir = join_path(data_dir, "broker");
  so.fsync = true;
  GANGLION_ASSIGN_OR_RETURN(auto session_store, broker::SessionStore::open(env_, clock_, so));
  GANGLION_RETURN_IF_ERROR(p.broker->attach_store(std::move(session_store)));
  GANGLION_ASSIGN_OR_RETURN(auto lo, broker::parse_listener_url(config_.str("cloud.mqtt.listen")));
  if (lo.transport != "tls")
    return InvalidArgument("cloud.mqtt.listen: nodes connect over tls:// only");
  lo.tls.certificate_file = server_cert;
  lo.tls.key_file = server_key;
  lo.tls.ca_file = p.ca_file;
  lo.tls.require_client_certificate = true;
  p.listener = std::make_unique<broker::MqttListener>(*p.broker, pool_, lo);
  GANGLION_RETURN_IF_ERROR(p.listener->start());
  p.mqtt_url = config_.str("cloud.mqtt.public_url").empty() ? p.listener->url()
                                                            : config_.str("cloud.mqtt.public_url");
  p.broker->start();

  // The controller's own consumer: a persistent session, so batches routed while it was
  // away (or not yet acknowledged when it stopped) are delivered again.
  Ctx ctx{&p, clock_, metrics_};
  auto& loop = pool_.loop(0);
  broker::ClientOptions co;
  co.client_id = "ganglion-controller";
  co.username = kControllerUser;
  co.clean_start = false;
  co.session_expiry = 30 * 86400;
  co.receive_maximum = 256;
  p.client = std::make_unique<broker::InProcessClient>(
      *p.broker, co, [&loop](std::function<void()> f) { boost::asio::post(loop, std::move(f)); });
  auto handler = [ctx](const mqtt::Publish& m, broker::DeliveryAck ack) {
    handle_message(ctx, m, ack);
  };
  // Heartbeats and reported twins at QoS 0: they are written behind anyway (StoreWriter), so
  // routing them through the consumer's persistent session (a journal record and an ack
  // each) would buy nothing. Uplink batches at QoS 1: acknowledged once stored.
  for (const auto& [filter, qos] : {std::pair{"ganglion/v1/+/heartbeat", mqtt::QoS::kAtMostOnce},
                                    std::pair{"ganglion/v1/+/reported", mqtt::QoS::kAtMostOnce},
                                    std::pair{"ganglion/v1/+/up/#", mqtt::QoS::kAtLeastOnce}}) {
    p.client->subscribe_deferred(
        filter, qos, handler, [f = std::string(filter)](Status s, mqtt::ReasonCode r) {
          if (!s.ok() || static_cast<int>(r) >= 0x80) {
            spdlog::error("controller: subscribe {} failed: {}", f, s.to_string());
          }
        });
  }
  p.client->connect();

  // Desired twins are retained on the broker; the broker's retained store is in memory
  // here, so publish them again.
  for (const auto& n : nodes) {
    if (!n.revoked && n.desired_version > 0) ctx.publish_desired(n);
  }

  // Timers: health, SSE keep-alive, rollups and retention.
  p.timers = std::make_unique<TimerScope>(clock_);
  auto health_tick_ptr = std::make_shared<std::function<void()>>();
  *health_tick_ptr = [ctx, weak = std::weak_ptr<std::function<void()>>(health_tick_ptr)] {
    std::vector<HealthChange> changes;
    {
      std::lock_guard lock(ctx.p->mu);
      changes = ctx.p->health->evaluate();
    }
    for (const auto& c : changes) ctx.announce_health(c);
    const auto ticks_per_ping =
        std::max<std::int64_t>(1, 15'000 / std::max<std::int64_t>(1, to_ms(ctx.p->check_interval)));
    if (++ctx.p->ticks % ticks_per_ping == 0) ctx.p->events.ping();
    if (auto self = weak.lock()) ctx.p->timers->schedule_after(ctx.p->check_interval, *self);
  };
  p.timers->schedule_after(p.check_interval, *health_tick_ptr);
  p.health_tick = health_tick_ptr;
  auto retention_ptr = std::make_shared<std::function<void()>>();
  *retention_ptr = [ctx, weak = std::weak_ptr<std::function<void()>>(retention_ptr)] {
    const std::int64_t now = ctx.now_ms();
    // Rollups lag one minute behind so that the minute being folded is complete.
    if (Status s = ctx.p->store->rollup(now - 60'000); !s.ok())
      spdlog::error("rollup failed: {}", s.to_string());
    auto deleted = ctx.p->store->apply_retention(now - ctx.p->retention_raw_ms,
                                                 now - ctx.p->retention_rollup_ms);
    if (!deleted.ok()) {
      spdlog::error("retention failed: {}", deleted.status().to_string());
    } else if (*deleted > 0) {
      spdlog::info("retention: {} raw records deleted", *deleted);
    }
    if (auto self = weak.lock()) ctx.p->timers->schedule_after(ctx.p->retention_interval, *self);
  };
  p.timers->schedule_after(p.retention_interval, *retention_ptr);
  p.retention_tick = retention_ptr;
  auto flush_ptr = std::make_shared<std::function<void()>>();
  *flush_ptr = [ctx, weak = std::weak_ptr<std::function<void()>>(flush_ptr)] {
    ctx.p->writer->flush_state();
    if (auto self = weak.lock()) ctx.p->timers->schedule_after(ctx.p->flush_interval, *self);
  };
  p.timers->schedule_after(p.flush_interval, *flush_ptr);
  p.flush_tick = flush_ptr;

  add_api_routes(ctx, *p.router);

  net::HttpServerOptions ho;
  ho.listen = config_.str("cloud.api.listen");
  ho.max_body_bytes = static_cast<std::size_t>(config_.integer("cloud.api.max_body"));
  ho.tls = net::HttpTlsOptions{server_cert, server_key, p.ca_file};
  // The API's own loops: at 10,000 nodes each MQTT loop has thousands of TLS connections'
  // work queued, and a request that waited behind it took up to a second (p99).
  // 0: on the nodes' loops, as before (kept to compare the two under the same load).
  if (const auto threads = config_.integer("cloud.api.threads"); threads > 0) {
    api_pool_ = std::make_unique<net::IoPool>(static_cast<std::size_t>(threads));
    api_pool_->start();
  }
  p.http = std::make_unique<net::HttpServer>(api_pool_ ? *api_pool_ : pool_, p.router, ho);
  GANGLION_RETURN_IF_ERROR(p.http->start());

  const std::string api =
      ho.listen.substr(0, ho.listen.rfind(':')) + ":" + std::to_string(p.http->port());
  json endpoints{{"api", "https://" + api}, {"mqtt", p.mqtt_url}, {"ca", p.ca_file}};
  GANGLION_RETURN_IF_ERROR(
      env_.write_file_atomic(join_path(data_dir, "endpoints.json"), dump(endpoints) + "\n"));
  spdlog::info("cloud controller ready: api https://{}, mqtt {}, data in {}", api, p.mqtt_url,
               data_dir);
  return Status::Ok();
}

void Controller::stop() {
  if (!parts_) return;
  Parts& p = *parts_;
  if (p.timers) p.timers->close();
  p.health_tick.reset();
  p.retention_tick.reset();
  p.flush_tick.reset();
  p.events.close_all();
  if (p.http) p.http->stop();
  // Joins the API threads: a handler still running finishes (the store and the writer are
  // still open), and none starts while the broker and the writer stop. Open connections'
  // handlers stay queued on the stopped loops until release().
  if (api_pool_) api_pool_->stop();
  if (p.listener) p.listener->stop();
  if (p.broker) p.broker->shutdown();
  // Writes the queued batches and the node state still in memory.
  if (p.writer) p.writer->stop();
}

void Controller::release() {
  if (!parts_) return;
  Parts& p = *parts_;
  p.client.reset();
  // An event stream is its HTTP connection: none may outlive the API loops (one opened
  // between stop()'s close_all() and the loops' stop would).
  p.events.close_all();
  p.http.reset();
  // After the server (its acceptor uses a loop's services); destroying the loops destroys
  // the handlers of connections still open, which hold the server's state.
  api_pool_.reset();
  p.listener.reset();
  p.timers.reset();
  p.broker.reset();
  p.writer.reset();
  p.store.reset();
}

}  // namespace ganglion::cloud
