#include "sim/fleet.h"

#include <unistd.h>

#include <fmt/format.h>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "base/forwarding_env.h"
#include "base/timer_scope.h"
#include "client/mqtt_client.h"
#include "edge/cloud_agent.h"
#include "uplink/batch_format.h"

namespace ganglion::sim {
namespace asio = boost::asio;

namespace {

// The file system without fsync, for the simulated nodes' identity files (key, certificate,
// CA, enrolment.json). They are a cache for the next run, not a node's only copy: a crash
// loses at most some identities, and those nodes enrol again. A real node's CloudAgent
// syncs them (Env::posix()); here every enrolment's write_file_atomic() calls (three files,
// each synced and its directory synced) ran on the one I/O thread that also carries every
// node's TLS: 6 fsyncs per enrolment, ~4 ms each on the benchmark VM and more while the
// controller commits, stalled every node of that thread (gdb samples of `sim nodes` while
// enrolling: the I/O thread in PosixWritableFile::sync).
class UnsyncedEnv final : public ForwardingEnv {
 public:
  using ForwardingEnv::ForwardingEnv;

  Result<std::unique_ptr<WritableFile>> open_writable(const std::string& path,
                                                      OpenMode mode) override {
    auto f = base_.open_writable(path, mode);
    if (!f.ok()) return f.status();
    return std::unique_ptr<WritableFile>(std::make_unique<File>(std::move(*f)));
  }
  Status sync_dir(const std::string&) override { return Status::Ok(); }

 private:
  class File final : public WritableFile {
   public:
    explicit File(std::unique_ptr<WritableFile> f) : f_(std::move(f)) {}
    using WritableFile::append;
    Status append(std::span<const std::byte> data) override { return f_->append(data); }
    Status sync() override { return Status::Ok(); }
    Status close() override { return f_->close(); }
    std::uint64_t size() const override { return f_->size(); }

   private:
    std::unique_ptr<WritableFile> f_;
  };
};

UnsyncedEnv& unsynced_env() {
  static UnsyncedEnv env(Env::posix());
  return env;
}

struct Counters {
  std::atomic<std::uint64_t> link_errors{0};
  std::atomic<std::uint64_t> publish_errors{0};
  std::atomic<std::uint64_t> batches{0};
  std::atomic<std::uint64_t> batches_acked{0};
  std::mutex mu;
  std::string last_link_error;  // guarded by mu: one example, for the status line
};

// The node's one MQTT connection: the agent's link, and the uplink batches on top.
class SimLink final : public edge::CloudLink {
 public:
  SimLink(asio::io_context& loop, Clock& clock, client::MqttClientOptions options,
          Counters& counters)
      : client_(loop, clock, std::move(options)), counters_(counters) {}

