#pragma once
// Replace a file so that a reader (or a requeued job) sees either the old contents or the complete new
// ones, never a torn file: write a temp file in the same directory (rename is only atomic within one
// file system), flush and fsync it, rename it over the target, then fsync the directory so the rename
// itself survives a crash. Any failure removes the temp file and leaves the previous file untouched.

#include <cstdio>
#include <functional>
#include <span>
#include <string>
#include <string_view>

namespace tessera::io {

// `writer` fills the temp file through the FILE*; it may throw to abandon the write. Write errors it
// does not check itself are still caught (ferror after it returns). Errors name `path`.
void write_file_atomically(const std::string& path, const std::function<void(std::FILE*)>& writer);

// fwrite that refuses short writes; `path` names the file being written in the message.
void write_all(std::FILE* file, std::span<const std::byte> bytes, const std::string& path);
void write_all(std::FILE* file, std::string_view text, const std::string& path);

void write_text_file_atomically(const std::string& path, std::string_view text);

}  // namespace tessera::io
