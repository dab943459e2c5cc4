// The generic path (cuda.generic=on) of the fake module (tests/cuda_fake): not built in.
// The real one runs the generic engine on generic_device.cu's kernels, which have no host
// emulation here: a session that asks for it is refused with SLSTM_ERR_UNSUPPORTED. The
// GPU suite's [generic] cases run on the simulated module instead (slstm_cuda_fake_sim:
// generic_device.cu's own source on tests/cuda_sim), and the engine on the emulated module
// (tests/cuda_emu, "cuda-emu: ...").
#include "common.hpp"
#include "generic_session.hpp"

namespace slstm_cuda {

std::unique_ptr<GenericSession> GenericSession::create(const slstm_cuda_session_desc&) {
  slstm::fail(SLSTM_ERR_UNSUPPORTED, "the generic path is not in the fake CUDA module");
}

}  // namespace slstm_cuda
