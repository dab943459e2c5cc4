// File names as the writers resolve them (the model file's writer, the CUDA module's tuning
// cache): header-only, so that the CUDA module (a library of its own) shares it.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <sys/stat.h>

namespace slstm {

// The name at the end of a chain of symbolic links starting at `path` (relative targets
// from their link's directory), whether a file is there or not, in *target: a writer that
// replaces that name replaces the file a link points to and keeps the link, and a link to a
// file not made yet makes it.  `path` itself when it is not a link.  False, with the reason
// in *why (as strerror gives it), when a link cannot be read or the chain is longer than 40
// links (the kernel's own limit: a loop).
inline bool follow_links(const std::string& path, std::string* target, std::string* why) {
  *target = path;
  struct stat st {};
  for (int hops = 0; ::lstat(target->c_str(), &st) == 0 && S_ISLNK(st.st_mode); ++hops) {
    std::string to(4096, '\0');
    const ssize_t n = hops == 40 ? -1 : ::readlink(target->c_str(), &to[0], to.size());
    if (n < 0 || static_cast<std::size_t>(n) >= to.size()) {
      *why = std::strerror(hops == 40 ? ELOOP : n < 0 ? errno : ENAMETOOLONG);
      return false;
    }
    to.resize(static_cast<std::size_t>(n));
    const std::size_t slash = target->rfind('/');
    *target = to[0] == '/' || slash == std::string::npos ? to : target->substr(0, slash + 1) + to;
  }
  return true;
}

// `path` made absolute against the current directory (not normalised); `path` as it is when
// it is absolute already or the current directory cannot be read.
inline std::string absolute_path(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  std::string dir(4096, '\0');
  if (::getcwd(&dir[0], dir.size()) == nullptr) return path;
  dir.resize(std::strlen(dir.c_str()));
  return dir + (dir == "/" ? "" : "/") + path;
}

}  // namespace slstm
