#pragma once
// Whole-file reads with errors that name the path and the OS reason.

#include <string>

namespace tessera {

// The bytes of `path`; throws tessera::Error "<path>: cannot open: <reason>" or "<path>: read error: …".
std::string read_file(const std::string& path);

}  // namespace tessera
