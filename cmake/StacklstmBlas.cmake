# Finds OpenBLAS (Debian: libopenblas-dev) for the CPU benchmark only (bench/cpu measures the
# machine's SGEMM peak with it).  Sets SLSTM_BLAS_FOUND and defines the imported target
# slstm::openblas.  The library itself does not use a BLAS (since issue 13).
option(SLSTM_WITH_BLAS "Build the CPU benchmark's SGEMM peak measurement when OpenBLAS is found" ON)
set(SLSTM_BLAS_FOUND OFF)
if(SLSTM_WITH_BLAS)
  find_path(SLSTM_CBLAS_INCLUDE_DIR cblas.h
    PATH_SUFFIXES openblas-pthread openblas x86_64-linux-gnu/openblas-pthread
                  aarch64-linux-gnu/openblas-pthread)
  find_library(SLSTM_OPENBLAS_LIBRARY NAMES openblas)
  if(SLSTM_CBLAS_INCLUDE_DIR AND SLSTM_OPENBLAS_LIBRARY)
    # The header must be OpenBLAS's (it declares openblas_get_corename and blasint).
    file(STRINGS ${SLSTM_CBLAS_INCLUDE_DIR}/cblas.h _slstm_cblas_is_openblas
         REGEX "openblas_get_corename")
    if(NOT _slstm_cblas_is_openblas AND EXISTS ${SLSTM_CBLAS_INCLUDE_DIR}/openblas-pthread/cblas.h)
      set(SLSTM_CBLAS_INCLUDE_DIR ${SLSTM_CBLAS_INCLUDE_DIR}/openblas-pthread CACHE PATH "" FORCE)
      set(_slstm_cblas_is_openblas ON)
    endif()
    if(_slstm_cblas_is_openblas)
      set(SLSTM_BLAS_FOUND ON)
      if(NOT TARGET slstm::openblas)
        add_library(slstm::openblas UNKNOWN IMPORTED)
        set_target_properties(slstm::openblas PROPERTIES
          IMPORTED_LOCATION ${SLSTM_OPENBLAS_LIBRARY}
          INTERFACE_INCLUDE_DIRECTORIES ${SLSTM_CBLAS_INCLUDE_DIR})
      endif()
    endif()
  endif()
endif()
if(SLSTM_BLAS_FOUND)
  message(STATUS "stacklstm: OpenBLAS ${SLSTM_OPENBLAS_LIBRARY} for the CPU benchmark")
else()
  message(STATUS "stacklstm: OpenBLAS not found; bench/cpu not built")
endif()
