#pragma once
// Checkpoint format v1 (docs/checkpoint-format.md): a directory per step under checkpoint.dir,
//   step-NNNNNNNN/manifest.json          format, version, step, layout, every tensor's name, global shape and
//                                        file, every optimizer range and file, sha256 of every file, the
//                                        loader state, the resolved config
//   step-NNNNNNNN/model-*.safetensors    fp32 master weights under Hugging Face names, one file per stage
//   step-NNNNNNNN/optim-*.safetensors    AdamW moments of one flat range of the whole model's layout
// and a `latest` file naming the newest committed step. Ranges are in the whole model's flat layout (the
// same for every parallel layout), so a checkpoint loads under any other layout.
//
// Commit protocol: every rank writes its files into a temporary directory (each file written atomically
// and fsynced), reports their checksums to rank 0, which writes the manifest, renames the directory into
// place, fsyncs, then replaces `latest` atomically and deletes checkpoints beyond keep_last. A job killed at
// any point leaves the previous committed checkpoint as the newest valid one.

#include <mpi.h>

#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <optional>
#include <string>

#include "tessera/core/config.hpp"
#include "tessera/data/loader.hpp"
#include "tessera/model/parameter_store.hpp"
#include "tessera/train/checkpoint_view.hpp"

namespace tessera::train {

inline constexpr int kCheckpointFormatVersion = 1;

// checkpoint.dir, or <logging.run_dir>/checkpoints when it is empty.
std::string checkpoint_directory(const Config& config);

// Every rank of `world` calls it after the same step.
void save_checkpoint(MPI_Comm world, const Config& config, int64_t step, const CheckpointView& view,
                     const std::optional<data::LoaderState>& loader);

// Async save: start() takes a snapshot of the rank's weights and optimizer state in host memory (the only
// part training waits for) and writes the files from a background thread; the commit (manifest, rename,
// `latest`) needs every rank's files, so it happens in finish(), on the training thread, collectively.
// ready() tells, collectively, whether every rank's writer is done (poll it at step boundaries and call
// finish() when true); start() and the end of the run call finish() on a save still in flight.
class AsyncCheckpointer {
 public:
  explicit AsyncCheckpointer(MPI_Comm world);
  ~AsyncCheckpointer();
  AsyncCheckpointer(const AsyncCheckpointer&) = delete;
  AsyncCheckpointer& operator=(const AsyncCheckpointer&) = delete;

  void start(const Config& config, int64_t step, const CheckpointView& view,
             const std::optional<data::LoaderState>& loader);
  bool ready();                    // collective; false when nothing is in flight
  std::optional<int64_t> finish();  // collective; the step committed, or nullopt when nothing was in flight

 private:
  MPI_Comm world_;
  Config config_;
  int64_t step_ = 0;
  std::optional<data::LoaderState> loader_;
  std::unique_ptr<model::ParameterStore> snapshot_store_;
  std::unique_ptr<AdamW> snapshot_optimizer_;
  std::thread writer_;
  std::atomic<bool> done_{false};
  std::string part_, error_;  // written by the writer thread before done_ is set, read after join()
};

// The newest committed checkpoint in `dir` whose manifest parses, names this model and whose files all
// match their checksums (checked by rank 0; every rank gets the answer). Each rejected one is reported
// through `warn` with the file and the mismatch, then the one before it is tried. Empty: none.
std::string find_checkpoint(MPI_Comm world, const std::string& dir, const Config& config,
                            const std::function<void(const std::string&)>& warn);

struct Resumed {
  int64_t step = 0;
  std::optional<data::LoaderState> loader;
};
// A checkpoint directory: `path` itself when it holds a manifest, else the step `path`/latest names.
// Throws naming the missing file.
std::string resolve_checkpoint(const std::string& path);
// The config the checkpoint was saved with (its manifest's copy).
Config checkpoint_config(const std::string& path);
// Fills every tensor of `store` (any subset of the model, e.g. the whole model for an export) from the
// checkpoint's weights, checking names and shapes.
void load_checkpoint_weights(const std::string& path, model::ParameterStore& store);

// Loads `path` (from find_checkpoint) into this rank's view, whatever layout saved it.
Resumed load_checkpoint(const std::string& path, const Config& config, const CheckpointView& view);

}  // namespace tessera::train
