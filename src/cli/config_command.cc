// `ganglion config reference <role>`: prints the generated option reference (Markdown).
#include <CLI/CLI.hpp>

#include <iostream>

#include "base/env.h"

#include "cli/commands.h"
#include "cloud/cloud_config.h"
#include "edge/edge_config.h"

namespace ganglion::cli {

void add_config_command(CLI::App& app, Runner& run) {
  auto* cmd = app.add_subcommand("config", "Configuration tools");
  cmd->require_subcommand(1);
  auto* ref = cmd->add_subcommand("reference", "Print the reference of every option (Markdown)");
  auto role = std::make_shared<std::string>("edge");
  ref->add_option("role", *role, "Which role's options")->check(CLI::IsMember({"edge", "cloud"}));
  ref->callback([&run, role] {
    run = [role] {
      if (*role == "cloud") {
        std::cout << cloud::cloud_schema().reference_markdown(
            "Cloud controller configuration reference");
      } else {
        std::cout << edge::edge_schema().reference_markdown("Edge node configuration reference");
      }
      return kExitOk;
    };
  });

  auto* check = cmd->add_subcommand("check", "Check a YAML config file against a role's schema");
  auto check_role = std::make_shared<std::string>("edge");
  auto path = std::make_shared<std::string>();
  check->add_option("role", *check_role, "edge or cloud")
      ->required()
      ->check(CLI::IsMember({"edge", "cloud"}));
  check->add_option("file", *path, "The YAML file")->required();
  check->callback([&run, check_role, path] {
    run = [check_role, path] {
      const ConfigSchema& schema =
          *check_role == "cloud" ? cloud::cloud_schema() : edge::edge_schema();
      Config config(schema);
      if (Status s = config.load_yaml_file(Env::posix(), *path); !s.ok()) {
        std::cerr << s.message() << "\n";
        return kExitUsage;
      }
      std::cout << *path << ": ok\n";
      return kExitOk;
    };
  });
}

}  // namespace ganglion::cli
