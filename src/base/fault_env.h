// FaultEnv: wraps another Env and injects the faults a durable store must survive.
//
//  - fail_next_write() / fail_next_sync(): the next append or sync returns kIoError.
//  - set_no_space(true): every append returns kNoSpace (a full disk) until cleared.
//  - power_loss(): every file written through this Env loses the bytes appended after its
//    last successful sync, and files created since their directory was last synced vanish.
//    Files opened before the power loss belong to the dead process: writing or syncing them
//    afterwards fails, so destructors that flush cannot bring lost bytes back.
//
// Thread-safe; the wrapped Env must outlive it.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <set>

#include "base/forwarding_env.h"

namespace ganglion {

class FaultEnv final : public ForwardingEnv {
 public:
  explicit FaultEnv(Env& base) : ForwardingEnv(base) {}

  void fail_next_write() { fail_writes_ += 1; }
  void fail_next_sync() { fail_syncs_ += 1; }
  void set_no_space(bool on) { no_space_ = on; }
  // Drops unsynced data of every file written through this Env (see above).
  Status power_loss();
  // A crash in a test: power_loss(), and from now on every write, sync, open for writing,
  // rename or removal fails, so the dead process's destructors change nothing on disk.
  // restart() ends it; the test then opens its stores again as a new process would.
  Status crash();
  void restart() { halted_ = false; }

  Result<std::unique_ptr<WritableFile>> open_writable(const std::string& path,
                                                      OpenMode mode) override;
  Status remove_file(const std::string& path) override;
  Status rename(const std::string& from, const std::string& to) override;
  Status truncate(const std::string& path, std::uint64_t size) override;
  Status sync_dir(const std::string& dir) override;
  Result<std::uint64_t> free_space(const std::string& path) override;

 private:
  friend class FaultWritableFile;
  bool take_write_fault(Status& out);
  bool take_sync_fault(Status& out);
  void record_synced(const std::string& path, std::uint64_t size);
  void record_size(const std::string& path, std::uint64_t size);

  std::atomic<int> fail_writes_{0};
  std::atomic<int> fail_syncs_{0};
  std::atomic<bool> no_space_{false};
  std::atomic<std::uint64_t> generation_{0};  // bumped by power_loss()
  std::atomic<bool> halted_{false};
  std::mutex mu_;
  std::map<std::string, std::uint64_t> synced_size_;  // per file written through us
  std::set<std::string> unsynced_new_files_;          // created since dir sync
};

}  // namespace ganglion
