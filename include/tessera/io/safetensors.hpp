#pragma once
// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian header
// length N, N bytes of JSON describing every tensor (dtype, shape, byte range in the data section) plus
// an optional "__metadata__" string map, then the data section. Hugging Face weights, tessera's HF
// import/export and its checkpoint shards all use it.
//
// Reading validates the whole header before any tensor is touched, so a corrupt or truncated download
// fails at open() with the file and tensor named, not later inside a training step. Tensors are read
// with pread against the recorded file size, never through a mapping, so a file truncated under us
// is an error rather than a SIGBUS.

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/core/dtype.hpp"

namespace tessera::io {

struct TensorInfo {
  std::string name;
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range relative to the data section
  int64_t numel() const;        // 1 for a scalar (empty shape)
};

// What a header says once validated: open() keeps it; tests and the fuzzer get it from parse_header.
struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // in header order
  std::map<std::string, std::string> metadata;
  uint64_t data_begin = 0;  // file offset of the data section: 8 + header length
  uint64_t data_size = 0;   // bytes in the data section, exactly covered by the tensors
};

class SafetensorsFile {
 public:
  // Validates everything up front; throws tessera::Error naming the path (and tensor, where one is at fault).
  static SafetensorsFile open(const std::string& path);

  // The same validation on a whole file image held in memory; `path` only labels the messages.
  // open() runs exactly this logic on the file's header, which is what makes fuzzing this meaningful.
  static SafetensorsHeader parse_header(const std::string& path, std::span<const std::byte> file_bytes);

  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }  // in header order
  const TensorInfo* find(std::string_view name) const;                        // nullptr if absent
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }

  // F32/BF16/F16 converted to f32; refuses (naming the tensor) if absent or not a float type.
  std::vector<float> read_f32(std::string_view name) const;
  void read_f32_into(std::string_view name, std::span<float> out) const;  // out.size() must equal numel
  // Elements [first, first + out.size()) of an F32 tensor, in flat row-major order, read straight into out.
  void read_f32_range(std::string_view name, uint64_t first, std::span<float> out) const;
  std::vector<std::byte> read_bytes(std::string_view name) const;       // raw little-endian bytes, any dtype

 private:
  SafetensorsFile(std::string path, int fd, SafetensorsHeader header);
  const TensorInfo& require(std::string_view name) const;
  void pread_exact(std::span<std::byte> out, uint64_t file_offset, const TensorInfo& tensor) const;

  std::string path_;
  int fd_ = -1;
  SafetensorsHeader header_;
  std::map<std::string, size_t, std::less<>> index_;  // name -> position in header_.tensors
};

struct WriteTensor {
  std::string name;
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  std::vector<std::byte> bytes;  // little-endian, row-major, numel * dtype_size bytes
  // Instead of `bytes` (when they are empty): bytes held elsewhere, written without a copy. They must
  // stay alive and unchanged until the write returns.
  std::span<const std::byte> view;

  std::span<const std::byte> data() const { return bytes.empty() ? view : std::span<const std::byte>(bytes); }
};

// stored_as: F32, BF16 (round to nearest even) or F16.
WriteTensor tensor_from_f32(std::string name, std::vector<int64_t> shape, std::span<const float> data,
                            DType stored_as);
// An F32 tensor over `data` without copying it (WriteTensor::view): the caller keeps `data` alive.
WriteTensor tensor_view_f32(std::string name, std::vector<int64_t> shape, std::span<const float> data);
WriteTensor tensor_from_i64(std::string name, std::vector<int64_t> shape, std::span<const int64_t> data);
WriteTensor tensor_from_i32(std::string name, std::vector<int64_t> shape, std::span<const int32_t> data);
WriteTensor tensor_from_u8(std::string name, std::vector<int64_t> shape, std::span<const uint8_t> data);

// Refuses a tensor write_safetensors could not store: reserved or non-UTF-8 name, negative dimension,
// byte count overflow, bytes that disagree with shape x dtype. `path` names the destination in the message.
void check_write_tensor(const std::string& path, const WriteTensor& tensor);

// Tensors are laid out in the given order, contiguously; the header is space-padded to a multiple of
// 8 bytes (as the reference writer does) so the data section starts 8-aligned. Written atomically:
// on any error the previous file at `path` is untouched.
void write_safetensors(const std::string& path, const std::vector<WriteTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});
// The same for tensors held elsewhere (a shard's subset of a model), without copying their bytes.
void write_safetensors(const std::string& path, std::span<const WriteTensor* const> tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace tessera::io
