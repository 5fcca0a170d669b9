// HDF5 format v1 writer (docs/data-format.md). Each dataset is a Column that buffers appended values and
// writes them a whole chunk at a time, so HDF5 sees few large writes and (with deflate) never has to
// re-open a chunk it already compressed. A column that never fills one chunk is written at finish() as a
// fixed-size dataset whose single chunk is exactly its size: small files stay small.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
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

std::string errno_text() { return std::strerror(errno); }

// What every column needs to create and write its dataset.
struct FileContext {
  hid_t file = H5I_INVALID_HID;
  const std::string* path = nullptr;  // the final path: the one the user knows
  PackedDatasetWriteOptions options;
};

template <typename T>
class Column {
 public:
  // rank 1: [n]; rank 2: [n, width].
  Column(const char* name, hid_t file_type, hid_t mem_type, int rank = 1, uint64_t width = 1)
      : name_(name), file_type_(file_type), mem_type_(mem_type), rank_(rank), width_(width) {}

  const char* name() const { return name_; }
  uint64_t width() const { return width_; }
  // For the patches column, whose width (patch_dim) is known only at the first vision item.
  void set_width(uint64_t width) { width_ = width; }
  void push(T value) { pending_.push_back(value); }
  void append(std::span<const T> values) { pending_.insert(pending_.end(), values.begin(), values.end()); }

  // Writes the whole chunks pending so far.
  void flush_full_chunks(const FileContext& ctx) {
    const uint64_t chunk = chunk_rows(ctx);
    const uint64_t rows = pending_.size() / width_;
    if (rows < chunk) return;
    if (!dataset_.valid()) create_extendable(ctx, chunk);
    write(ctx, (rows / chunk) * chunk);
  }

  void finish(const FileContext& ctx) {
    const uint64_t rows = width_ == 0 ? 0 : pending_.size() / width_;
    if (!dataset_.valid()) {
      create_fixed(ctx, rows);
      if (rows > 0) write(ctx, rows);
    } else if (rows > 0) {
      write(ctx, rows);
    }
    dataset_.reset();
  }

  void close() { dataset_.reset(); }

 private:
  uint64_t chunk_rows(const FileContext& ctx) const {
    return std::max<uint64_t>(1, ctx.options.chunk_bytes / (sizeof(T) * std::max<uint64_t>(width_, 1)));
  }

  int rank() const { return rank_; }

  Handle creation_properties(const FileContext& ctx, uint64_t chunk) const {
    Handle dcpl(TESSERA_H5_CHECK(H5Pcreate(H5P_DATASET_CREATE), "{}: dataset {}", *ctx.path, name_), H5Pclose);
    const hsize_t dims[2] = {chunk, width_};
    TESSERA_H5_CHECK(H5Pset_chunk(dcpl.get(), rank(), dims), "{}: dataset {}: chunk of {} rows", *ctx.path, name_,
                     chunk);
    if (ctx.options.deflate_level > 0) {
      // Byte shuffling first groups the high bytes of small integers (mostly zero): gzip then does far better.
      TESSERA_H5_CHECK(H5Pset_shuffle(dcpl.get()), "{}: dataset {}", *ctx.path, name_);
      TESSERA_H5_CHECK(H5Pset_deflate(dcpl.get(), static_cast<unsigned>(ctx.options.deflate_level)),
                       "{}: dataset {}", *ctx.path, name_);
    }
    return dcpl;
  }

