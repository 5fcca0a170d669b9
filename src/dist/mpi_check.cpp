#include "tessera/dist/mpi_check.hpp"

namespace tessera::detail {

void throw_mpi_error(const char* call, int code, const char* file, int line) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  // MPI_Error_string itself can fail on a corrupt code; then the numeric code is all we have.
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = 0;
  throw_error(file, line, fmt::format("{} failed: {} (MPI error {})", call,
                                      length > 0 ? std::string(text, length) : "unknown", code));
}

}  // namespace tessera::detail
