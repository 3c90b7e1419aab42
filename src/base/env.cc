#include "base/env.h"

namespace ganglion {

std::string dir_of(const std::string& path) {
  auto pos = path.find_last_of('/');
  if (pos == std::string::npos) return ".";
  if (pos == 0) return "/";
  return path.substr(0, pos);
}

std::string join_path(std::string_view dir, std::string_view name) {
  std::string p(dir);
  if (!p.empty() && p.back() != '/') p += '/';
  p += name;
  return p;
}

Result<std::string> Env::read_file(const std::string& path) {
  GANGLION_ASSIGN_OR_RETURN(auto file, open_readable(path));
  GANGLION_ASSIGN_OR_RETURN(auto size, file->size());
  std::string out;
  GANGLION_RETURN_IF_ERROR(file->read_at(0, size, out));
  return out;
}

Status Env::write_file_atomic(const std::string& path, std::string_view content) {
  const std::string tmp = path + ".tmp";
  {
    GANGLION_ASSIGN_OR_RETURN(auto file, open_writable(tmp, OpenMode::kTruncate));
    GANGLION_RETURN_IF_ERROR(file->append(content));
    GANGLION_RETURN_IF_ERROR(file->sync());
    GANGLION_RETURN_IF_ERROR(file->close());
  }
  GANGLION_RETURN_IF_ERROR(rename(tmp, path));
  return sync_dir(dir_of(path));
}

}  // namespace ganglion