  void create(const FileContext& ctx, uint64_t rows, bool extendable, uint64_t chunk) {
    const hsize_t dims[2] = {rows, width_};
    const hsize_t max_dims[2] = {extendable ? H5S_UNLIMITED : rows, width_};
    Handle space(TESSERA_H5_CHECK(H5Screate_simple(rank(), dims, max_dims), "{}: dataset {}", *ctx.path, name_),
                 H5Sclose);
    // An empty dataset has nothing to chunk (and a zero-sized chunk is invalid): it is stored contiguous.
    Handle dcpl = rows == 0 && !extendable
                      ? Handle(TESSERA_H5_CHECK(H5Pcreate(H5P_DATASET_CREATE), "{}: dataset {}", *ctx.path, name_),
                               H5Pclose)
                      : creation_properties(ctx, chunk);
    dataset_ = Handle(TESSERA_H5_CHECK(H5Dcreate2(ctx.file, name_, file_type_, space.get(), H5P_DEFAULT, dcpl.get(),
                                                  H5P_DEFAULT),
                                       "{}: cannot create dataset {}", *ctx.path, name_),
                      H5Dclose);
  }
  void create_extendable(const FileContext& ctx, uint64_t chunk) { create(ctx, 0, true, chunk); }
  void create_fixed(const FileContext& ctx, uint64_t rows) { create(ctx, rows, false, rows); }

  // Writes the first `rows` pending rows at the end of the dataset.
  void write(const FileContext& ctx, uint64_t rows) {
    const hsize_t new_dims[2] = {written_ + rows, width_};
    hsize_t current[2] = {0, 0};
    {
      Handle space(TESSERA_H5_CHECK(H5Dget_space(dataset_.get()), "{}: dataset {}", *ctx.path, name_), H5Sclose);
      TESSERA_H5_CHECK(H5Sget_simple_extent_dims(space.get(), current, nullptr), "{}: dataset {}", *ctx.path, name_);
    }
    if (current[0] < new_dims[0])
      TESSERA_H5_CHECK(H5Dset_extent(dataset_.get(), new_dims), "{}: dataset {}: extend to {} rows", *ctx.path,
                       name_, new_dims[0]);
    Handle file_space(TESSERA_H5_CHECK(H5Dget_space(dataset_.get()), "{}: dataset {}", *ctx.path, name_), H5Sclose);
    const hsize_t start[2] = {written_, 0};
    const hsize_t count[2] = {rows, width_};
    TESSERA_H5_CHECK(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr),
                     "{}: dataset {}: select rows [{}, {})", *ctx.path, name_, written_, written_ + rows);
    Handle mem_space(TESSERA_H5_CHECK(H5Screate_simple(rank(), count, nullptr), "{}: dataset {}", *ctx.path, name_),
                     H5Sclose);
    TESSERA_H5_CHECK(H5Dwrite(dataset_.get(), mem_type_, mem_space.get(), file_space.get(), H5P_DEFAULT,
                              pending_.data()),
                     "{}: dataset {}: write rows [{}, {})", *ctx.path, name_, written_, written_ + rows);
    written_ += rows;
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(rows * width_));
  }

  const char* name_;
  hid_t file_type_;
  hid_t mem_type_;
  int rank_;
  uint64_t width_;
  std::vector<T> pending_;
  uint64_t written_ = 0;
  Handle dataset_;
};

void write_attribute(hid_t file, const std::string& path, const char* name, hid_t file_type, hid_t mem_type,
                     const void* value) {
  Handle space(TESSERA_H5_CHECK(H5Screate(H5S_SCALAR), "{}: attribute {}", path, name), H5Sclose);
  Handle attr(TESSERA_H5_CHECK(H5Acreate2(file, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT),
                               "{}: cannot create attribute {}", path, name),
              H5Aclose);
  TESSERA_H5_CHECK(H5Awrite(attr.get(), mem_type, value), "{}: cannot write attribute {}", path, name);
}

