#include "tune_cache.hpp"

#include "../src/file_path.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace slstm_cuda {
namespace {

constexpr std::size_t kMaxLine = 1024;
constexpr std::size_t kMaxFile = 16u << 20;  // a cache file larger than this is not read

// A decimal in [1, 2^31 - 1], digits only.
bool parse_size(const std::string& s, std::int64_t* v) {
  if (s.empty() || s.size() > 10 || s[0] == '0') return false;
  std::int64_t x = 0;
  for (char ch : s) {
    if (ch < '0' || ch > '9') return false;
    x = x * 10 + (ch - '0');
  }
  if (x > 2147483647) return false;
  *v = x;
  return true;
}

bool parse_path(const std::string& s, StepPath* p) {
  if (s == "cublas") *p = StepPath::kCublas;
  else if (s == "fused") *p = StepPath::kFused;
  else if (s == "persistent") *p = StepPath::kPersistent;
  else if (s == "cluster") *p = StepPath::kCluster;
  else return false;
  return true;
}

// A timed set as timed_paths_name writes it: two or more paths, in order, one of them `chosen`.
bool parse_timed(const std::string& s, StepPath chosen) {
  int parts = 0, last = -1;
  bool has_chosen = false;
  for (std::size_t at = 0;;) {
    const std::size_t plus = s.find('+', at);
    StepPath p = StepPath::kCublas;
    if (!parse_path(s.substr(at, plus == std::string::npos ? std::string::npos : plus - at), &p) ||
        static_cast<int>(p) <= last) {
      return false;
    }
    last = static_cast<int>(p);
    has_chosen = has_chosen || p == chosen;
    ++parts;
    if (plus == std::string::npos) return parts >= 2 && has_chosen;
    at = plus + 1;
  }
}

// Hidden sizes joined by ':', at least two, each a size.
bool parse_stack(const std::string& s) {
  std::size_t at = 0, parts = 0;
  for (;;) {
    const std::size_t colon = s.find(':', at);
    std::int64_t v = 0;
    if (!parse_size(s.substr(at, colon == std::string::npos ? std::string::npos : colon - at),
                    &v)) {
      return false;
    }
    ++parts;
    if (colon == std::string::npos) return parts >= 2;
    at = colon + 1;
  }
}

// A device name: printable ASCII, no TAB (names come from cudaGetDeviceProperties).
bool good_device(const std::string& s) {
  if (s.empty() || s.size() > 256) return false;
  for (unsigned char ch : s) {
    if (ch < 0x20 || ch > 0x7e) return false;
  }
  return true;
}

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> f;
  std::size_t at = 0;
  for (;;) {
    const std::size_t tab = line.find('\t', at);
    f.push_back(line.substr(at, tab == std::string::npos ? std::string::npos : tab - at));
    if (tab == std::string::npos) return f;
    at = tab + 1;
  }
}

bool read_file(const std::string& path, std::string* text, bool* exists, std::string* why) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    *exists = errno != ENOENT;
    if (*exists) *why = path + ": cannot be read (" + std::strerror(errno) + ")";
    return !*exists;
  }
  *exists = true;
  if (!S_ISREG(st.st_mode)) {
    *why = path + ": not a regular file";
    return false;
  }
  const std::string too_large = path + ": larger than 16 MiB, not a tuning cache";
  if (static_cast<std::uint64_t>(st.st_size) > kMaxFile) {  // refused before a byte is read
    *why = too_large;
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *why = path + ": cannot be opened";
    return false;
  }
  // Its size and one byte more (a file that grew since stat is still refused at the limit).
  text->assign(static_cast<std::size_t>(st.st_size) + 1, '\0');
  in.read(&(*text)[0], static_cast<std::streamsize>(text->size()));
  if (in.bad()) {
    *why = path + ": read error";
    return false;
  }
  text->resize(static_cast<std::size_t>(in.gcount()));
  if (text->size() > static_cast<std::size_t>(st.st_size)) {  // it grew since: the rest too
    std::ostringstream rest;
    rest << in.rdbuf();
    *text += rest.str();
  }
  if (text->size() > kMaxFile) {
    *why = too_large;
    return false;
  }
  return true;
}

// Holds an exclusive flock on PATH.lock while it lives (several processes or sessions storing
// into one cache file take turns: each merges what the others wrote).  Not locked when the
// lock file cannot be made (a read-only folder: the store then fails on its own).
class FileLock {
 public:
  explicit FileLock(const std::string& path) {
    const std::string lock = path + ".lock";
    fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    // (Another user's lock file: flock takes a read-only descriptor as well.)
    if (fd_ < 0) fd_ = ::open(lock.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd_ >= 0) {
      while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
      }
    }
  }
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the lock
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

// The mode of the file that replaces `path`: the old file's, or what a new file gets under
// the process's umask (mkstemp's 0600 would hide a shared cache from the other users).
mode_t file_mode(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) return st.st_mode & 07777;
  mode_t mask = 022;  // /proc/self/status says it since Linux 4.7 (umask(2) would change it)
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("Umask:", 0) == 0) {
      mask = static_cast<mode_t>(std::strtoul(line.c_str() + 6, nullptr, 8)) & 0777;
      break;
    }
  }
  return 0666 & ~mask;
}

