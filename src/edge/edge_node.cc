#include "edge/edge_node.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "base/json_string.h"
#include "bridge/bridge.h"
#include "broker/broker.h"
#include "broker/listener.h"
#include "broker/session_store.h"
#include "edge/cloud_agent.h"
#include "net/http_server.h"
#include "rules/rule_manager.h"
#include "uplink/uplink.h"

namespace ganglion::edge {
namespace {

// Resident set size and CPU time of this process, from /proc (Linux).
void sample_process(double& rss_bytes, double& cpu_seconds) {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  if (statm >> pages_total >> pages_resident) {
    rss_bytes = static_cast<double>(pages_resident) * static_cast<double>(::sysconf(_SC_PAGESIZE));
  }
  std::ifstream stat("/proc/self/stat");
  std::string line;
  if (std::getline(stat, line)) {
    // Fields after the command name (which may hold spaces) start after the last ')'.
    std::istringstream rest(line.substr(line.rfind(')') + 2));
    std::string field;
    long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
      if (i == 14) utime = std::stol(field);
      if (i == 15) stime = std::stol(field);
    }
    cpu_seconds = static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
}

}  // namespace

struct EdgeNode::Parts {
  std::shared_ptr<net::HttpRouter> router = std::make_shared<net::HttpRouter>();
  std::unique_ptr<net::HttpServer> http;
  std::unique_ptr<broker::Broker> broker;
  std::unique_ptr<uplink::Uplink> uplink;  // after the broker: destroyed before it
  std::vector<std::unique_ptr<broker::MqttListener>> listeners;
  std::unique_ptr<broker::Bridge> bridge;     // after the broker: destroyed before it
  std::unique_ptr<CloudAgent> cloud;          // null when standalone (cloud.url empty)
  std::unique_ptr<rules::RuleManager> rules;  // last: destroyed first (uses broker, uplink)
};

namespace {

Result<broker::BrokerOptions> broker_options(const Config& c) {
  broker::BrokerOptions o;
  o.max_connections = static_cast<std::size_t>(c.integer("mqtt.max_connections"));
  o.max_connect_rate = static_cast<std::uint32_t>(c.integer("mqtt.max_connect_rate"));
  o.max_packet_size = static_cast<std::uint32_t>(c.integer("mqtt.max_packet_size"));
  o.receive_maximum = static_cast<std::uint16_t>(c.integer("mqtt.receive_maximum"));
  o.max_inflight = static_cast<std::uint16_t>(c.integer("mqtt.max_inflight"));
  o.max_queued_messages = static_cast<std::size_t>(c.integer("mqtt.max_queued_messages"));
  o.max_queued_bytes = static_cast<std::size_t>(c.integer("mqtt.max_queued_bytes"));
  const auto& policy = c.str("mqtt.queue_full_policy");
  o.queue_full_policy = policy == "drop-oldest"  ? broker::QueueFullPolicy::kDropOldest
                        : policy == "disconnect" ? broker::QueueFullPolicy::kDisconnect
                                                 : broker::QueueFullPolicy::kDropNewest;
  o.max_topic_length = static_cast<std::size_t>(c.integer("mqtt.max_topic_length"));
  o.max_topic_levels = static_cast<std::size_t>(c.integer("mqtt.max_topic_levels"));
  o.max_keep_alive = static_cast<std::uint16_t>(c.integer("mqtt.max_keep_alive"));
  o.max_session_expiry = static_cast<std::uint32_t>(c.integer("mqtt.max_session_expiry") / 1000);
  o.retain_available = c.flag("mqtt.retain_available");
  o.maximum_qos = static_cast<std::uint8_t>(c.integer("mqtt.maximum_qos"));
  o.allow_anonymous = c.flag("mqtt.allow_anonymous");
  o.authentication_methods = c.list("mqtt.auth_methods");
  for (const auto& method : o.authentication_methods) {
    if (method != "SCRAM-SHA-512") {
      return InvalidArgument("mqtt.auth_methods: '" + method +
                             "' is not offered (the password file's PBKDF2-HMAC-SHA512 hashes "
                             "serve SCRAM-SHA-512 only)");
    }
  }
  o.sys_interval = std::chrono::milliseconds(c.integer("mqtt.sys_interval"));
  o.version = std::string("ganglion ") + GANGLION_VERSION;
  return o;
}

}  // namespace

EdgeNode::EdgeNode(const Config& config, Env& env, Clock& clock, net::IoPool& pool)
    : config_(config), env_(env), clock_(clock), pool_(pool), parts_(std::make_unique<Parts>()) {}

EdgeNode::~EdgeNode() {
  stop();
  release();
}

Status EdgeNode::start() {
  started_ = clock_.now();
  const std::string& data_dir = config_.str("data.dir");
  if (Status s = env_.create_dirs(data_dir); !s.ok()) {
    return s.with_context("cannot create data folder");
  }

  metrics_.gauge("ganglion_build_info", "Build of this binary.", {"version", "role"})
      .with({GANGLION_VERSION, "edge"})
      .set(1);
  auto& rss =
      metrics_.gauge("process_resident_memory_bytes", "Resident memory size in bytes.").get();
  auto& cpu = metrics_.gauge("process_cpu_seconds_total", "User and system CPU time spent.").get();
  auto& uptime = metrics_.gauge("ganglion_uptime_seconds", "Seconds since the node started.").get();

  GANGLION_RETURN_IF_ERROR(start_broker());
  GANGLION_ASSIGN_OR_RETURN(parts_->bridge,
                            broker::start_bridge(config_, *parts_->broker, pool_.next(), clock_));

  auto& router = *parts_->router;
  router.add("GET", "/healthz", [](const net::HttpRequest&) {
    return net::HttpResponse::json(200, "{\"status\":\"ok\"}");
  });
  router.add("GET", "/readyz", [this](const net::HttpRequest&) {
    return ready_ ? net::HttpResponse::json(200, "{\"status\":\"ready\"}")
                  : net::HttpResponse::json(503, "{\"status\":\"starting\"}");
  });
  router.add("GET", "/metrics", [this, &rss, &cpu, &uptime](const net::HttpRequest&) {
    double r = 0, c = 0;
    sample_process(r, c);
    rss.set(r);
    cpu.set(c);
    uptime.set(std::chrono::duration<double>(clock_.now() - started_).count());
    net::HttpResponse res = net::HttpResponse::text(200, metrics_.render());
    res.content_type = "text/plain; version=0.0.4; charset=utf-8";
    return res;
  });

  // Before the uplink: with cloud.url set, the uplink connects with the enrolled identity.
  GANGLION_ASSIGN_OR_RETURN(parts_->cloud, start_cloud_agent(config_, env_, clock_, pool_.next(),
                                                             &metrics_, parts_->router.get()));
  const Config uplink_config = parts_->cloud ? parts_->cloud->uplink_config(config_) : config_;
  if (!uplink_config.str("uplink.url").empty()) {
    GANGLION_ASSIGN_OR_RETURN(auto uplink_options,
                              uplink::uplink_options_from_config(uplink_config));
    GANGLION_ASSIGN_OR_RETURN(parts_->uplink,
                              uplink::Uplink::start(std::move(uplink_options), env_, clock_,
                                                    parts_->broker.get(), &metrics_));
    parts_->uplink->add_http_routes(router);
  } else {
    router.add("GET", "/uplink", [](const net::HttpRequest&) {
      return net::HttpResponse::json(200, "{\"enabled\":false}");
    });
  }
  GANGLION_ASSIGN_OR_RETURN(parts_->rules,
                            rules::RuleManager::start(config_, env_, clock_, *parts_->broker,
                                                      parts_->uplink.get(), metrics_));
  parts_->rules->add_routes(router);

  net::HttpServerOptions http_options;
  http_options.listen = config_.str("http.listen");
  http_options.max_body_bytes = static_cast<std::size_t>(config_.integer("http.max_body"));
  parts_->http = std::make_unique<net::HttpServer>(pool_, parts_->router, http_options);
  GANGLION_RETURN_IF_ERROR(parts_->http->start());

  // Where the node can be reached, for tools and tests that start it on port 0.
  const std::string& listen = config_.str("http.listen");
  std::string endpoints = "{\"node\":";
  append_json_string(config_.str("node.id"), endpoints);
  endpoints += ",\"http\":";
  append_json_string(
      listen.substr(0, listen.rfind(':')) + ":" + std::to_string(parts_->http->port()), endpoints);
  endpoints += ",\"mqtt\":[";
  for (std::size_t i = 0; i < parts_->listeners.size(); ++i) {
    if (i) endpoints += ',';
    append_json_string(parts_->listeners[i]->url(), endpoints);
  }
  endpoints += "]}\n";
  GANGLION_RETURN_IF_ERROR(
      env_.write_file_atomic(join_path(data_dir, "endpoints.json"), endpoints));

  ready_ = true;
  spdlog::info("edge node {} ready: http on port {}, data in {}", config_.str("node.id"),
               parts_->http->port(), data_dir);
  return Status::Ok();
}

Status EdgeNode::start_broker() {
  GANGLION_ASSIGN_OR_RETURN(auto options, broker_options(config_));
  parts_->broker = std::make_unique<broker::Broker>(options, clock_, metrics_);
  auto& b = *parts_->broker;
  if (const auto& path = config_.str("mqtt.password_file"); !path.empty()) {
    auto passwords = broker::PasswordFile::load(env_, path);
    if (!passwords.ok()) return InvalidArgument(passwords.status().message());
    b.set_password_file(std::make_shared<broker::PasswordFile>(std::move(*passwords)));
  }
  if (const auto& path = config_.str("mqtt.acl_file"); !path.empty()) {
    auto acl = broker::AclPolicy::load(env_, path);
    if (!acl.ok()) return InvalidArgument(acl.status().message());
    b.set_acl(std::make_shared<broker::AclPolicy>(std::move(*acl)));
  }
  if (config_.flag("mqtt.persistence")) {
    broker::SessionStoreOptions store_options;
    store_options.dir = join_path(config_.str("data.dir"), "broker");
    store_options.fsync = config_.flag("mqtt.fsync");
    auto store = broker::SessionStore::open(env_, clock_, store_options);
    if (!store.ok()) return store.status().with_context("broker store");
    GANGLION_RETURN_IF_ERROR(b.attach_store(std::move(*store)));
  }
  for (const auto& url : config_.list("mqtt.listeners")) {
    auto options = broker::parse_listener_url(url);
    if (!options.ok()) return InvalidArgument(options.status().message());
    options->tls.certificate_file = config_.str("mqtt.tls.certificate");
    options->tls.key_file = config_.str("mqtt.tls.key");
    options->tls.ca_file = config_.str("mqtt.tls.ca");
    options->tls.require_client_certificate = config_.flag("mqtt.tls.require_client_certificate");
    options->connect_timeout = std::chrono::milliseconds(config_.integer("mqtt.connect_timeout"));
    auto listener = std::make_unique<broker::MqttListener>(b, pool_, std::move(*options));
    GANGLION_RETURN_IF_ERROR(listener->start());
    spdlog::info("mqtt listening on {}", listener->url());
    parts_->listeners.push_back(std::move(listener));
  }
  b.start();
  return Status::Ok();
}

void EdgeNode::stop() {
  if (!parts_) return;
  ready_ = false;
  for (auto& l : parts_->listeners) l->stop();
  if (parts_->bridge) parts_->bridge->stop();
  if (parts_->cloud) parts_->cloud->stop();
  if (parts_->rules) parts_->rules->stop();
  if (parts_->uplink) parts_->uplink->stop();
  if (parts_->broker) parts_->broker->shutdown();
  if (parts_->http) parts_->http->stop();
}

void EdgeNode::release() { parts_.reset(); }

std::uint16_t EdgeNode::http_port() const {
  return parts_ && parts_->http ? parts_->http->port() : 0;
}

}  // namespace ganglion::edge