void write_attribute(hid_t file, const std::string& path, const char* name, int64_t value) {
  write_attribute(file, path, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

void write_attribute(hid_t file, const std::string& path, const char* name, double value) {
  write_attribute(file, path, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

// A fixed-length, null-padded UTF-8 string (h5py reads it as bytes); never a variable-length type.
void write_attribute(hid_t file, const std::string& path, const char* name, const std::string& value) {
  Handle type(TESSERA_H5_CHECK(H5Tcopy(H5T_C_S1), "{}: attribute {}", path, name), H5Tclose);
  TESSERA_H5_CHECK(H5Tset_size(type.get(), std::max<size_t>(value.size(), 1)), "{}: attribute {}", path, name);
  TESSERA_H5_CHECK(H5Tset_strpad(type.get(), H5T_STR_NULLPAD), "{}: attribute {}", path, name);
  TESSERA_H5_CHECK(H5Tset_cset(type.get(), H5T_CSET_UTF8), "{}: attribute {}", path, name);
  std::string padded = value;
  padded.resize(std::max<size_t>(value.size(), 1), '\0');
  write_attribute(file, path, name, type.get(), type.get(), padded.data());
}

void fsync_path(const std::string& path, int flags, const std::string& what) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  TESSERA_CHECK(fd >= 0, "{}: cannot open {} to fsync it: {}", what, path, errno_text());
  const int rc = ::fsync(fd);
  const std::string why = rc == 0 ? std::string() : errno_text();
  ::close(fd);
  TESSERA_CHECK(rc == 0, "{}: cannot fsync {}: {}", what, path, why);
}

}  // namespace

struct PackedDatasetWriter::Impl {
  std::string path;
  std::string temp_path;
  PackedDatasetInfo info;
  bool finished = false;
  bool broken = false;  // an HDF5 write failed part-way: the columns no longer agree, nothing more is written
  // Declared before the columns so it is closed after them (the file is opened with H5F_CLOSE_SEMI,
  // which refuses to close while datasets are open: a leak shows up as an error, not a late close).
  Handle file;
  FileContext ctx;

  Column<int32_t> tokens{pf::kTokens, H5T_STD_I32LE, H5T_NATIVE_INT32};
  Column<uint8_t> labels{pf::kLabels, H5T_STD_U8LE, H5T_NATIVE_UINT8};
  Column<int32_t> position_ids{pf::kPositionIds, H5T_STD_I32LE, H5T_NATIVE_INT32};
  Column<int64_t> row_offsets{pf::kRowOffsets, H5T_STD_I64LE, H5T_NATIVE_INT64};
  Column<int64_t> sample_offsets{pf::kSampleOffsets, H5T_STD_I64LE, H5T_NATIVE_INT64};
  Column<int64_t> row_sample_offsets{pf::kRowSampleOffsets, H5T_STD_I64LE, H5T_NATIVE_INT64};
  Column<uint64_t> sample_source_index{pf::kSampleSourceIndex, H5T_STD_U64LE, H5T_NATIVE_UINT64};
  Column<uint16_t> vision_patches{pf::kVisionPatches, H5T_STD_U16LE, H5T_NATIVE_UINT16, 2, 0};
  Column<int64_t> vision_grid_thw{pf::kVisionGridThw, H5T_STD_I64LE, H5T_NATIVE_INT64, 2, 3};
  Column<int64_t> vision_patch_offsets{pf::kVisionPatchOffsets, H5T_STD_I64LE, H5T_NATIVE_INT64};
  Column<int64_t> vision_token_offsets{pf::kVisionTokenOffsets, H5T_STD_I64LE, H5T_NATIVE_INT64};
  Column<int64_t> vision_token_counts{pf::kVisionTokenCounts, H5T_STD_I64LE, H5T_NATIVE_INT64};
  Column<uint8_t> vision_is_video{pf::kVisionIsVideo, H5T_STD_U8LE, H5T_NATIVE_UINT8};
  Column<int64_t> row_vision_offsets{pf::kRowVisionOffsets, H5T_STD_I64LE, H5T_NATIVE_INT64};

  // Running totals (what the offsets point at).
  int64_t total_rows = 0;
  int64_t total_tokens = 0;
  int64_t total_samples = 0;
  int64_t total_items = 0;
  int64_t total_patches = 0;

  template <typename F>
  void for_each_column(F&& f) {
    f(tokens), f(labels), f(position_ids), f(row_offsets), f(sample_offsets), f(row_sample_offsets),
        f(sample_source_index), f(vision_patches), f(vision_grid_thw), f(vision_patch_offsets),
        f(vision_token_offsets), f(vision_token_counts), f(vision_is_video), f(row_vision_offsets);
  }

  ~Impl() {
    if (finished) return;
    h5::Quiet quiet;
    for_each_column([](auto& c) { c.close(); });
    file.reset();
    H5Eclear2(H5E_DEFAULT);
    ::unlink(temp_path.c_str());
  }
};

PackedDatasetWriter::PackedDatasetWriter(std::string path, PackedDatasetInfo info, PackedDatasetWriteOptions options)
    : impl_(std::make_unique<Impl>()) {
  Impl& w = *impl_;
  w.path = std::move(path);
  w.temp_path = fmt::format("{}.tmp-{}", w.path, ::getpid());
  w.info = std::move(info);
  w.info.format_version = kPackedFormatVersion;
  TESSERA_CHECK(w.info.seq_length > 0, "{}: seq_length must be positive, got {}", w.path, w.info.seq_length);
  TESSERA_CHECK(options.deflate_level >= 0 && options.deflate_level <= 9, "{}: deflate level must be 0..9, got {}",
                w.path, options.deflate_level);
  TESSERA_CHECK(options.chunk_bytes >= 1024, "{}: chunk_bytes must be at least 1024, got {}", w.path,
                options.chunk_bytes);
  if (options.deflate_level > 0)
    TESSERA_CHECK(H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0, "{}: deflate requested but this HDF5 has no zlib filter",
                  w.path);
  h5::Quiet quiet;
  Handle fapl(TESSERA_H5_CHECK(H5Pcreate(H5P_FILE_ACCESS), "{}", w.path), H5Pclose);
  // 1.8 object format: large attributes (source_checksums over 64 KiB) go to dense storage, and every
  // HDF5 since 1.8 (h5py included) still reads the file.
  TESSERA_H5_CHECK(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_V18), "{}", w.path);
  TESSERA_H5_CHECK(H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_SEMI), "{}", w.path);
  w.file = Handle(TESSERA_H5_CHECK(H5Fcreate(w.temp_path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()),
                                   "{}: cannot create temp file {}", w.path, w.temp_path),
                  H5Fclose);
  w.ctx = FileContext{w.file.get(), &w.path, options};
  w.row_offsets.push(0);
  w.sample_offsets.push(0);
  w.row_sample_offsets.push(0);
  w.vision_patch_offsets.push(0);
  w.row_vision_offsets.push(0);
}

