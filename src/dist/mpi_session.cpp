#include "tessera/dist/mpi_session.hpp"

#include <cstdio>
#include <cstdlib>

#include "tessera/dist/mpi_check.hpp"

namespace tessera::dist {

MpiSession::MpiSession(int* argc, char*** argv) {
  int initialized = 0;
  TESSERA_MPI_CHECK(MPI_Initialized(&initialized));
  TESSERA_CHECK(!initialized, "MPI is already initialised: only one MpiSession may exist");
  TESSERA_MPI_CHECK(MPI_Init(argc, argv));
  // Errors come back as codes and go through TESSERA_MPI_CHECK instead of aborting inside the library.
  TESSERA_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  TESSERA_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
  TESSERA_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
}

MpiSession::~MpiSession() {
  int finalized = 0;
  if (MPI_Finalized(&finalized) == MPI_SUCCESS && !finalized) MPI_Finalize();
}

void MpiSession::abort_job(const std::string& why) const {
  std::fprintf(stderr, "tessera: rank %d: error: %s\n", rank_, why.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::abort();  // MPI_Abort does not return; this keeps [[noreturn]] honest if it ever does
}

}  // namespace tessera::dist
