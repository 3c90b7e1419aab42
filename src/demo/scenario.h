// `ganglion demo`: the whole platform on one machine, measured.
//
// One controller and N edge sites run as real processes on loopback: each site enrols with
// its own single-use bootstrap token and talks to the controller over mutual TLS through a
// LinkProxy the demo can cut. Each site loads the streams, rules, Lua functions and data
// policy of examples/demo, and a simulated device fleet (sim::DeviceFleet) publishes to it
// over MQTT with anomalies injected and recorded as ground truth. The demo subscribes to
// each site's actuator commands and alerts, reads /metrics of every node and the
// controller's API, and shows live figures. Midway one site's link is cut and later
// restored; at the end the devices stop, the backlogs drain, and a summary compares what
// reached the controller with what the devices sent (zero lost), the bytes uplinked with
// what a send-everything design would upload, reaction latency p50/p99, and the alerts
// with the ground truth (precision and recall).
//
// Every figure is measured from the running system; nothing is a constant.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace ganglion::demo {

struct DemoOptions {
  std::string binary;        // the ganglion binary that runs the controller and the nodes
  std::string examples_dir;  // examples/demo: sites/, streams/, rules/, functions/
  std::string work_dir;      // empty: a fresh folder under /tmp, removed at the end
  bool keep = false;         // keep work_dir (data and logs of every process)
  std::chrono::milliseconds duration{std::chrono::seconds(60)};  // devices publishing
  std::size_t sites = 3;
  std::size_t devices = 120;  // per site
  double rate = 2.0;          // messages per second per device
  double anomaly_rate = 0.01;
  std::uint64_t seed = 7;
  // The link of site `cut_site` (0-based) is cut at `cut_at` for `cut_for`; 0 = no cut.
  std::size_t cut_site = 0;
  std::chrono::milliseconds cut_at{-1};   // negative: a third of the duration
  std::chrono::milliseconds cut_for{-1};  // negative: a third of the duration
  std::chrono::milliseconds drain_timeout{std::chrono::seconds(120)};
  std::string summary_json;  // also write the summary there as JSON
  enum class View { kAuto, kTable, kLines } view = View::kAuto;
};

// Runs the scenario. Returns the process exit code: 0 when the run completed with nothing
// lost, 1 when something failed or was lost (said on stderr), 2 for bad options,
// 130 when `stop` was set (Ctrl-C): everything is stopped and cleaned up either way.
int run_demo(const DemoOptions& options, const std::atomic<bool>& stop);

}  // namespace ganglion::demo
