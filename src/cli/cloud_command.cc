// `ganglion cloud`: runs the cloud controller until SIGINT or SIGTERM.
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <CLI/CLI.hpp>

#include <iostream>

#include "base/clock.h"
#include "base/env.h"
#include "base/logging.h"
#include "cli/commands.h"
#include "cli/schema_flags.h"
#include "cloud/cloud_config.h"
#include "cloud/controller.h"
#include "net/io_pool.h"

namespace ganglion::cli {

void add_cloud_command(CLI::App& app, Runner& run) {
  auto* cmd = app.add_subcommand(
      "cloud", "Run the cloud controller (enrolment, fleet registry, ingestion, REST API)");
  auto config_path = std::make_shared<std::string>();
  cmd->add_option("-c,--config", *config_path,
                  "YAML config file (optional: defaults run a controller)");
  auto flags = std::make_shared<SchemaFlags>(*cmd, cloud::cloud_schema());

  cmd->callback([&run, config_path, flags] {
    run = [config_path, flags]() -> int {
      Config config(cloud::cloud_schema());
      if (!config_path->empty()) {
        if (Status s = config.load_yaml_file(Env::posix(), *config_path); !s.ok()) {
          std::cerr << "ganglion cloud: " << s.message() << "\n";
          return kExitUsage;
        }
      }
      if (Status s = flags->apply(config); !s.ok()) {
        std::cerr << "ganglion cloud: " << s.message() << "\n";
        return kExitUsage;
      }
      auto format = parse_log_format(config.str("log.format"));
      if (Status s = init_logging(*format, config.str("log.level")); !s.ok()) {
        std::cerr << "ganglion cloud: " << s.message() << "\n";
        return kExitUsage;
      }
      // Everything the controller writes (keys, the store) is for its own user only.
      ::umask(077);

      net::IoPool pool(static_cast<std::size_t>(config.integer("io.threads")));
      cloud::Controller controller(config, Env::posix(), SystemClock::instance(), pool);
      pool.on_shutdown_signal([&pool](int signo) {
        spdlog::info("signal {} received: shutting down", signo);
        pool.request_stop();
      });
      pool.start();
      if (Status s = controller.start(); !s.ok()) {
        spdlog::error("cloud controller failed to start: {}", s.to_string());
        controller.stop();
        pool.stop();
        controller.release();
        return s.code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
      }
      if (!controller.initial_admin_token().empty()) {
        // Shown once, on stdout only (never logged); only its hash is stored.
        std::cout << "admin API token (shown once, store it now): "
                  << controller.initial_admin_token() << std::endl;
      }
      pool.wait();
      controller.stop();
      pool.stop();
      controller.release();
      spdlog::info("cloud controller stopped");
      spdlog::default_logger()->flush();
      return kExitOk;
    };
  });
}

}  // namespace ganglion::cli
