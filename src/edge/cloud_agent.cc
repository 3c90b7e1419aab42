#include "edge/cloud_agent.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "base/timer_scope.h"
#include "client/backoff.h"
#include "client/mqtt_client.h"
#include "edge/cloud_agent_crypto.h"
#include "edge/cloud_agent_https.h"
#include "net/http_server.h"

namespace ganglion::edge {
using json = nlohmann::json;

CloudFiles CloudFiles::under(const std::string& data_dir) {
  CloudFiles f;
  f.dir = join_path(data_dir, "cloud");
  f.key = join_path(f.dir, "node.key");
  f.certificate = join_path(f.dir, "node.pem");
  f.ca = join_path(f.dir, "ca.pem");
  f.enrolment = join_path(f.dir, "enrolment.json");
  f.desired = join_path(f.dir, "desired.json");
  return f;
}

std::string_view to_string(EnrolmentState s) {
  switch (s) {
    case EnrolmentState::kNone:
      return "none";
    case EnrolmentState::kEnrolling:
      return "enrolling";
    case EnrolmentState::kEnrolled:
      return "enrolled";
    case EnrolmentState::kFailed:
      return "failed";
    case EnrolmentState::kExpired:
      return "expired";
  }
  return "unknown";
}

std::string CloudAgent::topic(std::string_view node_id, std::string_view leaf) {
  return "ganglion/v1/" + std::string(node_id) + "/" + std::string(leaf);
}

namespace {

bool is_posix(Env& env) { return &env == &Env::posix(); }

// The private key must never be readable by others, not even for the moment between
// creating and chmod-ing it: on the real disk it is created 0600 (O_EXCL on a fresh temp
// name), synced and renamed into place. Other Envs (MemEnv in tests) have no modes.
Status write_secret_file(Env& env, const std::string& path, std::string_view content) {
  if (!is_posix(env)) return env.write_file_atomic(path, content);
  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return IoError("cannot create " + tmp + ": " + std::strerror(errno));
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      return IoError("cannot write " + tmp + ": " + std::strerror(errno));
    }
    done += static_cast<std::size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!synced) return IoError("cannot sync " + tmp);
  GANGLION_RETURN_IF_ERROR(env.rename(tmp, path));
  return env.sync_dir(dir_of(path));
}

Status make_private_dir(Env& env, const std::string& dir) {
  GANGLION_RETURN_IF_ERROR(env.create_dirs(dir));
  if (is_posix(env)) ::chmod(dir.c_str(), 0700);
  return Status::Ok();
}

std::string json_string(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// "k=v" labels; a label without '=' gets an empty value.
std::vector<std::pair<std::string, std::string>> parse_labels(
    const std::vector<std::string>& list) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& item : list) {
    const auto eq = item.find('=');
    if (eq == std::string::npos) {
      out.emplace_back(item, "");
    } else {
      out.emplace_back(item.substr(0, eq), item.substr(eq + 1));
    }
  }
  return out;
}

json labels_json(const std::vector<std::pair<std::string, std::string>>& labels) {
  json j = json::object();
  for (const auto& [k, v] : labels) j[k] = v;
  return j;
}

std::int64_t unix_seconds(Clock& clock) { return clock.wall_ms() / 1000; }

bool valid_node_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (c == '/' || c == '+' || c == '#' || static_cast<unsigned char>(c) < 0x21) return false;
  }
  return true;
}

}  // namespace

