// The `ganglion` multi-call binary's roles. Each registers a CLI11 subcommand and returns the
// process exit code: 0 success, 1 runtime failure, 2 usage or configuration error.
#pragma once

#include <functional>

namespace CLI {
class App;
}

namespace ganglion::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// Adds the subcommand to `app`; `run` is set to the code to execute when it is chosen.
using Runner = std::function<int()>;
void add_edge_command(CLI::App& app, Runner& run);
void add_config_command(CLI::App& app, Runner& run);
void add_passwd_command(CLI::App& app, Runner& run);
void add_cloud_command(CLI::App& app, Runner& run);
void add_ctl_command(CLI::App& app, Runner& run);
void add_sim_command(CLI::App& app, Runner& run);
// `ganglion sim devices` (sim_devices_command.cc), added to the `sim` subcommand.
void add_sim_devices_command(CLI::App& sim, Runner& run);
void add_rule_commands(CLI::App& app, Runner& run);  // stream, table, rule, function
void add_demo_command(CLI::App& app, Runner& run);

}  // namespace ganglion::cli
