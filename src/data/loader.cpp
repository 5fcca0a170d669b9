#include "tessera/data/loader.hpp"

#include <hdf5.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>
#include <thread>

#include "tessera/core/error.hpp"

namespace tessera::data {

namespace {

// splitmix64's finaliser: a cheap bijective mixer with good avalanche, used for keys and Feistel rounds.
uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Keys for the two kinds of permutation, separated by a purpose constant so they never coincide.
constexpr uint64_t kBlendPurpose = 0x626c656e645f6f72ull;  // "blend_or"
constexpr uint64_t kFilePurpose = 0x66696c655f706173ull;   // "file_pas"

uint64_t key_of(uint64_t seed, uint64_t purpose, uint64_t a, uint64_t b) {
  return mix(mix(mix(seed ^ purpose) + a) + b + 0x9e3779b97f4a7c15ull);
}

}  // namespace

uint64_t permute_index(uint64_t index, uint64_t n, uint64_t key) {
  TESSERA_CHECK(index < n, "permute_index: index {} out of [0, {})", index, n);
  if (n <= 1) return index;
  int bits = std::bit_width(n - 1);
  bits += bits & 1;  // even, so the two halves are equal (a balanced Feistel network)
  const int half = bits / 2;
  const uint64_t mask = (uint64_t{1} << half) - 1;
  uint64_t round_keys[4];
  for (uint64_t i = 0; i < 4; ++i) round_keys[i] = mix(key + (i + 1) * 0x9e3779b97f4a7c15ull);
  uint64_t x = index;
  // A permutation of [0, 2^bits) applied until the value lands in [0, n): a permutation of [0, n)
  // ("cycle walking"); 2^bits < 4n, so a few steps on average.
  do {
    uint64_t left = x >> half;
    uint64_t right = x & mask;
    for (uint64_t round_key : round_keys) {
      const uint64_t next_right = left ^ (mix(right ^ round_key) & mask);
      left = right;
      right = next_right;
    }
    x = (left << half) | right;
  } while (x >= n);
  return x;
}

nlohmann::json LoaderState::to_json() const {
  return nlohmann::json{{"epoch", epoch}, {"cursor", cursor},         {"seed", seed},
                        {"file_rows", file_rows}, {"file_weights", file_weights}};
}

LoaderState LoaderState::from_json(const nlohmann::json& json) {
  TESSERA_CHECK(json.is_object(), "loader state: expected a JSON object, got {}", json.type_name());
  const auto unsigned_field = [&](const char* name) {
    TESSERA_CHECK(json.contains(name) && json.at(name).is_number_unsigned(),
                  "loader state: field '{}' is missing or not an unsigned integer", name);
    return json.at(name).get<uint64_t>();
  };
  LoaderState state;
  state.epoch = unsigned_field("epoch");
  state.cursor = unsigned_field("cursor");
  state.seed = unsigned_field("seed");
  TESSERA_CHECK(json.contains("file_rows") && json.at("file_rows").is_array(),
                "loader state: field 'file_rows' is missing or not an array");
  TESSERA_CHECK(json.contains("file_weights") && json.at("file_weights").is_array(),
                "loader state: field 'file_weights' is missing or not an array");
  for (const auto& v : json.at("file_rows")) {
    TESSERA_CHECK(v.is_number_integer(), "loader state: 'file_rows' holds a non-integer");
    state.file_rows.push_back(v.get<int64_t>());
  }
  for (const auto& v : json.at("file_weights")) {
    TESSERA_CHECK(v.is_number(), "loader state: 'file_weights' holds a non-number");
    state.file_weights.push_back(v.get<double>());
  }
  return state;
}

struct Loader::Impl {
  std::vector<PackedDataset> files;
  std::vector<double> weights;
  LoaderOptions options;
  std::vector<uint64_t> rows;         // per file
  std::vector<uint64_t> quota;        // q_f: slots per epoch
  std::vector<uint64_t> quota_start;  // Q_f: prefix sums of q, size files + 1
  uint64_t epoch_rows = 0;
  uint64_t batch_slots = 0;  // G = rows_per_batch * dp_size
  uint64_t next_slot = 0;    // global slot of the next batch handed out (consumer side only)

  // Prefetch: a producer thread reads whole batches into a bounded queue. An error is queued in place of
  // its batch and ends the producer, so it surfaces at the right next_batch() and a retry restarts there.
  struct Item {
    std::vector<PackedRow> rows;
    std::exception_ptr error;
  };
  std::thread worker;
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<Item> queue;
  bool stop = false;
  uint64_t produce_slot = 0;

