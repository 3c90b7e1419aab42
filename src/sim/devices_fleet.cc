#include "sim/devices_fleet.h"

#include <unistd.h>

#include <fmt/format.h>
#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <queue>
#include <thread>

#include "client/mqtt_client.h"
#include "net/io_pool.h"

namespace ganglion::sim {

namespace {

double rss_bytes() {
  std::ifstream f("/proc/self/statm");
  long pages_total = 0, pages_rss = 0;
  f >> pages_total >> pages_rss;
  return static_cast<double>(pages_rss) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

struct Counters {
  std::atomic<std::uint64_t> telemetry{0}, events{0}, acked{0}, offline{0}, anomalies{0},
      ground_truth{0}, link_errors{0}, publish_errors{0};
  std::atomic<std::uint64_t> bytes{0};
  std::atomic<std::uint64_t> per_kind[6] = {}, acked_per_kind[6] = {}, settled_per_kind[6] = {};
};

struct Connection {
  std::unique_ptr<client::MqttClient> client;
  std::atomic<bool> up{false};
};

}  // namespace

struct DeviceFleet::Impl {
  DeviceFleetOptions options;
  Clock& clock;
  net::IoPool pool;
  std::vector<std::unique_ptr<Connection>> connections;
  std::vector<SimDevice> devices;
  Counters counters;
  std::ofstream ground_truth;
  std::thread generator;
  std::mutex mu;
  std::condition_variable cv;
  std::size_t connection_count = 0;
  bool stopping = false;
  bool started = false;
  bool stopped = false;

  Impl(DeviceFleetOptions o, Clock& c)
      : options(std::move(o)), clock(c), pool(std::max<std::size_t>(1, options.io_threads)) {}

  void write_truth(const InjectedAnomaly& a) {
    if (!ground_truth.is_open()) return;
    ground_truth << to_json_line(a) << '\n';
    ground_truth.flush();  // a demo reads it while the run goes on
    counters.ground_truth.fetch_add(1, std::memory_order_relaxed);
  }

  void run_generator() {
    using Steady = std::chrono::steady_clock;
    using Entry = std::pair<Steady::time_point, std::size_t>;
    std::priority_queue<Entry, std::vector<Entry>, std::greater<>> due;
    std::mt19937_64 phase(options.seed);
    const auto t0 = Steady::now();
    for (std::size_t i = 0; i < devices.size(); ++i) {
      // Spread the first messages over one period so the fleet does not pulse.
      const double offset = std::uniform_real_distribution<double>(0, 1.0 / options.rate)(phase);
      due.emplace(
          t0 + std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(offset)),
          i);
    }
    std::vector<InjectedAnomaly> finished;
    std::unique_lock lock(mu);
    while (!stopping && !due.empty()) {
      const auto [when, i] = due.top();
      if (Steady::now() < when) {
        cv.wait_until(lock, when, [&] { return stopping; });
        continue;
      }
      due.pop();
      lock.unlock();
      SimDevice& d = devices[i];
      const std::size_t before = finished.size();
      DeviceMessage m = d.next(clock.wall_ms(), finished);
      for (std::size_t k = before; k < finished.size(); ++k) write_truth(finished[k]);
      finished.clear();
      publish(i, d, std::move(m));
      const double next = d.next_interval_s(options.rate);
      due.emplace(
          when + std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(next)),
          i);
      lock.lock();
    }
  }

