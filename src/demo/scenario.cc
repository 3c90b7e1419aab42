#include "demo/scenario.h"

#include <unistd.h>

#include <fmt/format.h>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <vector>

#include "base/env.h"
#include "client/mqtt_client.h"
#include "cloud/api_client.h"
#include "demo/child_process.h"
#include "demo/link_proxy.h"
#include "demo/metrics_text.h"
#include "demo/scoring.h"
#include "demo/view.h"
#include "net/io_pool.h"
#include "sim/devices_fleet.h"

namespace ganglion::demo {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Steady = std::chrono::steady_clock;
using sim::DeviceKind;
using std::chrono::milliseconds;
using std::chrono::seconds;

// The kinds of site the demo knows; the fourth site and later reuse them with a suffix.
struct SiteProfile {
  const char* name;
  const char* region;
  std::vector<DeviceKind> kinds;
};

const std::vector<SiteProfile>& site_profiles() {
  static const std::vector<SiteProfile> profiles = {
      {"factory-eu",
       "eu",
       {DeviceKind::kTemperature, DeviceKind::kVibration, DeviceKind::kPower, DeviceKind::kDoor,
        DeviceKind::kBadge, DeviceKind::kCamera}},
      {"shop-us",
       "us",
       {DeviceKind::kTemperature, DeviceKind::kPower, DeviceKind::kDoor, DeviceKind::kBadge,
        DeviceKind::kCamera}},
      {"tower-ap",
       "ap",
       {DeviceKind::kTemperature, DeviceKind::kPower, DeviceKind::kDoor, DeviceKind::kBadge}},
  };
  return profiles;
}

// Event kinds go up one by one through the uplink route (camera ones stay on site by policy).
constexpr DeviceKind kUplinkedEventKinds[] = {DeviceKind::kDoor, DeviceKind::kBadge};
// Tumbling window of the telemetry summary rule (examples/demo/rules/telemetry_summary.json),
// plus a margin: the last window closes this long after the devices stop.
constexpr milliseconds kLastWindowFlush{6'000};
// How many messages after an anomaly's end an alert still counts as catching it
// (detectors that need a few readings to be sure).
constexpr std::uint64_t kDetectionSlack = 3;

Result<std::string> read_text(const fs::path& path) {
  return Env::posix().read_file(path.string());
}

// The files of `dir` ending in `extension`, sorted by name.
std::vector<fs::path> files_in(const fs::path& dir, std::string_view extension) {
  std::vector<fs::path> out;
  auto names = Env::posix().list_dir(dir.string());
  if (!names.ok()) return out;
  for (const auto& name : *names) {
    if (name.ends_with(extension)) out.push_back(dir / name);
  }
  return out;
}

double wall_ms() {
  return static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count()) /
         1000.0;
}

// What a site's watcher (an MQTT client of the demo at the site's broker) has seen.
struct Observed {
  std::mutex mu;
  std::vector<double> latencies_ms;  // actuator commands: now - device event ts
  std::vector<RaisedAlert> alerts;
  std::uint64_t malformed = 0;
};

struct Site {
  std::string name;
  const SiteProfile* profile = nullptr;
  fs::path dir;
  std::unique_ptr<LinkProxy> proxy;
  ChildProcess process;
  std::string http;  // http://127.0.0.1:port
  std::string mqtt;  // tcp://127.0.0.1:port
  std::unique_ptr<client::MqttClient> watcher;
  std::shared_ptr<Observed> seen = std::make_shared<Observed>();
  std::unique_ptr<sim::DeviceFleet> fleet;
  sim::DeviceFleetSnapshot devices;  // last snapshot (kept after the fleet stops)
  fs::path truth;
  std::string metrics;  // last /metrics text
  double received = 0;  // ganglion_mqtt_messages_received_total at the last refresh
  Steady::time_point received_at{};
  std::uint64_t backlog_peak = 0;
  std::uint64_t duplicates = 0;  // at the controller
  SiteView view;
};

class Demo {
 public:
  Demo(const DemoOptions& o, const std::atomic<bool>& stop) : o_(o), stop_(stop), pool_(1) {}
  ~Demo() { shutdown(); }

  int run();

 private:
  bool stopped() const { return stop_.load(); }
  // Sleeps until `until` in small steps; false when Ctrl-C came first.
  bool sleep_until(Steady::time_point until) const {
    while (Steady::now() < until) {
      if (stopped()) return false;
      std::this_thread::sleep_for(
          std::min<Steady::duration>(milliseconds(50), until - Steady::now()));
    }
    return !stopped();
  }
  Result<cloud::ApiResponse> cloud_call(std::string_view method, const std::string& target,
                                        const std::string& body = {}) const {
    return cloud::api_request({.url = api_url_, .token = admin_token_, .ca_file = ca_file_}, method,
                              target, body);
  }
  static Result<cloud::ApiResponse> edge_call(const Site& s, std::string_view method,
                                              const std::string& target,
                                              const std::string& body = {}) {
    return cloud::api_request({.url = s.http}, method, target, body);
  }

