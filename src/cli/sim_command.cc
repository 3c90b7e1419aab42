// `ganglion sim nodes`: a fleet of simulated edge nodes against a controller (see
// src/sim/fleet.h), printing one status line every --status-interval until SIGINT/SIGTERM
// or --duration.
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <atomic>
#include <csignal>
#include <iomanip>
#include <iostream>
#include <thread>

#include "base/config.h"
#include "base/logging.h"
#include "cli/commands.h"
#include "sim/fleet.h"

namespace ganglion::cli {
namespace {

std::atomic<bool> g_stop{false};
extern "C" void on_stop_signal(int) { g_stop.store(true); }

struct SimNodesArgs {
  sim::FleetOptions fleet;
  std::string heartbeat = "10s";
  std::string batch_interval = "5s";
  std::string duration = "0s";
  std::string status_interval = "5s";
  std::string log_level = "warn";
};

int run_sim_nodes(SimNodesArgs a) {
  auto ms = [](const std::string& flag, const std::string& text) -> Result<std::int64_t> {
    auto v = parse_duration_ms(text);
    if (!v.ok()) return InvalidArgument(flag + ": " + v.status().message());
    return v;
  };
  auto heartbeat = ms("--heartbeat", a.heartbeat);
  auto batch = ms("--batch-interval", a.batch_interval);
  auto duration = ms("--duration", a.duration);
  auto status = ms("--status-interval", a.status_interval);
  for (const auto* r : {&heartbeat, &batch, &duration, &status}) {
    if (!r->ok()) {
      std::cerr << "ganglion sim nodes: " << r->status().message() << "\n";
      return kExitUsage;
    }
  }
  if (Status s = init_logging(LogFormat::kText, a.log_level); !s.ok()) {
    std::cerr << "ganglion sim nodes: " << s.message() << "\n";
    return kExitUsage;
  }
  a.fleet.heartbeat_interval = std::chrono::milliseconds(*heartbeat);
  a.fleet.batch_interval = std::chrono::milliseconds(*batch);
  const auto status_every = std::chrono::milliseconds(std::max<std::int64_t>(100, *status));

  sim::FleetSimulator fleet(a.fleet);
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  if (Status s = fleet.start(); !s.ok()) {
    std::cerr << "ganglion sim nodes: " << s.message() << "\n";
    return s.code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
  }
  const auto began = std::chrono::steady_clock::now();
  auto last = began;
  sim::FleetSnapshot before;
  while (!g_stop.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const auto now = std::chrono::steady_clock::now();
    const bool done = *duration > 0 && now - began >= std::chrono::milliseconds(*duration);
    if (now - last >= status_every || done) {
      sim::FleetSnapshot snap = fleet.snapshot();
      const double dt = std::chrono::duration<double>(now - last).count();
      std::cout << "[" << std::fixed << std::setprecision(1)
                << std::chrono::duration<double>(now - began).count() << "s] "
                << sim::status_line(snap, before, dt) << std::endl;
      before = std::move(snap);
      last = now;
    }
    if (done) break;
  }
  fleet.stop();
  return kExitOk;
}

}  // namespace

void add_sim_command(CLI::App& app, Runner& run) {
  auto* sim = app.add_subcommand("sim", "Simulated fleets for scale tests");
  sim->require_subcommand(1);
  auto args = std::make_shared<SimNodesArgs>();
  auto* nodes = sim->add_subcommand(
      "nodes",
      "Thousands of lightweight edge-node agents in one process, speaking the real "
      "protocol to a controller: enrolment (own key + CSR each, cached under --data), "
      "MQTT 5 over mutual TLS, heartbeats, small uplink batches");
  auto& f = args->fleet;
  nodes->add_option("--count", f.count, "Number of nodes")
      ->required()
      ->check(CLI::Range(1, 1'000'000));
  nodes->add_option("--cloud", f.cloud_url, "The controller, https://host:port")->required();
  nodes->add_option("--token", f.token,
                    "Bootstrap token; must allow --count enrolments (not needed "
                    "when every node is already enrolled under --data)");
  nodes->add_option("--ca", f.trusted_ca_file,
                    "PEM CA of the controller (default: trust on first use)");
  nodes->add_option("--heartbeat", args->heartbeat, "Heartbeat interval per node")
      ->capture_default_str();
  nodes
      ->add_option("--batch-interval", args->batch_interval,
                   "Uplink batch interval per node; 0s for none")
      ->capture_default_str();
  nodes->add_option("--records", f.records_per_batch, "Records per uplink batch")
      ->capture_default_str();
  nodes->add_option("--data", f.data_dir, "Folder for the nodes' keys and certificates")
      ->capture_default_str();
  nodes->add_option("--prefix", f.prefix, "Node ids are <prefix>-00001 ...")->capture_default_str();
  nodes->add_option("--io-threads", f.io_threads, "Event-loop threads for all nodes")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  nodes->add_option("--enrol-concurrency", f.enrol_concurrency, "Enrolments in flight at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  nodes
      ->add_option("--start-rate", f.start_rate,
                   "Node starts per second (limits the connect storm)")
      ->capture_default_str();
  nodes
      ->add_option("--duration", args->duration,
                   "Stop after this long; 0s runs until SIGINT/SIGTERM")
      ->capture_default_str();
  nodes
      ->add_option("--status-interval", args->status_interval,
                   "How often the status line is printed")
      ->capture_default_str();
  nodes->add_option("--log-level", args->log_level, "trace, debug, info, warn, error, off")
      ->capture_default_str();
  nodes->callback([&run, args] { run = [args] { return run_sim_nodes(*args); }; });
  add_sim_devices_command(*sim, run);
}

}  // namespace ganglion::cli
