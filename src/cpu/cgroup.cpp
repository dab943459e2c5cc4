#include "cgroup.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

namespace slstm::cpu {
namespace {

constexpr std::streamsize kMaxFileBytes = 1 << 20;  // /proc files are far smaller

// The whole file, or "" when it cannot be read.
std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::string s(static_cast<std::size_t>(kMaxFileBytes), '\0');
  in.read(&s[0], kMaxFileBytes);
  s.resize(static_cast<std::size_t>(in.gcount()));
  return s;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string::size_type at = 0;
  for (;;) {
    const std::string::size_type next = s.find(sep, at);
    out.push_back(s.substr(at, next == std::string::npos ? std::string::npos : next - at));
    if (next == std::string::npos) return out;
    at = next + 1;
  }
}

bool has_item(const std::string& list, const std::string& item) {
  const std::vector<std::string> items = split(list, ',');
  return std::find(items.begin(), items.end(), item) != items.end();
}

// mountinfo writes space, tab, newline and backslash in paths as \ooo (octal).
std::string unescape(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' &&
        s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

// A whole-token number (digits, optionally a leading '-'), or false.
bool parse_int(const std::string& s, long long* v) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  *v = std::strtoll(s.c_str(), &end, 10);
  return errno == 0 && end == s.c_str() + s.size();
}

std::string trim(const std::string& s) {
  const std::string::size_type a = s.find_first_not_of(" \t\n");
  if (a == std::string::npos) return {};
  return s.substr(a, s.find_last_not_of(" \t\n") - a + 1);
}

struct Mount {
  std::string root;   // the hierarchy's directory mounted there (field 4)
  std::string point;  // where (field 5)
};

// The mount of the hierarchy: cgroup2, or a v1 cgroup mount holding the cpu controller.
bool find_mount(const std::string& mountinfo, bool v2, Mount* out) {
  for (const std::string& line : split(mountinfo, '\n')) {
    const std::vector<std::string> f = split(line, ' ');
    // id parent major:minor root point options [optional fields] - fstype source super
    std::size_t dash = 6;
    while (dash < f.size() && f[dash] != "-") ++dash;
    if (dash + 3 >= f.size()) continue;
    const std::string& fstype = f[dash + 1];
    const bool match = v2 ? fstype == "cgroup2"
                          : fstype == "cgroup" && has_item(f[dash + 3], "cpu");
    if (match) {
      out->root = unescape(f[3]);
      out->point = unescape(f[4]);
      return true;
    }
  }
  return false;
}

// The limit set on one cgroup directory, in CPUs; 0 when none (or unreadable).
double level_limit(const std::string& dir, bool v2) {
  long long quota = 0, period = 0;
  if (v2) {
    const std::vector<std::string> f = split(trim(read_file(dir + "/cpu.max")), ' ');
    if (f.size() != 2 || f[0] == "max" || !parse_int(f[0], &quota) ||
        !parse_int(f[1], &period)) {
      return 0;
    }
  } else if (!parse_int(trim(read_file(dir + "/cpu.cfs_quota_us")), &quota) ||
             !parse_int(trim(read_file(dir + "/cpu.cfs_period_us")), &period)) {
    return 0;
  }
  if (quota <= 0 || period <= 0) return 0;  // v1 writes -1 for "no limit"
  return static_cast<double>(quota) / static_cast<double>(period);
}

}  // namespace

double cgroup_cpu_limit(const std::string& root) {
  try {
    // "ID:controllers:path" per hierarchy; v2's line is "0::path".
    std::string path;
    bool v1 = false, v2 = false;
    for (const std::string& line : split(read_file(root + "/proc/self/cgroup"), '\n')) {
      const std::string::size_type a = line.find(':');
      const std::string::size_type b = a == std::string::npos ? a : line.find(':', a + 1);
      if (b == std::string::npos) continue;
      const std::string controllers = line.substr(a + 1, b - a - 1);
      if (has_item(controllers, "cpu")) {
        path = line.substr(b + 1);
        v1 = true;
        break;
      }
      if (line.compare(0, 3, "0::") == 0) {
        path = line.substr(b + 1);
        v2 = true;
      }
    }
    if (!v1 && !v2) return 0;
    Mount m;
    if (!find_mount(read_file(root + "/proc/self/mountinfo"), !v1, &m)) return 0;
    // The process's cgroup below the mount: its path without the mounted root (a container
    // without a cgroup namespace sees its own /docker/<id> mounted; outside that root, only
    // the mount's own limit can be read).
    std::string rel = path;
    if (m.root != "/") {
      const bool under = rel.compare(0, m.root.size(), m.root) == 0 &&
                         (rel.size() == m.root.size() || rel[m.root.size()] == '/');
      rel = under ? rel.substr(m.root.size()) : std::string();
    }
    while (!rel.empty() && rel.back() == '/') rel.pop_back();
    double limit = 0;
    for (;;) {  // the cgroup, then each ancestor up to the mount point
      const double l = level_limit(root + m.point + rel, !v1);
      if (l > 0 && (limit == 0 || l < limit)) limit = l;
      if (rel.empty()) break;
      const std::string::size_type up = rel.rfind('/');
      rel.resize(up == std::string::npos ? 0 : up);
    }
    return limit;
  } catch (...) {  // std::bad_alloc from a string: no limit known
    return 0;
  }
}

std::int64_t sysfs_cache_bytes(int level_wanted, const std::string& root) {
  const std::string wanted = std::to_string(level_wanted);
  const std::string base = root + "/sys/devices/system/cpu/cpu0/cache/index";
  for (int i = 0; i < 16; ++i) {
    const std::string dir = base + std::to_string(i) + "/";
    const std::string level = trim(read_file(dir + "level"));
    if (level.empty()) continue;  // (an index may be absent: keep looking)
    const std::string type = trim(read_file(dir + "type"));
    if (level != wanted || (type != "Unified" && type != "Data")) continue;
    std::string size = trim(read_file(dir + "size"));
    long long scale = 1;
    if (!size.empty() && (size.back() == 'K' || size.back() == 'M')) {
      scale = size.back() == 'K' ? 1024 : 1024 * 1024;
      size.pop_back();
    }
    long long n = 0;
    if (!parse_int(size, &n) || n <= 0 || n > (1LL << 40) / scale) return 0;
    return static_cast<std::int64_t>(n * scale);
  }
  return 0;
}

int cpus_within_limit(int mask, double limit) {
  mask = std::max(mask, 1);
  if (!(limit > 0)) return mask;
  // A limit a hair above an integer (a quota of 100001 us per 100000) is that integer.
  return static_cast<int>(std::clamp(std::ceil(limit - 1e-6), 1.0, static_cast<double>(mask)));
}

}  // namespace slstm::cpu
