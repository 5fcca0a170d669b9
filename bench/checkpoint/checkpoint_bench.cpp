// Checkpoint save and load speed against `dd` writing and reading the same number of bytes with fsync to
// the same filesystem, in the same run (goal: ≥ 80% of dd). One process; the model is sized by --hidden /
// --layers so the checkpoint is large enough to measure the disk rather than the page cache's first
// touch. Prints one line per measurement and the ratios.
//   checkpoint_bench DIR [--hidden 1024 --layers 16 --vocab 32768]
// The peer copies the checkpoint's own files with dd (conv=fsync) and reads the copies back.
#include <CLI/CLI.hpp>
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "tessera/core/config.hpp"
#include "tessera/model/parameter_store.hpp"
#include "tessera/train/checkpoint.hpp"
#include "tessera/train/optimizer.hpp"

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Runs a shell command; a failure is reported (dropping caches needs root) but does not stop the bench.
void shell(const std::string& command) {
  if (std::system(command.c_str()) != 0) std::fprintf(stderr, "note: `%s` failed\n", command.c_str());
}

double dir_bytes(const std::filesystem::path& dir) {
  double total = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file()) total += static_cast<double>(e.file_size());
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  CLI::App app{"checkpoint save/load throughput against dd"};
  std::string dir;
  int64_t hidden = 1024, layers = 16, vocab = 32768;
  app.add_option("dir", dir, "scratch directory on the filesystem to measure")->required();
  app.add_option("--hidden", hidden);
  app.add_option("--layers", layers);
  app.add_option("--vocab", vocab);
  CLI11_PARSE(app, argc, argv);
  namespace fs = std::filesystem;
  fs::remove_all(dir);
  fs::create_directories(dir);

  tessera::Config config;
  config.model.name = "bench";
  config.model.vocab_size = vocab;
  config.model.hidden_size = hidden;
  config.model.num_layers = static_cast<int>(layers);
  config.model.num_attention_heads = static_cast<int>(hidden / 128);
  config.model.num_kv_heads = static_cast<int>(hidden / 256);
  config.model.head_dim = 128;
  config.model.ffn_hidden_size = 3 * hidden;
  config.checkpoint.dir = dir + "/checkpoints";
  config.checkpoint.keep_last = 1;
  tessera::model::ParameterStore store(tessera::model::parameter_specs(config.model), false);
  tessera::model::initialize_parameters(store, 0.02, 1);
  tessera::train::AdamW optimizer(config.optim, store);
  const tessera::train::CheckpointView view{&store, 0, &optimizer, true, true, "r0"};

  shell("sync");
  const double t0 = now();
  tessera::train::save_checkpoint(MPI_COMM_WORLD, config, 1, view, std::nullopt);
  const double save_s = now() - t0;
  const std::string path = config.checkpoint.dir + "/step-00000001";
  const double bytes = dir_bytes(path);
  // Load from disk, not from the page cache (the drop needs root; without it the figure says so).
  shell("sync; echo 3 > /proc/sys/vm/drop_caches");
  const double t1 = now();
  tessera::train::load_checkpoint(path, config, view);
  const double load_s = now() - t1;

  // The peer writes and reads the same bytes: dd copies each checkpoint file (from the page cache) with
  // fsync, then reads the copies back cold. (Zeros from /dev/zero would flatter a thin-provisioned disk.)
  const fs::path copies = fs::path(dir) / "dd";
  fs::create_directories(copies);
  const double t2 = now();
  for (const auto& e : fs::directory_iterator(path))
    shell("dd if=" + e.path().string() + " of=" + (copies / e.path().filename()).string() +
          " bs=4M conv=fsync status=none");
  const double dd_write_s = now() - t2;
  shell("sync; echo 3 > /proc/sys/vm/drop_caches");
  const double t3 = now();
  for (const auto& e : fs::directory_iterator(copies)) shell("dd if=" + e.path().string() + " of=/dev/null bs=4M status=none");
  const double dd_read_s = now() - t3;

  // The training stall of an async save: only the snapshot and the directory set-up; the write overlaps.
  config.checkpoint.async = true;
  tessera::train::AsyncCheckpointer saver(MPI_COMM_WORLD);
  const double t4 = now();
  saver.start(config, 2, view, std::nullopt);
  const double stall_s = now() - t4;
  saver.finish();
  const double async_total_s = now() - t4;

  const double gb = bytes / 1e9, dd_gb = dir_bytes(copies) / 1e9;
  std::printf("checkpoint: %.3f GB (weights + Adam moments, %zu parameters)\n", gb, store.values().size());
  std::printf("save  %.3f s  %.2f GB/s | dd write+fsync %.3f s  %.2f GB/s | ratio %.2f\n", save_s, gb / save_s,
              dd_write_s, dd_gb / dd_write_s, (gb / save_s) / (dd_gb / dd_write_s));
  std::printf("load  %.3f s  %.2f GB/s | dd read        %.3f s  %.2f GB/s | ratio %.2f\n", load_s, gb / load_s,
              dd_read_s, dd_gb / dd_read_s, (gb / load_s) / (dd_gb / dd_read_s));
  std::printf("training stall: synchronous save %.3f s, async save %.3f s (snapshot; written in the background, "
              "%.3f s until committed)\n", save_s, stall_s, async_total_s);
  fs::remove_all(dir);
  MPI_Finalize();
  return 0;
}
