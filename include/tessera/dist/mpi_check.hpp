#pragma once
// Every MPI call goes through TESSERA_MPI_CHECK so a failure names the call, the MPI error string and the
// source line instead of aborting inside the MPI library with no context.

#include <mpi.h>

#include "tessera/core/error.hpp"

namespace tessera::detail {
[[noreturn]] void throw_mpi_error(const char* call, int code, const char* file, int line);
}  // namespace tessera::detail

#define TESSERA_MPI_CHECK(call)                                                       \
  do {                                                                                \
    const int tessera_mpi_rc_ = (call);                                               \
    if (tessera_mpi_rc_ != MPI_SUCCESS)                                               \
      ::tessera::detail::throw_mpi_error(#call, tessera_mpi_rc_, __FILE__, __LINE__); \
  } while (0)
