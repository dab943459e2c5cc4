// The module slstm_cuda_fake_sim (tests/cuda_fake): the kernels' own source on the simulator
// (tests/cuda_sim), each launch queued on the fake runtime's stream like any other work. A
// launch that the simulator finds wrong (threads of a block at two barriers, a shuffle with a
// lane missing) ends the process, as the fake runtime does with a misuse it detects: the
// launcher has long returned when the work runs. The simulated clock runs 100 times slower
// (sim.hpp, set_clock_divisor): the session's wait bound (cuda.persistent_timeout_us, 1 s)
// must not run out on a busy 2-core machine; the tests that make the kernel give up set it
// to 0.
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <utility>

#include "fake_device.hpp"
#include "sim.hpp"

namespace {

void enqueue_on_fake(const void* stream, const char* name, std::function<void()> work) {
  std::string what = name;
  (void)cuda_fake::enqueue(static_cast<cudaStream_t>(const_cast<void*>(stream)), name,
                           [work = std::move(work), what] {
                             work();
                             const std::string e = slstm_sim::take_error();
                             if (!e.empty()) {
                               std::fprintf(stderr, "cuda-sim FATAL: %s: %s\n", what.c_str(),
                                            e.c_str());
                               std::abort();
                             }
                           });
}

[[maybe_unused]] const bool installed = [] {
  slstm_sim::set_submitter(enqueue_on_fake);
  slstm_sim::set_clock_divisor(100);
  return true;
}();

}  // namespace
