#include "tessera/core/logging.hpp"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <filesystem>
#include <vector>

#include "tessera/core/error.hpp"

namespace tessera {
namespace {

spdlog::level::level_enum to_spdlog(LogLevel level) {
  switch (level) {
    case LogLevel::debug: return spdlog::level::debug;
    case LogLevel::info: return spdlog::level::info;
    case LogLevel::warn: return spdlog::level::warn;
    case LogLevel::error: return spdlog::level::err;
  }
  return spdlog::level::info;
}

}  // namespace

std::string rank_log_path(const std::string& run_dir, int rank) {
  return (std::filesystem::path(run_dir) / "logs" / fmt::format("rank-{:05d}.log", rank)).string();
}

std::shared_ptr<spdlog::logger> make_rank_logger(const std::string& run_dir, const RankIdentity& who,
                                                 LogLevel level) {
  const std::string path = rank_log_path(run_dir, who.rank);
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  if (ec) TESSERA_FAIL("cannot create log directory {}: {}", std::filesystem::path(path).parent_path().string(),
                       ec.message());
  std::vector<spdlog::sink_ptr> sinks;
  try {
    sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, /*truncate=*/false));
  } catch (const spdlog::spdlog_ex& e) {
    TESSERA_FAIL("cannot open log file {}: {}", path, e.what());
  }
  if (who.rank == 0) sinks.push_back(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  auto logger = std::make_shared<spdlog::logger>(fmt::format("rank{}", who.rank), sinks.begin(), sinks.end());
  // The coordinates are fixed for the life of the process, so they are baked into the pattern.
  logger->set_pattern(fmt::format("[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] [r{} tp{} pp{} dp{} ep{}] %v", who.rank, who.tp,
                                  who.pp, who.dp, who.ep));
  logger->set_level(to_spdlog(level));
  logger->flush_on(spdlog::level::warn);
  return logger;
}

}  // namespace tessera
