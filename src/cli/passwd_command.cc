// `ganglion passwd`: manages the broker's password file (mqtt.password_file).
//
//   ganglion passwd FILE USER                  add USER or change their password (read from
//                                              stdin: prompted twice on a terminal, else the
//                                              first line)
//   ganglion passwd FILE USER --password P     the same, for scripts
//   ganglion passwd --create FILE USER         start a new file (replaces an existing one)
//   ganglion passwd FILE --delete USER         remove USER
//
// The file is written atomically (old or new content survives a crash); hashes are
// PBKDF2-HMAC-SHA512 with --iterations rounds (default 210000).
#include <termios.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <iostream>
#include <string>

#include "base/env.h"
#include "broker/password_file.h"
#include "cli/commands.h"

namespace ganglion::cli {
namespace {

struct PasswdArgs {
  std::string file;
  std::string user;
  std::string password;
  std::string delete_user;
  std::uint32_t iterations = broker::kDefaultPbkdf2Iterations;
  bool create = false;
};

// Reads one line from stdin; on a terminal without echo.
bool read_secret(const char* prompt, std::string& out) {
  const bool tty = ::isatty(STDIN_FILENO) != 0;
  termios old{};
  if (tty) {
    std::cerr << prompt << std::flush;
    ::tcgetattr(STDIN_FILENO, &old);
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  const bool ok = static_cast<bool>(std::getline(std::cin, out));
  if (tty) {
    ::tcsetattr(STDIN_FILENO, TCSANOW, &old);
    std::cerr << "\n";
  }
  if (!out.empty() && out.back() == '\r') out.pop_back();
  return ok;
}

int run_passwd(const PasswdArgs& a) {
  Env& env = Env::posix();
  const bool deleting = !a.delete_user.empty();
  if (deleting && !a.user.empty()) {
    std::cerr << "ganglion passwd: give either USER or --delete USER, not both\n";
    return kExitUsage;
  }
  if (!deleting && a.user.empty()) {
    std::cerr << "ganglion passwd: missing USER (ganglion passwd FILE USER)\n";
    return kExitUsage;
  }
  if (deleting && a.create) {
    std::cerr << "ganglion passwd: --create and --delete do not go together\n";
    return kExitUsage;
  }

  broker::PasswordFile file;
  if (!a.create) {
    if (!env.exists(a.file)) {
      std::cerr << "ganglion passwd: " << a.file << " does not exist (use --create to start one)\n";
      return kExitFailure;
    }
    auto loaded = broker::PasswordFile::load(env, a.file);
    if (!loaded.ok()) {
      std::cerr << "ganglion passwd: " << loaded.status().message() << "\n";
      return kExitFailure;
    }
    file = std::move(*loaded);
  }

  if (deleting) {
    if (Status s = file.remove_user(a.delete_user); !s.ok()) {
      std::cerr << "ganglion passwd: " << s.message() << "\n";
      return kExitFailure;
    }
  } else {
    std::string password = a.password;
    if (password.empty()) {
      if (!read_secret("Password: ", password)) {
        std::cerr << "ganglion passwd: no password on stdin\n";
        return kExitUsage;
      }
      if (::isatty(STDIN_FILENO)) {
        std::string again;
        if (!read_secret("Password again: ", again) || again != password) {
          std::cerr << "ganglion passwd: the passwords do not match\n";
          return kExitUsage;
        }
      }
    }
    if (password.empty()) {
      std::cerr << "ganglion passwd: the password is empty\n";
      return kExitUsage;
    }
    Status s = file.contains(a.user) ? file.update_password(a.user, password, a.iterations)
                                     : file.add_user(a.user, password, a.iterations);
    if (!s.ok()) {
      std::cerr << "ganglion passwd: " << s.message() << "\n";
      return s.code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
    }
  }
  if (Status s = file.save(env, a.file); !s.ok()) {
    std::cerr << "ganglion passwd: cannot write " << a.file << ": " << s.message() << "\n";
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace

void add_passwd_command(CLI::App& app, Runner& run) {
  auto* cmd =
      app.add_subcommand("passwd", "Add, change or delete a user in the broker's password file");
  auto args = std::make_shared<PasswdArgs>();
  cmd->add_option("file", args->file, "Password file (mqtt.password_file)")->required();
  cmd->add_option("user", args->user, "User to add or whose password to change");
  cmd->add_option("-D,--delete", args->delete_user, "Delete this user");
  cmd->add_option("--password", args->password,
                  "The password (for scripts; otherwise read from stdin)");
  cmd->add_option("--iterations", args->iterations, "PBKDF2 rounds")
      ->check(CLI::Range(1u, broker::kMaxPbkdf2Iterations));
  cmd->add_flag("-c,--create", args->create, "Start a new file, replacing an existing one");
  cmd->callback([&run, args] { run = [args] { return run_passwd(*args); }; });
}

}  // namespace ganglion::cli
