#pragma once
// Per-rank logging. Rank 0 writes to the console; every rank writes its own file
// <run_dir>/logs/rank-<rank>.log. Each line carries the rank and its grid coordinates so a line from any
// file can be placed in the grid. The logger is owned by whoever makes it (no spdlog registry, no global).

#include <spdlog/logger.h>

#include <memory>
#include <string>

#include "tessera/core/config.hpp"

namespace tessera {

struct RankIdentity {
  int rank = 0;
  int tp = 0;
  int pp = 0;
  int dp = 0;
  int ep = 0;
};

// The path of `rank`'s log file under `run_dir`.
std::string rank_log_path(const std::string& run_dir, int rank);

// Creates run_dir/logs as needed; throws tessera::Error naming the path when it cannot.
std::shared_ptr<spdlog::logger> make_rank_logger(const std::string& run_dir, const RankIdentity& who,
                                                 LogLevel level);

}  // namespace tessera
