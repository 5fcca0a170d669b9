// HDF5 format v1 reader (docs/data-format.md). open() reads every offset array (a few bytes per row,
// sample and vision item) and checks them against each other and against the payload sizes, so that
// row() can trust them: a damaged or foreign file is refused once, by name, instead of yielding rows
// that point outside the data. Payloads (tokens, labels, position ids, patches) are read per row.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>

#include "hdf5_check.hpp"
#include "tessera/core/error.hpp"
#include "tessera/data/packed_dataset.hpp"

namespace tessera::data {

namespace {

namespace pf = packed_format;
using h5::Handle;

bool has_attribute(hid_t file, const std::string& path, const char* name) {
  return TESSERA_H5_CHECK(H5Aexists(file, name), "{}: attribute {}", path, name) > 0;
}

Handle open_attribute(hid_t file, const std::string& path, const char* name) {
  TESSERA_CHECK(has_attribute(file, path, name), "{}: attribute {} is missing (not a tessera packed-data file?)", path,
                name);
  Handle attr(TESSERA_H5_CHECK(H5Aopen(file, name, H5P_DEFAULT), "{}: attribute {}", path, name), H5Aclose);
  Handle space(TESSERA_H5_CHECK(H5Aget_space(attr.get()), "{}: attribute {}", path, name), H5Sclose);
  TESSERA_CHECK(TESSERA_H5_CHECK(H5Sget_simple_extent_type(space.get()), "{}: attribute {}", path, name) == H5S_SCALAR,
                "{}: attribute {} is not a scalar", path, name);
  return attr;
}

H5T_class_t attribute_class(hid_t attr, const std::string& path, const char* name) {
  Handle type(TESSERA_H5_CHECK(H5Aget_type(attr), "{}: attribute {}", path, name), H5Tclose);
  return TESSERA_H5_CHECK(H5Tget_class(type.get()), "{}: attribute {}", path, name);
}

int64_t read_int_attribute(hid_t file, const std::string& path, const char* name) {
  Handle attr = open_attribute(file, path, name);
  TESSERA_CHECK(attribute_class(attr.get(), path, name) == H5T_INTEGER, "{}: attribute {} is not an integer", path,
                name);
  int64_t value = 0;
  TESSERA_H5_CHECK(H5Aread(attr.get(), H5T_NATIVE_INT64, &value), "{}: cannot read attribute {}", path, name);
  return value;
}

double read_double_attribute(hid_t file, const std::string& path, const char* name) {
  Handle attr = open_attribute(file, path, name);
  TESSERA_CHECK(attribute_class(attr.get(), path, name) == H5T_FLOAT, "{}: attribute {} is not a float", path, name);
  double value = 0;
  TESSERA_H5_CHECK(H5Aread(attr.get(), H5T_NATIVE_DOUBLE, &value), "{}: cannot read attribute {}", path, name);
  return value;
}

// Fixed-length strings as the writer makes them; a variable-length one (what h5py writes for a Python
// str, e.g. after someone edited an attribute) is read too.
std::string read_string_attribute(hid_t file, const std::string& path, const char* name) {
  Handle attr = open_attribute(file, path, name);
  Handle type(TESSERA_H5_CHECK(H5Aget_type(attr.get()), "{}: attribute {}", path, name), H5Tclose);
  TESSERA_CHECK(TESSERA_H5_CHECK(H5Tget_class(type.get()), "{}: attribute {}", path, name) == H5T_STRING,
                "{}: attribute {} is not a string", path, name);
  if (TESSERA_H5_CHECK(H5Tis_variable_str(type.get()), "{}: attribute {}", path, name) > 0) {
    Handle mem(TESSERA_H5_CHECK(H5Tcopy(H5T_C_S1), "{}: attribute {}", path, name), H5Tclose);
    TESSERA_H5_CHECK(H5Tset_size(mem.get(), H5T_VARIABLE), "{}: attribute {}", path, name);
    char* value = nullptr;
    TESSERA_H5_CHECK(H5Aread(attr.get(), mem.get(), &value), "{}: cannot read attribute {}", path, name);
    std::string out = value != nullptr ? std::string(value) : std::string();
    H5free_memory(value);
    return out;
  }
  const size_t size = H5Tget_size(type.get());
  TESSERA_CHECK(size > 0, "{}: attribute {}: string of size 0", path, name);
  std::string out(size, '\0');
  TESSERA_H5_CHECK(H5Aread(attr.get(), type.get(), out.data()), "{}: cannot read attribute {}", path, name);
  out.resize(std::strlen(out.c_str()));  // null padded or null terminated: the value ends at the first null
  return out;
}

struct DatasetSpec {
  const char* name;
  size_t element_size;
  H5T_sign_t sign;
  int rank;
};

// Opens a dataset and checks its element type and rank; returns it with its dimensions.
Handle open_dataset(hid_t file, const std::string& path, const DatasetSpec& spec, std::vector<hsize_t>& dims) {
  const htri_t exists = TESSERA_H5_CHECK(H5Lexists(file, spec.name, H5P_DEFAULT), "{}: dataset {}", path, spec.name);
  TESSERA_CHECK(exists > 0, "{}: dataset {} is missing (format v1 requires it)", path, spec.name);
  Handle dataset(TESSERA_H5_CHECK(H5Dopen2(file, spec.name, H5P_DEFAULT), "{}: cannot open dataset {}", path, spec.name),
                 H5Dclose);
  Handle type(TESSERA_H5_CHECK(H5Dget_type(dataset.get()), "{}: dataset {}", path, spec.name), H5Tclose);
  const H5T_class_t type_class = TESSERA_H5_CHECK(H5Tget_class(type.get()), "{}: dataset {}", path, spec.name);
  const size_t size = H5Tget_size(type.get());
  const H5T_sign_t sign = type_class == H5T_INTEGER ? H5Tget_sign(type.get()) : H5T_SGN_ERROR;
  TESSERA_CHECK(type_class == H5T_INTEGER && size == spec.element_size && sign == spec.sign,
                "{}: dataset {} has the wrong element type (expected {} {}-bit integers)", path, spec.name,
                spec.sign == H5T_SGN_2 ? "signed" : "unsigned", 8 * spec.element_size);
  Handle space(TESSERA_H5_CHECK(H5Dget_space(dataset.get()), "{}: dataset {}", path, spec.name), H5Sclose);
  const int rank = TESSERA_H5_CHECK(H5Sget_simple_extent_ndims(space.get()), "{}: dataset {}", path, spec.name);
  TESSERA_CHECK(rank == spec.rank, "{}: dataset {} has rank {}, expected {}", path, spec.name, rank, spec.rank);
  dims.assign(static_cast<size_t>(rank), 0);
  TESSERA_H5_CHECK(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr), "{}: dataset {}", path, spec.name);
  return dataset;
}

template <typename T>
hid_t native_type() {
  if constexpr (std::is_same_v<T, int32_t>) return H5T_NATIVE_INT32;
  if constexpr (std::is_same_v<T, int64_t>) return H5T_NATIVE_INT64;
  if constexpr (std::is_same_v<T, uint64_t>) return H5T_NATIVE_UINT64;
  if constexpr (std::is_same_v<T, uint16_t>) return H5T_NATIVE_UINT16;
  if constexpr (std::is_same_v<T, uint8_t>) return H5T_NATIVE_UINT8;
}

// Reads rows [begin, begin + count) of a dataset of `width` values per row into `out`.
template <typename T>
void read_rows(hid_t dataset, const std::string& path, const char* name, uint64_t begin, uint64_t count, uint64_t width,
               int rank, T* out) {
  if (count == 0) return;
  Handle file_space(TESSERA_H5_CHECK(H5Dget_space(dataset), "{}: dataset {}", path, name), H5Sclose);
  const hsize_t start[2] = {begin, 0};
  const hsize_t counts[2] = {count, width};
  TESSERA_H5_CHECK(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, counts, nullptr),
                   "{}: dataset {}: select [{}, {})", path, name, begin, begin + count);
  Handle mem_space(TESSERA_H5_CHECK(H5Screate_simple(rank, counts, nullptr), "{}: dataset {}", path, name), H5Sclose);
  TESSERA_H5_CHECK(H5Dread(dataset, native_type<T>(), mem_space.get(), file_space.get(), H5P_DEFAULT, out),
                   "{}: dataset {}: cannot read [{}, {})", path, name, begin, begin + count);
}

