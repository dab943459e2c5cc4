// A session's plan: every choice a backend makes about how to run the model — which path
// runs each layer, with which parameters and why, how many threads, in which precision —
// made once when the session is created (choices that depend on a call's shape are written
// down as the rule that decides them).  The plan is what slstm_session_describe reports, as
// text for people and as JSON for programs and tests, which assert the path that ran
// instead of inferring it.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace slstm {

using Params = std::vector<std::pair<std::string, std::string>>;

struct LayerPlan {
  std::string path;    // e.g. "reference", "avx2", "cublas+step", "fused-step"
  std::string reason;  // why this path, in a few words
  Params params;       // the path's parameters (key, value)
};

struct Plan {
  std::string backend;    // "cpu" or "cuda"
  std::string path;       // the backend's implementation: "reference", "fast"
  std::string precision;  // "fp32", "tf32"
  Params params;          // session-wide parameters (threads, kernel, device, ...)
  Params settings;        // the keyed options in effect (after environment overrides)
  std::vector<LayerPlan> layers;

  std::string text() const;
  std::string json() const;
};

}  // namespace slstm
