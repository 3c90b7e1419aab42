#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "base/env.h"
#include "base/fault_env.h"
#include "base/mem_env.h"

namespace ganglion {
namespace {

std::string read_all(Env& env, const std::string& path) {
  auto r = env.read_file(path);
  return r.ok() ? *r : "<" + r.status().to_string() + ">";
}

void write(Env& env, const std::string& path, std::string_view data, bool sync) {
  auto f = env.open_writable(path, OpenMode::kAppend);
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  ASSERT_TRUE((*f)->append(data).ok());
  if (sync) {
    ASSERT_TRUE((*f)->sync().ok());
  }
}

TEST(MemEnv, AppendsAndReadsBack) {
  MemEnv env;
  write(env, "/d/a", "hello ", false);
  write(env, "/d/a", "world", false);
  EXPECT_EQ(read_all(env, "/d/a"), "hello world");
  auto children = env.list_dir("/d");
  ASSERT_TRUE(children.ok());
  EXPECT_EQ(*children, (std::vector<std::string>{"a"}));
}

TEST(MemEnv, ReportsNoSpaceBeyondCapacity) {
  MemEnv env(10);
  auto f = env.open_writable("/x", OpenMode::kTruncate);
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE((*f)->append(std::string_view("0123456789")).ok());
  EXPECT_EQ((*f)->append(std::string_view("!")).code(), StatusCode::kNoSpace);
  EXPECT_EQ(read_all(env, "/x"), "0123456789");
}

TEST(MemEnv, MissingFileIsNotFound) {
  MemEnv env;
  EXPECT_EQ(env.read_file("/nope").status().code(), StatusCode::kNotFound);
}

TEST(MemEnv, WriteFileAtomicReplacesContent) {
  MemEnv env;
  ASSERT_TRUE(env.write_file_atomic("/s/state", "v1").ok());
  ASSERT_TRUE(env.write_file_atomic("/s/state", "v2").ok());
  EXPECT_EQ(read_all(env, "/s/state"), "v2");
  EXPECT_FALSE(env.exists("/s/state.tmp"));
}

TEST(FaultEnv, PowerLossDropsUnsyncedBytesAndKeepsSyncedOnes) {
  MemEnv mem;
  FaultEnv env(mem);
  ASSERT_TRUE(env.create_dirs("/log").ok());
  ASSERT_TRUE(env.sync_dir("/").ok());
  auto f = env.open_writable("/log/seg", OpenMode::kTruncate);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(env.sync_dir("/log").ok());
  ASSERT_TRUE((*f)->append(std::string_view("durable|")).ok());
  ASSERT_TRUE((*f)->sync().ok());
  ASSERT_TRUE((*f)->append(std::string_view("volatile")).ok());
  EXPECT_EQ(read_all(env, "/log/seg"), "durable|volatile");

  ASSERT_TRUE(env.power_loss().ok());
  EXPECT_EQ(read_all(env, "/log/seg"), "durable|");
}

TEST(FaultEnv, PowerLossRemovesFilesCreatedSinceLastDirectorySync) {
  MemEnv mem;
  FaultEnv env(mem);
  auto f = env.open_writable("/d/new", OpenMode::kTruncate);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->append(std::string_view("data")).ok());
  ASSERT_TRUE((*f)->sync().ok());  // data synced, but the directory entry is not
  ASSERT_TRUE(env.power_loss().ok());
  EXPECT_FALSE(env.exists("/d/new"));
}

TEST(FaultEnv, AtomicWriteSurvivesPowerLoss) {
  MemEnv mem;
  FaultEnv env(mem);
  ASSERT_TRUE(env.write_file_atomic("/d/offset", "42").ok());
  ASSERT_TRUE(env.power_loss().ok());
  EXPECT_EQ(read_all(env, "/d/offset"), "42");
}

TEST(FaultEnv, FailsTheNextWriteOnce) {
  MemEnv mem;
  FaultEnv env(mem);
  auto f = env.open_writable("/a", OpenMode::kTruncate);
  ASSERT_TRUE(f.ok());
  env.fail_next_write();
  EXPECT_EQ((*f)->append(std::string_view("x")).code(), StatusCode::kIoError);
  EXPECT_TRUE((*f)->append(std::string_view("y")).ok());
  EXPECT_EQ(read_all(env, "/a"), "y");
}

TEST(FaultEnv, FailedSyncDoesNotMakeDataDurable) {
  MemEnv mem;
  FaultEnv env(mem);
  auto f = env.open_writable("/a", OpenMode::kTruncate);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(env.sync_dir("/").ok());
  ASSERT_TRUE((*f)->append(std::string_view("abc")).ok());
  env.fail_next_sync();
  EXPECT_EQ((*f)->sync().code(), StatusCode::kIoError);
  ASSERT_TRUE(env.power_loss().ok());
  EXPECT_EQ(read_all(env, "/a"), "");
}

TEST(FaultEnv, NoSpaceRefusesWritesUntilCleared) {
  MemEnv mem;
  FaultEnv env(mem);
  auto f = env.open_writable("/a", OpenMode::kTruncate);
  ASSERT_TRUE(f.ok());
  env.set_no_space(true);
  EXPECT_EQ((*f)->append(std::string_view("x")).code(), StatusCode::kNoSpace);
  EXPECT_EQ(*env.free_space("/"), 0u);
  env.set_no_space(false);
  EXPECT_TRUE((*f)->append(std::string_view("x")).ok());
}

class PosixEnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ganglion-env-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(PosixEnvTest, WritesSyncsListsAndRenames) {
  Env& env = Env::posix();
  const std::string a = join_path(dir_, "a");
  write(env, a, "one", true);
  EXPECT_EQ(*env.file_size(a), 3u);
  ASSERT_TRUE(env.rename(a, join_path(dir_, "b")).ok());
  EXPECT_EQ(*env.list_dir(dir_), (std::vector<std::string>{"b"}));
  EXPECT_EQ(read_all(env, join_path(dir_, "b")), "one");
  ASSERT_TRUE(env.truncate(join_path(dir_, "b"), 1).ok());
  EXPECT_EQ(read_all(env, join_path(dir_, "b")), "o");
  EXPECT_TRUE(env.sync_dir(dir_).ok());
  EXPECT_GT(*env.free_space(dir_), 0u);
}

TEST_F(PosixEnvTest, MissingFileIsNotFound) {
  EXPECT_EQ(Env::posix().read_file(join_path(dir_, "missing")).status().code(),
            StatusCode::kNotFound);
}

}  // namespace
}  // namespace ganglion

