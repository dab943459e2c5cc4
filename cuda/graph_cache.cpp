// GraphCache (graph_cache.hpp): a linear search over at most kMaxGraphs entries.
#include "graph_cache.hpp"

#include <algorithm>
#include <utility>

namespace slstm_cuda {

cudaGraphExec_t GraphCache::find(std::int64_t batch, std::int64_t time, std::int32_t layout,
                                 std::int64_t variant) {
  for (Entry& e : entries_) {
    if (e.batch == batch && e.time == time && e.layout == layout && e.variant == variant) {
      e.last_use = ++clock_;
      return e.exec.get();
    }
  }
  return nullptr;
}

cudaGraphExec_t GraphCache::insert(std::int64_t batch, std::int64_t time, std::int32_t layout,
                                   std::int64_t variant, GraphExec exec) {
  if (entries_.size() >= kMaxGraphs) {
    auto oldest = std::min_element(entries_.begin(), entries_.end(),
                                   [](const Entry& a, const Entry& b) {
                                     return a.last_use < b.last_use;
                                   });
    oldest->exec.reset();
    entries_.erase(oldest);
  }
  Entry entry;
  entry.batch = batch;
  entry.time = time;
  entry.layout = layout;
  entry.variant = variant;
  entry.exec = std::move(exec);
  entry.last_use = ++clock_;
  entries_.push_back(std::move(entry));
  return entries_.back().exec.get();
}

}  // namespace slstm_cuda
