// PosixEnv: the real file system. Errors carry the path and strerror.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "base/env.h"

namespace ganglion {
namespace {

Status errno_status(const std::string& what, const std::string& path, int err) {
  std::string m = what + " " + path + ": " + std::strerror(err);
  if (err == ENOSPC || err == EDQUOT) return NoSpace(std::move(m));
  if (err == ENOENT) return NotFound(std::move(m));
  if (err == EACCES || err == EPERM) return PermissionDenied(std::move(m));
  return IoError(std::move(m));
}

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd, std::uint64_t size)
      : path_(std::move(path)), fd_(fd), size_(size) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  Status append(std::span<const std::byte> data) override {
    const auto* p = reinterpret_cast<const char*>(data.data());
    std::size_t left = data.size();
    while (left > 0) {
      ssize_t n = ::write(fd_, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        const int err = errno;
        // Keep the file's end where our accounting says it is: a partial write at a full
        // disk must not leave half a record that a later append would follow.
        (void)::ftruncate(fd_, static_cast<off_t>(size_));
        (void)::lseek(fd_, 0, SEEK_END);
        return errno_status("write", path_, err);
      }
      p += n;
      left -= static_cast<std::size_t>(n);
      size_ += static_cast<std::uint64_t>(n);
    }
    return Status::Ok();
  }

  Status sync() override {
    if (::fdatasync(fd_) != 0) return errno_status("fdatasync", path_, errno);
    return Status::Ok();
  }

  Status close() override {
    if (fd_ < 0) return Status::Ok();
    int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) return errno_status("close", path_, errno);
    return Status::Ok();
  }

  std::uint64_t size() const override { return size_; }

 private:
  std::string path_;
  int fd_;
  std::uint64_t size_;
};

class PosixReadableFile final : public ReadableFile {
 public:
  PosixReadableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixReadableFile() override { ::close(fd_); }

  Status read_at(std::uint64_t offset, std::size_t n, std::string& out) const override {
    out.resize(n);
    std::size_t got = 0;
    while (got < n) {
      ssize_t r = ::pread(fd_, out.data() + got, n - got, static_cast<off_t>(offset + got));
      if (r < 0) {
        if (errno == EINTR) continue;
        out.clear();
        return errno_status("read", path_, errno);
      }
      if (r == 0) break;
      got += static_cast<std::size_t>(r);
    }
    out.resize(got);
    return Status::Ok();
  }

  Result<std::uint64_t> size() const override {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return errno_status("stat", path_, errno);
    return static_cast<std::uint64_t>(st.st_size);
  }

 private:
  std::string path_;
  int fd_;
};

class PosixEnv final : public Env {
 public:
  Result<std::unique_ptr<WritableFile>> open_writable(const std::string& path,
                                                      OpenMode mode) override {
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC;
    flags |= mode == OpenMode::kTruncate ? O_TRUNC : O_APPEND;
    int fd = ::open(path.c_str(), flags, 0644);
    if (fd < 0) return errno_status("open", path, errno);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      return errno_status("stat", path, err);
    }
    return std::unique_ptr<WritableFile>(
        new PosixWritableFile(path, fd, static_cast<std::uint64_t>(st.st_size)));
  }

  Result<std::unique_ptr<ReadableFile>> open_readable(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno_status("open", path, errno);
    return std::unique_ptr<ReadableFile>(new PosixReadableFile(path, fd));
  }

  bool exists(const std::string& path) override { return ::access(path.c_str(), F_OK) == 0; }

  Result<std::vector<std::string>> list_dir(const std::string& dir) override {
    std::error_code ec;
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      names.push_back(entry.path().filename().string());
    }
    if (ec) return errno_status("list", dir, ec.value());
    std::sort(names.begin(), names.end());
    return names;
  }

  Status create_dirs(const std::string& dir) override {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return errno_status("mkdir", dir, ec.value());
    return Status::Ok();
  }

  Status remove_file(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return errno_status("unlink", path, errno);
    return Status::Ok();
  }

  Status rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return errno_status("rename", from, errno);
    return Status::Ok();
  }

  Status truncate(const std::string& path, std::uint64_t size) override {
    if (::truncate(path.c_str(), static_cast<off_t>(size)) != 0) {
      return errno_status("truncate", path, errno);
    }
    return Status::Ok();
  }

  Result<std::uint64_t> file_size(const std::string& path) override {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return errno_status("stat", path, errno);
    return static_cast<std::uint64_t>(st.st_size);
  }

  Status sync_dir(const std::string& dir) override {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno_status("open dir", dir, errno);
    int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0) return errno_status("fsync dir", dir, err);
    return Status::Ok();
  }

  Result<std::uint64_t> free_space(const std::string& path) override {
    struct statvfs st {};
    if (::statvfs(path.c_str(), &st) != 0) return errno_status("statvfs", path, errno);
    return static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
  }
};

}  // namespace

Env& Env::posix() {
  static PosixEnv env;
  return env;
}

}  // namespace ganglion
