#include "base/fault_env.h"

namespace ganglion {

class FaultWritableFile final : public WritableFile {
 public:
  FaultWritableFile(FaultEnv& env, std::string path, std::unique_ptr<WritableFile> base)
      : env_(env), path_(std::move(path)), base_(std::move(base)), generation_(env.generation_) {}

  Status append(std::span<const std::byte> data) override {
    if (generation_ != env_.generation_) return IoError("file handle from before a power loss");
    Status fault;
    if (env_.take_write_fault(fault)) return fault;
    Status s = base_->append(data);
    env_.record_size(path_, base_->size());
    return s;
  }
  Status sync() override {
    if (generation_ != env_.generation_) return IoError("file handle from before a power loss");
    Status fault;
    if (env_.take_sync_fault(fault)) return fault;
    GANGLION_RETURN_IF_ERROR(base_->sync());
    env_.record_synced(path_, base_->size());
    return Status::Ok();
  }
  Status close() override { return base_->close(); }
  std::uint64_t size() const override { return base_->size(); }

 private:
  FaultEnv& env_;
  std::string path_;
  std::unique_ptr<WritableFile> base_;
  std::uint64_t generation_;
};

bool FaultEnv::take_write_fault(Status& out) {
  if (halted_) {
    out = IoError("injected: the process has crashed");
    return true;
  }
  if (no_space_) {
    out = NoSpace("injected: no space left on device");
    return true;
  }
  int n = fail_writes_.load();
  while (n > 0) {
    if (fail_writes_.compare_exchange_weak(n, n - 1)) {
      out = IoError("injected write failure");
      return true;
    }
  }
  return false;
}

bool FaultEnv::take_sync_fault(Status& out) {
  if (halted_) {
    out = IoError("injected: the process has crashed");
    return true;
  }
  int n = fail_syncs_.load();
  while (n > 0) {
    if (fail_syncs_.compare_exchange_weak(n, n - 1)) {
      out = IoError("injected fsync failure");
      return true;
    }
  }
  return false;
}

void FaultEnv::record_synced(const std::string& path, std::uint64_t size) {
  std::lock_guard lock(mu_);
  synced_size_[path] = size;
}

void FaultEnv::record_size(const std::string& path, std::uint64_t) {
  std::lock_guard lock(mu_);
  synced_size_.try_emplace(path, 0);
}

Status FaultEnv::crash() {
  halted_ = true;
  return power_loss();
}

Result<std::unique_ptr<WritableFile>> FaultEnv::open_writable(const std::string& path,
                                                              OpenMode mode) {
  if (halted_) return IoError("injected: the process has crashed");
  const bool existed = base_.exists(path);
  GANGLION_ASSIGN_OR_RETURN(auto file, base_.open_writable(path, mode));
  {
    std::lock_guard lock(mu_);
    if (!existed) unsynced_new_files_.insert(path);
    auto it = synced_size_.find(path);
    if (mode == OpenMode::kTruncate) {
      synced_size_[path] = 0;
    } else if (it == synced_size_.end()) {
      // A file that existed before we wrapped it: its content counts as durable.
      synced_size_[path] = file->size();
    }
  }
  return std::unique_ptr<WritableFile>(new FaultWritableFile(*this, path, std::move(file)));
}

Status FaultEnv::remove_file(const std::string& path) {
  if (halted_) return IoError("injected: the process has crashed");
  GANGLION_RETURN_IF_ERROR(base_.remove_file(path));
  std::lock_guard lock(mu_);
  synced_size_.erase(path);
  unsynced_new_files_.erase(path);
  return Status::Ok();
}

Status FaultEnv::rename(const std::string& from, const std::string& to) {
  if (halted_) return IoError("injected: the process has crashed");
  GANGLION_RETURN_IF_ERROR(base_.rename(from, to));
  std::lock_guard lock(mu_);
  auto node = synced_size_.extract(from);
  if (!node.empty()) {
    node.key() = to;
    synced_size_.insert_or_assign(to, node.mapped());
  }
  // A rename is durable only after the directory is synced; we treat the new name as
  // not-yet-durable only if the source itself was.
  if (unsynced_new_files_.erase(from) > 0) unsynced_new_files_.insert(to);
  return Status::Ok();
}

Status FaultEnv::truncate(const std::string& path, std::uint64_t size) {
  if (halted_) return IoError("injected: the process has crashed");
  GANGLION_RETURN_IF_ERROR(base_.truncate(path, size));
  std::lock_guard lock(mu_);
  auto it = synced_size_.find(path);
  if (it != synced_size_.end() && it->second > size) it->second = size;
  return Status::Ok();
}

Status FaultEnv::sync_dir(const std::string& dir) {
  if (halted_) return IoError("injected: the process has crashed");
  GANGLION_RETURN_IF_ERROR(base_.sync_dir(dir));
  std::lock_guard lock(mu_);
  for (auto it = unsynced_new_files_.begin(); it != unsynced_new_files_.end();) {
    if (dir_of(*it) == dir) {
      it = unsynced_new_files_.erase(it);
    } else {
      ++it;
    }
  }
  return Status::Ok();
}

Result<std::uint64_t> FaultEnv::free_space(const std::string& path) {
  if (no_space_) return static_cast<std::uint64_t>(0);
  return base_.free_space(path);
}

Status FaultEnv::power_loss() {
  std::lock_guard lock(mu_);
  ++generation_;
  for (const auto& path : unsynced_new_files_) {
    if (base_.exists(path)) GANGLION_RETURN_IF_ERROR(base_.remove_file(path));
    synced_size_.erase(path);
  }
  unsynced_new_files_.clear();
  for (const auto& [path, synced] : synced_size_) {
    if (!base_.exists(path)) continue;
    GANGLION_ASSIGN_OR_RETURN(auto size, base_.file_size(path));
    if (size > synced) GANGLION_RETURN_IF_ERROR(base_.truncate(path, synced));
  }
  return Status::Ok();
}

}  // namespace ganglion
