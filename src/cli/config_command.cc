// `ganglion config reference <role>`: prints the generated option reference (Markdown).
#include <CLI/CLI.hpp>

#include <iostream>

#include "cli/commands.h"
#include "edge/edge_config.h"

namespace ganglion::cli {

void add_config_command(CLI::App& app, Runner& run) {
  auto* cmd = app.add_subcommand("config", "Configuration tools");
  cmd->require_subcommand(1);
  auto* ref = cmd->add_subcommand("reference", "Print the reference of every option (Markdown)");
  auto role = std::make_shared<std::string>("edge");
  ref->add_option("role", *role, "Which role's options")->check(CLI::IsMember({"edge"}));
  ref->callback([&run, role] {
    run = [role] {
      std::cout << edge::edge_schema().reference_markdown("Edge node configuration reference");
      return kExitOk;
    };
  });
}

}  // namespace ganglion::cli
