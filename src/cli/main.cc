// ganglion: one binary, many roles (edge, cloud, ctl, sim, demo, bench, version).
#include <CLI/CLI.hpp>

#include <iostream>

#include "cli/commands.h"

int main(int argc, char** argv) {
  using namespace ganglion::cli;
  CLI::App app{
      "Ganglion: edge computing with an MQTT broker, streaming SQL, functions and a "
      "store-and-forward uplink in one binary.",
      "ganglion"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Help for every role");

  Runner run;
  app.add_subcommand("version", "Print the version")->callback([&run] {
    run = [] {
      std::cout << "ganglion " << GANGLION_VERSION << "\n";
      return kExitOk;
    };
  });
  std::string top_help;
  app.add_subcommand("help", "Print this help")->callback([&run, &top_help] {
    run = [&top_help] {
      std::cout << top_help;
      return kExitOk;
    };
  });
  add_edge_command(app, run);
  add_config_command(app, run);
  add_passwd_command(app, run);
  add_cloud_command(app, run);
  add_ctl_command(app, run);
  add_sim_command(app, run);
  add_rule_commands(app, run);
  add_demo_command(app, run);
  // Rendered before parsing: afterwards CLI11 renders the chosen subcommand's help instead.
  top_help = app.help();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }
  if (!run) return kExitUsage;
  try {
    return run();
  } catch (const std::exception& e) {
    std::cerr << "ganglion: " << e.what() << "\n";
    return kExitFailure;
  }
}