template <typename T>
std::vector<T> read_all(hid_t file, const std::string& path, const DatasetSpec& spec, std::vector<hsize_t>& dims) {
  Handle dataset = open_dataset(file, path, spec, dims);
  uint64_t count = 1;
  for (hsize_t d : dims) count *= d;
  std::vector<T> out(count);
  read_rows(dataset.get(), path, spec.name, 0, dims.empty() ? 0 : dims[0], dims.size() > 1 ? dims[1] : 1, spec.rank,
            out.data());
  return out;
}

// An offsets array: size n + 1, starting at 0, non-decreasing (strictly when every span must be non-empty),
// ending at `total`.
void check_offsets(const std::vector<int64_t>& offsets, const std::string& path, const char* name, int64_t total,
                   const char* of_what, bool non_empty_spans) {
  TESSERA_CHECK(!offsets.empty() && offsets.front() == 0, "{}: dataset {} must start with 0", path, name);
  for (size_t i = 1; i < offsets.size(); ++i) {
    const bool ok = non_empty_spans ? offsets[i] > offsets[i - 1] : offsets[i] >= offsets[i - 1];
    TESSERA_CHECK(ok, "{}: dataset {}: entry {} ({}) is {} entry {} ({})", path, name, i, offsets[i],
                  non_empty_spans ? "not above" : "below", i - 1, offsets[i - 1]);
  }
  TESSERA_CHECK(offsets.back() == total, "{}: dataset {} ends at {}, but there are {} {}", path, name, offsets.back(),
                total, of_what);
}

