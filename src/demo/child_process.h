// ChildProcess: a program the demo runs beside itself (the controller, the edge nodes).
//
// The child gets its own process group (a Ctrl-C at the terminal reaches only the demo,
// which then stops its children in order) and is sent SIGTERM by the kernel if the demo
// dies without cleaning up (PR_SET_PDEATHSIG), so no process is left behind even after a
// kill -9 of the demo. Its stdout and stderr are appended to a log file.
//
// Thread: spawn() from the thread that lives as long as the children (the main thread):
// the death signal follows the thread that forked. Other methods from any one thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "base/status.h"

namespace ganglion::demo {

class ChildProcess {
 public:
  ChildProcess() = default;
  // Starts argv[0] (a path) with argv. Errors: kInvalidArgument (empty argv, log file),
  // kInternal (fork failed). A failed exec shows as exit code 127 and a line in the log.
  static Result<ChildProcess> spawn(const std::vector<std::string>& argv,
                                    const std::string& log_path);
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  // Stops the child (as stop()) when it still runs.
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  // False once the child has exited (reaped here; exit_code() then tells how).
  bool running();
  // The exit status (128 + signal when killed); -1 while running or never started.
  int exit_code() const { return exit_code_; }
  // Blocks until the child exits by itself. Returns the exit code.
  int wait();
  // SIGTERM, up to `grace` for it to exit, then SIGKILL. Returns the exit code.
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(10));

 private:
  void reap(int status);
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

}  // namespace ganglion::demo
