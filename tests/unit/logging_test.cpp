#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tessera/core/error.hpp"
#include "tessera/core/logging.hpp"
#include "test_support.hpp"

namespace tessera {
namespace {

using testing::read_text;
using LoggingTest = testing::TempDirTest;

TEST_F(LoggingTest, EachRankWritesItsOwnFileWithCoordinates) {
  for (int rank : {0, 3}) {
    auto log = make_rank_logger(dir_.string(), {rank, rank % 2, rank / 2, 1, rank}, LogLevel::info);
    log->info("hello from {}", rank);
    log->debug("below the level");
    log->flush();
  }
  const std::string r3 = read_text(rank_log_path(dir_.string(), 3));
  EXPECT_NE(r3.find("[r3 tp1 pp1 dp1 ep3] hello from 3"), std::string::npos) << r3;
  EXPECT_EQ(r3.find("below the level"), std::string::npos) << r3;
  EXPECT_EQ(r3.find("hello from 0"), std::string::npos) << r3;
  EXPECT_NE(read_text(rank_log_path(dir_.string(), 0)).find("[r0 tp0 pp0 dp1 ep0] hello from 0"), std::string::npos);
  EXPECT_EQ(rank_log_path("/x", 12), "/x/logs/rank-00012.log");
}

TEST_F(LoggingTest, AppendsAcrossRestartsOfARun) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto log = make_rank_logger(dir_.string(), {1, 0, 0, 0, 0}, LogLevel::debug);
    log->debug("attempt {}", attempt);
    log->flush();
  }
  const std::string text = read_text(rank_log_path(dir_.string(), 1));
  EXPECT_NE(text.find("attempt 0"), std::string::npos);
  EXPECT_NE(text.find("attempt 1"), std::string::npos);
}

TEST_F(LoggingTest, UnwritableRunDirectoryIsAClearError) {
  std::ofstream(dir_ / "logs") << "a file where the logs directory should be";
  try {
    make_rank_logger(dir_.string(), {0, 0, 0, 0, 0}, LogLevel::info);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find((dir_ / "logs").string()), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tessera