  Status prepare();
  Status start_controller();
  Status start_sites();
  Status load_manifests(Site& s);
  Status start_watcher(Site& s);
  Status start_devices();
  void refresh(Site& s, bool ask_cloud);
  void show(const std::string& phase, bool force_line = false);
  bool drained();
  // True (once, noting the time) when the cut site's receiver has acknowledged every record
  // logged up to the restore.
  bool backlog_drained(const Site& s) {
    if (drain_after_restore_s_ >= 0) return false;
    if (metric_total(s.metrics, "ganglion_uplink_records_acked_total") < logged_at_restore_)
      return false;
    drain_after_restore_s_ = std::chrono::duration<double>(Steady::now() - restored_at_).count();
    return true;
  }
  std::uint64_t cloud_event_count(const Site& s) const;
  int summarise(double cut_at_s, double cut_for_s);
  void shutdown();
  void say(const std::string& line) {
    if (table_) {
      notes_.push_back(line);
      if (notes_.size() > 6) notes_.erase(notes_.begin());
    } else {
      std::cout << "demo: " << line << std::endl;
    }
  }

  const DemoOptions& o_;
  const std::atomic<bool>& stop_;
  net::IoPool pool_;
  bool pool_started_ = false;
  bool table_ = false;
  bool remove_dir_ = false;
  fs::path dir_;
  ChildProcess controller_;
  std::string api_url_, ca_file_, admin_token_, cloud_mqtt_;
  std::vector<std::unique_ptr<Site>> sites_;
  Steady::time_point started_{};
  Steady::time_point restored_at_{};
  double drain_after_restore_s_ = -1;
  double logged_at_restore_ = 0;
  std::vector<std::string> notes_;
  std::size_t last_frame_lines_ = 0;
  Steady::time_point last_line_{};
};

Status Demo::prepare() {
  if (o_.sites == 0 || o_.sites > 20) return InvalidArgument("--sites must be 1..20");
  if (o_.devices == 0 || o_.devices > 5000) return InvalidArgument("--devices must be 1..5000");
  if (o_.cut_site >= o_.sites) return InvalidArgument("--cut-site must name one of the sites");
  if (!fs::is_directory(fs::path(o_.examples_dir) / "sites"))
    return InvalidArgument("no demo scenario in '" + o_.examples_dir +
                           "' (expected sites/, streams/, rules/, functions/; see --examples)");
  if (::access(o_.binary.c_str(), X_OK) != 0) return InvalidArgument("cannot run " + o_.binary);
  if (o_.work_dir.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "ganglion-demo-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) return Internal("mkdtemp failed");
    dir_ = tmpl;
    remove_dir_ = !o_.keep;
  } else {
    dir_ = o_.work_dir;
    std::error_code ec;
    fs::create_directories(dir_, ec);
    if (ec) return InvalidArgument("cannot create " + dir_.string() + ": " + ec.message());
  }
  table_ = o_.view == DemoOptions::View::kTable ||
           (o_.view == DemoOptions::View::kAuto && ::isatty(STDOUT_FILENO));
  return Status::Ok();
}

Status Demo::start_controller() {
  const fs::path data = dir_ / "cloud";
  GANGLION_ASSIGN_OR_RETURN(
      controller_,
      ChildProcess::spawn(
          {o_.binary, "cloud", "--cloud.data_dir", data.string(), "--cloud.api.listen",
           "127.0.0.1:0", "--cloud.mqtt.listen", "tls://127.0.0.1:0", "--cloud.heartbeat.interval",
           "2s", "--cloud.heartbeat.offline_grace", "20s", "--log.level", "warn"},
          (dir_ / "cloud.log").string()));
  const auto deadline = Steady::now() + seconds(30);
  for (;;) {
    if (stopped()) return Cancelled("interrupted");
    if (!controller_.running())
      return Unavailable("the controller exited (see " + (dir_ / "cloud.log").string() + ")");
    auto endpoints = read_text(data / "endpoints.json");
    auto log = read_text(dir_ / "cloud.log");
    constexpr std::string_view kTokenLine = "admin API token (shown once, store it now): ";
    if (endpoints.ok() && log.ok() && log->find(kTokenLine) != std::string::npos) {
      const auto j = json::parse(*endpoints, nullptr, false);
      if (j.is_object()) {
        api_url_ = j.value("api", "");
        cloud_mqtt_ = j.value("mqtt", "");
        ca_file_ = j.value("ca", "");
        const auto at = log->find(kTokenLine) + kTokenLine.size();
        admin_token_ = log->substr(at, log->find('\n', at) - at);
        break;
      }
    }
    if (Steady::now() > deadline) return Timeout("the controller did not start within 30 s");
    std::this_thread::sleep_for(milliseconds(50));
  }
  say(fmt::format("controller up: API {}, node MQTT {} (mutual TLS)", api_url_, cloud_mqtt_));
  return Status::Ok();
}

Status Demo::start_sites() {
  const std::string cloud_target = cloud_mqtt_.substr(cloud_mqtt_.find("://") + 3);
  for (std::size_t i = 0; i < o_.sites; ++i) {
    auto s = std::make_unique<Site>();
    s->profile = &site_profiles()[i % site_profiles().size()];
    s->name = s->profile->name;
    if (i >= site_profiles().size())
      s->name += "-" + std::to_string(i / site_profiles().size() + 1);
    s->dir = dir_ / s->name;
    s->truth = dir_ / (s->name + "-ground-truth.jsonl");
    const std::string labels = fmt::format("site={},region={}", s->name, s->profile->region);
    // A single-use bootstrap token per site, as an operator would hand out.
    GANGLION_ASSIGN_OR_RETURN(
        auto created, cloud_call("POST", "/v1/tokens",
                                 json{{"labels", labels}, {"ttl", "1h"}, {"uses", 1}}.dump()));
    if (created.status != 201)
      return Unavailable("creating a bootstrap token: HTTP " + std::to_string(created.status) +
                         " " + created.body);
    const std::string token = json::parse(created.body, nullptr, false).value("token", "");
    s->proxy = std::make_unique<LinkProxy>(pool_.loop(0), cloud_target);
    GANGLION_RETURN_IF_ERROR(s->proxy->start());
    const fs::path config =
        fs::path(o_.examples_dir) / "sites" / (std::string(s->profile->name) + ".yaml");
    GANGLION_ASSIGN_OR_RETURN(
        s->process, ChildProcess::spawn({o_.binary,
                                         "edge",
                                         "--config",
                                         config.string(),
                                         "--node.id",
                                         s->name,
                                         "--data.dir",
                                         s->dir.string(),
                                         "--http.listen",
                                         "127.0.0.1:0",
                                         "--mqtt.listeners",
                                         "tcp://127.0.0.1:0",
                                         "--cloud.url",
                                         api_url_,
                                         "--cloud.token",
                                         token,
                                         "--cloud.ca",
                                         ca_file_,
                                         "--cloud.mqtt_url",
                                         "tls://127.0.0.1:" + std::to_string(s->proxy->port()),
                                         "--cloud.labels",
                                         labels,
                                         "--cloud.heartbeat_interval",
                                         "2s",
                                         "--log.level",
                                         "warn"},
                                        (dir_ / (s->name + ".log")).string()));
    sites_.push_back(std::move(s));
  }
  // Start-up includes the enrolment (key, CSR, certificate); endpoints.json comes after it.
  const auto deadline = Steady::now() + seconds(60);
  for (auto& s : sites_) {
    for (;;) {
      if (stopped()) return Cancelled("interrupted");
      if (!s->process.running())
        return Unavailable("edge node " + s->name + " exited (see " +
                           (dir_ / (s->name + ".log")).string() + ")");
      if (auto text = read_text(s->dir / "endpoints.json"); text.ok()) {
        const auto j = json::parse(*text, nullptr, false);
        if (j.is_object() && j.contains("mqtt") && j["mqtt"].is_array() && !j["mqtt"].empty()) {
          s->http = "http://" + j.value("http", "");
          s->mqtt = j["mqtt"][0].get<std::string>();
          break;
        }
      }
      if (Steady::now() > deadline) return Timeout("edge node " + s->name + " did not start");
      std::this_thread::sleep_for(milliseconds(50));
    }
    GANGLION_ASSIGN_OR_RETURN(auto node, cloud_call("GET", "/v1/nodes/" + s->name));
    if (node.status != 200)
      return Unavailable("edge node " + s->name + " is not enrolled at the controller (HTTP " +
                         std::to_string(node.status) + ")");
    say(
        fmt::format("site {} ({}) enrolled: certificate issued, mutual TLS to the controller via "
                    "its link (127.0.0.1:{})",
                    s->name, s->profile->region, s->proxy->port()));
  }
  return Status::Ok();
}

// Functions first (rules may call them), then streams, then rules: examples/demo as it is.
Status Demo::load_manifests(Site& s) {
  const fs::path root(o_.examples_dir);
  std::size_t functions = 0, streams = 0, rules = 0;
  auto post = [&](const fs::path& file, const std::string& target,
                  const std::string& body) -> Status {
    GANGLION_ASSIGN_OR_RETURN(auto r, edge_call(s, "POST", target, body));
    if (r.status != 200 && r.status != 201)
      return InvalidArgument(file.string() + " at " + s.name + ": HTTP " +
                             std::to_string(r.status) + " " + r.body);
    return Status::Ok();
  };
  for (const auto& f : files_in(root / "functions", ".json")) {
    GANGLION_ASSIGN_OR_RETURN(auto text, read_text(f));
    auto spec = json::parse(text, nullptr, false);
    if (!spec.is_object()) return InvalidArgument(f.string() + ": not a JSON object");
    if (spec.contains("file") && spec["file"].is_string()) {
      GANGLION_ASSIGN_OR_RETURN(auto source,
                                read_text(f.parent_path() / spec["file"].get<std::string>()));
      spec.erase("file");
      spec["source"] = source;
    }
    GANGLION_RETURN_IF_ERROR(post(f, "/functions", spec.dump()));
    ++functions;
  }
  for (const auto& f : files_in(root / "streams", ".json")) {
    GANGLION_ASSIGN_OR_RETURN(auto text, read_text(f));
    GANGLION_RETURN_IF_ERROR(post(f, "/streams", text));
    ++streams;
  }
  for (const auto& f : files_in(root / "rules", ".json")) {
    GANGLION_ASSIGN_OR_RETURN(auto text, read_text(f));
    GANGLION_RETURN_IF_ERROR(post(f, "/rules", text));
    ++rules;
  }
  say(fmt::format("site {}: {} functions, {} streams, {} rules loaded from {}", s.name, functions,
                  streams, rules, o_.examples_dir));
  return Status::Ok();
}

// The demo's eyes on a site: actuator commands (reaction latency) and alerts (scoring).
Status Demo::start_watcher(Site& s) {
  client::MqttClientOptions mo;
  mo.url = s.mqtt;
  mo.session.client_id = "demo-watcher";
  auto seen = s.seen;
  s.watcher = std::make_unique<client::MqttClient>(pool_.loop(0), SystemClock::instance(), mo);
  s.watcher->on_message([seen](const mqtt::Publish& m) {
    const double now = wall_ms();
    const auto j = json::parse(m.payload.view(), nullptr, false);
    std::lock_guard lock(seen->mu);
    if (!j.is_object()) {
      seen->malformed += 1;
      return;
    }
    if (m.topic.starts_with("actuators/")) {
      if (j.contains("ts") && j["ts"].is_number())
        seen->latencies_ms.push_back(std::max(0.0, now - j["ts"].get<double>()));
      else
        seen->malformed += 1;
    } else if (m.topic.starts_with("alerts/")) {
      if (j.contains("device") && j["device"].is_string() && j.contains("event_seq") &&
          j["event_seq"].is_number_unsigned()) {
        seen->alerts.push_back({j["device"].get<std::string>(), j["event_seq"].get<std::uint64_t>(),
                                j.value("alert", "")});
      } else {
        seen->malformed += 1;
      }
    }
  });
  GANGLION_RETURN_IF_ERROR(s.watcher->start());
  std::atomic<int> acked{0};
  s.watcher->subscribe(
      {{.filter = "actuators/#", .max_qos = mqtt::QoS::kAtLeastOnce},
       {.filter = "alerts/#", .max_qos = mqtt::QoS::kAtLeastOnce}},
      [&acked](Status st, const std::vector<mqtt::ReasonCode>&) { acked = st.ok() ? 1 : -1; });
  const auto deadline = Steady::now() + seconds(10);
  while (acked == 0) {
    if (stopped()) return Cancelled("interrupted");
    if (Steady::now() > deadline) return Timeout("watcher at " + s.name + " did not subscribe");
    std::this_thread::sleep_for(milliseconds(10));
  }
  if (acked < 0) return Unavailable("watcher at " + s.name + " could not subscribe");
  return Status::Ok();
}

Status Demo::start_devices() {
  std::size_t i = 0;
  for (auto& s : sites_) {
    sim::DeviceFleetOptions fo;
    fo.broker_url = s->mqtt;
    fo.site = s->name;
    fo.devices = o_.devices;
    fo.kinds = s->profile->kinds;
    fo.rate = o_.rate;
    fo.anomaly_rate = o_.anomaly_rate;
    fo.seed = o_.seed + 1000 * i++;
    fo.ground_truth_path = s->truth.string();
    fo.devices_per_connection = 10;
    s->fleet = std::make_unique<sim::DeviceFleet>(fo);
    GANGLION_RETURN_IF_ERROR(s->fleet->start());
  }
  say(fmt::format("{} simulated devices per site at {}/s each are publishing", o_.devices,
                  o_.rate));
  return Status::Ok();
}

void Demo::refresh(Site& s, bool ask_cloud) {
  if (s.fleet) s.devices = s.fleet->snapshot();
  if (auto r = edge_call(s, "GET", "/metrics"); r.ok() && r->status == 200) s.metrics = r->body;
  const auto now = Steady::now();
  const double received = metric_total(s.metrics, "ganglion_mqtt_messages_received_total");
  SiteView& v = s.view;
  if (s.received_at != Steady::time_point{}) {
    const double dt = std::chrono::duration<double>(now - s.received_at).count();
    if (dt > 0) v.msgs_per_s = std::max(0.0, received - s.received) / dt;
  }
  s.received = received;
  s.received_at = now;
  v.name = s.name;
  v.region = s.profile->region;
  v.devices = s.devices.devices;
  v.connected = s.devices.connected;
  v.connections = s.devices.connections;
  v.raw_bytes = s.devices.bytes;
  v.uplinked_bytes =
      static_cast<std::uint64_t>(metric_total(s.metrics, "ganglion_uplink_bytes_sent_total"));
  v.kept_on_site = static_cast<std::uint64_t>(
      metric_total(s.metrics, "ganglion_uplink_policy_applied_total", "kind=\"local_only\""));
  v.fields_protected =
      static_cast<std::uint64_t>(metric_total(s.metrics, "ganglion_uplink_policy_applied_total")) -
      v.kept_on_site;
  v.backlog =
      static_cast<std::uint64_t>(metric_total(s.metrics, "ganglion_uplink_backlog_records"));
  s.backlog_peak = std::max(s.backlog_peak, v.backlog);
  v.link_up = metric_total(s.metrics, "ganglion_uplink_link_up") > 0;
  v.cut = s.proxy && s.proxy->stats().cut;
  {
    std::lock_guard lock(s.seen->mu);
    auto copy = s.seen->latencies_ms;
    v.reactions = copy.size();
    v.latency_p50_ms = percentile(copy, 0.50);
    v.latency_p99_ms = percentile(copy, 0.99);
    v.alerts = s.seen->alerts.size();
  }
  if (ask_cloud) {
    if (auto r = cloud_call("GET", "/v1/nodes/" + s.name); r.ok() && r->status == 200) {
      const auto j = json::parse(r->body, nullptr, false);
      if (j.is_object() && j.contains("ingest") && j["ingest"].is_object()) {
        v.cloud_records = j["ingest"].value("stored_records", std::uint64_t{0});
        s.duplicates = j["ingest"].value("duplicates", std::uint64_t{0});
      }
    }
  }
}

void Demo::show(const std::string& phase, bool force_line) {
  DemoView view;
  view.elapsed_s = std::chrono::duration<double>(Steady::now() - started_).count();
  view.duration_s = std::chrono::duration<double>(o_.duration).count();
  view.phase = phase;
  for (const auto& s : sites_) view.sites.push_back(s->view);
  if (table_) {
    std::string frame = render_table(view);
    frame += "\n";
    for (const auto& n : notes_) frame += "  " + n + "\n";
    // Back to the top of the previous frame, then clear to the end of the screen.
    if (last_frame_lines_ > 0) std::cout << "\033[" << last_frame_lines_ << "F";
    std::cout << "\033[J" << frame << std::flush;
    last_frame_lines_ = static_cast<std::size_t>(std::count(frame.begin(), frame.end(), '\n'));
    return;
  }
  const auto now = Steady::now();
  if (force_line || now - last_line_ >= seconds(5)) {
    last_line_ = now;
    std::cout << "demo: " << phase << "\n" << render_lines(view) << std::flush;
  }
}

// Everything the sites logged has reached the controller and nothing waits anywhere.
bool Demo::drained() {
  for (auto& s : sites_) {
    const double logged = metric_total(s->metrics, "ganglion_uplink_records_logged_total");
    if (s->view.backlog != 0 || !s->view.link_up ||
        static_cast<double>(s->view.cloud_records) < logged)
      return false;
    // Every event publish is over. Only the acknowledged ones must reach the cloud; one whose
    // PUBACK did not come before the devices stopped (cancelled) may or may not.
    for (DeviceKind k : kUplinkedEventKinds) {
      const int i = static_cast<int>(k);
      if (s->devices.settled_per_kind[i] != s->devices.per_kind[i]) return false;
    }
  }
  return true;
}

// Device events of this site the controller stored: records carrying the devices' "seq"
// (alerts carry "event_seq", summaries neither).
std::uint64_t Demo::cloud_event_count(const Site& s) const {
  const auto from = static_cast<std::int64_t>(wall_ms()) - 24 * 3600 * 1000;
  const auto to = static_cast<std::int64_t>(wall_ms()) + 3600 * 1000;
  auto r = cloud_call("GET", fmt::format("/v1/query?metric=seq&agg=count&bucket=1d&group_by="
                                         "node&where=node={}&from={}&to={}",
                                         s.name, from, to));
  if (!r.ok() || r->status != 200) return 0;
  const auto j = json::parse(r->body, nullptr, false);
  std::uint64_t total = 0;
  if (!j.is_object() || !j.contains("series")) return 0;
  for (const auto& series : j["series"]) {
    for (const auto& p : series.value("points", json::array()))
      total += static_cast<std::uint64_t>(p.value("value", 0.0));
  }
  return total;
}

int Demo::summarise(double cut_at_s, double cut_for_s) {
  std::vector<TruthAnomaly> truth;
  std::vector<RaisedAlert> alerts;
  std::vector<double> latencies;
  std::uint64_t sent = 0, events_expected = 0, events_stored = 0, logged = 0, stored = 0, raw = 0,
                uplinked = 0, kept = 0, fields = 0, malformed = 0, duplicates = 0, dropped = 0;
  json sites = json::array();
  bool failed = false;
  for (auto& s : sites_) {
    auto text = read_text(s->truth);
    if (text.ok()) {
      auto t = read_ground_truth(*text);
      if (t.ok()) {
        truth.insert(truth.end(), t->begin(), t->end());
      } else {
        std::cerr << "demo: " << s->truth.string() << ": " << t.status().message() << "\n";
        failed = true;
      }
    }
    {
      std::lock_guard lock(s->seen->mu);
      alerts.insert(alerts.end(), s->seen->alerts.begin(), s->seen->alerts.end());
      latencies.insert(latencies.end(), s->seen->latencies_ms.begin(), s->seen->latencies_ms.end());
      malformed += s->seen->malformed;
    }
    std::uint64_t expected = 0;
    for (DeviceKind k : kUplinkedEventKinds)
      expected += s->devices.acked_per_kind[static_cast<int>(k)];
    const std::uint64_t got = cloud_event_count(*s);
    const auto site_logged = static_cast<std::uint64_t>(
        metric_total(s->metrics, "ganglion_uplink_records_logged_total"));
    std::uint64_t site_dropped = 0;  // local_only is the policy at work, not a loss
    for (const char* reason : {"reason=\"quota\"", "reason=\"disk\"", "reason=\"oldest\"",
                               "reason=\"ttl\"", "reason=\"unparseable\""}) {
      site_dropped += static_cast<std::uint64_t>(
          metric_total(s->metrics, "ganglion_uplink_dropped_total", reason));
    }
    sent += s->devices.telemetry + s->devices.events;
    events_expected += expected;
    events_stored += got;
    logged += site_logged;
    stored += s->view.cloud_records;
    raw += s->view.raw_bytes;
    uplinked += s->view.uplinked_bytes;
    kept += s->view.kept_on_site;
    fields += s->view.fields_protected;
    duplicates += s->duplicates;
    dropped += site_dropped;
    sites.push_back({{"site", s->name},
                     {"region", s->profile->region},
                     {"messages_sent", s->devices.telemetry + s->devices.events},
                     {"events_sent", expected},
                     {"events_in_cloud", got},
                     {"uplink_records_logged", site_logged},
                     {"uplink_records_in_cloud", s->view.cloud_records},
                     {"uplink_dropped", site_dropped},
                     {"backlog_peak", s->backlog_peak},
                     {"send_everything_bytes", s->view.raw_bytes},
                     {"uplinked_bytes", s->view.uplinked_bytes},
                     {"kept_on_site", s->view.kept_on_site},
                     {"fields_protected", s->view.fields_protected},
                     {"reactions", s->view.reactions},
                     {"alerts", s->view.alerts}});
  }
  const DetectionScore score = score_detections(truth, alerts, kDetectionSlack);
  const std::uint64_t events_lost =
      events_expected > events_stored ? events_expected - events_stored : 0;
  const std::uint64_t records_lost = logged > stored ? logged - stored : 0;
  const double p50 = percentile(latencies, 0.50);
  const double p99 = percentile(latencies, 0.99);
  const double ratio = uplinked ? static_cast<double>(raw) / static_cast<double>(uplinked) : 0;
  std::string per_kind;
  for (const auto& [name, c] : score.per_anomaly)
    per_kind +=
        fmt::format("{}{} {}/{}", per_kind.empty() ? "" : ", ", name, c.detected, c.injected);

  std::string cut_site = o_.cut_site < sites_.size() ? sites_[o_.cut_site]->name : "";
  std::ostringstream out;
  out << "\n== ganglion demo: summary ==\n";
  out << fmt::format(
      "{} sites, {} devices, {:.0f} s of traffic; link of {} cut at t={:.0f}s for {:.0f} s\n",
      sites_.size(), sites_.size() * o_.devices, std::chrono::duration<double>(o_.duration).count(),
      cut_site, cut_at_s, cut_for_s);
  out << fmt::format("device messages sent        {}\n", sent);
  out << fmt::format(
      "lost across the partition   {}   (door and badge events sent {} -> stored in the cloud {}; "
      "uplink records logged {} -> stored {}; duplicates dropped by the cloud {})\n",
      events_lost + records_lost, events_expected, events_stored, logged, stored, duplicates);
  if (cut_for_s > 0 && o_.cut_site < sites_.size()) {
    const auto& c = *sites_[o_.cut_site];
    out << fmt::format("partition                   {} backlog peaked at {} records; ", c.name,
                       c.backlog_peak);
    if (drain_after_restore_s_ >= 0)
      out << fmt::format("all of it in the cloud {:.1f} s after the link came back\n",
                         drain_after_restore_s_);
    else
      out << "did not drain before the devices stopped\n";
  }
  out << fmt::format(
      "bandwidth                   send-everything {} vs uplinked {}: {:.0f}x less\n",
      human_bytes(raw), human_bytes(uplinked), ratio);
  out << fmt::format(
      "reaction latency            {} actuator commands, p50 {:.1f} ms, p99 {:.1f} ms "
      "(device event -> edge rule -> actuator; 1 ms timestamp resolution)\n",
      latencies.size(), p50, p99);
  out << fmt::format(
      "anomaly detection           {} alerts for {} injected anomalies: precision "
      "{:.2f}, recall {:.2f}\n                            ({})\n",
      score.alerts, score.anomalies, score.precision(), score.recall(), per_kind);
  out << fmt::format(
      "kept on site by policy      {} messages never left their site, {} fields "
      "hashed before uplink\n",
      kept, fields);
  if (malformed) out << fmt::format("malformed messages seen     {}\n", malformed);
  std::cout << out.str() << std::flush;

  const bool lost = events_lost + records_lost > 0 || dropped > 0;
  if (!o_.summary_json.empty()) {
    json per = json::object();
    for (const auto& [name, c] : score.per_anomaly)
      per[name] = {{"injected", c.injected}, {"detected", c.detected}};
    json j = {{"sites", sites},
              {"duration_s", std::chrono::duration<double>(o_.duration).count()},
              {"cut",
               {{"site", cut_site},
                {"at_s", cut_at_s},
                {"for_s", cut_for_s},
                {"drained_after_restore_s", drain_after_restore_s_}}},
              {"messages_sent", sent},
              {"events_sent", events_expected},
              {"events_in_cloud", events_stored},
              {"uplink_records_logged", logged},
              {"uplink_records_in_cloud", stored},
              {"uplink_dropped", dropped},
              {"lost", events_lost + records_lost},
              {"duplicates_dropped_by_cloud", duplicates},
              {"send_everything_bytes", raw},
              {"uplinked_bytes", uplinked},
              {"bandwidth_ratio", ratio},
              {"reactions", latencies.size()},
              {"reaction_latency_ms", {{"p50", p50}, {"p99", p99}}},
              {"alerts", score.alerts},
              {"anomalies", score.anomalies},
              {"precision", score.precision()},
              {"recall", score.recall()},
              {"per_anomaly", per},
              {"kept_on_site", kept},
              {"fields_protected", fields},
              {"malformed", malformed}};
    std::ofstream(o_.summary_json) << j.dump(2) << "\n";
  }
  if (lost) {
    std::cerr << "demo: data was lost (see above); logs kept in " << dir_.string() << "\n";
    remove_dir_ = false;
    return 1;
  }
  return failed ? 1 : 0;
}

int Demo::run() {
  if (Status s = prepare(); !s.ok()) {
    std::cerr << "demo: " << s.message() << "\n";
    return 2;
  }
  pool_.start();
  pool_started_ = true;
  const double duration_s = std::chrono::duration<double>(o_.duration).count();
  const milliseconds cut_at = o_.cut_at.count() >= 0 ? o_.cut_at : o_.duration / 3;
  const milliseconds cut_for = o_.cut_for.count() >= 0 ? o_.cut_for : o_.duration / 3;
  auto fail = [&](const Status& s) {
    if (s.code() == StatusCode::kCancelled) return 130;
    std::cerr << "demo: " << s.message() << "\n";
    std::cerr << "demo: logs kept in " << dir_.string() << "\n";
    remove_dir_ = false;
    return 1;
  };
  say(fmt::format("working folder {}", dir_.string()));
  if (Status s = start_controller(); !s.ok()) return fail(s);
  if (Status s = start_sites(); !s.ok()) return fail(s);
  for (auto& site : sites_) {
    if (Status s = load_manifests(*site); !s.ok()) return fail(s);
    if (Status s = start_watcher(*site); !s.ok()) return fail(s);
  }
  started_ = Steady::now();
  if (Status s = start_devices(); !s.ok()) return fail(s);
  Site& cut_site = *sites_[o_.cut_site];
  bool cut_done = false, restored = false;
  std::size_t tick = 0;
  std::string phase = "running";
  // Devices publish for the duration; the link of one site goes down and comes back.
  for (auto next = Steady::now(); Steady::now() - started_ < o_.duration;) {
    next += seconds(1);
    if (!sleep_until(next)) return 130;
    const auto t = Steady::now() - started_;
    if (cut_for.count() > 0 && !cut_done && t >= cut_at) {
      cut_site.proxy->cut();
      cut_done = true;
      say(fmt::format("t={:.0f}s: link of {} to the cloud CUT (local processing goes on)",
                      std::chrono::duration<double>(t).count(), cut_site.name));
    }
    if (cut_done && !restored && t >= cut_at + cut_for) {
      cut_site.proxy->restore();
      restored = true;
      restored_at_ = Steady::now();
      logged_at_restore_ = metric_total(cut_site.metrics, "ganglion_uplink_records_logged_total");
      say(fmt::format("t={:.0f}s: link of {} RESTORED (backlog {} records)",
                      std::chrono::duration<double>(t).count(), cut_site.name,
                      cut_site.view.backlog));
    }
    for (auto& s : sites_) refresh(*s, tick % 2 == 0);
    if (restored && drain_after_restore_s_ < 0 && backlog_drained(cut_site)) {
      say(fmt::format(
          "{}: the backlog of the cut is in the cloud {:.1f} s after the link came back",
          cut_site.name, drain_after_restore_s_));
    }
    phase = !cut_done   ? "running"
            : !restored ? fmt::format("link of {} CUT (back in {:.0f} s)", cut_site.name,
                                      std::chrono::duration<double>(cut_at + cut_for - t).count())
                        : "link restored";
    show(phase, cut_done != restored && tick % 5 == 0);
    ++tick;
  }
  if (cut_done && !restored) {
    cut_site.proxy->restore();
    restored = true;
    restored_at_ = Steady::now();
    logged_at_restore_ = metric_total(cut_site.metrics, "ganglion_uplink_records_logged_total");
  }
  // The devices stop; the last summary window closes; every backlog drains to the cloud.
  for (auto& s : sites_) {
    s->fleet->stop();
    s->devices = s->fleet->snapshot();
  }
  say(
      fmt::format("devices stopped after {:.0f} s; waiting for the last window and the uplink "
                  "backlogs to drain",
                  duration_s));
  if (!sleep_until(Steady::now() + kLastWindowFlush)) return 130;
  const auto drain_deadline = Steady::now() + o_.drain_timeout;
  for (;;) {
    for (auto& s : sites_) refresh(*s, true);
    if (restored && drain_after_restore_s_ < 0) backlog_drained(cut_site);
    show("draining", true);
    if (drained()) break;
    if (Steady::now() > drain_deadline) {
      std::cerr << "demo: the backlogs did not drain within "
                << std::chrono::duration_cast<seconds>(o_.drain_timeout).count() << " s\n";
      break;
    }
    if (!sleep_until(Steady::now() + milliseconds(500))) return 130;
  }
  // A last look a moment later: nothing arrives twice or late.
  if (!sleep_until(Steady::now() + seconds(1))) return 130;
  for (auto& s : sites_) refresh(*s, true);
  show("done", true);
  return summarise(std::chrono::duration<double>(cut_at).count(),
                   cut_done ? std::chrono::duration<double>(cut_for).count() : 0.0);
}

void Demo::shutdown() {
  for (auto& s : sites_) {
    if (s->fleet) s->fleet->stop();
    if (s->watcher) s->watcher->stop();
  }
  for (auto& s : sites_) {
    if (s->proxy) s->proxy->stop();
    s->process.stop();
  }
  controller_.stop();
  if (pool_started_) {
    pool_.stop();
    pool_started_ = false;
  }
  for (auto& s : sites_) {
    s->watcher.reset();
    s->proxy.reset();
  }
  if (remove_dir_ && !dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
    remove_dir_ = false;
  }
}

}  // namespace

int run_demo(const DemoOptions& options, const std::atomic<bool>& stop) {
  Demo demo(options, stop);
  const int code = demo.run();
  return stop.load() ? 130 : code;
}

}  // namespace ganglion::demo
