#include "edge/edge_node.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "net/http_server.h"

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
};

EdgeNode::EdgeNode(const Config& config, Env& env, Clock& clock, net::IoPool& pool)
    : config_(config), env_(env), clock_(clock), pool_(pool), parts_(std::make_unique<Parts>()) {}

EdgeNode::~EdgeNode() { stop(); }

Status EdgeNode::start() {
  started_ = clock_.now();
  const std::string& data_dir = config_.str("data.dir");
  if (Status s = env_.create_dirs(data_dir); !s.ok()) {
    return s.with_context("cannot create data folder");
  }

  metrics_.gauge("ganglion_build_info", "Build of this binary.", {"version", "role"})
      .with({GANGLION_VERSION, "edge"})
      .set(1);
  auto& rss = metrics_.gauge("process_resident_memory_bytes", "Resident memory size in bytes.").get();
  auto& cpu = metrics_.gauge("process_cpu_seconds_total", "User and system CPU time spent.").get();
  auto& uptime = metrics_.gauge("ganglion_uptime_seconds", "Seconds since the node started.").get();

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

  net::HttpServerOptions http_options;
  http_options.listen = config_.str("http.listen");
  http_options.max_body_bytes = static_cast<std::size_t>(config_.integer("http.max_body"));
  parts_->http = std::make_unique<net::HttpServer>(pool_, parts_->router, http_options);
  GANGLION_RETURN_IF_ERROR(parts_->http->start());

  // Where the node can be reached, for tools and tests that start it on port 0.
  const std::string endpoints = "{\"node\":\"" + config_.str("node.id") + "\",\"http\":\"" +
                                config_.str("http.listen").substr(
                                    0, config_.str("http.listen").rfind(':')) +
                                ":" + std::to_string(parts_->http->port()) + "\"}\n";
  GANGLION_RETURN_IF_ERROR(env_.write_file_atomic(join_path(data_dir, "endpoints.json"), endpoints));

  ready_ = true;
  spdlog::info("edge node {} ready: http on port {}, data in {}", config_.str("node.id"),
               parts_->http->port(), data_dir);
  return Status::Ok();
}

void EdgeNode::stop() {
  if (!parts_) return;
  ready_ = false;
  if (parts_->http) parts_->http->stop();
  parts_.reset();
}

std::uint16_t EdgeNode::http_port() const {
  return parts_ && parts_->http ? parts_->http->port() : 0;
}

}  // namespace ganglion::edge
