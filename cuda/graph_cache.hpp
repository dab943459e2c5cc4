// The session's executable CUDA graphs of the compute, one per (batch, time, layout, variant),
// at most kMaxGraphs of them: when full, the least recently used one is destroyed to make
// room.  variant: what else shapes the compute (the generic path: the longest row's length;
// the basic path: 0).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "resources.hpp"

namespace slstm_cuda {

class GraphCache {
 public:
  static constexpr std::size_t kMaxGraphs = 8;

  // The graph of (batch, time, layout), now the most recently used; nullptr if none is kept.
  cudaGraphExec_t find(std::int64_t batch, std::int64_t time, std::int32_t layout,
                       std::int64_t variant = 0);
  // Keeps `exec` as the graph of (batch, time, layout), after destroying the least recently
  // used graph when kMaxGraphs are kept already, and returns it. `exec` is destroyed if it
  // cannot be kept (out of host memory).
  cudaGraphExec_t insert(std::int64_t batch, std::int64_t time, std::int32_t layout,
                         std::int64_t variant, GraphExec exec);
  // Destroys every graph kept (none may be running).
  void clear() { entries_.clear(); }

 private:
  struct Entry {
    std::int64_t batch = 0;
    std::int64_t time = 0;
    std::int32_t layout = 0;
    std::int64_t variant = 0;
    GraphExec exec;
    std::uint64_t last_use = 0;
  };
  std::vector<Entry> entries_;
  std::uint64_t clock_ = 0;
};

}  // namespace slstm_cuda