// The OR of all bytes of `values`, folded into one 64-bit word (whose byte lanes keep the element
// boundaries of 1-, 2- and 4-byte types): eight bytes per step, where a per-element loop would take one.
template <typename T>
uint64_t or_of_words(const std::vector<T>& values) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(values.data());
  const size_t n = values.size() * sizeof(T);
  uint64_t acc = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t word = 0;
    std::memcpy(&word, bytes + i, 8);
    acc |= word;
  }
  unsigned char tail[8] = {};
  if (n > i) std::memcpy(tail, bytes + i, n - i);
  uint64_t word = 0;
  std::memcpy(&word, tail, 8);
  return acc | word;
}

constexpr DatasetSpec kTokens{pf::kTokens, 4, H5T_SGN_2, 1};
constexpr DatasetSpec kLabels{pf::kLabels, 1, H5T_SGN_NONE, 1};
constexpr DatasetSpec kPositionIds{pf::kPositionIds, 4, H5T_SGN_2, 1};
constexpr DatasetSpec kRowOffsets{pf::kRowOffsets, 8, H5T_SGN_2, 1};
constexpr DatasetSpec kSampleOffsets{pf::kSampleOffsets, 8, H5T_SGN_2, 1};
constexpr DatasetSpec kRowSampleOffsets{pf::kRowSampleOffsets, 8, H5T_SGN_2, 1};
constexpr DatasetSpec kSampleSourceIndex{pf::kSampleSourceIndex, 8, H5T_SGN_NONE, 1};
constexpr DatasetSpec kVisionPatches{pf::kVisionPatches, 2, H5T_SGN_NONE, 2};
constexpr DatasetSpec kVisionGridThw{pf::kVisionGridThw, 8, H5T_SGN_2, 2};
constexpr DatasetSpec kVisionPatchOffsets{pf::kVisionPatchOffsets, 8, H5T_SGN_2, 1};
constexpr DatasetSpec kVisionTokenOffsets{pf::kVisionTokenOffsets, 8, H5T_SGN_2, 1};
constexpr DatasetSpec kVisionTokenCounts{pf::kVisionTokenCounts, 8, H5T_SGN_2, 1};
constexpr DatasetSpec kVisionIsVideo{pf::kVisionIsVideo, 1, H5T_SGN_NONE, 1};
constexpr DatasetSpec kRowVisionOffsets{pf::kRowVisionOffsets, 8, H5T_SGN_2, 1};

}  // namespace

