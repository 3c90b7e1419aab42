// ForwardingEnv: an Env that passes every call to another Env. A wrapper that changes a few
// operations (FaultEnv injects faults, the fleet simulator skips fsync) derives from it and
// overrides only those. The wrapped Env must outlive it.
#pragma once

#include "base/env.h"

namespace ganglion {

class ForwardingEnv : public Env {
 public:
  explicit ForwardingEnv(Env& base) : base_(base) {}

  Result<std::unique_ptr<WritableFile>> open_writable(const std::string& path,
                                                      OpenMode mode) override {
    return base_.open_writable(path, mode);
  }
  Result<std::unique_ptr<ReadableFile>> open_readable(const std::string& path) override {
    return base_.open_readable(path);
  }
  bool exists(const std::string& path) override { return base_.exists(path); }
  Result<std::vector<std::string>> list_dir(const std::string& dir) override {
    return base_.list_dir(dir);
  }
  Status create_dirs(const std::string& dir) override { return base_.create_dirs(dir); }
  Status remove_file(const std::string& path) override { return base_.remove_file(path); }
  Status rename(const std::string& from, const std::string& to) override {
    return base_.rename(from, to);
  }
  Status truncate(const std::string& path, std::uint64_t size) override {
    return base_.truncate(path, size);
  }
  Result<std::uint64_t> file_size(const std::string& path) override {
    return base_.file_size(path);
  }
  Status sync_dir(const std::string& dir) override { return base_.sync_dir(dir); }
  Result<std::uint64_t> free_space(const std::string& path) override {
    return base_.free_space(path);
  }

 protected:
  Env& base_;
};

}  // namespace ganglion
