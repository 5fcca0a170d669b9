#include "tessera/io/safetensors.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <tuple>
#include <unordered_set>
#include <utility>

#include "tessera/core/error.hpp"
#include "tessera/io/atomic_file.hpp"

namespace tessera::io {

// Tensor bytes go straight between the file and host memory, so the host must share the format's
// byte order. Every platform tessera targets (x86-64, aarch64) is little-endian.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");
static_assert(sizeof(size_t) == sizeof(uint64_t), "file offsets are handled as 64-bit sizes");

namespace {

// The reference implementation's limit (safetensors/src/tensor.rs, MAX_HEADER_SIZE): a longer header
// is a wrong file, and the limit caps what open() allocates before it has parsed anything.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr std::string_view kMetadataKey = "__metadata__";

std::string shape_text(std::span<const int64_t> shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

std::optional<uint64_t> checked_mul(uint64_t a, uint64_t b) {
  uint64_t out = 0;
  if (__builtin_mul_overflow(a, b, &out)) return std::nullopt;
  return out;
}

// Number of elements of a shape whose dimensions are already known non-negative, or nullopt when the
// count (or its size in bytes for `itemsize`) does not fit: such a header could only describe a
// tensor larger than any file, and the arithmetic downstream must never wrap.
std::optional<uint64_t> checked_nbytes(std::span<const int64_t> shape, size_t itemsize) {
  uint64_t numel = 1;
  for (int64_t d : shape) {
    const auto next = checked_mul(numel, static_cast<uint64_t>(d));
    if (!next || *next > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    numel = *next;
  }
  return checked_mul(numel, itemsize);
}

bool is_float(DType t) { return t == DType::f32 || t == DType::bf16 || t == DType::f16; }

std::string errno_text() { return std::strerror(errno); }

// ---------------------------------------------------------------------------------------------------
// Header parsing. A SAX handler rather than nlohmann's DOM: the DOM silently keeps the last of two
// equal keys (a duplicated tensor name would shadow the first), it loses header order, and its
// parse-callback mode rescans the parent object each time a child object closes, which is quadratic
// in the number of tensors. The handler walks the one shape a header may have and refuses the rest
// as it goes, so nothing is built for input that is not a header.

struct RawEntry {
  std::string name;
  std::optional<std::string> dtype;
  std::optional<std::vector<int64_t>> shape;
  std::optional<std::vector<uint64_t>> offsets;
};

class HeaderSax {
 public:
  using json = nlohmann::json;

  explicit HeaderSax(const std::string& path) : path_(path) {}

  std::vector<RawEntry> entries;
  std::map<std::string, std::string> metadata;

  bool null() { return scalar(Scalar{Kind::null}); }
  bool boolean(bool v) { return scalar(Scalar{Kind::boolean, 0, v ? 1 : 0}); }
  bool number_integer(json::number_integer_t v) { return scalar(Scalar{Kind::integer, 0, v}); }
  bool number_unsigned(json::number_unsigned_t v) { return scalar(Scalar{Kind::unsigned_integer, v}); }
  bool number_float(json::number_float_t, const json::string_t& text) {
    return scalar(Scalar{Kind::floating, 0, 0, &text});
  }
  bool string(json::string_t& v) { return scalar(Scalar{Kind::string, 0, 0, &v}); }
  bool binary(json::binary_t&) { return scalar(Scalar{Kind::binary}); }

  bool start_object(std::size_t) { return start(/*object=*/true); }
  bool start_array(std::size_t) { return start(/*object=*/false); }
  bool end_object() { return end(); }
  bool end_array() { return end(); }

  bool key(json::string_t& k) {
    switch (state_) {
      case State::root:
        if (!names_.insert(k).second) {
          if (k == kMetadataKey) TESSERA_FAIL("{}: \"__metadata__\" appears twice in the header", path_);
          TESSERA_FAIL("{}: tensor '{}' appears twice in the header", path_, k);
        }
        key_ = k;
        return true;
      case State::metadata:
        TESSERA_CHECK(!metadata.contains(k), "{}: \"__metadata__\" key '{}' appears twice", path_, k);
        metadata_key_ = k;
        return true;
      case State::entry: {
        field_ = k == "dtype" ? Field::dtype
                 : k == "shape" ? Field::shape
                 : k == "data_offsets" ? Field::offsets
                                       : Field::other;  // ignored, as the reference reader does
        if (field_ == Field::other) return true;
        const unsigned bit = 1u << static_cast<unsigned>(field_);
        TESSERA_CHECK(!(fields_seen_ & bit), "{}: tensor '{}': field '{}' appears twice", path_, entry().name, k);
        fields_seen_ |= bit;
        return true;
      }
      default: return true;  // keys inside skipped values
    }
  }

  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& ex) {
    std::string_view what = ex.what();
    // nlohmann prefixes "[json.exception.parse_error.101] "; the user needs the sentence after it.
    if (const auto close = what.find("] "); what.starts_with("[json.exception") && close != what.npos)
      what.remove_prefix(close + 2);
    // Its "last read" quotes raw input bytes; escape them so the message stays printable UTF-8 in any log.
    std::string printable;
    for (const char c : what) {
      const auto byte = static_cast<unsigned char>(c);
      if (byte < 0x20 || byte >= 0x7f)
        printable += fmt::format("\\x{:02x}", byte);
      else
        printable += c;
    }
    TESSERA_FAIL("{}: header is not valid JSON (near byte {} of the header): {}", path_, position, printable);
  }

 private:
  enum class State { start, root, metadata, entry, list, skip, end };
  enum class Field : unsigned { dtype, shape, offsets, other };
  enum class Kind { null, boolean, integer, unsigned_integer, floating, string, binary };

  struct Scalar {
    Kind kind;
    uint64_t u = 0;
    int64_t i = 0;
    const std::string* s = nullptr;  // the string, or a float's text as written

    std::string describe() const {
      switch (kind) {
        case Kind::null: return "null";
        case Kind::boolean: return i ? "true" : "false";
        case Kind::integer: return std::to_string(i);
        case Kind::unsigned_integer: return std::to_string(u);
        case Kind::floating: return *s;
        case Kind::string:
          return s->size() <= 40 ? fmt::format("the string \"{}\"", *s)
                                 : fmt::format("a string of {} bytes", s->size());
        case Kind::binary: return "binary data";
      }
      return "a value";
    }
  };

  RawEntry& entry() { return entries.back(); }

  std::string_view field_name() const {
    return field_ == Field::dtype ? "dtype" : field_ == Field::shape ? "shape" : "data_offsets";
  }
  std::string_view list_rule() const {
    return field_ == Field::shape ? "a list of non-negative integers" : "two non-negative integers [begin, end]";
  }

  bool scalar(const Scalar& v) {
    switch (state_) {
      case State::start: TESSERA_FAIL("{}: header is not a JSON object (it is {})", path_, v.describe());
      case State::root:
        if (key_ == kMetadataKey) {
          if (v.kind == Kind::null) return true;  // the reference reader takes null as "no metadata"
          TESSERA_FAIL("{}: \"__metadata__\" must be an object of strings, got {}", path_, v.describe());
        }
        TESSERA_FAIL("{}: tensor '{}': entry must be an object with dtype, shape and data_offsets, got {}",
                     path_, key_, v.describe());
      case State::metadata:
        TESSERA_CHECK(v.kind == Kind::string, "{}: \"__metadata__\" value for '{}' must be a string, got {}",
                      path_, metadata_key_, v.describe());
        metadata.emplace(metadata_key_, *v.s);
        return true;
      case State::entry:
        if (field_ == Field::other) return true;
        if (field_ == Field::dtype) {
          TESSERA_CHECK(v.kind == Kind::string, "{}: tensor '{}': dtype must be a string, got {}", path_,
                        entry().name, v.describe());
          entry().dtype = *v.s;
          return true;
        }
        TESSERA_FAIL("{}: tensor '{}': {} must be {}, got {}", path_, entry().name, field_name(), list_rule(),
                     v.describe());
      case State::list:
        if (v.kind == Kind::unsigned_integer || (v.kind == Kind::integer && v.i >= 0)) {
          const uint64_t value = v.kind == Kind::integer ? static_cast<uint64_t>(v.i) : v.u;
          if (field_ == Field::shape) {
            TESSERA_CHECK(value <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
                          "{}: tensor '{}': shape dimension {} is too large", path_, entry().name, value);
            entry().shape->push_back(static_cast<int64_t>(value));
          } else {
            entry().offsets->push_back(value);
          }
          return true;
        }
        TESSERA_FAIL("{}: tensor '{}': {} must be {}, got {} in the list", path_, entry().name, field_name(),
                     list_rule(), v.describe());
      case State::skip:
      case State::end: return true;
    }
    return true;
  }

  bool start(bool object) {
    const std::string_view kind = object ? "an object" : "a list";
    switch (state_) {
      case State::start:
        TESSERA_CHECK(object, "{}: header is not a JSON object (it is a list)", path_);
        state_ = State::root;
        return true;
      case State::root:
        if (key_ == kMetadataKey) {
          TESSERA_CHECK(object, "{}: \"__metadata__\" must be an object of strings, got a list", path_);
          state_ = State::metadata;
          return true;
        }
        TESSERA_CHECK(object, "{}: tensor '{}': entry must be an object with dtype, shape and data_offsets, got {}",
                      path_, key_, kind);
        entries.push_back(RawEntry{key_, {}, {}, {}});
        fields_seen_ = 0;
        state_ = State::entry;
        return true;
      case State::metadata:
        TESSERA_FAIL("{}: \"__metadata__\" value for '{}' must be a string, got {}", path_, metadata_key_, kind);
      case State::entry:
        if (field_ == Field::other) {
          state_ = State::skip;
          skip_depth_ = 1;
          return true;
        }
        if (field_ == Field::dtype)
          TESSERA_FAIL("{}: tensor '{}': dtype must be a string, got {}", path_, entry().name, kind);
        TESSERA_CHECK(!object, "{}: tensor '{}': {} must be {}, got {}", path_, entry().name, field_name(),
                      list_rule(), kind);
        if (field_ == Field::shape)
          entry().shape.emplace();
        else
          entry().offsets.emplace();
        state_ = State::list;
        return true;
      case State::list:
        TESSERA_FAIL("{}: tensor '{}': {} must be {}, got {} in the list", path_, entry().name, field_name(),
                     list_rule(), kind);
      case State::skip: ++skip_depth_; return true;
      case State::end: return true;
    }
    return true;
  }

  bool end() {
    switch (state_) {
      case State::root: state_ = State::end; break;
      case State::metadata:
      case State::entry: state_ = State::root; break;
      case State::list: state_ = State::entry; break;
      case State::skip:
        if (--skip_depth_ == 0) state_ = State::entry;
        break;
      case State::start:
      case State::end: break;
    }
    return true;
  }

  const std::string& path_;
  State state_ = State::start;
  std::string key_;           // current top-level key
  std::string metadata_key_;  // current key inside __metadata__
  Field field_ = Field::other;
  unsigned fields_seen_ = 0;
  uint64_t skip_depth_ = 0;
  std::unordered_set<std::string> names_;
};

void check_header_length(const std::string& path, uint64_t header_length, uint64_t file_size) {
  TESSERA_CHECK(header_length != 0, "{}: header length is 0 (not a safetensors file?)", path);
  TESSERA_CHECK(header_length <= kMaxHeaderBytes,
                "{}: header length {} exceeds the 100 MB limit (not a safetensors file?)", path, header_length);
  TESSERA_CHECK(header_length <= file_size - 8,
                "{}: header length {} runs past the end of the file of {} bytes (truncated file?)", path,
                header_length, file_size);
}

uint64_t decode_header_length(std::span<const std::byte, 8> bytes) {
  uint64_t n = 0;
  for (size_t i = 0; i < 8; ++i) n |= static_cast<uint64_t>(bytes[i]) << (8 * i);
  return n;
}

// Everything the header claims, checked against the data section that follows it.
SafetensorsHeader validate_header(const std::string& path, std::string_view json, uint64_t data_size) {
  HeaderSax sax(path);
  try {
    nlohmann::json::sax_parse(json.begin(), json.end(), &sax);
  } catch (const nlohmann::json::exception& e) {  // parse errors reach HeaderSax::parse_error; this is the rest
    TESSERA_FAIL("{}: header is not valid JSON: {}", path, e.what());
  }

  SafetensorsHeader header;
  header.metadata = std::move(sax.metadata);
  header.data_size = data_size;
  header.tensors.reserve(sax.entries.size());
  for (RawEntry& raw : sax.entries) {
    const std::string& name = raw.name;
    TESSERA_CHECK(raw.dtype.has_value(), "{}: tensor '{}': missing dtype", path, name);
    TESSERA_CHECK(raw.shape.has_value(), "{}: tensor '{}': missing shape", path, name);
    TESSERA_CHECK(raw.offsets.has_value(), "{}: tensor '{}': missing data_offsets", path, name);
    const std::optional<DType> dtype = dtype_from_name(*raw.dtype);
    TESSERA_CHECK(dtype.has_value(), "{}: tensor '{}': unknown dtype '{}' (tessera reads F32, BF16, F16, I64, I32, U8)",
                  path, name, *raw.dtype);
    const std::vector<int64_t>& shape = *raw.shape;
    const std::optional<uint64_t> nbytes = checked_nbytes(shape, dtype_size(*dtype));
    TESSERA_CHECK(nbytes.has_value(), "{}: tensor '{}': shape {} of {} is too large to address (size overflows)",
                  path, name, shape_text(shape), *raw.dtype);
    const std::vector<uint64_t>& offsets = *raw.offsets;
    TESSERA_CHECK(offsets.size() == 2, "{}: tensor '{}': data_offsets must be two integers [begin, end], got {}",
                  path, name, offsets.size());
    const uint64_t begin = offsets[0], end = offsets[1];
    TESSERA_CHECK(begin <= end, "{}: tensor '{}': data_offsets [{}, {}] end before they begin", path, name, begin,
                  end);
    TESSERA_CHECK(end - begin == *nbytes,
                  "{}: tensor '{}': data_offsets [{}, {}] hold {} bytes but shape {} of {} needs {}", path, name,
                  begin, end, end - begin, shape_text(shape), *raw.dtype, *nbytes);
    TESSERA_CHECK(end <= data_size,
                  "{}: tensor '{}': data_offsets [{}, {}] run past the data section of {} bytes (truncated file?)",
                  path, name, begin, end, data_size);
    header.tensors.push_back(TensorInfo{std::move(raw.name), *dtype, std::move(*raw.shape), begin, end});
  }

  // The byte buffer must be covered exactly: no overlaps, no holes, nothing after the last tensor.
  // This is what the reference reader enforces (huggingface/safetensors, safetensors/src/tensor.rs:
  // Metadata's Deserialize sorts the tensors by data_offsets, Metadata::validate requires each one to
  // start where the previous ended (InvalidOffset), and read_metadata requires the last end to be the
  // end of the file (MetadataIncompleteBuffer)). Files it would refuse, we refuse.
  std::vector<size_t> order(header.tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const TensorInfo &x = header.tensors[a], &y = header.tensors[b];
    return std::tie(x.begin, x.end) < std::tie(y.begin, y.end);
  });
  uint64_t covered = 0;
  const TensorInfo* previous = nullptr;
  for (size_t i : order) {
    const TensorInfo& t = header.tensors[i];
    if (t.begin < covered)
      TESSERA_FAIL("{}: tensor '{}': bytes [{}, {}) overlap tensor '{}' at [{}, {})", path, t.name, t.begin, t.end,
                   previous->name, previous->begin, previous->end);
    if (t.begin > covered)
      TESSERA_FAIL("{}: data section bytes [{}, {}) before tensor '{}' belong to no tensor", path, covered,
                   t.begin, t.name);
    covered = t.end;
    previous = &t;
  }
  if (covered != data_size) {
    if (previous == nullptr)
      TESSERA_FAIL("{}: header lists no tensors but {} data bytes follow it", path, data_size);
    TESSERA_FAIL("{}: data section has {} bytes after the last tensor '{}' ends at {}, belonging to no tensor", path,
                 data_size - covered, previous->name, covered);
  }
  return header;
}

// ---------------------------------------------------------------------------------------------------

void pread_all(int fd, std::span<std::byte> out, uint64_t offset, const std::string& path, std::string_view what) {
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    TESSERA_CHECK(n >= 0, "{}: cannot read {}: {}", path, what, errno_text());
    TESSERA_CHECK(n > 0, "{}: file ended while reading {} (was it truncated after opening?)", path, what);
    done += static_cast<size_t>(n);
  }
}

// Closes the descriptor unless ownership moved on (open() hands it to the SafetensorsFile at the end).
struct FdGuard {
  int fd;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

int64_t TensorInfo::numel() const {
  return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
}

SafetensorsHeader SafetensorsFile::parse_header(const std::string& path, std::span<const std::byte> file_bytes) {
  TESSERA_CHECK(file_bytes.size() >= 8, "{}: file is {} bytes, too short for a safetensors header (needs 8+)", path,
                file_bytes.size());
  const uint64_t n = decode_header_length(file_bytes.first<8>());
  check_header_length(path, n, file_bytes.size());
  const auto json = file_bytes.subspan(8, n);
  SafetensorsHeader header = validate_header(
      path, std::string_view(reinterpret_cast<const char*>(json.data()), json.size()), file_bytes.size() - 8 - n);
  header.data_begin = 8 + n;
  return header;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  FdGuard guard{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  TESSERA_CHECK(guard.fd >= 0, "{}: cannot open: {}", path, errno_text());
  struct stat st {};
  TESSERA_CHECK(::fstat(guard.fd, &st) == 0, "{}: cannot stat: {}", path, errno_text());
  TESSERA_CHECK(S_ISREG(st.st_mode), "{}: not a regular file", path);
  TESSERA_CHECK(st.st_size >= 0, "{}: file reports a negative size", path);
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  TESSERA_CHECK(file_size >= 8, "{}: file is {} bytes, too short for a safetensors header (needs 8+)", path,
                file_size);

  std::array<std::byte, 8> prefix{};
  pread_all(guard.fd, prefix, 0, path, "the header length");
  const uint64_t n = decode_header_length(prefix);
  check_header_length(path, n, file_size);  // bounds the allocation below by the file and 100 MB
  std::string json(n, '\0');
  pread_all(guard.fd, std::as_writable_bytes(std::span<char>(json)), 8, path, "the header");

  SafetensorsHeader header = validate_header(path, json, file_size - 8 - n);
  header.data_begin = 8 + n;
  const int fd = guard.fd;
  guard.fd = -1;
  return SafetensorsFile(path, fd, std::move(header));
}

SafetensorsFile::SafetensorsFile(std::string path, int fd, SafetensorsHeader header)
    : path_(std::move(path)), fd_(fd), header_(std::move(header)) {
  for (size_t i = 0; i < header_.tensors.size(); ++i) index_.emplace(header_.tensors[i].name, i);
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& other) noexcept
    : path_(std::move(other.path_)),
      fd_(std::exchange(other.fd_, -1)),
      header_(std::move(other.header_)),
      index_(std::move(other.index_)) {}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
    header_ = std::move(other.header_);
    index_ = std::move(other.index_);
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() {
  if (fd_ >= 0) ::close(fd_);  // read-only: nothing to lose if close reports an error
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

const TensorInfo& SafetensorsFile::require(std::string_view name) const {
  const TensorInfo* t = find(name);
  TESSERA_CHECK(t != nullptr, "{}: no tensor '{}' in this file ({} tensors)", path_, name, header_.tensors.size());
  return *t;
}

void SafetensorsFile::pread_exact(std::span<std::byte> out, uint64_t file_offset, const TensorInfo& tensor) const {
  pread_all(fd_, out, file_offset, path_, fmt::format("tensor '{}'", tensor.name));
}

std::vector<std::byte> SafetensorsFile::read_bytes(std::string_view name) const {
  const TensorInfo& t = require(name);
  std::vector<std::byte> out(t.end - t.begin);  // validated at open: inside the file
  pread_exact(out, header_.data_begin + t.begin, t);
  return out;
}

std::vector<float> SafetensorsFile::read_f32(std::string_view name) const {
  const TensorInfo& t = require(name);
  TESSERA_CHECK(is_float(t.dtype), "{}: tensor '{}' is {}, not a float type (F32, BF16 or F16)", path_, t.name,
                dtype_name(t.dtype));
  std::vector<float> out(static_cast<size_t>(t.numel()));
  read_f32_into(name, out);
  return out;
}

void SafetensorsFile::read_f32_into(std::string_view name, std::span<float> out) const {
  const TensorInfo& t = require(name);
  TESSERA_CHECK(is_float(t.dtype), "{}: tensor '{}' is {}, not a float type (F32, BF16 or F16)", path_, t.name,
                dtype_name(t.dtype));
  const uint64_t numel = static_cast<uint64_t>(t.numel());
  TESSERA_CHECK(out.size() == numel, "{}: tensor '{}' has {} elements ({}) but the destination holds {}", path_,
                t.name, numel, shape_text(t.shape), out.size());
  const uint64_t start = header_.data_begin + t.begin;
  if (t.dtype == DType::f32) {
    pread_exact(std::as_writable_bytes(out), start, t);
    return;
  }
  // 16-bit storage: convert through a bounded buffer rather than a second copy of the whole tensor.
  constexpr size_t kChunk = size_t{1} << 16;
  std::vector<uint16_t> buffer(std::min<uint64_t>(numel, kChunk));
  for (uint64_t done = 0; done < numel;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(numel - done, kChunk));
    pread_exact(std::as_writable_bytes(std::span<uint16_t>(buffer.data(), n)), start + done * 2, t);
    for (size_t i = 0; i < n; ++i)
      out[done + i] = t.dtype == DType::bf16 ? bf16_to_f32(buffer[i]) : f16_to_f32(buffer[i]);
    done += n;
  }
}

void SafetensorsFile::read_f32_range(std::string_view name, uint64_t first, std::span<float> out) const {
  const TensorInfo& t = require(name);
  TESSERA_CHECK(t.dtype == DType::f32, "{}: tensor '{}' is {}, not F32", path_, t.name, dtype_name(t.dtype));
  const auto numel = static_cast<uint64_t>(t.numel());
  TESSERA_CHECK(first <= numel && out.size() <= numel - first, "{}: elements [{}, {}) of tensor '{}' are outside its {}",
                path_, first, first + out.size(), t.name, numel);
  pread_exact(std::as_writable_bytes(out), header_.data_begin + t.begin + first * sizeof(float), t);
}

// ---------------------------------------------------------------------------------------------------
// Writing

namespace {

std::vector<std::byte> checked_size_bytes(const std::string& name, std::span<const int64_t> shape, size_t count,
                                          DType dtype) {
  for (int64_t d : shape)
    TESSERA_CHECK(d >= 0, "tensor '{}': shape {} has a negative dimension", name, shape_text(shape));
  const std::optional<uint64_t> nbytes = checked_nbytes(shape, dtype_size(dtype));
  TESSERA_CHECK(nbytes.has_value(), "tensor '{}': shape {} is too large to address", name, shape_text(shape));
  const uint64_t numel = *nbytes / dtype_size(dtype);
  TESSERA_CHECK(numel == count, "tensor '{}': shape {} has {} elements but {} values were given", name,
                shape_text(shape), numel, count);
  return std::vector<std::byte>(*nbytes);
}

template <typename T>
WriteTensor tensor_from_plain(std::string name, std::vector<int64_t> shape, std::span<const T> data, DType dtype) {
  std::vector<std::byte> bytes = checked_size_bytes(name, shape, data.size(), dtype);
  if (!bytes.empty()) std::memcpy(bytes.data(), data.data(), bytes.size());
  return WriteTensor{std::move(name), dtype, std::move(shape), std::move(bytes), {}};
}

// A JSON string literal; nlohmann refuses bytes that are not UTF-8, which a reader would refuse too.
std::string json_string(const std::string& path, const std::string& text, std::string_view what) {
  try {
    return nlohmann::json(text).dump();
  } catch (const nlohmann::json::exception&) {
    TESSERA_FAIL("{}: {} is not valid UTF-8", path, what);
  }
}

}  // namespace

WriteTensor tensor_from_f32(std::string name, std::vector<int64_t> shape, std::span<const float> data,
                            DType stored_as) {
  TESSERA_CHECK(is_float(stored_as), "tensor '{}': cannot store floats as {} (use F32, BF16 or F16)", name,
                dtype_name(stored_as));
  if (stored_as == DType::f32) return tensor_from_plain(std::move(name), std::move(shape), data, DType::f32);
  std::vector<std::byte> bytes = checked_size_bytes(name, shape, data.size(), stored_as);
  for (size_t i = 0; i < data.size(); ++i) {
    const uint16_t v = stored_as == DType::bf16 ? f32_to_bf16(data[i]) : f32_to_f16(data[i]);
    std::memcpy(bytes.data() + 2 * i, &v, 2);
  }
  return WriteTensor{std::move(name), stored_as, std::move(shape), std::move(bytes), {}};
}

WriteTensor tensor_view_f32(std::string name, std::vector<int64_t> shape, std::span<const float> data) {
  WriteTensor t;
  t.name = std::move(name);
  t.dtype = DType::f32;
  t.shape = std::move(shape);
  t.view = std::as_bytes(data);
  return t;
}

WriteTensor tensor_from_i64(std::string name, std::vector<int64_t> shape, std::span<const int64_t> data) {
  return tensor_from_plain(std::move(name), std::move(shape), data, DType::i64);
}

WriteTensor tensor_from_i32(std::string name, std::vector<int64_t> shape, std::span<const int32_t> data) {
  return tensor_from_plain(std::move(name), std::move(shape), data, DType::i32);
}

WriteTensor tensor_from_u8(std::string name, std::vector<int64_t> shape, std::span<const uint8_t> data) {
  return tensor_from_plain(std::move(name), std::move(shape), data, DType::u8);
}

void check_write_tensor(const std::string& path, const WriteTensor& t) {
  TESSERA_CHECK(!t.name.empty(), "{}: a tensor has an empty name", path);
  TESSERA_CHECK(t.name != kMetadataKey, "{}: \"__metadata__\" is reserved and cannot name a tensor", path);
  json_string(path, t.name, fmt::format("tensor name '{}'", t.name));
  for (int64_t d : t.shape)
    TESSERA_CHECK(d >= 0, "{}: tensor '{}': shape {} has a negative dimension", path, t.name, shape_text(t.shape));
  const std::optional<uint64_t> nbytes = checked_nbytes(t.shape, dtype_size(t.dtype));
  TESSERA_CHECK(nbytes.has_value(), "{}: tensor '{}': shape {} is too large to address", path, t.name,
                shape_text(t.shape));
  TESSERA_CHECK(t.data().size() == *nbytes, "{}: tensor '{}': {} bytes given but shape {} of {} needs {}", path,
                t.name, t.data().size(), shape_text(t.shape), dtype_name(t.dtype), *nbytes);
}

void write_safetensors(const std::string& path, const std::vector<WriteTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<const WriteTensor*> pointers;
  pointers.reserve(tensors.size());
  for (const WriteTensor& t : tensors) pointers.push_back(&t);
  write_safetensors(path, pointers, metadata);
}

void write_safetensors(const std::string& path, std::span<const WriteTensor* const> tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::unordered_set<std::string_view> names;
  for (const WriteTensor* tp : tensors) {
    TESSERA_CHECK(tp != nullptr, "{}: null tensor given to write", path);
    const WriteTensor& t = *tp;
    check_write_tensor(path, t);
    TESSERA_CHECK(names.insert(t.name).second, "{}: tensor '{}' is given twice", path, t.name);
  }

  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [key, value] : metadata) {
      if (!std::exchange(first, false)) header += ',';
      header += json_string(path, key, fmt::format("__metadata__ key '{}'", key));
      header += ':';
      header += json_string(path, value, fmt::format("__metadata__ value for '{}'", key));
    }
    header += '}';
  }
  uint64_t offset = 0;
  for (const WriteTensor* tp : tensors) {
    const WriteTensor& t = *tp;
    if (header.size() > 1) header += ',';
    header += json_string(path, t.name, fmt::format("tensor name '{}'", t.name));
    header += fmt::format(":{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}", dtype_name(t.dtype),
                          fmt::join(t.shape, ","), offset, offset + t.data().size());
    offset += t.data().size();
  }
  header += '}';
  header.append((8 - header.size() % 8) % 8, ' ');
  TESSERA_CHECK(header.size() <= kMaxHeaderBytes,
                "{}: header of {} bytes ({} tensors) exceeds the 100 MB readers accept; split into shards", path,
                header.size(), tensors.size());

  write_file_atomically(path, [&](std::FILE* f) {
    std::array<std::byte, 8> length{};
    for (size_t i = 0; i < 8; ++i) length[i] = static_cast<std::byte>((header.size() >> (8 * i)) & 0xffu);
    write_all(f, length, path);
    write_all(f, header, path);
    for (const WriteTensor* t : tensors) write_all(f, t->data(), path);
  });
}

}  // namespace tessera::io
