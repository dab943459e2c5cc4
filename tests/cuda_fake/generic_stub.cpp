// The generic path (cuda.generic=on) of the fake module (tests/cuda_fake): not built in.
// The real one runs the generic engine on generic_device.cu's kernels, which have no host
// emulation here; the engine itself is tested on the emulated module (tests/cuda_emu,
// "cuda-emu: ..."). A session that asks for it is refused with SLSTM_ERR_UNSUPPORTED, so
// the GPU suite's [generic] cases cannot run on the fake module.
#include "common.hpp"
#include "generic_session.hpp"

namespace slstm_cuda {

std::unique_ptr<GenericSession> GenericSession::create(const slstm_cuda_session_desc&) {
  slstm::fail(SLSTM_ERR_UNSUPPORTED, "the generic path is not in the fake CUDA module");
}

}  // namespace slstm_cuda