struct PackedDataset::Impl {
  std::string path;
  PackedDatasetInfo info;
  Handle file;  // declared first: closed after the datasets
  Handle tokens, labels, position_ids, patches;
  uint64_t patch_dim = 0;
  std::vector<int64_t> row_offsets, sample_offsets, row_sample_offsets, row_vision_offsets;
  std::vector<uint64_t> sample_source_index;
  std::vector<int64_t> grid_thw, patch_offsets, token_offsets, token_counts;
  std::vector<uint8_t> is_video;

  ~Impl() {
    h5::Quiet quiet;
    tokens.reset(), labels.reset(), position_ids.reset(), patches.reset(), file.reset();
    H5Eclear2(H5E_DEFAULT);
  }

  void read_info();
  void read_and_check_offsets();
};

void PackedDataset::Impl::read_info() {
  const hid_t f = file.get();
  TESSERA_CHECK(has_attribute(f, path, "format_version"),
                "{}: attribute format_version is missing: not a tessera packed-data file", path);
  info.format_version = read_int_attribute(f, path, "format_version");
  TESSERA_CHECK(info.format_version == kPackedFormatVersion,
                "{}: format_version {} is not supported (this build reads version {})", path, info.format_version,
                kPackedFormatVersion);
  info.seq_length = read_int_attribute(f, path, "seq_length");
  // Within a row, positions and cu_seqlens are int32 (as attention kernels take them).
  TESSERA_CHECK(info.seq_length > 0 && info.seq_length <= std::numeric_limits<int32_t>::max(),
                "{}: attribute seq_length is {} (must be 1..2^31-1)", path, info.seq_length);
  info.tokenizer_sha256 = read_string_attribute(f, path, "tokenizer_sha256");
  info.packing_policy = read_string_attribute(f, path, "packing_policy");
  info.overlong_policy = read_string_attribute(f, path, "overlong_policy");
  info.fill = read_double_attribute(f, path, "fill");
  info.samples = read_int_attribute(f, path, "num_samples");
  info.rows = read_int_attribute(f, path, "num_rows");
  info.tokens = read_int_attribute(f, path, "num_tokens");
  info.vision_items = read_int_attribute(f, path, "num_vision_items");
  info.patch_dim = read_int_attribute(f, path, "vision_patch_dim");
  info.truncated = read_int_attribute(f, path, "truncated");
  info.dropped = read_int_attribute(f, path, "dropped");
  info.empty = read_int_attribute(f, path, "empty");
  info.source_checksums = read_string_attribute(f, path, "source_checksums");
  info.created_by = read_string_attribute(f, path, "created_by");
}