Result<CloudIdentity> load_cloud_identity(Env& env, const std::string& data_dir,
                                          std::string_view node_id, std::int64_t now_unix) {
  const CloudFiles f = CloudFiles::under(data_dir);
  if (!env.exists(f.certificate)) return NotFound("not enrolled: no " + f.certificate);
  auto cert = env.read_file(f.certificate);
  auto key = env.read_file(f.key);
  auto ca = env.read_file(f.ca);
  auto meta_text = env.read_file(f.enrolment);
  if (!cert.ok() || !key.ok() || !ca.ok() || !meta_text.ok()) {
    return Corruption("incomplete identity in " + f.dir +
                      ": node.pem, node.key, ca.pem and "
                      "enrolment.json are all needed");
  }
  json meta = json::parse(*meta_text, nullptr, false);
  if (!meta.is_object()) return Corruption(f.enrolment + " is not a JSON object");
  auto facts = parse_certificate(*cert);
  if (!facts.ok()) return Corruption(f.certificate + ": " + facts.status().message());
  if (facts->common_name != node_id) {
    return FailedPrecondition("the certificate in " + f.certificate + " is for '" +
                              facts->common_name + "', not node.id '" + std::string(node_id) + "'");
  }
  if (Status s = check_key_matches(*cert, *key); !s.ok()) {
    return FailedPrecondition(f.certificate + " and " + f.key + ": " + s.message());
  }
  if (Status s = verify_chain(*cert, *ca, now_unix); !s.ok()) {
    return FailedPrecondition(f.certificate + ": " + s.message());
  }
  CloudIdentity id;
  id.node_id = std::string(node_id);
  id.mqtt_url = json_string(meta, "mqtt_url");
  if (id.mqtt_url.empty()) return Corruption(f.enrolment + " has no mqtt_url");
  id.ca_file = f.ca;
  id.certificate_file = f.certificate;
  id.key_file = f.key;
  id.not_before = facts->not_before;
  id.not_after = facts->not_after;
  id.ca_source = json_string(meta, "ca_source");
  if (is_posix(env)) {
    struct stat st {};
    if (::stat(f.key.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
      spdlog::warn("cloud: {} is readable by others (mode {:o}); it should be 0600", f.key,
                   st.st_mode & 0777);
    }
  }
  return id;
}

Result<UplinkEndpoint> cloud_uplink_endpoint(Env& env, const std::string& data_dir,
                                             std::string_view node_id, std::int64_t now_unix) {
  GANGLION_ASSIGN_OR_RETURN(CloudIdentity id,
                            load_cloud_identity(env, data_dir, node_id, now_unix));
  return UplinkEndpoint{id.mqtt_url, id.ca_file, id.certificate_file, id.key_file};
}

Status fill_uplink_from_identity(const CloudIdentity& id, Config& config) {
  if (!config.str("uplink.url").empty()) return Status::Ok();
  constexpr std::string_view kOrigin = "cloud enrolment";
  GANGLION_RETURN_IF_ERROR(config.set("uplink.url", id.mqtt_url, kOrigin));
  GANGLION_RETURN_IF_ERROR(config.set("uplink.tls.ca", id.ca_file, kOrigin));
  GANGLION_RETURN_IF_ERROR(config.set("uplink.tls.certificate", id.certificate_file, kOrigin));
  return config.set("uplink.tls.key", id.key_file, kOrigin);
}

// --- HTTPS enrolment API ----------------------------------------------------------------

namespace {

// Maps the controller's answer to a grant or to the error kinds EnrolmentApi promises.
Result<EnrolmentGrant> grant_from(Result<HttpsResponse> r, std::string_view what) {
  if (!r.ok()) return r.status();
  const HttpsResponse& res = *r;
  json body = json::parse(res.body, nullptr, false);
  std::string reason = body.is_object() ? json_string(body, "error") : std::string();
  if (reason.empty()) reason = res.body.substr(0, 200);
  const std::string prefix =
      std::string(what) + " refused (HTTP " + std::to_string(res.status) + "): ";
  switch (res.status) {
    case 200:
      break;
    case 400:
      return InvalidArgument(prefix + reason);
    case 401:
    case 403:
      return PermissionDenied(prefix + reason);
    case 404:
    case 405:
      return NotFound(prefix + reason);
    case 409:
      return AlreadyExists(prefix + reason);
    default:
      return Unavailable(prefix + reason);
  }
  if (!body.is_object()) return InvalidArgument(std::string(what) + ": the answer is not JSON");
  EnrolmentGrant g;
  g.node_id = json_string(body, "node_id");
  g.certificate_pem = json_string(body, "certificate");
  g.ca_pem = json_string(body, "ca");
  g.mqtt_url = json_string(body, "mqtt_url");
  if (auto it = body.find("expires_at"); it != body.end() && it->is_number()) {
    g.expires_at = it->get<std::int64_t>();
  }
  g.server_chain_pem = res.peer_chain_pem;
  if (g.certificate_pem.empty() || g.ca_pem.empty()) {
    return InvalidArgument(std::string(what) + ": the answer lacks certificate or ca");
  }
  return g;
}

class HttpsEnrolmentApi final : public EnrolmentApi {
 public:
  HttpsEnrolmentApi(boost::asio::io_context& loop, std::string url)
      : loop_(loop), url_(std::move(url)) {
    while (!url_.empty() && url_.back() == '/') url_.pop_back();
  }

  void enrol(EnrolmentRequest req, GrantCompletion done) override {
    json body = {{"token", req.token}, {"node_id", req.node_id}, {"csr", req.csr_pem}};
    if (!req.labels.empty()) body["labels"] = labels_json(req.labels);
    HttpsRequest r;
    r.url = url_ + "/v1/enroll";
    r.body = body.dump();
    r.ca_pem = std::move(req.trusted_ca_pem);
    https_request(loop_, std::move(r), [done = std::move(done)](Result<HttpsResponse> res) {
      done(grant_from(std::move(res), "enrolment"));
    });
  }

  void renew(RenewalRequest req, GrantCompletion done) override {
    json body = {{"node_id", req.node_id}, {"csr", req.csr_pem}};
    HttpsRequest r;
    r.url = url_ + "/v1/renew";
    r.body = body.dump();
    r.ca_pem = std::move(req.ca_pem);
    r.certificate_pem = std::move(req.certificate_pem);
    r.key_pem = std::move(req.key_pem);
    https_request(loop_, std::move(r), [done = std::move(done)](Result<HttpsResponse> res) {
      done(grant_from(std::move(res), "renewal"));
    });
  }

 private:
  boost::asio::io_context& loop_;
  std::string url_;
};

class MqttCloudLink final : public CloudLink {
 public:
  MqttCloudLink(boost::asio::io_context& loop, Clock& clock, client::MqttClientOptions options)
      : client_(loop, clock, std::move(options)) {}

  Status start(Handlers h) override {
    client_.on_state([on_state = h.on_state](client::ConnectionState s, const Status& why) {
      if (on_state) on_state(s == client::ConnectionState::kConnected, why);
    });
    client_.on_message([on_message = h.on_message](const mqtt::Publish& p) {
      if (on_message) on_message(p.topic, std::string(p.payload.view()));
    });
    return client_.start();
  }
  void stop() override { client_.stop(); }
  void publish(std::string topic, std::string payload, bool retain,
               std::function<void(Status)> done) override {
    client_.publish(std::move(topic), std::move(payload), mqtt::QoS::kAtLeastOnce, retain,
                    [done = std::move(done)](Status s, mqtt::ReasonCode) {
                      if (done) done(std::move(s));
                    });
  }
  void subscribe(std::vector<std::string> filters) override {
    std::vector<mqtt::Subscription> subs;
    for (auto& f : filters)
      subs.push_back({.filter = std::move(f), .max_qos = mqtt::QoS::kAtLeastOnce});
    client_.subscribe(std::move(subs));
  }

 private:
  client::MqttClient client_;
};

}  // namespace

std::unique_ptr<EnrolmentApi> make_https_enrolment_api(boost::asio::io_context& loop,
                                                       std::string controller_url) {
  return std::make_unique<HttpsEnrolmentApi>(loop, std::move(controller_url));
}

client::MqttClientOptions cloud_mqtt_options(const CloudIdentity& id) {
  client::MqttClientOptions o;
  o.url = id.mqtt_url;
  o.tls.ca_file = id.ca_file;
  o.tls.certificate_file = id.certificate_file;
  o.tls.key_file = id.key_file;
  o.session.client_id = id.node_id;
  // A persistent session: commands and desired-state updates sent while the link was down
  // wait for the node; a fresh session gets the retained desired state on subscribe.
  o.session.clean_start = false;
  o.session.session_expiry = 86'400;
  o.session.keep_alive = 30;
  o.session.max_queued = 64;  // heartbeats are skipped, not queued, while one is unacked
  o.backoff.initial = std::chrono::milliseconds(1000);
  o.backoff.max = std::chrono::milliseconds(60'000);
  return o;
}

std::unique_ptr<CloudLink> make_mqtt_cloud_link(boost::asio::io_context& loop, Clock& clock,
                                                const CloudIdentity& id) {
  return std::make_unique<MqttCloudLink>(loop, clock, cloud_mqtt_options(id));
}

NodeFactsSource process_node_facts(Env& env, std::string data_dir, MetricsRegistry* metrics) {
  struct CpuSample {
    std::mutex mu;
    double cpu_seconds = -1;
    std::chrono::steady_clock::time_point at;
  };
  auto sample = std::make_shared<CpuSample>();
  return [&env, data_dir = std::move(data_dir), metrics, sample]() {
    NodeFacts f;
    std::ifstream statm("/proc/self/statm");
    long pages_total = 0, pages_resident = 0;
    if (statm >> pages_total >> pages_resident) {
      f.mem_bytes = static_cast<std::uint64_t>(pages_resident) *
                    static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    }
    std::ifstream stat("/proc/self/stat");
    std::string line;
    if (std::getline(stat, line) && line.rfind(')') != std::string::npos) {
      std::istringstream rest(line.substr(line.rfind(')') + 2));
      std::string field;
      long utime = 0, stime = 0;
      for (int i = 3; i <= 15 && rest >> field; ++i) {
        if (i == 14) utime = std::stol(field);
        if (i == 15) stime = std::stol(field);
      }
      const double cpu_s =
          static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
      const auto now = std::chrono::steady_clock::now();
      std::lock_guard lock(sample->mu);
      if (sample->cpu_seconds >= 0) {
        const double wall = std::chrono::duration<double>(now - sample->at).count();
        const double cores = std::max(1u, std::thread::hardware_concurrency());
        if (wall > 0) f.cpu = std::clamp((cpu_s - sample->cpu_seconds) / (wall * cores), 0.0, 1.0);
      }
      sample->cpu_seconds = cpu_s;
      sample->at = now;
    }
    if (auto free = env.free_space(data_dir); free.ok()) f.disk_free_bytes = *free;
    if (metrics != nullptr) {
      // Summed from the exposition text so that this part needs no handle on the uplink or
      // the rules (the uplink refreshes its backlog gauge every second; a rule's
      // ganglion_rule_running is 1 while it runs).
      std::istringstream text(metrics->render());
      while (std::getline(text, line)) {
        auto value_of = [&line] {
          return std::strtod(line.c_str() + line.rfind(' ') + 1, nullptr);
        };
        if (line.starts_with("ganglion_uplink_backlog_records")) {
          f.uplink_backlog += static_cast<std::uint64_t>(value_of());
        } else if (line.starts_with("ganglion_rule_running{")) {
          f.rules += static_cast<std::uint64_t>(value_of());
        }
      }
    }
    return f;
  };
}

// --- the agent ----------------------------------------------------------------------------

struct CloudAgent::Impl : std::enable_shared_from_this<CloudAgent::Impl> {
  Impl(CloudAgentOptions o, Env& e, Clock& c, std::shared_ptr<EnrolmentApi> a, CloudLinkFactory f,
       NodeFactsSource nf, MetricsRegistry* m)
      : options(std::move(o)),
        env(e),
        clock(c),
        api(std::move(a)),
        make_link(std::move(f)),
        facts(std::move(nf)),
        files(CloudFiles::under(options.data_dir)),
        timers(c),
        backoff(client::BackoffOptions{
            std::chrono::duration_cast<std::chrono::milliseconds>(options.enrol_retry_min),
            std::chrono::duration_cast<std::chrono::milliseconds>(options.enrol_retry_max)}) {
    heartbeat_topic = topic(options.node_id, "heartbeat");
    reported_topic = topic(options.node_id, "reported");
    desired_topic = topic(options.node_id, "desired");
    commands_topic = topic(options.node_id, "commands");
    if (m != nullptr) {
      metric.state = &m->gauge("ganglion_cloud_enrolment_state",
                               "1 for the agent's enrolment state (none, enrolling, enrolled, "
                               "failed, expired), 0 for the others.",
                               {"state"});
      metric.link_up =
          &m->gauge("ganglion_cloud_link_up", "1 while the MQTT link to the controller is up.")
               .get();
      metric.heartbeats = &m->counter("ganglion_cloud_heartbeats_sent_total",
                                      "Heartbeats published to the controller.")
                               .get();
      metric.skipped =
          &m->counter("ganglion_cloud_heartbeats_skipped_total",
                      "Heartbeats not sent because the previous one was still unacknowledged.")
               .get();
      metric.desired_version =
          &m->gauge("ganglion_cloud_desired_version",
                    "Version of the last desired state received (0 when none or not numeric).")
               .get();
      metric.desired_received = &m->counter("ganglion_cloud_desired_received_total",
                                            "Desired states received and stored.")
                                     .get();
      metric.commands = &m->counter("ganglion_cloud_commands_received_total",
                                    "Commands received (none is implemented yet).")
                             .get();
      metric.expiry = &m->gauge("ganglion_cloud_certificate_expiry_timestamp_seconds",
                                "Unix time when the node's certificate expires.")
                           .get();
      metric.attempts = &m->counter("ganglion_cloud_enrolment_attempts_total",
                                    "Enrolment and renewal requests by result.", {"result"});
    }
  }

  ~Impl() { timers.close(); }

  CloudAgentOptions options;
  Env& env;
  Clock& clock;
  std::shared_ptr<EnrolmentApi> api;
  CloudLinkFactory make_link;
  NodeFactsSource facts;
  CloudFiles files;
  TimerScope timers;
  std::string heartbeat_topic, reported_topic, desired_topic, commands_topic;

  struct {
    Family<Gauge>* state = nullptr;
    Gauge* link_up = nullptr;
    Counter* heartbeats = nullptr;
    Counter* skipped = nullptr;
    Gauge* desired_version = nullptr;
    Counter* desired_received = nullptr;
    Counter* commands = nullptr;
    Gauge* expiry = nullptr;
    Family<Counter>* attempts = nullptr;
  } metric;

  mutable std::mutex mu;
  std::condition_variable cv;
  // Everything below is guarded by mu.
  client::Backoff backoff;
  EnrolmentState state = EnrolmentState::kNone;
  bool stopped = false;
  std::string key_pem;
  std::optional<CloudIdentity> identity;
  std::unique_ptr<CloudLink> link;
  std::vector<std::unique_ptr<CloudLink>> retired_links;  // stopped; freed with the agent
  bool link_up = false;
  TimerId heartbeat_timer = 0;
  TimerId renew_timer = 0;
  std::uint64_t heartbeat_seq = 0;
  bool heartbeat_in_flight = false;
  MonoTime heartbeat_sent_at{};
  bool renewal_unsupported_logged = false;
  std::string desired;
  std::string desired_version;
  json reported_extra = json::object();
  std::int64_t started_at_ms = 0;
  CloudAgentStats counters;

  // REQUIRES: mu held.
  void set_state(EnrolmentState s) {
    state = s;
    counters.enrolment = s;
    if (metric.state) {
      for (auto each :
           {EnrolmentState::kNone, EnrolmentState::kEnrolling, EnrolmentState::kEnrolled,
            EnrolmentState::kFailed, EnrolmentState::kExpired}) {
        metric.state->with({std::string(to_string(each))}).set(each == s ? 1 : 0);
      }
    }
    cv.notify_all();
  }
  void count_attempt(const char* result) {
    if (metric.attempts) metric.attempts->with({result}).inc();
  }

  // REQUIRES: mu held.
  std::string reported_payload() const {
    json j = reported_extra;
    j["node_id"] = options.node_id;
    j["version"] = options.version;
    j["labels"] = labels_json(options.labels);
    j["desired_version"] = desired_version.empty() ? json(nullptr) : json(desired_version);
    j["started_at"] = started_at_ms;
    if (identity) j["certificate_expires_at"] = identity->not_after;
    return j.dump();
  }

  Status start() {
    if (!valid_node_id(options.node_id)) {
      return InvalidArgument("node.id '" + options.node_id +
                             "' cannot name a node (1..64 bytes, no '/', '+', '#' or spaces)");
    }
    if (auto u = parse_https_url(options.controller_url); !u.ok()) {
      return InvalidArgument("cloud.url: " + u.status().message());
    }
    if (options.heartbeat_interval <= Duration::zero())
      return InvalidArgument("cloud.heartbeat_interval must be positive");
    GANGLION_RETURN_IF_ERROR(make_private_dir(env, files.dir));
    std::unique_lock lock(mu);
    started_at_ms = clock.wall_ms();
    if (env.exists(files.desired)) {
      if (auto text = env.read_file(files.desired); text.ok()) {
        json j = json::parse(*text, nullptr, false);
        if (j.is_object()) {
          desired = *text;
          desired_version = version_of(j);
          counters.desired_version = desired_version;
          set_desired_metric(j);
        }
      }
    }
    auto id = load_cloud_identity(env, options.data_dir, options.node_id, unix_seconds(clock));
    if (id.ok()) {
      identity = *id;
      if (!options.mqtt_url.empty()) identity->mqtt_url = options.mqtt_url;
      set_state(EnrolmentState::kEnrolled);
      if (metric.expiry) metric.expiry->set(static_cast<double>(id->not_after));
      auto key = env.read_file(files.key);
      if (key.ok()) key_pem = *key;
      if (options.log_events) {
        spdlog::info("cloud: enrolled as {} (certificate valid until unix {}), controller MQTT {}",
                     id->node_id, id->not_after, id->mqtt_url);
      }
      schedule_renewal_locked();
      lock.unlock();
      open_link();
      return Status::Ok();
    }
    if (id.status().code() != StatusCode::kNotFound) {
      if (options.log_events)
        spdlog::warn("cloud: stored identity unusable: {}", id.status().message());
      counters.last_error = id.status().message();
    }
    if (options.token.empty()) {
      const bool expired = id.status().code() != StatusCode::kNotFound;
      set_state(expired ? EnrolmentState::kExpired : EnrolmentState::kFailed);
      if (expired) return Status::Ok();  // runs standalone; the metric and GET /cloud say why
      return FailedPrecondition(
          "not enrolled with the controller and no cloud.token to enrol with");
    }
    if (env.exists(files.key)) {
      GANGLION_ASSIGN_OR_RETURN(key_pem, env.read_file(files.key));
    } else {
      GANGLION_ASSIGN_OR_RETURN(key_pem, generate_node_key());
      GANGLION_RETURN_IF_ERROR(write_secret_file(env, files.key, key_pem));
    }
    set_state(EnrolmentState::kEnrolling);
    lock.unlock();
    attempt_enrolment();
    return Status::Ok();
  }

  void stop() {
    std::unique_ptr<CloudLink> l;
    {
      std::lock_guard lock(mu);
      if (stopped) return;
      stopped = true;
      l = std::move(link);
      link_up = false;
      if (metric.link_up) metric.link_up->set(0);
      cv.notify_all();
    }
    timers.close();
    if (l) {
      l->stop();
      std::lock_guard lock(mu);
      retired_links.push_back(std::move(l));
    }
  }

  static std::string version_of(const json& j) {
    auto it = j.find("version");
    if (it == j.end()) return {};
    if (it->is_string()) return it->get<std::string>();
    return it->dump();
  }
  void set_desired_metric(const json& j) {
    if (!metric.desired_version) return;
    auto it = j.find("version");
    metric.desired_version->set(it != j.end() && it->is_number() ? it->get<double>() : 0.0);
  }

  // --- enrolment ---

  void attempt_enrolment() {
    EnrolmentRequest req;
    {
      std::lock_guard lock(mu);
      if (stopped || state != EnrolmentState::kEnrolling) return;
      ++counters.enrol_attempts;
      auto csr = make_csr(key_pem, options.node_id);
      if (!csr.ok()) {
        counters.last_error = csr.status().message();
        set_state(EnrolmentState::kFailed);
        return;
      }
      req = {options.token, options.node_id, std::move(*csr), options.labels,
             options.trusted_ca_pem};
    }
    api->enrol(std::move(req), [weak = weak_from_this()](Result<EnrolmentGrant> g) {
      if (auto self = weak.lock()) self->on_enrolment(std::move(g));
    });
  }

  void on_enrolment(Result<EnrolmentGrant> g) {
    std::unique_lock lock(mu);
    if (stopped || state != EnrolmentState::kEnrolling) return;
    if (!g.ok()) {
      counters.last_error = g.status().message();
      const auto code = g.status().code();
      if (code == StatusCode::kPermissionDenied || code == StatusCode::kInvalidArgument ||
          code == StatusCode::kAlreadyExists) {
        count_attempt("refused");
        set_state(EnrolmentState::kFailed);
        if (options.log_events) {
          spdlog::error(
              "cloud: {}{}", g.status().message(),
              code == StatusCode::kAlreadyExists
                  ? " (node id taken: remove the node in the controller or pick another node.id)"
              : code == StatusCode::kPermissionDenied
                  ? " (the bootstrap token is wrong, expired or already used: create a new one)"
                  : "");
        }
        return;
      }
      count_attempt("unavailable");
      const Duration delay = backoff.next();
      if (options.log_events && (backoff.attempts() <= 3 || backoff.attempts() % 10 == 0)) {
        spdlog::warn("cloud: enrolment attempt {} failed: {}; next in {} ms",
                     counters.enrol_attempts, g.status().message(),
                     std::chrono::duration_cast<std::chrono::milliseconds>(delay).count());
      }
      timers.schedule_after(delay, [this] { attempt_enrolment(); });
      return;
    }
    Status checked = check_grant(*g, options.trusted_ca_pem.empty());
    if (checked.ok()) checked = store_grant(*g);
    if (!checked.ok()) {
      count_attempt("rejected");
      counters.last_error = checked.message();
      set_state(EnrolmentState::kFailed);
      if (options.log_events)
        spdlog::error("cloud: enrolment answer rejected: {}", checked.message());
      return;
    }
    count_attempt("ok");
    backoff.reset();
    set_state(EnrolmentState::kEnrolled);
    if (options.log_events) {
      spdlog::info(
          "cloud: enrolled as {} with {}; certificate valid until unix {}; CA {}",
          identity->node_id, options.controller_url, identity->not_after,
          identity->ca_source == "first-use"
              ? "trusted on first use and pinned in " + files.ca + " (set cloud.ca to avoid this)"
              : "from cloud.ca");
    }
    schedule_renewal_locked();
    lock.unlock();
    open_link();
  }

  // REQUIRES: mu held. The grant must be for this node and this key, chain to the CA it
  // came with, and (trust on first use) the HTTPS server must hold a certificate of that CA.
  Status check_grant(const EnrolmentGrant& g, bool first_use) const {
    if (!g.node_id.empty() && g.node_id != options.node_id) {
      return FailedPrecondition("controller enrolled '" + g.node_id + "', not '" + options.node_id +
                                "'");
    }
    if (g.mqtt_url.empty()) return InvalidArgument("the answer has no mqtt_url");
    GANGLION_ASSIGN_OR_RETURN(auto facts, parse_certificate(g.certificate_pem));
    if (facts.common_name != options.node_id) {
      return FailedPrecondition("certificate is for '" + facts.common_name + "'");
    }
    GANGLION_RETURN_IF_ERROR(check_key_matches(g.certificate_pem, key_pem));
    GANGLION_RETURN_IF_ERROR(verify_chain(g.certificate_pem, g.ca_pem, unix_seconds(clock)));
    if (first_use) {
      if (g.server_chain_pem.empty())
        return FailedPrecondition("no server certificate to check the CA against");
      if (Status s = signed_by(g.server_chain_pem, g.ca_pem); !s.ok()) {
        return FailedPrecondition(
            "the controller's HTTPS certificate is not signed by the CA it returned");
      }
    }
    return Status::Ok();
  }

  // REQUIRES: mu held. Writes ca.pem, node.pem, then enrolment.json, each atomically. A
  // crash in between leaves a certificate without its enrolment.json, which
  // load_cloud_identity reports as incomplete (kCorruption): the node enrols again.
  Status store_grant(const EnrolmentGrant& g) {
    GANGLION_ASSIGN_OR_RETURN(auto facts, parse_certificate(g.certificate_pem));
    const std::string ca_source = options.trusted_ca_pem.empty() ? "first-use" : "operator";
    GANGLION_RETURN_IF_ERROR(env.write_file_atomic(files.ca, g.ca_pem));
    GANGLION_RETURN_IF_ERROR(env.write_file_atomic(files.certificate, g.certificate_pem));
    json meta = {{"node_id", options.node_id},
                 {"mqtt_url", g.mqtt_url},
                 {"controller", options.controller_url},
                 {"ca_source", ca_source},
                 {"enrolled_at", unix_seconds(clock)},
                 {"expires_at", g.expires_at ? g.expires_at : facts.not_after}};
    GANGLION_RETURN_IF_ERROR(env.write_file_atomic(files.enrolment, meta.dump(2) + "\n"));
    CloudIdentity id;
    id.node_id = options.node_id;
    id.mqtt_url = options.mqtt_url.empty() ? g.mqtt_url : options.mqtt_url;
    id.ca_file = files.ca;
    id.certificate_file = files.certificate;
    id.key_file = files.key;
    id.not_before = facts.not_before;
    id.not_after = facts.not_after;
    id.ca_source = ca_source;
    identity = id;
    if (metric.expiry) metric.expiry->set(static_cast<double>(id.not_after));
    return Status::Ok();
  }

  // --- renewal ---

  // REQUIRES: mu held. Renew once less than a third of the validity is left.
  void schedule_renewal_locked() {
    if (!identity) return;
    const std::int64_t validity =
        std::max<std::int64_t>(0, identity->not_after - identity->not_before);
    const std::int64_t renew_at = identity->not_before + validity * 2 / 3;
    const std::int64_t delay = std::max<std::int64_t>(0, renew_at - unix_seconds(clock));
    if (renew_timer) timers.cancel(renew_timer);
    renew_timer = timers.schedule_after(std::chrono::seconds(delay), [this] { attempt_renewal(); });
  }

  void attempt_renewal() {
    RenewalRequest req;
    {
      std::lock_guard lock(mu);
      renew_timer = 0;
      if (stopped || !identity) return;
      if (unix_seconds(clock) >= identity->not_after && state != EnrolmentState::kExpired) {
        set_state(EnrolmentState::kExpired);
        if (options.log_events) {
          spdlog::error(
              "cloud: the node certificate expired at unix {}; enrol again with a new "
              "cloud.token (after removing the node in the controller and {})",
              identity->not_after, files.certificate);
        }
      }
      auto csr = make_csr(key_pem, options.node_id);
      auto cert = env.read_file(files.certificate);
      auto ca = env.read_file(files.ca);
      if (!csr.ok() || !cert.ok() || !ca.ok()) {
        counters.last_error = "renewal: cannot build the request from " + files.dir;
        renew_timer = timers.schedule_after(options.renew_retry, [this] { attempt_renewal(); });
        return;
      }
      req = {options.node_id, std::move(*csr), std::move(*cert), key_pem, std::move(*ca)};
    }
    api->renew(std::move(req), [weak = weak_from_this()](Result<EnrolmentGrant> g) {
      if (auto self = weak.lock()) self->on_renewal(std::move(g));
    });
  }

  void on_renewal(Result<EnrolmentGrant> g) {
    std::unique_lock lock(mu);
    if (stopped) return;
    Status s = g.status();
    if (s.ok()) s = check_grant(*g, false);
    if (s.ok()) s = store_grant(*g);
    if (!s.ok()) {
      count_attempt(s.code() == StatusCode::kNotFound ? "unsupported" : "renewal_failed");
      counters.last_error = s.message();
      if (options.log_events &&
          (s.code() != StatusCode::kNotFound || !renewal_unsupported_logged)) {
        spdlog::warn(
            "cloud: certificate renewal failed: {}{}; the certificate expires at unix {}",
            s.message(),
            s.code() == StatusCode::kNotFound ? " (the controller has no renewal endpoint)" : "",
            identity->not_after);
      }
      if (s.code() == StatusCode::kNotFound) renewal_unsupported_logged = true;
      renew_timer = timers.schedule_after(options.renew_retry, [this] { attempt_renewal(); });
      return;
    }
    count_attempt("renewed");
    set_state(EnrolmentState::kEnrolled);
    if (options.log_events)
      spdlog::info("cloud: certificate renewed until unix {}", identity->not_after);
    schedule_renewal_locked();
    // A new certificate needs a new TLS context: replace the link.
    std::unique_ptr<CloudLink> old = std::move(link);
    link_up = false;
    lock.unlock();
    if (old) old->stop();
    open_link();
    std::lock_guard again(mu);
    if (old) retired_links.push_back(std::move(old));
  }

  // --- the MQTT link ---

  void open_link() {
    CloudIdentity id;
    {
      std::lock_guard lock(mu);
      if (stopped || !identity) return;
      id = *identity;
    }
    auto made = make_link(id);
    if (!made.ok()) {
      std::lock_guard lock(mu);
      counters.last_error = made.status().message();
      if (options.log_events)
        spdlog::error("cloud: cannot open the MQTT link: {}", made.status().message());
      return;
    }
    CloudLink* l = made->get();
    {
      std::lock_guard lock(mu);
      if (stopped) return;
      link = std::move(*made);
    }
    CloudLink::Handlers h;
    h.on_state = [weak = weak_from_this(), l](bool up, const Status& why) {
      if (auto self = weak.lock()) self->on_link_state(l, up, why);
    };
    h.on_message = [weak = weak_from_this()](const std::string& t, const std::string& p) {
      if (auto self = weak.lock()) self->on_message(t, p);
    };
    if (Status s = l->start(std::move(h)); !s.ok()) {
      std::lock_guard lock(mu);
      counters.last_error = s.message();
      if (options.log_events) spdlog::error("cloud: cannot start the MQTT link: {}", s.message());
      return;
    }
    l->subscribe({desired_topic, commands_topic});
  }

  void on_link_state(CloudLink* from, bool up, const Status& why) {
    std::string reported;
    CloudLink* l = nullptr;
    {
      std::lock_guard lock(mu);
      if (stopped || link.get() != from) return;  // a retired link
      if (up == link_up) {
        if (!up && !why.ok()) counters.last_error = why.message();
        return;
      }
      link_up = up;
      counters.link_up = up;
      if (metric.link_up) metric.link_up->set(up ? 1 : 0);
      if (heartbeat_timer) timers.cancel(heartbeat_timer);
      heartbeat_timer = 0;
      heartbeat_in_flight = false;
      if (!up) {
        if (!why.ok()) counters.last_error = why.message();
        if (options.log_events)
          spdlog::warn("cloud: link to the controller down: {}", why.to_string());
        return;
      }
      if (options.log_events) spdlog::info("cloud: link to the controller up");
      reported = reported_payload();
      ++counters.reported_sent;
      l = link.get();
    }
    // On every connect: the controller may have restarted and forgotten the twin.
    l->publish(reported_topic, std::move(reported), false, {});
    heartbeat();
  }

  // Publishes a heartbeat now (if the link is up and the previous one was acknowledged) and
  // arms the next one `heartbeat_interval` later.
  void heartbeat() {
    {
      std::lock_guard lock(mu);
      if (stopped || !link_up || !link) return;
      heartbeat_timer = timers.schedule_after(options.heartbeat_interval, [this] { heartbeat(); });
      if (heartbeat_in_flight) {
        ++counters.heartbeats_skipped;
        if (metric.skipped) metric.skipped->inc();
        return;
      }
      heartbeat_in_flight = true;  // claimed before facts are gathered outside the lock
    }
    const NodeFacts f = facts ? facts() : NodeFacts{};
    std::string payload;
    std::uint64_t seq = 0;
    CloudLink* l = nullptr;
    {
      std::lock_guard lock(mu);
      if (stopped || !link_up || !link) return;
      json j = {{"ts", clock.wall_ms()},
                {"version", options.version},
                {"cpu", f.cpu},
                {"mem_bytes", f.mem_bytes},
                {"disk_free_bytes", f.disk_free_bytes},
                {"uplink_backlog", f.uplink_backlog},
                {"rules", f.rules},
                {"link_rtt_ms", std::max<std::int64_t>(0, counters.link_rtt_ms)}};
      payload = j.dump();
      seq = ++heartbeat_seq;
      heartbeat_sent_at = clock.now();
      ++counters.heartbeats_sent;
      if (metric.heartbeats) metric.heartbeats->inc();
      l = link.get();
    }
    l->publish(heartbeat_topic, std::move(payload), false,
               [weak = weak_from_this(), seq](Status s) {
                 if (auto self = weak.lock()) self->on_heartbeat_acked(seq, s);
               });
  }

  void on_heartbeat_acked(std::uint64_t seq, const Status& s) {
    std::lock_guard lock(mu);
    if (seq != heartbeat_seq) return;
    heartbeat_in_flight = false;
    if (!s.ok()) return;
    ++counters.heartbeats_acked;
    counters.link_rtt_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(clock.now() - heartbeat_sent_at)
            .count();
  }

  void on_message(const std::string& t, const std::string& payload) {
    if (t == desired_topic) return on_desired(payload);
    if (t == commands_topic) {
      std::lock_guard lock(mu);
      ++counters.commands_received;
      if (metric.commands) metric.commands->inc();
      if (options.log_events)
        spdlog::info("cloud: command received ({} bytes); commands are not implemented yet",
                     payload.size());
    }
  }

  void on_desired(const std::string& payload) {
    if (payload.empty()) return;  // the retained desired state was cleared
    json j = json::parse(payload, nullptr, false);
    std::string reported;
    CloudLink* l = nullptr;
    {
      std::lock_guard lock(mu);
      if (stopped) return;
      if (!j.is_object()) {
        ++counters.desired_rejected;
        if (options.log_events) spdlog::warn("cloud: desired state ignored: not a JSON object");
        return;
      }
      if (payload == desired) return;  // the retained copy again, after a reconnect
      if (Status s = env.write_file_atomic(files.desired, payload); !s.ok()) {
        ++counters.desired_rejected;
        counters.last_error = s.message();
        if (options.log_events)
          spdlog::error("cloud: cannot store the desired state: {}", s.to_string());
        return;
      }
      desired = payload;
      desired_version = version_of(j);
      counters.desired_version = desired_version;
      ++counters.desired_received;
      if (metric.desired_received) metric.desired_received->inc();
      set_desired_metric(j);
      if (options.log_events)
        spdlog::info("cloud: desired state version '{}' stored", desired_version);
      if (!link_up || !link) return;
      reported = reported_payload();
      ++counters.reported_sent;
      l = link.get();
    }
    l->publish(reported_topic, std::move(reported), false, {});
  }

  Status report(const std::string& key, const std::string& value) {
    json v = json::parse(value, nullptr, false);
    if (v.is_discarded()) return InvalidArgument("reported property '" + key + "' is not JSON");
    std::string reported;
    CloudLink* l = nullptr;
    {
      std::lock_guard lock(mu);
      if (reported_extra.contains(key) && reported_extra[key] == v) return Status::Ok();
      reported_extra[key] = std::move(v);
      if (stopped || !link_up || !link) return Status::Ok();
      reported = reported_payload();
      ++counters.reported_sent;
      l = link.get();
    }
    l->publish(reported_topic, std::move(reported), false, {});
    return Status::Ok();
  }

  std::string status_json() const {
    std::lock_guard lock(mu);
    json j = {
        {"enabled", true},
        {"node_id", options.node_id},
        {"controller", options.controller_url},
        {"enrolment", std::string(to_string(state))},
        {"link_up", link_up},
        {"heartbeat_interval_ms",
         std::chrono::duration_cast<std::chrono::milliseconds>(options.heartbeat_interval).count()},
        {"heartbeats_sent", counters.heartbeats_sent},
        {"heartbeats_acked", counters.heartbeats_acked},
        {"heartbeats_skipped", counters.heartbeats_skipped},
        {"link_rtt_ms", counters.link_rtt_ms},
        {"enrol_attempts", counters.enrol_attempts},
        {"commands_received", counters.commands_received},
        {"desired_version", desired_version.empty() ? json(nullptr) : json(desired_version)},
        {"last_error", counters.last_error}};
    if (identity) {
      j["identity"] = {{"mqtt_url", identity->mqtt_url},
                       {"certificate", identity->certificate_file},
                       {"ca", identity->ca_file},
                       {"ca_source", identity->ca_source},
                       {"not_before", identity->not_before},
                       {"not_after", identity->not_after}};
    }
    json d = desired.empty() ? json(nullptr) : json::parse(desired, nullptr, false);
    j["desired"] = d.is_discarded() ? json(nullptr) : d;
    return j.dump();
  }
};

CloudAgent::CloudAgent(CloudAgentOptions options, Env& env, Clock& clock,
                       std::shared_ptr<EnrolmentApi> api, CloudLinkFactory make_link,
                       NodeFactsSource facts, MetricsRegistry* metrics)
    : impl_(std::make_shared<Impl>(std::move(options), env, clock, std::move(api),
                                   std::move(make_link), std::move(facts), metrics)) {}

CloudAgent::~CloudAgent() { impl_->stop(); }

Status CloudAgent::start() { return impl_->start(); }
void CloudAgent::stop() { impl_->stop(); }

EnrolmentState CloudAgent::wait_while_enrolling(std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->mu);
  impl_->cv.wait_for(lock, timeout, [this] {
    return impl_->stopped || impl_->state != EnrolmentState::kEnrolling;
  });
  return impl_->state;
}

std::optional<CloudIdentity> CloudAgent::identity() const {
  std::lock_guard lock(impl_->mu);
  return impl_->identity;
}

CloudAgentStats CloudAgent::stats() const {
  std::lock_guard lock(impl_->mu);
  return impl_->counters;
}

std::string CloudAgent::desired_json() const {
  std::lock_guard lock(impl_->mu);
  return impl_->desired;
}

Status CloudAgent::report(const std::string& key, const std::string& json_value) {
  return impl_->report(key, json_value);
}

std::string CloudAgent::status_json() const { return impl_->status_json(); }

void CloudAgent::add_http_routes(net::HttpRouter& router) {
  router.add("GET", "/cloud", [weak = std::weak_ptr<Impl>(impl_)](const net::HttpRequest&) {
    auto self = weak.lock();
    if (!self) return net::HttpResponse::json(200, "{\"enabled\":false}");
    return net::HttpResponse::json(200, self->status_json());
  });
}

Config CloudAgent::uplink_config(const Config& config) const {
  Config out = config;
  if (auto id = identity()) {
    if (Status s = fill_uplink_from_identity(*id, out); !s.ok()) {
      spdlog::error("cloud: cannot point the uplink at the controller: {}", s.to_string());
    }
  }
  return out;
}

Result<std::unique_ptr<CloudAgent>> start_cloud_agent(const Config& config, Env& env, Clock& clock,
                                                      boost::asio::io_context& loop,
                                                      MetricsRegistry* metrics,
                                                      net::HttpRouter* router) {
  if (config.str("cloud.url").empty()) {
    if (router) {
      router->add("GET", "/cloud", [](const net::HttpRequest&) {
        return net::HttpResponse::json(200, "{\"enabled\":false}");
      });
    }
    return std::unique_ptr<CloudAgent>();
  }
  CloudAgentOptions o;
  o.node_id = config.str("node.id");
  o.controller_url = config.str("cloud.url");
  o.token = config.str("cloud.token");
  o.mqtt_url = config.str("cloud.mqtt_url");
  o.data_dir = config.str("data.dir");
  o.heartbeat_interval = std::chrono::milliseconds(config.integer("cloud.heartbeat_interval"));
  o.labels = parse_labels(config.list("cloud.labels"));
#ifdef GANGLION_VERSION
  o.version = GANGLION_VERSION;
#endif
  if (const auto& ca = config.str("cloud.ca"); !ca.empty()) {
    auto pem = env.read_file(ca);
    if (!pem.ok())
      return InvalidArgument("cloud.ca: cannot read " + ca + ": " + pem.status().message());
    o.trusted_ca_pem = std::move(*pem);
  }
  auto api = std::shared_ptr<EnrolmentApi>(make_https_enrolment_api(loop, o.controller_url));
  CloudLinkFactory make_link =
      [&loop, &clock](const CloudIdentity& id) -> Result<std::unique_ptr<CloudLink>> {
    return make_mqtt_cloud_link(loop, clock, id);
  };
  auto agent = std::make_unique<CloudAgent>(o, env, clock, std::move(api), std::move(make_link),
                                            process_node_facts(env, o.data_dir, metrics), metrics);
  if (Status s = agent->start(); !s.ok()) {
    if (s.code() == StatusCode::kFailedPrecondition)
      return InvalidArgument("cloud: " + s.message());
    return s.with_context("cloud agent");
  }
  if (!agent->identity()) {
    const auto wait = std::chrono::milliseconds(config.integer("cloud.enrol_wait"));
    const EnrolmentState state = agent->wait_while_enrolling(wait);
    if (state == EnrolmentState::kFailed) {
      return InvalidArgument("cloud: enrolment failed: " + agent->stats().last_error);
    }
    if (state == EnrolmentState::kEnrolling) {
      spdlog::warn(
          "cloud: not enrolled after {} ms ({}); the node runs without the controller and "
          "keeps trying; the uplink uses the enrolled identity from the next start",
          wait.count(), agent->stats().last_error);
    }
  }
  if (router) agent->add_http_routes(*router);
  return agent;
}

}  // namespace ganglion::edge
