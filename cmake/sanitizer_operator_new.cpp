// Compiled into libstacklstm.so (and the fuzz targets) ONLY in AddressSanitizer builds
// (cmake/StacklstmSanitizers.cmake, fuzz/CMakeLists.txt).
//
// Why: ASan's throwing operator new never throws std::bad_alloc.  When an allocation fails it
// aborts the process ("allocator is out of memory"), even with allocator_may_return_null=1,
// which only makes malloc and the NOTHROW operator new return NULL.  The library's contract
// is the standard C++ one: a failed allocation throws std::bad_alloc, which the C API turns
// into SLSTM_ERR_OUT_OF_MEMORY.  So that the sanitizer build tests that contract instead of
// aborting, the library's own throwing operator new forwards to ASan's nothrow operator new
// (same allocation type, so ASan's new/delete matching and leak checks are unchanged) and
// throws std::bad_alloc on NULL.  The version script keeps these definitions local to the
// library: they replace nothing in the program that loads it.
#include <cstddef>
#include <new>

void* operator new(std::size_t n) {
  void* p = ::operator new(n, std::nothrow);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void* operator new[](std::size_t n) {
  void* p = ::operator new[](n, std::nothrow);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void* operator new(std::size_t n, std::align_val_t a) {
  void* p = ::operator new(n, a, std::nothrow);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void* operator new[](std::size_t n, std::align_val_t a) {
  void* p = ::operator new[](n, a, std::nothrow);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