  void publish(std::size_t index, const SimDevice& d, DeviceMessage m) {
    if (m.anomaly_start) counters.anomalies.fetch_add(1, std::memory_order_relaxed);
    Connection& c = *connections[index / options.devices_per_connection];
    if (!c.up.load(std::memory_order_relaxed)) {
      counters.offline.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    const mqtt::QoS qos = m.event ? options.event_qos : options.telemetry_qos;
    (m.event ? counters.events : counters.telemetry).fetch_add(1, std::memory_order_relaxed);
    counters.per_kind[static_cast<int>(d.kind())].fetch_add(1, std::memory_order_relaxed);
    counters.bytes.fetch_add(m.topic.size() + m.payload.size(), std::memory_order_relaxed);
    client::PublishCompletion done;
    if (qos != mqtt::QoS::kAtMostOnce) {
      done = [this, kind = static_cast<int>(d.kind())](Status s, mqtt::ReasonCode) {
        counters.settled_per_kind[kind].fetch_add(1, std::memory_order_relaxed);
        if (s.ok()) {
          counters.acked.fetch_add(1, std::memory_order_relaxed);
          counters.acked_per_kind[kind].fetch_add(1, std::memory_order_relaxed);
        } else if (s.code() != StatusCode::kCancelled) {
          counters.publish_errors.fetch_add(1, std::memory_order_relaxed);
        }
      };
    }
    c.client->publish(std::move(m.topic), std::move(m.payload), qos, false, std::move(done));
  }
};

DeviceFleet::DeviceFleet(DeviceFleetOptions options, Clock& clock)
    : impl_(std::make_unique<Impl>(std::move(options), clock)) {}

DeviceFleet::~DeviceFleet() { stop(); }

Status DeviceFleet::start() {
  Impl& s = *impl_;
  auto& o = s.options;
  if (s.started) return FailedPrecondition("device fleet already started");
  if (o.devices == 0 || o.kinds.empty() || !(o.rate > 0) || o.anomaly_rate < 0 ||
      o.anomaly_rate > 1 || o.devices_per_connection == 0 || o.site.empty() ||
      o.site.find_first_of("/+#") != std::string::npos) {
    return InvalidArgument(
        "devices, kinds, rate > 0, anomaly rate in [0, 1], devices per connection and a "
        "site without / + # are required");
  }
  auto address = client::parse_broker_url(o.broker_url);
  if (!address.ok()) return address.status();
  if (!o.ground_truth_path.empty()) {
    s.ground_truth.open(o.ground_truth_path, std::ios::out | std::ios::trunc);
    if (!s.ground_truth)
      return InvalidArgument("cannot write the ground truth file " + o.ground_truth_path);
  }
  s.devices.reserve(o.devices);
  for (std::size_t i = 0; i < o.devices; ++i) {
    s.devices.emplace_back(o.site, o.kinds[i % o.kinds.size()], i, o.seed, o.anomaly_rate);
  }
  const std::size_t n_conn = (o.devices + o.devices_per_connection - 1) / o.devices_per_connection;
  s.pool.start();
  for (std::size_t c = 0; c < n_conn; ++c) {
    client::MqttClientOptions mo;
    mo.url = o.broker_url;
    mo.tls.ca_file = o.ca_file;
    mo.session.version = o.version;
    mo.session.client_id = o.devices_per_connection == 1
                               ? fmt::format("{}-{}", o.site, s.devices[c].id())
                               : fmt::format("{}-sim-{:04}", o.site, c + 1);
    mo.session.clean_start = true;
    mo.session.keep_alive = 30;
    mo.session.max_queued = 1000;
    if (!o.username.empty()) mo.session.username = o.username;
    if (!o.password.empty()) mo.session.password = o.password;
    mo.backoff.initial = std::chrono::milliseconds(500);
    mo.backoff.max = std::chrono::milliseconds(10'000);
    auto conn = std::make_unique<Connection>();
    conn->client = std::make_unique<client::MqttClient>(s.pool.loop(c % s.pool.size()), s.clock,
                                                        std::move(mo));
    Connection* raw = conn.get();
    conn->client->on_state([raw, &s](client::ConnectionState st, const Status&) {
      raw->up.store(st == client::ConnectionState::kConnected, std::memory_order_relaxed);
      if (st == client::ConnectionState::kBackingOff)
        s.counters.link_errors.fetch_add(1, std::memory_order_relaxed);
    });
    if (Status st = conn->client->start(); !st.ok()) {
      s.pool.stop();
      return st;
    }
    s.connections.push_back(std::move(conn));
  }
  s.connection_count = s.connections.size();
  s.started = true;
  s.generator = std::thread([&s] { s.run_generator(); });
  return Status::Ok();
}

void DeviceFleet::stop() {
  Impl& s = *impl_;
  if (!s.started || s.stopped) return;
  s.stopped = true;
  {
    std::lock_guard lock(s.mu);
    s.stopping = true;
  }
  s.cv.notify_all();
  if (s.generator.joinable()) s.generator.join();
  for (auto& d : s.devices) {
    if (auto a = d.finish()) s.write_truth(*a);
  }
  // Give QoS 1 events in flight a moment to be acknowledged, then disconnect.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  for (auto& c : s.connections) {
    while (c->up.load() && c->client->stats().inflight + c->client->stats().queued > 0 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  for (auto& c : s.connections) c->client->stop();
  s.pool.stop();
  s.connections.clear();  // after the loops stopped (MqttClient lifetime rule)
  s.ground_truth.close();
}

DeviceFleetSnapshot DeviceFleet::snapshot() const {
  const Impl& s = *impl_;
  DeviceFleetSnapshot snap;
  snap.devices = s.devices.size();
  snap.connections = s.connection_count;
  for (const auto& c : s.connections) snap.connected += c->up.load(std::memory_order_relaxed);
  auto& k = s.counters;
  snap.telemetry = k.telemetry.load();
  snap.events = k.events.load();
  snap.acked = k.acked.load();
  snap.offline = k.offline.load();
  snap.anomalies = k.anomalies.load();
  snap.ground_truth = k.ground_truth.load();
  snap.link_errors = k.link_errors.load();
  snap.publish_errors = k.publish_errors.load();
  snap.bytes = k.bytes.load();
  for (int i = 0; i < 6; ++i) {
    snap.per_kind[i] = k.per_kind[i].load();
    snap.acked_per_kind[i] = k.acked_per_kind[i].load();
    snap.settled_per_kind[i] = k.settled_per_kind[i].load();
  }
  snap.rss_bytes = rss_bytes();
  return snap;
}

std::string device_status_line(const DeviceFleetSnapshot& now, const DeviceFleetSnapshot& before,
                               double seconds) {
  const double dt = seconds > 0 ? seconds : 1;
  auto rate = [&](std::uint64_t a, std::uint64_t b) { return static_cast<double>(a - b) / dt; };
  return fmt::format(
      "devices {} connected {}/{} | msg/s {:.1f} (telemetry {:.1f} events {:.1f}) acked/s {:.1f} | "
      "anomalies {} | offline {} errors: link {} publish {} | rss {:.0f} MiB",
      now.devices, now.connected, now.connections,
      rate(now.telemetry + now.events, before.telemetry + before.events),
      rate(now.telemetry, before.telemetry), rate(now.events, before.events),
      rate(now.acked, before.acked), now.anomalies, now.offline, now.link_errors,
      now.publish_errors, now.rss_bytes / (1024.0 * 1024.0));
}

std::string device_summary_json(const DeviceFleetSnapshot& s, double seconds) {
  std::string kinds;
  for (DeviceKind k : kAllDeviceKinds) {
    kinds += fmt::format("{}\"{}\":{}", kinds.empty() ? "" : ",", to_string(k),
                         s.per_kind[static_cast<int>(k)]);
  }
  return fmt::format(
      R"({{"seconds":{:.2f},"devices":{},"connections":{},"telemetry":{},"events":{},"acked":{},)"
      R"("offline":{},"anomalies":{},"ground_truth":{},"link_errors":{},"publish_errors":{},"by_kind":{{{}}}}})",
      seconds, s.devices, s.connections, s.telemetry, s.events, s.acked, s.offline, s.anomalies,
      s.ground_truth, s.link_errors, s.publish_errors, kinds);
}

}  // namespace ganglion::sim
