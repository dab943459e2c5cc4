// The cluster tier of the persistent kernel's own source (cuda/persistent_cluster.cu) on the
// simulator.
#include "sim.hpp"
// (after sim.hpp)
#include "persistent_cluster.cu"
