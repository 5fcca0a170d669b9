#include "tessera/io/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

#include "tessera/core/error.hpp"

namespace tessera::io {
namespace {

std::string errno_text() { return std::strerror(errno); }

std::string directory_of(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

// The temp file until it is renamed: removed on every path out that does not commit it, so a failed
// or abandoned write leaves nothing behind.
class TempFile {
 public:
  explicit TempFile(const std::string& target) : target_(target) {
    const std::filesystem::path p(target);
    TESSERA_CHECK(!p.filename().empty(), "{}: cannot write a file at a directory path", target);
    // Hidden, unique per process and attempt; O_EXCL makes a collision a retry rather than a clobber.
    // The name is not a security boundary, only a uniqueness one, so random_device is plenty.
    std::random_device random;
    for (int attempt = 0; attempt < 16 && fd_ < 0; ++attempt) {
      const std::string name = fmt::format(".{}.tmp-{}-{:08x}", p.filename().string(), ::getpid(), random());
      path_ = (p.parent_path() / name).string();
      fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);  // umask applies
      if (fd_ < 0 && errno != EEXIST)
        TESSERA_FAIL("{}: cannot create temp file {} to write it: {}", target, path_, errno_text());
    }
    TESSERA_CHECK(fd_ >= 0, "{}: cannot find an unused temp file name next to it", target);
    file_ = ::fdopen(fd_, "wb");
    if (file_ == nullptr) {
      const std::string why = errno_text();
      ::close(fd_);
      ::unlink(path_.c_str());
      TESSERA_FAIL("{}: cannot open temp file {} for writing: {}", target, path_, why);
    }
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (file_ != nullptr) std::fclose(file_);
    if (!renamed_) ::unlink(path_.c_str());
  }

  std::FILE* file() const { return file_; }

  // Everything written reaches the disk before the rename publishes it; otherwise a crash could
  // publish a name pointing at a file whose blocks were never written.
  void flush_and_close() {
    TESSERA_CHECK(!std::ferror(file_), "{}: write error while writing temp file {}", target_, path_);
    TESSERA_CHECK(std::fflush(file_) == 0, "{}: cannot flush temp file {}: {}", target_, path_, errno_text());
    TESSERA_CHECK(::fsync(::fileno(file_)) == 0, "{}: cannot fsync temp file {}: {}", target_, path_,
                  errno_text());
    std::FILE* f = file_;
    file_ = nullptr;
    TESSERA_CHECK(std::fclose(f) == 0, "{}: cannot close temp file {}: {}", target_, path_, errno_text());
  }

  void rename_over_target() {
    TESSERA_CHECK(::rename(path_.c_str(), target_.c_str()) == 0, "{}: cannot rename temp file {} over it: {}",
                  target_, path_, errno_text());
    renamed_ = true;
  }

 private:
  std::string target_;
  std::string path_;
  int fd_ = -1;
  std::FILE* file_ = nullptr;
  bool renamed_ = false;
};

void fsync_directory(const std::string& dir, const std::string& target) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  TESSERA_CHECK(fd >= 0, "{}: cannot open its directory {} to fsync the rename: {}", target, dir, errno_text());
  const int rc = ::fsync(fd);
  const std::string why = rc == 0 ? std::string() : errno_text();
  ::close(fd);
  TESSERA_CHECK(rc == 0, "{}: cannot fsync its directory {} after the rename: {}", target, dir, why);
}

}  // namespace

void write_file_atomically(const std::string& path, const std::function<void(std::FILE*)>& writer) {
  TempFile temp(path);
  writer(temp.file());  // an exception here unwinds through ~TempFile, which removes the temp file
  temp.flush_and_close();
  temp.rename_over_target();
  fsync_directory(directory_of(path), path);
}

void write_all(std::FILE* file, std::span<const std::byte> bytes, const std::string& path) {
  if (bytes.empty()) return;
  const size_t written = std::fwrite(bytes.data(), 1, bytes.size(), file);
  TESSERA_CHECK(written == bytes.size(), "{}: write failed after {} of {} bytes: {}", path, written, bytes.size(),
                errno_text());
}

void write_all(std::FILE* file, std::string_view text, const std::string& path) {
  write_all(file, std::as_bytes(std::span<const char>(text.data(), text.size())), path);
}

void write_text_file_atomically(const std::string& path, std::string_view text) {
  write_file_atomically(path, [&](std::FILE* f) { write_all(f, text, path); });
}

}  // namespace tessera::io
