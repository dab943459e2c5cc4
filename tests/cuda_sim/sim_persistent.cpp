// The persistent recurrent kernel's own source (cuda/persistent.cu) on the simulator.
#include "sim.hpp"
// (after sim.hpp)
#include "persistent.cu"