  Status start(Handlers h) override {
    client_.on_state([this, on_state = h.on_state](client::ConnectionState s, const Status& why) {
      const bool up = s == client::ConnectionState::kConnected;
      up_.store(up, std::memory_order_relaxed);
      if (s == client::ConnectionState::kBackingOff) {
        counters_.link_errors.fetch_add(1, std::memory_order_relaxed);
        std::lock_guard lock(counters_.mu);
        counters_.last_link_error = why.message();
      }
      if (on_state) on_state(up, why);
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
                    [this, done = std::move(done)](Status s, mqtt::ReasonCode) {
                      if (!s.ok() && s.code() != StatusCode::kCancelled) {
                        counters_.publish_errors.fetch_add(1, std::memory_order_relaxed);
                      }
                      if (done) done(std::move(s));
                    });
  }
  void subscribe(std::vector<std::string> filters) override {
    std::vector<mqtt::Subscription> subs;
    for (auto& f : filters)
      subs.push_back({.filter = std::move(f), .max_qos = mqtt::QoS::kAtLeastOnce});
    client_.subscribe(std::move(subs));
  }

  // An uplink batch (uplink/batch_format.h), with the batch content type.
  void publish_batch(std::string topic, std::string bytes) {
    mqtt::Publish p;
    p.topic = std::move(topic);
    p.qos = mqtt::QoS::kAtLeastOnce;
    p.payload = mqtt::SharedBytes(std::move(bytes));
    p.properties.content_type = "application/vnd.ganglion.uplink-batch.v1";
    counters_.batches.fetch_add(1, std::memory_order_relaxed);
    client_.publish(std::move(p), [this](Status s, mqtt::ReasonCode) {
      if (s.ok()) {
        counters_.batches_acked.fetch_add(1, std::memory_order_relaxed);
      } else if (s.code() != StatusCode::kCancelled) {
        counters_.publish_errors.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  bool up() const { return up_.load(std::memory_order_relaxed); }

 private:
  client::MqttClient client_;
  Counters& counters_;
  std::atomic<bool> up_{false};
};

struct SimNode {
  std::string id;
  std::unique_ptr<edge::CloudAgent> agent;
  std::atomic<bool> ready{false};       // agent set: readable by snapshot()
  std::atomic<SimLink*> link{nullptr};  // the current link (replaced on renewal)
  std::uint64_t next_offset = 0;        // clock thread only
};

double process_rss() {
  std::ifstream statm("/proc/self/statm");
  long total = 0, resident = 0;
  if (statm >> total >> resident)
    return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE));
  return 0;
}

}  // namespace

struct FleetSimulator::Impl {
  Impl(FleetOptions o, Clock& c) : options(std::move(o)), clock(c), timers(c) {}

  FleetOptions options;
  Clock& clock;
  TimerScope timers;
  Counters counters;
  std::string trusted_ca_pem;
  std::vector<std::unique_ptr<asio::io_context>> loops;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  std::vector<std::thread> io_threads;
  std::vector<std::shared_ptr<edge::EnrolmentApi>> apis;  // one per loop
  std::vector<std::unique_ptr<SimNode>> nodes;
  std::vector<std::thread> starters;
  std::atomic<std::size_t> next_index{0};
  std::atomic<std::size_t> started{0};
  std::atomic<bool> stopping{false};
  bool running = false;
  std::mutex pace_mu;
  std::chrono::steady_clock::time_point next_start;
  uplink::BatchBuilder builder{uplink::Compression::kZstd, 3};  // clock thread only
  std::mt19937_64 rng{std::random_device{}()};                  // clock thread only
  std::string last_error;
  mutable std::mutex error_mu;

  void note_error(const std::string& e) {
    std::lock_guard lock(error_mu);
    last_error = e;
  }

  // Blocks until this starter may start one more node (start_rate per second overall).
  void pace() {
    std::chrono::steady_clock::time_point at;
    {
      std::lock_guard lock(pace_mu);
      const auto now = std::chrono::steady_clock::now();
      if (next_start < now) next_start = now;
      at = next_start;
      next_start += std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          std::chrono::duration<double>(1.0 / std::max(0.001, options.start_rate)));
    }
    std::this_thread::sleep_until(at);
  }

  void start_node(std::size_t i) {
    SimNode& n = *nodes[i];
    edge::CloudAgentOptions o;
    o.node_id = n.id;
    o.controller_url = options.cloud_url;
    o.token = options.token;
    o.trusted_ca_pem = trusted_ca_pem;
    o.data_dir = join_path(options.data_dir, n.id);
    o.heartbeat_interval = options.heartbeat_interval;
    o.labels = {{"sim", "true"}, {"prefix", options.prefix}};
    o.version = std::string("sim-") + GANGLION_VERSION;
    o.log_events = false;
    asio::io_context& loop = *loops[i % loops.size()];
    auto factory = [this, &n, &loop](
                       const edge::CloudIdentity& id) -> Result<std::unique_ptr<edge::CloudLink>> {
      auto link = std::make_unique<SimLink>(loop, clock, edge::cloud_mqtt_options(id), counters);
      n.link.store(link.get());
      return std::unique_ptr<edge::CloudLink>(std::move(link));
    };
    auto facts = [] {
      thread_local std::mt19937 r{std::random_device{}()};
      std::uniform_real_distribution<double> u(0, 1);
      edge::NodeFacts f;
      f.cpu = 0.05 + 0.2 * u(r);
      f.mem_bytes = 60'000'000 + static_cast<std::uint64_t>(u(r) * 40'000'000);
      f.disk_free_bytes = 20'000'000'000ULL;
      f.uplink_backlog = 0;
      f.rules = 3;
      return f;
    };
    n.agent = std::make_unique<edge::CloudAgent>(o, unsynced_env(), clock, apis[i % apis.size()],
                                                 factory, facts, nullptr);
    n.ready.store(true, std::memory_order_release);
    if (stopping.load()) {
      n.agent->stop();
      return;
    }
    if (Status s = n.agent->start(); !s.ok()) {
      note_error(n.id + ": " + s.to_string());
      return;
    }
    if (!n.agent->identity()) {
      if (n.agent->wait_while_enrolling(std::chrono::minutes(5)) !=
          edge::EnrolmentState::kEnrolled) {
        const std::string e = n.agent->stats().last_error;
        if (!e.empty()) note_error(n.id + ": " + e);
      }
    }
    if (options.batch_interval > Duration::zero()) {
      // A random phase, so that the fleet's batches do not arrive in lock step.
      thread_local std::mt19937_64 phase_rng{std::random_device{}()};
      std::uniform_int_distribution<std::int64_t> phase(0, options.batch_interval.count());
      const Duration first(phase(phase_rng));
      n.next_offset = static_cast<std::uint64_t>(clock.wall_ms()) * 1000;
      timers.schedule_after(first, [this, &n] { send_batch(n); });
    }
  }

  void starter() {
    while (!stopping.load()) {
      const std::size_t i = next_index.fetch_add(1);
      if (i >= nodes.size()) break;
      pace();
      if (stopping.load()) break;
      start_node(i);
      started.fetch_add(1);
    }
  }

  // On the clock's thread. Offsets start at the wall time in microseconds, so a rerun with
  // cached identities continues above what the controller already ingested.
  void send_batch(SimNode& n) {
    timers.schedule_after(options.batch_interval, [this, &n] { send_batch(n); });
    SimLink* link = n.link.load();
    if (link == nullptr || !link->up()) return;
    const std::int64_t now = clock.wall_ms();
    std::uniform_real_distribution<double> temp(18.0, 26.0);
    const std::uint64_t first = n.next_offset;
    for (std::size_t k = 0; k < options.records_per_batch; ++k) {
      const std::string topic = "sensors/" + n.id + "/temperature";
      const std::string payload = fmt::format("{{\"celsius\":{:.2f},\"ts\":{}}}", temp(rng), now);
      auto record = uplink::encode_record(topic, payload);
      if (record.ok()) builder.add(n.next_offset, now, *record);
      ++n.next_offset;
    }
    auto bytes = builder.finish(n.id, "telemetry", "", first, n.next_offset);
    if (!bytes.ok()) return note_error(bytes.status().to_string());
    link->publish_batch("ganglion/v1/" + n.id + "/up/telemetry", std::move(*bytes));
  }
};

FleetSimulator::FleetSimulator(FleetOptions options, Clock& clock)
    : impl_(std::make_unique<Impl>(std::move(options), clock)) {}

FleetSimulator::~FleetSimulator() { stop(); }

Status FleetSimulator::start() {
  Impl& s = *impl_;
  const FleetOptions& o = s.options;
  if (o.count == 0) return InvalidArgument("--count must be at least 1");
  if (o.cloud_url.empty()) return InvalidArgument("--cloud is required");
  if (o.heartbeat_interval <= Duration::zero())
    return InvalidArgument("--heartbeat must be positive");
  if (!o.trusted_ca_file.empty()) {
    auto pem = Env::posix().read_file(o.trusted_ca_file);
    if (!pem.ok()) return InvalidArgument("--ca: " + pem.status().message());
    s.trusted_ca_pem = *pem;
  }
  GANGLION_RETURN_IF_ERROR(Env::posix().create_dirs(o.data_dir));
  const std::size_t threads = std::max<std::size_t>(1, o.io_threads);
  for (std::size_t i = 0; i < threads; ++i) {
    s.loops.push_back(std::make_unique<asio::io_context>(1));
    s.guards.push_back(asio::make_work_guard(*s.loops.back()));
    s.apis.push_back(edge::make_https_enrolment_api(*s.loops.back(), o.cloud_url));
  }
  for (auto& loop : s.loops) s.io_threads.emplace_back([l = loop.get()] { l->run(); });
  for (std::size_t i = 0; i < o.count; ++i) {
    auto n = std::make_unique<SimNode>();
    n->id = fmt::format("{}-{:05d}", o.prefix, i + 1);
    s.nodes.push_back(std::move(n));
  }
  for (std::size_t i = 0; i < std::max<std::size_t>(1, o.enrol_concurrency); ++i) {
    s.starters.emplace_back([&s] { s.starter(); });
  }
  s.running = true;
  return Status::Ok();
}

void FleetSimulator::stop() {
  Impl& s = *impl_;
  if (!s.running) return;
  s.running = false;
  s.stopping.store(true);
  auto stop_agents = [&s] {
    for (auto& n : s.nodes) {
      if (n->ready.load(std::memory_order_acquire)) n->agent->stop();
    }
  };
  stop_agents();  // also wakes starters waiting for an enrolment
  for (auto& t : s.starters) t.join();
  s.starters.clear();
  stop_agents();
  s.timers.close();
  // Let the DISCONNECTs go out before the loops stop.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  s.guards.clear();
  for (auto& l : s.loops) l->stop();
  for (auto& t : s.io_threads) t.join();
  s.io_threads.clear();
  s.nodes.clear();  // agents and clients freed after their loops stopped
}

bool FleetSimulator::all_started() const { return impl_->started.load() >= impl_->nodes.size(); }

FleetSnapshot FleetSimulator::snapshot() const {
  const Impl& s = *impl_;
  FleetSnapshot out;
  for (const auto& n : s.nodes) {
    if (!n->ready.load(std::memory_order_acquire)) continue;
    ++out.nodes;
    const auto st = n->agent->stats();
    switch (st.enrolment) {
      case edge::EnrolmentState::kEnrolled:
        ++out.enrolled;
        break;
      case edge::EnrolmentState::kEnrolling:
        ++out.enrolling;
        break;
      case edge::EnrolmentState::kFailed:
      case edge::EnrolmentState::kExpired:
        ++out.failed;
        break;
      default:
        break;
    }
    if (st.link_up) ++out.connected;
    out.enrolments += st.enrol_attempts;
    out.heartbeats += st.heartbeats_sent;
    out.heartbeats_acked += st.heartbeats_acked;
  }
  out.batches = s.counters.batches.load();
  out.batches_acked = s.counters.batches_acked.load();
  out.link_errors = s.counters.link_errors.load();
  out.publish_errors = s.counters.publish_errors.load();
  out.rss_bytes = process_rss();
  {
    std::lock_guard lock(s.error_mu);
    out.last_error = s.last_error;
  }
  std::lock_guard lock(impl_->counters.mu);
  out.last_link_error = impl_->counters.last_link_error;
  return out;
}

std::string status_line(const FleetSnapshot& now, const FleetSnapshot& before, double seconds) {
  const double dt = seconds > 0 ? seconds : 1;
  const double per_node = now.nodes ? now.rss_bytes / static_cast<double>(now.nodes) : 0;
  std::string line = fmt::format(
      "nodes {} enrolled {} enrolling {} connected {} | hb/s {:.1f} batches/s {:.1f} enrol/s "
      "{:.1f} "
      "| errors: refused {} link {} publish {} | rss {:.0f} MiB ({:.1f} KiB/node)",
      now.nodes, now.enrolled, now.enrolling, now.connected,
      static_cast<double>(now.heartbeats - before.heartbeats) / dt,
      static_cast<double>(now.batches - before.batches) / dt,
      static_cast<double>(now.enrolments - before.enrolments) / dt, now.failed, now.link_errors,
      now.publish_errors, now.rss_bytes / 1048576.0, per_node / 1024.0);
  if (!now.last_error.empty() && now.last_error != before.last_error)
    line += " | last error: " + now.last_error;
  if (now.link_errors != before.link_errors && !now.last_link_error.empty()) {
    line += " | last link error: " + now.last_link_error;
  }
  return line;
}

}  // namespace ganglion::sim
