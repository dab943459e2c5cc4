// The CUDA module's tuning cache (keyed settings cuda.tune=on, cuda.tune_file=PATH): which
// recurrent step path ran fastest for a layer shape and batch on a device, measured by the
// session (tune.cpp) and kept in the session and, when the caller names a file, in that file
// for the next session or process.
//
// Plain C++ (no CUDA header), so that the CPU test suite checks it (tests/test_tune_cache.cpp).
//
// The file: UTF-8 text, one entry per line, fields separated by one TAB:
//   device <TAB> precision <TAB> input size <TAB> hidden size <TAB> batch <TAB> path
// device: the device's name, compute capability and SM count ("NVIDIA H200 sm90 132sm"),
// precision "fp32" or "tf32", sizes and batch decimal >= 1, path "cublas", "fused" or
// "persistent". A stack's line (since 0.7) has its layers' hidden sizes joined by ':' in the
// hidden field (at least two) and the path "stack" (the whole stack as one persistent launch
// ran faster) or "layers" (its layers' own paths did); versions before it skip such lines.
// Since 0.12 a layer's line has a seventh field, the paths that were timed for it, in the
// order cublas, fused, persistent, joined by '+' ("cublas+fused+persistent"): a session takes
// an entry only when it would time the same paths (a choice made among cublas and fused says
// nothing about the persistent kernel a session with cuda.persistent=on could run). A layer's
// line of an older version (six fields) is kept in the file but not taken; older versions
// skip (and drop, when they write the file) the seven-field lines.
// The first line is the header "# libstacklstm cuda tuning v1"; other lines
// that start with '#' and empty lines are comments. A line that does not parse is skipped
// (and dropped when the file is written again); an empty file is an empty cache; a file
// without the header is not read (and not overwritten). A file above 16 MiB is refused
// before it is read. Written whole to a fresh file beside PATH (mkstemp: PATH.XXXXXX), then
// renamed over PATH, under an exclusive flock on PATH.lock (created once, left in place), so
// that sessions and processes storing into one file take turns and each keeps the others'
// entries.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <tuple>

namespace slstm_cuda {

// kCluster (since 0.18): the persistent kernel's cluster tier (cuda.cluster=on).
enum class StepPath { kCublas, kFused, kPersistent, kCluster };
constexpr int kStepPaths = 4;

const char* step_path_name(StepPath p);
// The persistent kernel's paths: its grid tier and its cluster tier.
inline bool persistent_path(StepPath p) {
  return p == StepPath::kPersistent || p == StepPath::kCluster;
}

// The paths of `paths` (any order, repeats ignored) as a tuning entry names them: in the order
// cublas, fused, persistent, cluster, joined by '+'.
template <typename Range>
std::string timed_paths_name(const Range& paths) {
  bool has[kStepPaths] = {false, false, false, false};
  for (const StepPath p : paths) has[static_cast<int>(p)] = true;
  std::string out;
  for (int i = 0; i < kStepPaths; ++i) {
    if (has[i]) out += (out.empty() ? "" : "+") + std::string(step_path_name(StepPath(i)));
  }
  return out;
}
inline std::string timed_paths_name(std::initializer_list<StepPath> paths) {
  return timed_paths_name<std::initializer_list<StepPath>>(paths);
}

struct TuneKey {
  std::string device;
  std::string precision;
  std::int64_t input = 0;
  std::int64_t hidden = 0;
  std::int64_t batch = 0;
  // The paths that were timed (timed_paths_name); empty: a line of a version before 0.12,
  // which no session's key matches.
  std::string timed;
  bool operator<(const TuneKey& o) const {
    return std::tie(device, precision, input, hidden, batch, timed) <
           std::tie(o.device, o.precision, o.input, o.hidden, o.batch, o.timed);
  }
};

// A stack's key: its layers' hidden sizes in order ("100:200:300").
struct StackKey {
  std::string device;
  std::string precision;
  std::int64_t input = 0;
  std::string hidden;
  std::int64_t batch = 0;
  bool operator<(const StackKey& o) const {
    return std::tie(device, precision, input, hidden, batch) <
           std::tie(o.device, o.precision, o.input, o.hidden, o.batch);
  }
};

// The file cuda.tune_file=PATH names, fixed when the session is made: absolute (a later
// chdir does not move it) and at the end of its chain of symbolic links (the file a link
// names is replaced, the link stays; sessions naming the link and the file lock one lock
// file).  Empty, with the reason in *why, when a link in the chain cannot be followed.
std::string tune_file_target(const std::string& given, std::string* why);

class TuneCache {
 public:
  static constexpr const char* kHeader = "# libstacklstm cuda tuning v1";

  // The entries of `text` (a file's contents). False when the header is missing from a
  // non-empty text: nothing read. Lines that do not parse are skipped and counted in skipped().
  bool parse(const std::string& text);
  std::string serialize() const;

  // Reads `path` into the cache (a missing file is an empty cache: true). False, with the
  // reason, when it exists but cannot be read or has no header.
  bool load(const std::string& path, std::string* why);
  // Writes `path`: the entries it holds (if it is a cache file) with those this cache learned
  // (put, put_stack) over them; false, with the reason, when it cannot be written (nothing
  // else changes).  Entries this cache only loaded are not written back: the file may hold
  // newer ones for them.
  bool store(const std::string& path, std::string* why) const;

  void put(const TuneKey& key, StepPath path) {
    entries_[key] = path;
    learned_.insert(key);
  }
  // The path stored for key, if any.
  bool find(const TuneKey& key, StepPath* path) const;
  std::size_t size() const { return entries_.size(); }
  std::size_t skipped() const { return skipped_; }
  // Whether the whole stack ran faster as one persistent launch (true) than as its layers.
  void put_stack(const StackKey& key, bool whole) {
    stacks_[key] = whole;
    learned_stacks_.insert(key);
  }
  bool find_stack(const StackKey& key, bool* whole) const;
  std::size_t stack_size() const { return stacks_.size(); }

 private:
  std::map<TuneKey, StepPath> entries_;
  std::map<StackKey, bool> stacks_;
  std::set<TuneKey> learned_;
  std::set<StackKey> learned_stacks_;
  std::size_t skipped_ = 0;
};

}  // namespace slstm_cuda