void PackedDataset::Impl::read_and_check_offsets() {
  const hid_t f = file.get();
  const auto count_matches = [&](const char* name, uint64_t count, int64_t expected, const char* attribute) {
    TESSERA_CHECK(count == static_cast<uint64_t>(expected), "{}: dataset {} has {} entries, attribute {} says {}", path,
                  name, count, attribute, expected);
  };
  const auto size_is = [&](const char* name, uint64_t count, uint64_t expected, const char* why) {
    TESSERA_CHECK(count == expected, "{}: dataset {} has {} entries, expected {} ({})", path, name, count, expected,
                  why);
  };
  std::vector<hsize_t> dims;
  tokens = open_dataset(f, path, kTokens, dims);
  const uint64_t total_tokens = dims[0];
  count_matches(pf::kTokens, total_tokens, info.tokens, "num_tokens");
  labels = open_dataset(f, path, kLabels, dims);
  size_is(pf::kLabels, dims[0], total_tokens, "one per token");
  position_ids = open_dataset(f, path, kPositionIds, dims);
  size_is(pf::kPositionIds, dims[0], total_tokens, "one per token");
  patches = open_dataset(f, path, kVisionPatches, dims);
  const uint64_t total_patches = dims[0];
  patch_dim = dims[1];
  TESSERA_CHECK(total_patches == 0 || patch_dim == static_cast<uint64_t>(info.patch_dim),
                "{}: dataset {} has rows of {} values, attribute vision_patch_dim says {}", path, pf::kVisionPatches,
                patch_dim, info.patch_dim);

  row_offsets = read_all<int64_t>(f, path, kRowOffsets, dims);
  TESSERA_CHECK(dims[0] >= 1, "{}: dataset {} is empty (it has rows + 1 entries)", path, pf::kRowOffsets);
  const uint64_t rows = dims[0] - 1;
  count_matches(pf::kRowOffsets, rows, info.rows, "num_rows (+1)");
  check_offsets(row_offsets, path, pf::kRowOffsets, static_cast<int64_t>(total_tokens), "tokens", true);
  for (uint64_t r = 0; r < rows; ++r)
    TESSERA_CHECK(row_offsets[r + 1] - row_offsets[r] <= info.seq_length,
                  "{}: dataset {}: row {} has {} tokens, more than seq_length {}", path, pf::kRowOffsets, r,
                  row_offsets[r + 1] - row_offsets[r], info.seq_length);

  sample_offsets = read_all<int64_t>(f, path, kSampleOffsets, dims);
  TESSERA_CHECK(dims[0] >= 1, "{}: dataset {} is empty (it has samples + 1 entries)", path, pf::kSampleOffsets);
  const uint64_t samples = dims[0] - 1;
  count_matches(pf::kSampleOffsets, samples, info.samples, "num_samples (+1)");
  check_offsets(sample_offsets, path, pf::kSampleOffsets, static_cast<int64_t>(total_tokens), "tokens", true);
  sample_source_index = read_all<uint64_t>(f, path, kSampleSourceIndex, dims);
  size_is(pf::kSampleSourceIndex, dims[0], samples, "one per sample");

  row_sample_offsets = read_all<int64_t>(f, path, kRowSampleOffsets, dims);
  size_is(pf::kRowSampleOffsets, dims[0], rows + 1, "rows + 1");
  check_offsets(row_sample_offsets, path, pf::kRowSampleOffsets, static_cast<int64_t>(samples), "samples", true);
  for (uint64_t r = 0; r < rows; ++r)
    TESSERA_CHECK(sample_offsets[static_cast<size_t>(row_sample_offsets[r])] == row_offsets[r],
                  "{}: datasets {} and {} disagree: row {} starts at token {}, its first sample at token {}", path,
                  pf::kRowOffsets, pf::kSampleOffsets, r, row_offsets[r],
                  sample_offsets[static_cast<size_t>(row_sample_offsets[r])]);

  grid_thw = read_all<int64_t>(f, path, kVisionGridThw, dims);
  const uint64_t items = dims[0];
  count_matches(pf::kVisionGridThw, items, info.vision_items, "num_vision_items");
  TESSERA_CHECK(dims[1] == 3, "{}: dataset {} has {} columns, expected 3 (t, h, w)", path, pf::kVisionGridThw, dims[1]);
  patch_offsets = read_all<int64_t>(f, path, kVisionPatchOffsets, dims);
  size_is(pf::kVisionPatchOffsets, dims[0], items + 1, "vision items + 1");
  check_offsets(patch_offsets, path, pf::kVisionPatchOffsets, static_cast<int64_t>(total_patches), "patches", true);
  token_offsets = read_all<int64_t>(f, path, kVisionTokenOffsets, dims);
  size_is(pf::kVisionTokenOffsets, dims[0], items, "one per vision item");
  token_counts = read_all<int64_t>(f, path, kVisionTokenCounts, dims);
  size_is(pf::kVisionTokenCounts, dims[0], items, "one per vision item");
  is_video = read_all<uint8_t>(f, path, kVisionIsVideo, dims);
  size_is(pf::kVisionIsVideo, dims[0], items, "one per vision item");
  row_vision_offsets = read_all<int64_t>(f, path, kRowVisionOffsets, dims);
  size_is(pf::kRowVisionOffsets, dims[0], rows + 1, "rows + 1");
  check_offsets(row_vision_offsets, path, pf::kRowVisionOffsets, static_cast<int64_t>(items), "vision items", false);

  for (uint64_t v = 0; v < items; ++v) {
    const int64_t t = grid_thw[3 * v], h = grid_thw[3 * v + 1], w = grid_thw[3 * v + 2];
    int64_t grid = 0;
    const bool overflow = t <= 0 || h <= 0 || w <= 0 || __builtin_mul_overflow(t, h, &grid) ||
                          __builtin_mul_overflow(grid, w, &grid);
    TESSERA_CHECK(!overflow && grid == patch_offsets[v + 1] - patch_offsets[v],
                  "{}: dataset {}: item {} has grid ({}, {}, {}) but {} patches in {}", path, pf::kVisionGridThw, v, t,
                  h, w, patch_offsets[v + 1] - patch_offsets[v], pf::kVisionPatchOffsets);
    TESSERA_CHECK(is_video[v] <= 1, "{}: dataset {}: item {} has value {} (0 or 1)", path, pf::kVisionIsVideo, v,
                  is_video[v]);
  }
  // Each item's placeholder tokens lie inside one sample of its own row, in order and without overlap.
  for (uint64_t r = 0; r < rows; ++r) {
    int64_t previous_end = row_offsets[r];
    for (auto v = static_cast<uint64_t>(row_vision_offsets[r]); v < static_cast<uint64_t>(row_vision_offsets[r + 1]);
         ++v) {
      const int64_t begin = token_offsets[v];
      const int64_t count = token_counts[v];
      const auto first = sample_offsets.begin() + row_sample_offsets[r];
      const auto last = sample_offsets.begin() + row_sample_offsets[r + 1] + 1;
      const auto next_start = std::upper_bound(first, last, begin);  // first sample start after `begin`
      const bool inside = count > 0 && begin >= previous_end && begin < row_offsets[r + 1] && next_start != last &&
                          next_start != first && count <= *next_start - begin;
      TESSERA_CHECK(inside,
                    "{}: datasets {}/{}: item {} (tokens [{}, {})) is not inside one sample of row {} (tokens [{}, "
                    "{})) after the previous item",
                    path, pf::kVisionTokenOffsets, pf::kVisionTokenCounts, v, begin, begin + count, r, row_offsets[r],
                    row_offsets[r + 1]);
      previous_end = begin + count;
    }
  }
}

