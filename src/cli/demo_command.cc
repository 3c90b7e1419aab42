// `ganglion demo`: the main job (src/demo/scenario.h). `make demo` runs it on its defaults.
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <iostream>

#include "base/config.h"
#include "base/logging.h"
#include "cli/commands.h"
#include "demo/scenario.h"

namespace ganglion::cli {
namespace {

std::atomic<bool> g_demo_stop{false};
extern "C" void on_demo_stop_signal(int) { g_demo_stop.store(true); }

struct DemoArgs {
  demo::DemoOptions options;
  std::string duration = "60s";
  std::string cut_at = "";
  std::string cut_for = "";
  std::string drain_timeout = "120s";
  std::string view = "auto";
};

// The scenario files: --examples, else examples/demo of the working folder, else the one of
// the source tree this binary was built from.
std::string find_examples(const std::string& given) {
  if (!given.empty()) return given;
  namespace fs = std::filesystem;
  if (fs::is_directory("examples/demo/sites")) return "examples/demo";
#ifdef GANGLION_SOURCE_DIR
  return std::string(GANGLION_SOURCE_DIR) + "/examples/demo";
#else
  return "examples/demo";
#endif
}

int run_demo_command(DemoArgs a) {
  auto fail = [](const std::string& m) {
    std::cerr << "ganglion demo: " << m << "\n";
    return kExitUsage;
  };
  auto ms = [](const std::string& text, const char* flag, std::chrono::milliseconds& out) {
    if (text.empty()) return Status::Ok();
    auto v = parse_duration_ms(text);
    if (!v.ok()) return InvalidArgument(std::string(flag) + ": " + v.status().message());
    out = std::chrono::milliseconds(*v);
    return Status::Ok();
  };
  demo::DemoOptions& o = a.options;
  for (auto [text, flag, out] :
       {std::tuple{&a.duration, "--duration", &o.duration},
        std::tuple{&a.cut_at, "--cut-at", &o.cut_at},
        std::tuple{&a.cut_for, "--cut-for", &o.cut_for},
        std::tuple{&a.drain_timeout, "--drain-timeout", &o.drain_timeout}}) {
    if (Status s = ms(*text, flag, *out); !s.ok()) return fail(s.message());
  }
  if (o.duration.count() <= 0) return fail("--duration must be positive");
  if (a.view == "table") {
    o.view = demo::DemoOptions::View::kTable;
  } else if (a.view == "lines") {
    o.view = demo::DemoOptions::View::kLines;
  } else if (a.view != "auto") {
    return fail("--view: expected auto, table or lines");
  }
  std::error_code ec;
  o.binary = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  if (ec) return fail("cannot find my own binary: " + ec.message());
  o.examples_dir = find_examples(o.examples_dir);
  if (Status s = init_logging(LogFormat::kText, "warn"); !s.ok()) return fail(s.message());
  std::signal(SIGINT, on_demo_stop_signal);
  std::signal(SIGTERM, on_demo_stop_signal);
  std::signal(SIGPIPE, SIG_IGN);
  return demo::run_demo(o, g_demo_stop);
}

}  // namespace

void add_demo_command(CLI::App& app, Runner& run) {
  auto args = std::make_shared<DemoArgs>();
  demo::DemoOptions& o = args->options;
  auto* cmd = app.add_subcommand(
      "demo",
      "The main job: a controller, edge sites and simulated devices on this machine, with a link "
      "cut and restored, measured live; ends with a summary");
  cmd->add_option("--duration", args->duration, "How long the devices publish")
      ->capture_default_str();
  cmd->add_option("--sites", o.sites, "Edge sites (factory-eu, shop-us, tower-ap, then again)")
      ->capture_default_str()
      ->check(CLI::Range(1, 20));
  cmd->add_option("--devices", o.devices, "Simulated devices per site")
      ->capture_default_str()
      ->check(CLI::Range(1, 5000));
  cmd->add_option("--rate", o.rate, "Messages per second per device")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 100.0));
  cmd->add_option("--anomaly-rate", o.anomaly_rate,
                  "Probability per device message of starting an anomaly")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", o.seed, "Seed of the device fleets")->capture_default_str();
  cmd->add_option("--cut-site", o.cut_site, "Which site's link is cut (0 = the first)")
      ->capture_default_str();
  cmd->add_option("--cut-at", args->cut_at,
                  "When the link is cut (default: a third of --duration)");
  cmd->add_option("--cut-for", args->cut_for,
                  "How long it stays cut (default: a third of --duration; 0s: no cut)");
  cmd->add_option("--drain-timeout", args->drain_timeout,
                  "How long to wait at the end for every backlog to reach the cloud")
      ->capture_default_str();
  cmd->add_option("--examples", o.examples_dir,
                  "Scenario folder (sites/, streams/, rules/, functions/); default examples/demo");
  cmd->add_option("--dir", o.work_dir,
                  "Working folder for data and logs (default: a temporary one, removed after)");
  cmd->add_flag("--keep", o.keep, "Keep the working folder");
  cmd->add_option("--summary-json", o.summary_json, "Also write the summary to this JSON file");
  cmd->add_option("--view", args->view, "auto (table on a terminal), table or lines")
      ->capture_default_str();
  cmd->callback([&run, args] { run = [args] { return run_demo_command(*args); }; });
}

}  // namespace ganglion::cli