namespace ganglion {
namespace {

TEST(FaultEnv, HandlesOpenedBeforePowerLossCannotWriteAfterIt) {
  MemEnv mem;
  FaultEnv env(mem);
  auto f = env.open_writable("/a", OpenMode::kTruncate);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(env.sync_dir("/").ok());
  ASSERT_TRUE(env.power_loss().ok());
  EXPECT_EQ((*f)->append(std::string_view("late")).code(), StatusCode::kIoError);
  EXPECT_EQ((*f)->sync().code(), StatusCode::kIoError);
  auto g = env.open_writable("/a", OpenMode::kAppend);
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE((*g)->append(std::string_view("new life")).ok());
}

}  // namespace
}  // namespace ganglion

namespace ganglion {
namespace {

TEST(FaultEnv, CrashedProcessCannotWriteUntilRestart) {
  MemEnv mem;
  FaultEnv env(mem);
  ASSERT_TRUE(env.write_file_atomic("/d/x", "kept").ok());
  ASSERT_TRUE(env.crash().ok());
  EXPECT_FALSE(env.open_writable("/d/y", OpenMode::kTruncate).ok());
  EXPECT_FALSE(env.write_file_atomic("/d/x", "changed by a dead process").ok());
  env.restart();
  EXPECT_EQ(*env.read_file("/d/x"), "kept");
  EXPECT_TRUE(env.write_file_atomic("/d/x", "new").ok());
}

}  // namespace
}  // namespace ganglion