// Writes `text` to a new file beside `path` (mkstemp: a fresh name, never an existing file or
// a link) and renames it over `path`.
bool replace_file(const std::string& path, const std::string& text, std::string* why) {
  std::string tmp = path + ".XXXXXX";
  const int fd = ::mkstemp(&tmp[0]);
  if (fd < 0) {
    *why = path + ": cannot be written (" + std::strerror(errno) + ")";
    return false;
  }
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  const bool written = done == text.size() && ::fchmod(fd, file_mode(path)) == 0 &&
                       ::fsync(fd) == 0;
  const std::string write_error = std::strerror(errno);
  const bool closed = ::close(fd) == 0;
  if (!written || !closed) {
    *why = path + ": write error (" + write_error + ")";
    ::unlink(tmp.c_str());
    return false;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    *why = path + ": cannot be replaced (" + std::strerror(errno) + ")";
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

}  // namespace

const char* step_path_name(StepPath p) {
  switch (p) {
    case StepPath::kCublas: return "cublas";
    case StepPath::kFused: return "fused";
    case StepPath::kPersistent: return "persistent";
    case StepPath::kCluster: return "cluster";
  }
  return "cublas";
}

bool TuneCache::parse(const std::string& text) {
  if (text.empty()) return true;  // an empty file (mktemp's): an empty cache
  std::size_t at = 0;
  bool first = true;
  while (at < text.size()) {
    std::size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(at, end - at);
    at = end + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (first) {
      if (line != kHeader) return false;
      first = false;
      continue;
    }
    if (line.empty() || line[0] == '#') continue;
    if (line.size() > kMaxLine) {  // before it is split: a line of TABs is not 10^6 fields
      ++skipped_;
      continue;
    }
    const std::vector<std::string> f = split_tabs(line);
    if (f.size() == 6 && f[3].find(':') != std::string::npos) {
      StackKey stack;
      if (!good_device(f[0]) || (f[1] != "fp32" && f[1] != "tf32") ||
          !parse_size(f[2], &stack.input) || !parse_stack(f[3]) ||
          !parse_size(f[4], &stack.batch) || (f[5] != "stack" && f[5] != "layers")) {
        ++skipped_;
        continue;
      }
      stack.device = f[0];
      stack.precision = f[1];
      stack.hidden = f[3];
      stacks_[stack] = f[5] == "stack";
      continue;
    }
    TuneKey key;
    StepPath path = StepPath::kCublas;
    if ((f.size() != 6 && f.size() != 7) || !good_device(f[0]) ||
        (f[1] != "fp32" && f[1] != "tf32") || !parse_size(f[2], &key.input) ||
        !parse_size(f[3], &key.hidden) || !parse_size(f[4], &key.batch) ||
        !parse_path(f[5], &path) || (f.size() == 7 && !parse_timed(f[6], path))) {
      ++skipped_;
      continue;
    }
    key.device = f[0];
    key.precision = f[1];
    if (f.size() == 7) key.timed = f[6];
    entries_[key] = path;
  }
  return !first;
}

std::string TuneCache::serialize() const {
  std::string out = std::string(kHeader) + "\n";
  for (const auto& [k, p] : entries_) {
    out += k.device + "\t" + k.precision + "\t" + std::to_string(k.input) + "\t" +
           std::to_string(k.hidden) + "\t" + std::to_string(k.batch) + "\t" +
           step_path_name(p) + (k.timed.empty() ? "" : "\t" + k.timed) + "\n";
  }
  for (const auto& [k, whole] : stacks_) {
    out += k.device + "\t" + k.precision + "\t" + std::to_string(k.input) + "\t" + k.hidden +
           "\t" + std::to_string(k.batch) + "\t" + (whole ? "stack" : "layers") + "\n";
  }
  return out;
}

std::string tune_file_target(const std::string& given, std::string* why) {
  std::string target, reason;
  if (!slstm::follow_links(slstm::absolute_path(given), &target, &reason)) {
    *why = given + ": cannot follow the symbolic link (" + reason + ")";
    return std::string();
  }
  return target;
}

bool TuneCache::load(const std::string& path, std::string* why) {
  std::string text;
  bool exists = false;
  if (!read_file(path, &text, &exists, why)) return false;
  if (!exists) return true;
  TuneCache read;
  if (!read.parse(text)) {
    *why = path + ": not a libstacklstm tuning cache (no \"" + kHeader + "\" first line)";
    return false;
  }
  for (const auto& [k, p] : read.entries_) entries_[k] = p;
  for (const auto& [k, whole] : read.stacks_) stacks_[k] = whole;
  skipped_ += read.skipped_;
  return true;
}

bool TuneCache::store(const std::string& path, std::string* why) const {
  const FileLock lock(path);
  TuneCache merged;
  if (!merged.load(path, why)) return false;
  // Only what this cache learned (put) goes over the file's entries: an entry it merely read
  // from the file earlier may have been replaced there since, by another session.
  for (const TuneKey& k : learned_) merged.entries_[k] = entries_.at(k);
  for (const StackKey& k : learned_stacks_) merged.stacks_[k] = stacks_.at(k);
  return replace_file(path, merged.serialize(), why);
}

bool TuneCache::find_stack(const StackKey& key, bool* whole) const {
  const auto it = stacks_.find(key);
  if (it == stacks_.end()) return false;
  *whole = it->second;
  return true;
}

bool TuneCache::find(const TuneKey& key, StepPath* path) const {
  const auto it = entries_.find(key);
  if (it == entries_.end()) return false;
  *path = it->second;
  return true;
}

}  // namespace slstm_cuda
