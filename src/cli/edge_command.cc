// `ganglion edge`: runs an edge node until SIGINT or SIGTERM.
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <iostream>

#include "base/clock.h"
#include "base/env.h"
#include "base/logging.h"
#include "cli/commands.h"
#include "cli/schema_flags.h"
#include "edge/edge_config.h"
#include "edge/edge_node.h"
#include "net/io_pool.h"

namespace ganglion::cli {

void add_edge_command(CLI::App& app, Runner& run) {
  auto* cmd = app.add_subcommand("edge", "Run an edge node (broker, rules, uplink, HTTP endpoint)");
  auto config_path = std::make_shared<std::string>();
  cmd->add_option("-c,--config", *config_path, "YAML config file (optional: defaults run a node)");
  auto flags = std::make_shared<SchemaFlags>(*cmd, edge::edge_schema());

  cmd->callback([&run, config_path, flags] {
    run = [config_path, flags]() -> int {
      Config config(edge::edge_schema());
      if (!config_path->empty()) {
        if (Status s = config.load_yaml_file(Env::posix(), *config_path); !s.ok()) {
          std::cerr << "ganglion edge: " << s.message() << "\n";
          return kExitUsage;
        }
      }
      if (Status s = flags->apply(config); !s.ok()) {
        std::cerr << "ganglion edge: " << s.message() << "\n";
        return kExitUsage;
      }
      auto format = parse_log_format(config.str("log.format"));
      if (Status s = init_logging(*format, config.str("log.level")); !s.ok()) {
        std::cerr << "ganglion edge: " << s.message() << "\n";
        return kExitUsage;
      }

      net::IoPool pool(static_cast<std::size_t>(config.integer("io.threads")));
      edge::EdgeNode node(config, Env::posix(), SystemClock::instance(), pool);
      pool.on_shutdown_signal([&pool](int signo) {
        spdlog::info("signal {} received: shutting down", signo);
        pool.request_stop();
      });
      pool.start();
      if (Status s = node.start(); !s.ok()) {
        spdlog::error("edge node failed to start: {}", s.to_string());
        node.stop();
        pool.stop();
        node.release();
        return s.code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
      }
      pool.wait();
      node.stop();
      pool.stop();
      node.release();
      spdlog::info("edge node stopped");
      spdlog::default_logger()->flush();
      return kExitOk;
    };
  });
}

}  // namespace ganglion::cli