PackedDatasetWriter::~PackedDatasetWriter() = default;

void PackedDatasetWriter::add_row(std::span<const Sample* const> samples, std::span<const int64_t> keep_tokens) {
  Impl& w = *impl_;
  const int64_t row = w.total_rows;
  TESSERA_CHECK(!w.finished, "{}: add_row after finish", w.path);
  TESSERA_CHECK(!w.broken, "{}: an earlier write failed; the file cannot be completed", w.path);
  TESSERA_CHECK(!samples.empty(), "{}: row {} has no samples", w.path, row);
  TESSERA_CHECK(keep_tokens.empty() || keep_tokens.size() == samples.size(),
                "{}: row {}: {} keep counts for {} samples", w.path, row, keep_tokens.size(), samples.size());
  // Everything is checked before anything is appended, so a refused row leaves the writer usable.
  int64_t row_tokens = 0;
  int64_t patch_dim = w.info.patch_dim;
  for (size_t i = 0; i < samples.size(); ++i) {
    const Sample& s = *samples[i];
    const auto where = [&] { return fmt::format("{}: row {} sample {} (source index {})", w.path, row, i, s.source_index); };
    try {
      validate_sample(s, static_cast<int64_t>(i));
    } catch (const Error& e) {
      TESSERA_FAIL("{}: row {}: {}", w.path, row, e.what());
    }
    const int64_t keep = keep_tokens.empty() ? s.length() : keep_tokens[i];
    TESSERA_CHECK(keep > 0 && keep <= s.length(), "{}: keeps {} of its {} tokens (must be 1..length)", where(), keep,
                  s.length());
    for (const VisionItem& item : s.vision) {
      if (item.token_offset >= keep) break;
      TESSERA_CHECK(item.token_offset + item.num_tokens <= keep,
                    "{}: the cut after {} tokens splits a vision item (placeholder tokens [{}, {}))", where(), keep,
                    item.token_offset, item.token_offset + item.num_tokens);
      if (patch_dim == 0) patch_dim = item.patch_dim;
      TESSERA_CHECK(item.patch_dim == patch_dim, "{}: vision patch_dim {} differs from the file's {}", where(),
                    item.patch_dim, patch_dim);
    }
    row_tokens += keep;
  }
  TESSERA_CHECK(row_tokens <= w.info.seq_length, "{}: row {} has {} tokens, more than seq_length {}", w.path, row,
                row_tokens, w.info.seq_length);
  TESSERA_CHECK(row_tokens <= std::numeric_limits<int32_t>::max(), "{}: row {} too long", w.path, row);
  if (w.info.patch_dim == 0 && patch_dim > 0) {
    w.info.patch_dim = patch_dim;
    w.vision_patches.set_width(static_cast<uint64_t>(patch_dim));
  }

  for (size_t i = 0; i < samples.size(); ++i) {
    const Sample& s = *samples[i];
    const int64_t keep = keep_tokens.empty() ? s.length() : keep_tokens[i];
    const int64_t sample_start = w.total_tokens;
    const auto n = static_cast<size_t>(keep);
    w.tokens.append(std::span<const int32_t>(s.ids.data(), n));
    w.labels.append(std::span<const uint8_t>(s.labels.data(), n));
    for (int32_t p = 0; p < static_cast<int32_t>(keep); ++p) w.position_ids.push(p);
    w.total_tokens += keep;
    w.sample_offsets.push(w.total_tokens);
    w.sample_source_index.push(s.source_index);
    ++w.total_samples;
    for (const VisionItem& item : s.vision) {
      if (item.token_offset >= keep) break;
      w.vision_patches.append(item.patches_bf16);
      w.vision_grid_thw.push(item.grid_t);
      w.vision_grid_thw.push(item.grid_h);
      w.vision_grid_thw.push(item.grid_w);
      w.total_patches += item.num_patches;
      w.vision_patch_offsets.push(w.total_patches);
      w.vision_token_offsets.push(sample_start + item.token_offset);
      w.vision_token_counts.push(item.num_tokens);
      w.vision_is_video.push(item.is_video ? 1 : 0);
      ++w.total_items;
    }
  }
  w.row_offsets.push(w.total_tokens);
  w.row_sample_offsets.push(w.total_samples);
  w.row_vision_offsets.push(w.total_items);
  ++w.total_rows;

  h5::Quiet quiet;
  w.broken = true;
  w.for_each_column([&](auto& c) {
    if (c.width() > 0) c.flush_full_chunks(w.ctx);
  });
  w.broken = false;
}

