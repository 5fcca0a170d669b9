#pragma once
// The sharded, resumable loader over packed-data files (docs/data-format.md, "Loader order").
//
// Every rank computes the same global row order, a pure function of (seed, files' row counts, weights):
//  - an epoch has E = sum of the files' rows slots; file f gets q_f of them (largest-remainder
//    apportionment of E by weight, so weights proportional to sizes give each row exactly once);
//  - file f's rows are consumed as an endless stream of permutations of its rows, one fresh permutation
//    per pass (a file with q_f > rows is repeated, one with q_f < rows continues where it left off in the
//    next epoch), so epoch e takes stream positions [e*q_f, (e+1)*q_f);
//  - a per-epoch permutation of the E slots interleaves the files: slot t maps to u = perm_e(t), and u in
//    [Q_f, Q_f + q_f) (Q = prefix sums of q) is file f's (u - Q_f)-th row of the epoch.
// Permutations are keyed Feistel networks (random access, O(1) memory), so a position anywhere in any
// epoch is computed directly: restoring is setting a number, and no table grows with the data.
//
// Global batch b is slots [b*G, (b+1)*G), G = rows_per_batch * dp_size, counted across epochs (a batch
// may straddle an epoch boundary); DP rank r takes [b*G + r*rows_per_batch, +rows_per_batch). Ranks that
// share a DP index (TP/PP/CP peers) pass the same dp_rank and get identical rows. The state is the global
// slot of the next batch, identical on all ranks, so a resumed run may use another dp_size.

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <utility>
#include <vector>

#include "tessera/data/packed_dataset.hpp"

namespace tessera::data {

struct LoaderOptions {
  uint64_t seed = 0;
  int64_t dp_rank = 0;
  int64_t dp_size = 1;
  int64_t rows_per_batch = 1;  // rows per rank per batch (one microbatch)
  int64_t prefetch = 2;        // batches read ahead by a background thread; 0 = read in next_batch()
};

struct LoaderState {
  uint64_t epoch = 0;   // epoch of the next batch's first slot
  uint64_t cursor = 0;  // that slot's index within the epoch (global: the same on every rank)
  uint64_t seed = 0;
  // What the order was computed from; restore() refuses a state from different files or weights.
  std::vector<int64_t> file_rows;
  std::vector<double> file_weights;

  nlohmann::json to_json() const;
  static LoaderState from_json(const nlohmann::json& json);  // throws naming the missing or bad field
  bool operator==(const LoaderState&) const = default;
};

// A pseudo-random permutation of [0, n) keyed by `key`: a 4-round Feistel network on the smallest even
// number of bits covering n, cycle-walking until the value is below n. Exposed for tests.
uint64_t permute_index(uint64_t index, uint64_t n, uint64_t key);

class Loader {
 public:
  // Opens every file (PackedDataset::open) and checks they agree on seq_length and tokenizer.
  Loader(std::vector<std::pair<std::string, double>> files_and_weights, LoaderOptions options);
  ~Loader();  // stops the prefetch thread
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // This rank's next rows_per_batch rows. An error while reading (in the prefetch thread or not) is
  // rethrown here, at the batch it belongs to.
  std::vector<PackedRow> next_batch();
  // The position after the last batch next_batch() returned (prefetched batches do not count).
  LoaderState state() const;
  // Continue from `state` (taken from a Loader over the same files, weights and seed, any dp layout).
  void restore(const LoaderState& state);

  int64_t rows_per_epoch() const;
  // Which (file, row) global slot `slot` (counted from the start of epoch 0) reads: the order itself.
  std::pair<int32_t, int64_t> row_at(uint64_t slot) const;
  const std::vector<PackedDataset>& files() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::data
