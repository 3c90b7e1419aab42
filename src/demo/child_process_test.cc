#include "demo/child_process.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace ganglion::demo {
namespace {

class ChildProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "child-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string log() const { return (dir_ / "child.log").string(); }
  std::string log_text() const {
    std::ifstream f(log());
    std::ostringstream s;
    s << f.rdbuf();
    return s.str();
  }
  std::filesystem::path dir_;
};

TEST_F(ChildProcessTest, CapturesOutputAndTheExitCode) {
  auto c = ChildProcess::spawn({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}, log());
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->wait(), 3);
  EXPECT_FALSE(c->running());
  EXPECT_EQ(log_text(), "out\nerr\n");
}

TEST_F(ChildProcessTest, RunsInItsOwnProcessGroup) {
  auto c = ChildProcess::spawn({"/bin/sh", "-c", "exec sleep 30"}, log());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(::getpgid(c->pid()), c->pid());  // a terminal's Ctrl-C does not reach it
  EXPECT_TRUE(c->running());
  EXPECT_EQ(c->stop(), 128 + SIGTERM);
  EXPECT_FALSE(c->running());
}

TEST_F(ChildProcessTest, KillsWhatIgnoresSigtermAfterTheGrace) {
  auto c = ChildProcess::spawn(
      {"/bin/sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done"}, log());
  ASSERT_TRUE(c.ok());
  while (log_text().empty()) {
    ASSERT_TRUE(c->running());  // until the trap is in place, SIGTERM would end it normally
  }
  EXPECT_EQ(c->stop(std::chrono::milliseconds(100)), 128 + SIGKILL);
}

TEST_F(ChildProcessTest, AMissingProgramExitsWith127) {
  auto c = ChildProcess::spawn({"/nonexistent/program"}, log());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->wait(), 127);
  EXPECT_NE(log_text().find("exec failed"), std::string::npos);
}

TEST_F(ChildProcessTest, RefusesNothingToRunAndAnUnwritableLog) {
  EXPECT_EQ(ChildProcess::spawn({}, log()).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ChildProcess::spawn({"/bin/true"}, "/nonexistent/dir/log").status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(ChildProcessTest, DestroyingTheHandleStopsTheChild) {
  pid_t pid = -1;
  {
    auto c = ChildProcess::spawn({"/bin/sh", "-c", "exec sleep 30"}, log());
    ASSERT_TRUE(c.ok());
    pid = c->pid();
  }
  EXPECT_NE(::kill(pid, 0), 0);  // gone and reaped
}

}  // namespace
}  // namespace ganglion::demo