const PackedDatasetInfo& PackedDatasetWriter::finish() {
  Impl& w = *impl_;
  TESSERA_CHECK(!w.finished, "{}: finish called twice", w.path);
  TESSERA_CHECK(!w.broken, "{}: an earlier write failed; the file cannot be completed", w.path);
  w.broken = true;  // finish is attempted once: after a failure here only the destructor's cleanup is left
  h5::Quiet quiet;
  PackedDatasetInfo& info = w.info;
  info.rows = w.total_rows;
  info.samples = w.total_samples;
  info.tokens = w.total_tokens;
  info.vision_items = w.total_items;
  info.patches = w.total_patches;
  info.fill = info.rows == 0 ? 0.0
                             : static_cast<double>(info.tokens) / (static_cast<double>(info.rows) *
                                                                   static_cast<double>(info.seq_length));
  w.for_each_column([&](auto& c) { c.finish(w.ctx); });

  const hid_t f = w.file.get();
  write_attribute(f, w.path, "format_version", info.format_version);
  write_attribute(f, w.path, "seq_length", info.seq_length);
  write_attribute(f, w.path, "tokenizer_sha256", info.tokenizer_sha256);
  write_attribute(f, w.path, "packing_policy", info.packing_policy);
  write_attribute(f, w.path, "overlong_policy", info.overlong_policy);
  write_attribute(f, w.path, "fill", info.fill);
  write_attribute(f, w.path, "num_samples", info.samples);
  write_attribute(f, w.path, "num_rows", info.rows);
  write_attribute(f, w.path, "num_tokens", info.tokens);
  write_attribute(f, w.path, "num_vision_items", info.vision_items);
  write_attribute(f, w.path, "vision_patch_dim", info.patch_dim);
  write_attribute(f, w.path, "truncated", info.truncated);
  write_attribute(f, w.path, "dropped", info.dropped);
  write_attribute(f, w.path, "empty", info.empty);
  write_attribute(f, w.path, "source_checksums", info.source_checksums);
  write_attribute(f, w.path, "created_by", info.created_by);

  TESSERA_H5_CHECK(H5Fflush(f, H5F_SCOPE_LOCAL), "{}: cannot flush temp file {}", w.path, w.temp_path);
  TESSERA_H5_CHECK(w.file.release_and_close(), "{}: cannot close temp file {}", w.path, w.temp_path);
  // The data reaches the disk before the rename publishes the name, and the rename itself is made
  // durable by syncing the directory: a crash leaves the old file or the complete new one.
  fsync_path(w.temp_path, O_RDONLY, w.path);
  TESSERA_CHECK(::rename(w.temp_path.c_str(), w.path.c_str()) == 0, "{}: cannot rename temp file {} over it: {}",
                w.path, w.temp_path, errno_text());
  w.finished = true;
  const std::filesystem::path parent = std::filesystem::path(w.path).parent_path();
  fsync_path(parent.empty() ? std::string(".") : parent.string(), O_RDONLY | O_DIRECTORY, w.path);
  return info;
}