  std::pair<int32_t, int64_t> row_at(uint64_t slot) const {
    const uint64_t epoch = slot / epoch_rows;
    const uint64_t t = slot % epoch_rows;
    const uint64_t u = permute_index(t, epoch_rows, key_of(options.seed, kBlendPurpose, epoch, 0));
    const auto f = static_cast<size_t>(std::upper_bound(quota_start.begin(), quota_start.end(), u) -
                                       quota_start.begin() - 1);
    const uint64_t stream = epoch * quota[f] + (u - quota_start[f]);  // position in file f's endless stream
    const uint64_t pass = stream / rows[f];
    const uint64_t row = permute_index(stream % rows[f], rows[f], key_of(options.seed, kFilePurpose, f, pass));
    return {static_cast<int32_t>(f), static_cast<int64_t>(row)};
  }

  std::vector<PackedRow> read_batch(uint64_t batch_start) const {
    std::vector<PackedRow> out;
    const auto per_rank = static_cast<uint64_t>(options.rows_per_batch);
    out.reserve(per_rank);
    const uint64_t first = batch_start + static_cast<uint64_t>(options.dp_rank) * per_rank;
    for (uint64_t i = 0; i < per_rank; ++i) {
      const auto [f, r] = row_at(first + i);
      PackedRow row = files[static_cast<size_t>(f)].row(r);
      row.file = f;
      out.push_back(std::move(row));
    }
    return out;
  }

  void produce() {
    for (;;) {
      uint64_t slot = 0;
      {
        std::unique_lock lock(mutex);
        changed.wait(lock, [&] { return stop || queue.size() < static_cast<size_t>(options.prefetch); });
        if (stop) return;
        slot = produce_slot;
      }
      Item item;
      try {
        item.rows = read_batch(slot);
      } catch (...) {
        item.error = std::current_exception();
      }
      const bool failed = item.error != nullptr;
      {
        std::lock_guard lock(mutex);
        if (stop) return;
        queue.push_back(std::move(item));
        produce_slot += batch_slots;
      }
      changed.notify_all();
      if (failed) return;
    }
  }

  void start_worker() {
    stop = false;
    produce_slot = next_slot;
    worker = std::thread([this] { produce(); });
  }

