// `ganglion sim devices`: a simulated sensor fleet publishing to a broker (see
// src/sim/devices_fleet.h), printing one status line every --status-interval and a JSON
// summary at the end ("summary {...}"), until SIGINT/SIGTERM or --duration.
#include <CLI/CLI.hpp>

#include <atomic>
#include <csignal>
#include <iomanip>
#include <iostream>
#include <thread>

#include "base/config.h"
#include "base/logging.h"
#include "cli/commands.h"
#include "sim/devices_fleet.h"

namespace ganglion::cli {
namespace {

std::atomic<bool> g_devices_stop{false};
extern "C" void on_devices_stop_signal(int) { g_devices_stop.store(true); }

struct SimDevicesArgs {
  sim::DeviceFleetOptions fleet;
  std::string kinds = "temperature,vibration,power,door,badge,camera";
  std::string rate = "2/s";
  std::string duration = "0s";
  std::string status_interval = "5s";
  std::string protocol = "311";
  int telemetry_qos = 0;
  int event_qos = 1;
  std::string log_level = "warn";
};

int run_sim_devices(SimDevicesArgs a) {
  auto fail = [](const std::string& m) {
    std::cerr << "ganglion sim devices: " << m << "\n";
    return kExitUsage;
  };
  auto duration = parse_duration_ms(a.duration);
  if (!duration.ok()) return fail("--duration: " + duration.status().message());
  auto status = parse_duration_ms(a.status_interval);
  if (!status.ok()) return fail("--status-interval: " + status.status().message());
  auto rate = sim::parse_rate(a.rate);
  if (!rate.ok()) return fail("--rate: " + rate.status().message());
  auto kinds = sim::parse_device_kinds(a.kinds);
  if (!kinds.ok()) return fail("--kinds: " + kinds.status().message());
  if (a.protocol != "311" && a.protocol != "5") return fail("--protocol: 311 or 5");
  if (Status s = init_logging(LogFormat::kText, a.log_level); !s.ok()) return fail(s.message());
  a.fleet.rate = *rate;
  a.fleet.kinds = *kinds;
  a.fleet.version = a.protocol == "5" ? mqtt::ProtocolVersion::kV5 : mqtt::ProtocolVersion::kV311;
  a.fleet.telemetry_qos = static_cast<mqtt::QoS>(a.telemetry_qos);
  a.fleet.event_qos = static_cast<mqtt::QoS>(a.event_qos);
  const auto status_every = std::chrono::milliseconds(std::max<std::int64_t>(100, *status));

  sim::DeviceFleet fleet(a.fleet);
  std::signal(SIGINT, on_devices_stop_signal);
  std::signal(SIGTERM, on_devices_stop_signal);
  if (Status s = fleet.start(); !s.ok()) {
    std::cerr << "ganglion sim devices: " << s.message() << "\n";
    return s.code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
  }
  const auto began = std::chrono::steady_clock::now();
  auto last = began;
  sim::DeviceFleetSnapshot before;
  while (!g_devices_stop.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const auto now = std::chrono::steady_clock::now();
    const bool done = *duration > 0 && now - began >= std::chrono::milliseconds(*duration);
    if (now - last >= status_every || done) {
      sim::DeviceFleetSnapshot snap = fleet.snapshot();
      std::cout << "[" << std::fixed << std::setprecision(1)
                << std::chrono::duration<double>(now - began).count() << "s] "
                << sim::device_status_line(snap, before,
                                           std::chrono::duration<double>(now - last).count())
                << std::endl;
      before = snap;
      last = now;
    }
    if (done) break;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  fleet.stop();
  std::cout << "summary " << sim::device_summary_json(fleet.snapshot(), seconds) << std::endl;
  return kExitOk;
}

}  // namespace

void add_sim_devices_command(CLI::App& sim, Runner& run) {
  auto args = std::make_shared<SimDevicesArgs>();
  auto& f = args->fleet;
  auto* cmd = sim.add_subcommand(
      "devices",
      "A realistic sensor fleet publishing to an MQTT broker (an edge node): temperature, "
      "vibration, power, door and badge events, camera detections (metadata), with injected "
      "anomalies and a ground-truth JSONL of what was injected");
  cmd->add_option("--broker", f.broker_url, "tcp://host:port or tls://host:port")
      ->capture_default_str();
  cmd->add_option("--site", f.site, "Topics are sites/<site>/<kind>/<device>/{telemetry,events}")
      ->capture_default_str();
  cmd->add_option("--devices", f.devices, "Number of devices (kinds assigned round robin)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  cmd->add_option("--kinds", args->kinds, "Comma-separated device kinds")->capture_default_str();
  cmd->add_option("--rate", args->rate,
                  "Messages per device: 2/s, 30/min (telemetry periodic, events "
                  "Poisson with this mean)")
      ->capture_default_str();
  cmd->add_option("--anomaly-rate", f.anomaly_rate,
                  "Probability per message of starting an anomaly")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", f.seed, "Seed: the same seed gives the same fleet and anomalies")
      ->capture_default_str();
  cmd->add_option("--ground-truth", f.ground_truth_path,
                  "JSONL file, one line per injected anomaly "
                  "(device, kind, anomaly, topic, start, end, seq range)");
  cmd->add_option(
         "--devices-per-connection", f.devices_per_connection,
         "1: one MQTT connection (client id <site>-<device>) per device; N: one per N devices")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  cmd->add_option("--io-threads", f.io_threads, "Event-loop threads for the connections")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  cmd->add_option("--protocol", args->protocol, "MQTT version: 311 or 5")->capture_default_str();
  cmd->add_option("--telemetry-qos", args->telemetry_qos, "QoS of telemetry")
      ->capture_default_str()
      ->check(CLI::Range(0, 1));
  cmd->add_option("--event-qos", args->event_qos, "QoS of events")
      ->capture_default_str()
      ->check(CLI::Range(0, 1));
  cmd->add_option("--username", f.username, "MQTT username for every connection");
  cmd->add_option("--password", f.password, "MQTT password");
  cmd->add_option("--ca", f.ca_file, "PEM CA for tls:// brokers (default: the system's)");
  cmd->add_option("--duration", args->duration,
                  "Stop after this long; 0s runs until SIGINT/SIGTERM")
      ->capture_default_str();
  cmd->add_option("--status-interval", args->status_interval,
                  "How often the status line is printed")
      ->capture_default_str();
  cmd->add_option("--log-level", args->log_level, "trace, debug, info, warn, error, off")
      ->capture_default_str();
  cmd->callback([&run, args] { run = [args] { return run_sim_devices(*args); }; });
}

}  // namespace ganglion::cli
