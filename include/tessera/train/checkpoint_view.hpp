#pragma once
// What one rank holds for a checkpoint (checkpoint.hpp): a parameter store at its place in the whole
// model's flat layout, and an optimizer over a range of that store. `writes_*` make exactly one rank write
// each distinct piece (data-parallel replicas skip what another rank writes); `name` makes its file names
// unique. Every trainer gives its view; none of this touches MPI.

#include <cstddef>
#include <string>
#include <vector>

#include "tessera/model/parameter_store.hpp"
#include "tessera/train/optimizer.hpp"

namespace tessera::train {

struct CheckpointView {
  // A contiguous run of the store's values and where it sits in the whole model's flat layout.
  struct Run {
    size_t local = 0, global = 0, length = 0;
  };

  model::ParameterStore* store = nullptr;
  size_t offset = 0;
  AdamW* optimizer = nullptr;
  bool writes_model = true;
  bool writes_optimizer = true;
  std::string name = "r0";
  // A store that is not one contiguous run of the model (interleaved pipeline stages hold several) lists
  // its runs; empty: the whole store from `offset`.
  std::vector<Run> runs = {};

  std::vector<Run> store_runs() const {
    if (!runs.empty()) return runs;
    return {{0, offset, store ? store->values().size() : 0}};
  }
};

}  // namespace tessera::train
