// Env: every file access of Ganglion's logic goes through this interface.
//
// Three implementations: PosixEnv (the real disk), MemEnv (in memory, for unit tests) and
// FaultEnv (wraps another Env; fails chosen operations, reports a full disk, and simulates a
// power loss by dropping everything that was not fsynced). Shaped after leveldb's Env.
//
// Thread safety: Env methods may be called from any thread. A single WritableFile or
// ReadableFile is used by one thread at a time (external synchronisation).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace ganglion {

class WritableFile {
 public:
  virtual ~WritableFile() = default;
  // Appends bytes at the end. Data is durable only after sync() returns ok.
  virtual Status append(std::span<const std::byte> data) = 0;
  Status append(std::string_view s) {
    return append(std::as_bytes(std::span<const char>(s.data(), s.size())));
  }
  // Makes every byte appended so far durable (fdatasync).
  virtual Status sync() = 0;
  virtual Status close() = 0;
  // Bytes in the file, counting appended but unsynced bytes.
  virtual std::uint64_t size() const = 0;
};

class ReadableFile {
 public:
  virtual ~ReadableFile() = default;
  // Reads up to `n` bytes at `offset` into `out` (resized to what was read; short at EOF).
  virtual Status read_at(std::uint64_t offset, std::size_t n, std::string& out) const = 0;
  virtual Result<std::uint64_t> size() const = 0;
};

enum class OpenMode {
  kTruncate,  // create, or empty an existing file
  kAppend,    // create, or keep the content and append after it
};

class Env {
 public:
  virtual ~Env() = default;

  virtual Result<std::unique_ptr<WritableFile>> open_writable(const std::string& path,
                                                              OpenMode mode) = 0;
  virtual Result<std::unique_ptr<ReadableFile>> open_readable(const std::string& path) = 0;

  virtual bool exists(const std::string& path) = 0;
  // Names (not paths) of the entries of a directory, sorted.
  virtual Result<std::vector<std::string>> list_dir(const std::string& dir) = 0;
  // Creates a directory and its parents; ok when it already exists.
  virtual Status create_dirs(const std::string& dir) = 0;
  virtual Status remove_file(const std::string& path) = 0;
  // Atomically replaces `to` with `from`.
  virtual Status rename(const std::string& from, const std::string& to) = 0;
  virtual Status truncate(const std::string& path, std::uint64_t size) = 0;
  virtual Result<std::uint64_t> file_size(const std::string& path) = 0;
  // Makes the directory's entries (creations, renames, removals) durable.
  virtual Status sync_dir(const std::string& dir) = 0;
  // Free bytes on the file system holding `path`.
  virtual Result<std::uint64_t> free_space(const std::string& path) = 0;

  // Conveniences built on the primitives above.
  Result<std::string> read_file(const std::string& path);
  // Writes to a temporary file, syncs it, renames it over `path` and syncs the directory,
  // so a crash leaves either the old or the new content.
  Status write_file_atomic(const std::string& path, std::string_view content);

  // The process's real file system.
  static Env& posix();
};

// The directory part of a path ("." when there is none).
std::string dir_of(const std::string& path);
std::string join_path(std::string_view dir, std::string_view name);

}  // namespace ganglion
