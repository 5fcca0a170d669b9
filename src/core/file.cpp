#include "tessera/core/file.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "tessera/core/error.hpp"

namespace tessera {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) TESSERA_FAIL("{}: cannot open: {}", path, std::strerror(errno));
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad()) TESSERA_FAIL("{}: read error: {}", path, std::strerror(errno));
  return bytes.str();
}

}  // namespace tessera
