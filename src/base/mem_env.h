// MemEnv: an Env held entirely in memory, for unit tests. It tracks which bytes of each file
// were synced, so FaultEnv-style power loss can be simulated on it too (drop_unsynced()).
#pragma once

#include <map>
#include <mutex>

#include "base/env.h"

namespace ganglion {

class MemEnv final : public Env {
 public:
  // `capacity` bounds the total bytes of all files; beyond it writes fail with kNoSpace.
  explicit MemEnv(std::uint64_t capacity = UINT64_MAX) : capacity_(capacity) {}

  Result<std::unique_ptr<WritableFile>> open_writable(const std::string& path,
                                                      OpenMode mode) override;
  Result<std::unique_ptr<ReadableFile>> open_readable(const std::string& path) override;
  bool exists(const std::string& path) override;
  Result<std::vector<std::string>> list_dir(const std::string& dir) override;
  Status create_dirs(const std::string& dir) override;
  Status remove_file(const std::string& path) override;
  Status rename(const std::string& from, const std::string& to) override;
  Status truncate(const std::string& path, std::uint64_t size) override;
  Result<std::uint64_t> file_size(const std::string& path) override;
  Status sync_dir(const std::string& dir) override;
  Result<std::uint64_t> free_space(const std::string& path) override;

  // Simulates a power loss: every file keeps only its synced prefix.
  void drop_unsynced();
  std::uint64_t used_bytes() const;

  struct FileState {
    std::string data;
    std::uint64_t synced = 0;
  };

 private:
  friend class MemWritableFile;
  mutable std::mutex mu_;
  std::uint64_t capacity_;
  std::map<std::string, std::shared_ptr<FileState>> files_;
  std::map<std::string, bool> dirs_;
};

}  // namespace ganglion
