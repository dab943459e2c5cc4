# Sanitizer builds (issue 8).  SLSTM_SANITIZE is a comma-separated list of sanitizers applied
# to EVERY target of the build (library, tests, examples, benchmarks), e.g.
#     cmake -S . -B build-asan -DSLSTM_SANITIZE=address,undefined -DSLSTM_ENABLE_CUDA=OFF
#     cmake -S . -B build-tsan -DSLSTM_SANITIZE=thread            -DSLSTM_ENABLE_CUDA=OFF
# Empty (the default) builds without sanitizers.  GCC (the CI compiler) links the sanitizer
# runtime into the shared library too, so -Wl,--no-undefined still holds; Clang gets its
# shared runtime (-shared-libsan) for the same reason.
# Every report is fatal (-fno-sanitize-recover=all) and frames stay walkable
# (-fno-omit-frame-pointer).  What runs the sanitizer builds: .ci/reliability.sh.
#
# Run-time settings the suite needs (set by .ci/reliability.sh, see docs/reliability.md):
#   ASAN_OPTIONS=allocator_may_return_null=1   the suite asks for absurd allocations on purpose
#   UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
#   TSAN_OPTIONS=suppressions=tests/tsan.supp
set(SLSTM_SANITIZE "" CACHE STRING
    "Comma-separated sanitizers for every target (address,undefined | thread); empty: none")

if(SLSTM_SANITIZE)
  string(REPLACE "," ";" _slstm_sanitizers "${SLSTM_SANITIZE}")
  set(_slstm_known address undefined thread leak)
  foreach(_s IN LISTS _slstm_sanitizers)
    if(NOT _s IN_LIST _slstm_known)
      message(FATAL_ERROR "SLSTM_SANITIZE: unknown sanitizer '${_s}' (known: ${_slstm_known})")
    endif()
  endforeach()
  if("thread" IN_LIST _slstm_sanitizers AND "address" IN_LIST _slstm_sanitizers)
    message(FATAL_ERROR "SLSTM_SANITIZE: thread and address cannot be combined")
  endif()
  string(REPLACE ";" "," _slstm_sanitize_list "${_slstm_sanitizers}")
  set(_slstm_sanitize_flags -fsanitize=${_slstm_sanitize_list} -fno-sanitize-recover=all
      -fno-omit-frame-pointer)
  if("undefined" IN_LIST _slstm_sanitizers)
    # -fsanitize=undefined already holds enum, bool, vptr, bounds, shift, alignment,
    # signed-integer-overflow, float-cast-overflow, pointer-overflow...; add what GCC keeps
    # out of it.  float-divide-by-zero stays off: IEEE division by zero is defined, and the
    # library must propagate NaN/Inf as IEEE says.
    list(APPEND _slstm_sanitize_flags -fsanitize=float-cast-overflow)
  endif()
  # -O1 keeps the suite fast while keeping stack traces readable.  GCC's flow analysis gives
  # false -Wmaybe-uninitialized warnings on instrumented code (in libstdc++ and Catch2
  # headers), so that one warning is off in sanitizer builds.
  add_compile_options(${_slstm_sanitize_flags} -g -O1
                      $<$<CXX_COMPILER_ID:GNU>:-Wno-maybe-uninitialized>)
  add_link_options(${_slstm_sanitize_flags})
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    # Clang links its sanitizer runtimes into executables only, unless asked for the shared
    # runtime: with it the library's -Wl,--no-undefined holds under Clang too.  That runtime
    # lives in Clang's own folder, which the loader does not search: an rpath finds it.
    execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-runtime-dir
                    OUTPUT_VARIABLE _slstm_rt_dir OUTPUT_STRIP_TRAILING_WHITESPACE)
    add_link_options(-shared-libsan "-Wl,-rpath,${_slstm_rt_dir}")
    unset(_slstm_rt_dir)
  endif()
  if("address" IN_LIST _slstm_sanitizers)
    # ASan's throwing operator new aborts instead of throwing std::bad_alloc; the library's
    # own operator new (local to libstacklstm.so) restores the standard contract so that the
    # out-of-memory tests test SLSTM_ERR_OUT_OF_MEMORY.  See the file for the details.  The
    # target is defined further down the top-level CMakeLists.txt, hence the deferred call.
    set(SLSTM_ASAN_OPERATOR_NEW ${CMAKE_CURRENT_LIST_DIR}/sanitizer_operator_new.cpp)
    cmake_language(DEFER CALL target_sources stacklstm PRIVATE ${SLSTM_ASAN_OPERATOR_NEW})
  endif()
  message(STATUS "stacklstm: sanitizers ${_slstm_sanitize_list} on every target")
  unset(_slstm_sanitizers)
  unset(_slstm_sanitize_list)
  unset(_slstm_sanitize_flags)
  unset(_slstm_known)
endif()