PackedDatasetInfo write_packed_dataset(const std::string& path, std::span<const Sample> samples, const PackPlan& plan,
                                       PackedDatasetInfo info, PackedDatasetWriteOptions options) {
  TESSERA_CHECK(plan.kept_lengths.size() == samples.size(), "{}: the packing plan is for {} samples, got {}", path,
                plan.kept_lengths.size(), samples.size());
  info.seq_length = plan.seq_length;
  info.packing_policy = std::string(to_string(plan.policy));
  info.overlong_policy = std::string(to_string(plan.overlong));
  info.truncated = plan.report.truncated;
  info.dropped = plan.report.dropped;
  info.empty = plan.report.empty;
  PackedDatasetWriter writer(path, std::move(info), options);
  std::vector<const Sample*> row_samples;
  std::vector<int64_t> keep;
  for (size_t r = 0; r < plan.rows.size(); ++r) {
    row_samples.clear();
    keep.clear();
    for (int64_t index : plan.rows[r]) {
      TESSERA_CHECK(index >= 0 && static_cast<size_t>(index) < samples.size(),
                    "{}: packing plan row {} names sample {} of {}", path, r, index, samples.size());
      row_samples.push_back(&samples[static_cast<size_t>(index)]);
      keep.push_back(plan.kept_lengths[static_cast<size_t>(index)]);
    }
    writer.add_row(row_samples, keep);
  }
  return writer.finish();
}

}  // namespace tessera::data
