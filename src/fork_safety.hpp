// fork(): a child process has only the thread that called fork(). What the library keeps
// process-wide must survive that:
//   - the locks below are taken around every fork, or made anew in the child (pthread_atfork
//     handlers, registered when the library is loaded: fork_safety.cpp), so that a child
//     never starts with one held by a thread it does not have (its next session creation
//     would wait forever);
//   - forks_seen() counts the forks this process descends from since the library was loaded:
//     a thread pool remembers the count it was made under and knows, in a child, that its
//     workers stayed in the parent (cpu/thread_pool.hpp Pool::orphaned).
#pragma once

#include <cstdint>
#include <mutex>

namespace slstm {

std::mutex& calibration_lock();   // cpu/calibration.cpp: the machine measurements' cache
std::mutex& shared_pool_lock();   // cpu/thread_pool.hpp: the process-wide pool's registry
std::mutex& cuda_module_lock();   // cuda_module.cpp: loading the CUDA module
std::uint32_t forks_seen();

}  // namespace slstm