PackedDataset::PackedDataset(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

PackedDataset PackedDataset::open(const std::string& path) {
  std::error_code ec;
  TESSERA_CHECK(std::filesystem::is_regular_file(path, ec), "{}: no such packed-data file", path);
  auto impl = std::make_shared<Impl>();
  impl->path = path;
  h5::Quiet quiet;
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) {
    const std::string stack = h5::error_stack_summary();
    const bool lock = stack.find("unable to lock") != std::string::npos;
    TESSERA_FAIL("{}: cannot open as HDF5 (damaged, truncated or not HDF5): {}{}", path, stack,
                 lock ? " (on a file system without flock() set HDF5_USE_FILE_LOCKING=FALSE)" : "");
  }
  impl->file = Handle(file, H5Fclose);
  impl->read_info();
  impl->read_and_check_offsets();
  return PackedDataset(std::move(impl));
}

int64_t PackedDataset::rows() const { return impl_->info.rows; }
const PackedDatasetInfo& PackedDataset::info() const { return impl_->info; }
const std::string& PackedDataset::path() const { return impl_->path; }

PackedRow PackedDataset::row(int64_t i) const {
  const Impl& d = *impl_;
  TESSERA_CHECK(i >= 0 && i < d.info.rows, "{}: row {} out of range (the file has {} rows)", d.path, i, d.info.rows);
  const auto r = static_cast<size_t>(i);
  const int64_t begin = d.row_offsets[r];
  const auto length = static_cast<uint64_t>(d.row_offsets[r + 1] - begin);
  PackedRow row;
  row.index = i;
  row.tokens.resize(length);
  row.labels.resize(length);
  row.position_ids.resize(length);
  h5::Quiet quiet;
  const auto start = static_cast<uint64_t>(begin);
  read_rows(d.tokens.get(), d.path, pf::kTokens, start, length, 1, 1, row.tokens.data());
  read_rows(d.labels.get(), d.path, pf::kLabels, start, length, 1, 1, row.labels.data());
  read_rows(d.position_ids.get(), d.path, pf::kPositionIds, start, length, 1, 1, row.position_ids.data());

  const auto first_sample = static_cast<size_t>(d.row_sample_offsets[r]);
  const auto end_sample = static_cast<size_t>(d.row_sample_offsets[r + 1]);
  row.cu_seqlens.reserve(end_sample - first_sample + 1);
  for (size_t s = first_sample; s <= end_sample; ++s) row.cu_seqlens.push_back(static_cast<int32_t>(d.sample_offsets[s] - begin));
  row.source_index.assign(d.sample_source_index.begin() + static_cast<std::ptrdiff_t>(first_sample),
                          d.sample_source_index.begin() + static_cast<std::ptrdiff_t>(end_sample));

  // The payload is checked as it is read: the offsets were checked at open, the values only here. OR
  // reductions decide (branch-free, they vectorise); only a bad row pays for finding the first fault.
  int32_t position_error = 0;
  for (size_t s = 0; s + 1 < row.cu_seqlens.size(); ++s) {
    const int32_t start = row.cu_seqlens[s];
    const int32_t* positions = row.position_ids.data() + start;
    const int32_t n = row.cu_seqlens[s + 1] - start;
    for (int32_t t = 0; t < n; ++t) position_error |= positions[t] ^ t;
  }
  const bool ok = position_error == 0 && (or_of_words(row.labels) & 0xfefefefefefefefeull) == 0 &&
                  (or_of_words(row.tokens) & 0x8000000080000000ull) == 0;
  if (!ok) {
    for (size_t s = 0; s + 1 < row.cu_seqlens.size(); ++s)
      for (int32_t t = row.cu_seqlens[s]; t < row.cu_seqlens[s + 1]; ++t) {
        const auto k = static_cast<size_t>(t);
        TESSERA_CHECK(row.position_ids[k] == t - row.cu_seqlens[s],
                      "{}: dataset {}: row {} token {} has position {}, expected {} (restarting at each sample)",
                      d.path, pf::kPositionIds, i, t, row.position_ids[k], t - row.cu_seqlens[s]);
        TESSERA_CHECK(row.labels[k] <= 1, "{}: dataset {}: row {} token {} has label {} (0 or 1)", d.path,
                      pf::kLabels, i, t, row.labels[k]);
        TESSERA_CHECK(row.tokens[k] >= 0, "{}: dataset {}: row {} token {} is negative ({})", d.path, pf::kTokens, i,
                      t, row.tokens[k]);
      }
  }

  const auto first_item = static_cast<size_t>(d.row_vision_offsets[r]);
  const auto end_item = static_cast<size_t>(d.row_vision_offsets[r + 1]);
  if (end_item > first_item) {
    const auto patch_begin = static_cast<uint64_t>(d.patch_offsets[first_item]);
    const auto patch_count = static_cast<uint64_t>(d.patch_offsets[end_item]) - patch_begin;
    std::vector<uint16_t> patches(patch_count * d.patch_dim);
    read_rows(d.patches.get(), d.path, pf::kVisionPatches, patch_begin, patch_count, d.patch_dim, 2, patches.data());
    row.vision.reserve(end_item - first_item);
    for (size_t v = first_item; v < end_item; ++v) {
      VisionItem item;
      item.num_patches = d.patch_offsets[v + 1] - d.patch_offsets[v];
      item.patch_dim = static_cast<int64_t>(d.patch_dim);
      item.grid_t = d.grid_thw[3 * v];
      item.grid_h = d.grid_thw[3 * v + 1];
      item.grid_w = d.grid_thw[3 * v + 2];
      item.token_offset = d.token_offsets[v] - begin;
      item.num_tokens = d.token_counts[v];
      item.is_video = d.is_video[v] != 0;
      const auto from = (static_cast<uint64_t>(d.patch_offsets[v]) - patch_begin) * d.patch_dim;
      const auto to = (static_cast<uint64_t>(d.patch_offsets[v + 1]) - patch_begin) * d.patch_dim;
      item.patches_bf16.assign(patches.begin() + static_cast<std::ptrdiff_t>(from),
                               patches.begin() + static_cast<std::ptrdiff_t>(to));
      row.vision.push_back(std::move(item));
    }
  }
  return row;
}

}  // namespace tessera::data