  void stop_worker() {
    if (!worker.joinable()) return;
    {
      std::lock_guard lock(mutex);
      stop = true;
    }
    changed.notify_all();
    worker.join();
    queue.clear();
    stop = false;
  }
};

Loader::Loader(std::vector<std::pair<std::string, double>> files_and_weights, LoaderOptions options)
    : impl_(std::make_unique<Impl>()) {
  Impl& d = *impl_;
  TESSERA_CHECK(!files_and_weights.empty(), "loader: no data files given");
  TESSERA_CHECK(options.dp_size >= 1 && options.dp_rank >= 0 && options.dp_rank < options.dp_size,
                "loader: dp_rank {} is outside dp_size {}", options.dp_rank, options.dp_size);
  TESSERA_CHECK(options.rows_per_batch >= 1, "loader: rows_per_batch must be at least 1, got {}",
                options.rows_per_batch);
  TESSERA_CHECK(options.prefetch >= 0, "loader: prefetch must be 0 or more batches, got {}", options.prefetch);
  if (options.prefetch > 0) {
    // The prefetch thread calls HDF5 while the caller may too; only a thread-safe build serialises that.
    hbool_t thread_safe = false;
    TESSERA_CHECK(H5is_library_threadsafe(&thread_safe) >= 0 && thread_safe,
                  "loader: prefetch {} needs an HDF5 library built thread-safe, and this one is not: set prefetch "
                  "to 0 or link a thread-safe HDF5",
                  options.prefetch);
  }
  d.options = options;
  for (const auto& [path, weight] : files_and_weights) {
    TESSERA_CHECK(std::isfinite(weight) && weight > 0, "loader: {}: weight {} must be a positive number", path, weight);
    d.files.push_back(PackedDataset::open(path));
    d.weights.push_back(weight);
    const PackedDataset& file = d.files.back();
    const PackedDataset& first = d.files.front();
    TESSERA_CHECK(file.rows() > 0, "loader: {} has no rows", path);
    TESSERA_CHECK(file.info().seq_length == first.info().seq_length,
                  "loader: {} was packed for seq_length {}, but {} for {}: mixing them would give rows of two "
                  "lengths",
                  path, file.info().seq_length, first.path(), first.info().seq_length);
    TESSERA_CHECK(file.info().tokenizer_sha256 == first.info().tokenizer_sha256,
                  "loader: {} was tokenised with tokenizer sha256 '{}', but {} with '{}'", path,
                  file.info().tokenizer_sha256, first.path(), first.info().tokenizer_sha256);
    d.rows.push_back(static_cast<uint64_t>(file.rows()));
  }
  d.epoch_rows = std::accumulate(d.rows.begin(), d.rows.end(), uint64_t{0});
  TESSERA_CHECK(d.epoch_rows < (uint64_t{1} << 53), "loader: {} rows in all are more than the blend handles exactly",
                d.epoch_rows);

  // Largest-remainder apportionment of the epoch's slots by weight; ties go to the earlier file.
  const double total_weight = std::accumulate(d.weights.begin(), d.weights.end(), 0.0);
  std::vector<double> remainder(d.files.size());
  uint64_t assigned = 0;
  for (size_t f = 0; f < d.files.size(); ++f) {
    const double exact = static_cast<double>(d.epoch_rows) * d.weights[f] / total_weight;
    d.quota.push_back(static_cast<uint64_t>(std::floor(exact)));
    remainder[f] = exact - std::floor(exact);
    assigned += d.quota[f];
  }
  std::vector<size_t> by_remainder(d.files.size());
  std::iota(by_remainder.begin(), by_remainder.end(), 0);
  std::stable_sort(by_remainder.begin(), by_remainder.end(),
                   [&](size_t a, size_t b) { return remainder[a] > remainder[b]; });
  for (size_t i = 0; assigned < d.epoch_rows; ++i, ++assigned) ++d.quota[by_remainder[i % by_remainder.size()]];
  d.quota_start.assign(1, 0);
  for (size_t f = 0; f < d.files.size(); ++f) {
    TESSERA_CHECK(d.quota[f] > 0,
                  "loader: {}: weight {} gives it no row of an epoch of {} rows (raise the weight or leave the file "
                  "out)",
                  d.files[f].path(), d.weights[f], d.epoch_rows);
    d.quota_start.push_back(d.quota_start.back() + d.quota[f]);
  }
  d.batch_slots = static_cast<uint64_t>(options.rows_per_batch) * static_cast<uint64_t>(options.dp_size);
}

Loader::~Loader() { impl_->stop_worker(); }

std::vector<PackedRow> Loader::next_batch() {
  Impl& d = *impl_;
  if (d.options.prefetch == 0) {
    std::vector<PackedRow> batch = d.read_batch(d.next_slot);
    d.next_slot += d.batch_slots;
    return batch;
  }
  if (!d.worker.joinable()) d.start_worker();
  Impl::Item item;
  {
    std::unique_lock lock(d.mutex);
    d.changed.wait(lock, [&] { return !d.queue.empty(); });
    item = std::move(d.queue.front());
    d.queue.pop_front();
  }
  d.changed.notify_all();
  if (item.error) {
    d.stop_worker();  // the producer has ended; the next call starts again at this batch
    std::rethrow_exception(item.error);
  }
  d.next_slot += d.batch_slots;
  return std::move(item.rows);
}

LoaderState Loader::state() const {
  const Impl& d = *impl_;
  LoaderState s;
  s.epoch = d.next_slot / d.epoch_rows;
  s.cursor = d.next_slot % d.epoch_rows;
  s.seed = d.options.seed;
  s.file_rows.assign(d.rows.begin(), d.rows.end());
  s.file_weights = d.weights;
  return s;
}

void Loader::restore(const LoaderState& state) {
  Impl& d = *impl_;
  const LoaderState mine = this->state();
  TESSERA_CHECK(state.seed == mine.seed, "loader: the saved state is for seed {}, this loader has seed {}", state.seed,
                mine.seed);
  TESSERA_CHECK(state.file_rows == mine.file_rows && state.file_weights == mine.file_weights,
                "loader: the saved state is for files with rows [{}] and weights [{}], these have rows [{}] and "
                "weights [{}]: the order would differ",
                fmt::join(state.file_rows, ", "), fmt::join(state.file_weights, ", "), fmt::join(mine.file_rows, ", "),
                fmt::join(mine.file_weights, ", "));
  TESSERA_CHECK(state.cursor < d.epoch_rows, "loader: saved cursor {} is outside an epoch of {} rows", state.cursor,
                d.epoch_rows);
  uint64_t slot = 0;
  TESSERA_CHECK(!__builtin_mul_overflow(state.epoch, d.epoch_rows, &slot) &&
                    !__builtin_add_overflow(slot, state.cursor, &slot),
                "loader: saved epoch {} is out of range", state.epoch);
  d.stop_worker();
  d.next_slot = slot;
}

int64_t Loader::rows_per_epoch() const { return static_cast<int64_t>(impl_->epoch_rows); }
std::pair<int32_t, int64_t> Loader::row_at(uint64_t slot) const { return impl_->row_at(slot); }
const std::vector<PackedDataset>& Loader::files() const { return impl_->files; }

}  // namespace tessera::data
