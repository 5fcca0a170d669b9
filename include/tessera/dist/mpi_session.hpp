#pragma once
// MPI for the life of a command: initialised on construction, finalised on destruction. A failure on one
// rank must not leave the others blocked in a collective, so `abort_job` prints the reason with the rank
// and takes the whole job down.

#include <mpi.h>

#include <string>

namespace tessera::dist {

class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }

  // Prints "tessera: rank R: error: <why>" to stderr and calls MPI_Abort on the world.
  [[noreturn]] void abort_job(const std::string& why) const;

 private:
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace tessera::dist
