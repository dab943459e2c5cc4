// The locks fork() must not copy held, and the fork count (fork_safety.hpp).
#include "fork_safety.hpp"

#include <pthread.h>

#include <atomic>
#include <new>

namespace slstm {
namespace {

// Constant-initialised (std::mutex's constructor is constexpr): usable before and during the
// library's dynamic initialisation, as the handlers' registration below is.
std::mutex g_calibration;
std::mutex g_shared_pool;
std::mutex g_cuda_module;
std::atomic<std::uint32_t> g_forks{0};

// The measurements' and the shared pool's locks are taken around the fork (no code path
// holds both, so any order is safe): the child gets their maps and pointers whole. Not the
// CUDA module's: its holder may dlclose() a module that does not fit, and on glibc 2.28-2.35
// dlclose waits for the lock fork() holds while it runs these handlers (fixed in 2.36). The
// child makes that one anew instead: what it guards is one pointer, set once, and the
// loader's own state is glibc's to keep whole across the fork.
extern "C" void prepare_fork() {
  g_shared_pool.lock();
  g_calibration.lock();
}
extern "C" void after_fork_in_parent() {
  g_calibration.unlock();
  g_shared_pool.unlock();
}
extern "C" void after_fork_in_child() {
  g_forks.fetch_add(1, std::memory_order_relaxed);
  after_fork_in_parent();  // the forking thread took them: it is the child's only thread
  new (&g_cuda_module) std::mutex();  // (its holder, if any, is not in the child)
}

// Registered once, when the library is loaded; glibc removes them if it is unloaded
// (dlclose), since pthread_atfork records the registering library.
const int g_registered = pthread_atfork(&prepare_fork, &after_fork_in_parent,
                                        &after_fork_in_child);

}  // namespace

std::mutex& calibration_lock() { return g_calibration; }
std::mutex& shared_pool_lock() { return g_shared_pool; }
std::mutex& cuda_module_lock() { return g_cuda_module; }
std::uint32_t forks_seen() {
  (void)g_registered;  // (ENOMEM at load: forks then go unseen, as before this file)
  return g_forks.load(std::memory_order_relaxed);
}

}  // namespace slstm
