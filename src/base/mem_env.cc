#include "base/mem_env.h"

#include <algorithm>

namespace ganglion {
namespace {

// Parent directories of a path, for implicit directory existence.
bool has_prefix_dir(const std::string& path, const std::string& dir) {
  std::string d = dir;
  if (d.empty() || d.back() != '/') d += '/';
  return path.size() > d.size() && path.compare(0, d.size(), d) == 0;
}

}  // namespace

class MemWritableFile final : public WritableFile {
 public:
  MemWritableFile(MemEnv& env, std::shared_ptr<MemEnv::FileState> state)
      : env_(env), state_(std::move(state)) {}

  Status append(std::span<const std::byte> data) override {
    std::lock_guard lock(env_.mu_);
    std::uint64_t used = 0;
    for (const auto& [_, f] : env_.files_) used += f->data.size();
    if (used + data.size() > env_.capacity_) return NoSpace("in-memory env is full");
    state_->data.append(reinterpret_cast<const char*>(data.data()), data.size());
    return Status::Ok();
  }
  Status sync() override {
    std::lock_guard lock(env_.mu_);
    state_->synced = state_->data.size();
    return Status::Ok();
  }
  Status close() override { return Status::Ok(); }
  std::uint64_t size() const override {
    std::lock_guard lock(env_.mu_);
    return state_->data.size();
  }

 private:
  MemEnv& env_;
  std::shared_ptr<MemEnv::FileState> state_;
};

namespace {

class MemReadableFile final : public ReadableFile {
 public:
  MemReadableFile(std::mutex& mu, std::shared_ptr<MemEnv::FileState> state)
      : mu_(mu), state_(std::move(state)) {}

  Status read_at(std::uint64_t offset, std::size_t n, std::string& out) const override {
    std::lock_guard lock(mu_);
    if (offset >= state_->data.size()) {
      out.clear();
      return Status::Ok();
    }
    out.assign(state_->data, offset, n);
    return Status::Ok();
  }
  Result<std::uint64_t> size() const override {
    std::lock_guard lock(mu_);
    return static_cast<std::uint64_t>(state_->data.size());
  }

 private:
  std::mutex& mu_;
  std::shared_ptr<MemEnv::FileState> state_;
};

}  // namespace

Result<std::unique_ptr<WritableFile>> MemEnv::open_writable(const std::string& path,
                                                            OpenMode mode) {
  std::lock_guard lock(mu_);
  auto& state = files_[path];
  if (!state) state = std::make_shared<FileState>();
  if (mode == OpenMode::kTruncate) {
    state->data.clear();
    state->synced = 0;
  }
  return std::unique_ptr<WritableFile>(new MemWritableFile(*this, state));
}

Result<std::unique_ptr<ReadableFile>> MemEnv::open_readable(const std::string& path) {
  std::lock_guard lock(mu_);
  auto it = files_.find(path);
  if (it == files_.end()) return NotFound("open " + path + ": no such file");
  return std::unique_ptr<ReadableFile>(new MemReadableFile(mu_, it->second));
}

bool MemEnv::exists(const std::string& path) {
  std::lock_guard lock(mu_);
  if (files_.count(path) || dirs_.count(path)) return true;
  return std::any_of(files_.begin(), files_.end(),
                     [&](const auto& f) { return has_prefix_dir(f.first, path); });
}

Result<std::vector<std::string>> MemEnv::list_dir(const std::string& dir) {
  std::lock_guard lock(mu_);
  std::vector<std::string> names;
  auto add_child = [&](const std::string& path) {
    if (!has_prefix_dir(path, dir)) return;
    std::string rest = path.substr(dir.size() + (dir.back() == '/' ? 0 : 1));
    auto slash = rest.find('/');
    names.push_back(slash == std::string::npos ? rest : rest.substr(0, slash));
  };
  for (const auto& [path, _] : files_) add_child(path);
  for (const auto& [path, _] : dirs_) add_child(path);
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  if (names.empty() && !dirs_.count(dir)) return NotFound("list " + dir + ": no such directory");
  return names;
}

Status MemEnv::create_dirs(const std::string& dir) {
  std::lock_guard lock(mu_);
  dirs_[dir] = true;
  return Status::Ok();
}

Status MemEnv::remove_file(const std::string& path) {
  std::lock_guard lock(mu_);
  if (files_.erase(path) == 0) return NotFound("unlink " + path + ": no such file");
  return Status::Ok();
}

Status MemEnv::rename(const std::string& from, const std::string& to) {
  std::lock_guard lock(mu_);
  auto it = files_.find(from);
  if (it == files_.end()) return NotFound("rename " + from + ": no such file");
  auto state = it->second;
  files_.erase(it);
  files_[to] = std::move(state);
  return Status::Ok();
}

Status MemEnv::truncate(const std::string& path, std::uint64_t size) {
  std::lock_guard lock(mu_);
  auto it = files_.find(path);
  if (it == files_.end()) return NotFound("truncate " + path + ": no such file");
  it->second->data.resize(size);
  it->second->synced = std::min<std::uint64_t>(it->second->synced, size);
  return Status::Ok();
}

Result<std::uint64_t> MemEnv::file_size(const std::string& path) {
  std::lock_guard lock(mu_);
  auto it = files_.find(path);
  if (it == files_.end()) return NotFound("stat " + path + ": no such file");
  return static_cast<std::uint64_t>(it->second->data.size());
}

Status MemEnv::sync_dir(const std::string&) { return Status::Ok(); }

Result<std::uint64_t> MemEnv::free_space(const std::string&) {
  std::lock_guard lock(mu_);
  std::uint64_t used = 0;
  for (const auto& [_, f] : files_) used += f->data.size();
  return capacity_ > used ? capacity_ - used : 0;
}

void MemEnv::drop_unsynced() {
  std::lock_guard lock(mu_);
  for (auto& [_, f] : files_) f->data.resize(f->synced);
}

std::uint64_t MemEnv::used_bytes() const {
  std::lock_guard lock(mu_);
  std::uint64_t used = 0;
  for (const auto& [_, f] : files_) used += f->data.size();
  return used;
}

}  // namespace ganglion
