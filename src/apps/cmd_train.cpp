// `tessera train`: one process (the CPU reference, or one GPU with train.device: cuda), or under mpirun
// data-parallel (ZeRO-0/1/2) or pipeline-parallel (1F1B) CPU training that reproduces the 1-process run bit
// for bit, and tensor-parallel training (with either) that reproduces it up to rounding; packed HDF5 or
// synthetic data. Logs every logging.interval steps: loss, lr, grad norm, tokens/s,
// MFU (and GPU memory on cuda).

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>

#include <optional>

#include "commands.hpp"
#include "tessera/dist/mpi_check.hpp"
#include "tessera/dist/mpi_communicator.hpp"
#include "tessera/dist/mpi_session.hpp"
#include "tessera/dist/process_groups.hpp"
#include "tessera/dist/topology.hpp"
#include "tessera/train/data_parallel_trainer.hpp"
#include "tessera/io/hf_model.hpp"
#include "tessera/train/checkpoint.hpp"
#include "tessera/train/pipeline_trainer.hpp"
#include "tessera/train/preemption.hpp"
#include "tessera/core/config.hpp"
#include "tessera/core/error.hpp"
#include "tessera/core/logging.hpp"
#include "tessera/model/parameter_spec.hpp"
#include "tessera/plan/memory_model.hpp"
#include "tessera/train/packed_batches.hpp"
#include "tessera/train/synthetic_data.hpp"
#include "tessera/train/trainer.hpp"
#ifdef TESSERA_HAVE_CUDA
#include "tessera/backend/cuda/device.hpp"
#include "tessera/backend/cuda/gpu_trainer.hpp"
#endif

namespace tessera::apps {

namespace {

// The GPU trainer when train.device is cuda: one GPU, the one numbered by this process's node-local rank.
// Returns null for the CPU; refuses what this build or the GPU path cannot do yet, with the reason.
#ifdef TESSERA_HAVE_CUDA
std::unique_ptr<cuda::GpuTrainer> make_gpu_trainer(const Config& config, int world) {
  if (config.train.device != Device::cuda) return nullptr;
  TESSERA_CHECK(world == 1,
                "train.device: cuda trains on one GPU in this build; {} ranks were started (multi-GPU training "
                "needs the NCCL data-parallel path, not built yet)",
                world);
  cuda::select_device(cuda::local_rank_from_environment());
  return std::make_unique<cuda::GpuTrainer>(config);
}
std::string device_memory_note(const cuda::GpuTrainer* gpu) {
  if (!gpu) return {};
  const cuda::DeviceMemory m = cuda::query_device_memory();
  return fmt::format(" | GPU memory {:.2f}/{:.2f} GiB", static_cast<double>(m.total - m.free) / (1ull << 30),
                     static_cast<double>(m.total) / (1ull << 30));
}
#else
struct NoGpu {
  train::StepStats step(const std::vector<model::Batch>&) { return {}; }
};
std::unique_ptr<NoGpu> make_gpu_trainer(const Config& config, int) {
  TESSERA_CHECK(config.train.device != Device::cuda,
                "train.device: cuda, but this tessera was built without the CUDA backend (no nvcc/NCCL at "
                "build time); rebuild with -DTESSERA_CUDA=ON or set train.device: cpu");
  return nullptr;
}
std::string device_memory_note(const NoGpu*) { return {}; }
#endif

// How unevenly the router spread the step's tokens: the busiest and idlest experts against an even share.
std::string expert_load_note(const std::vector<int64_t>& load) {
  if (load.empty()) return {};
  int64_t total = 0;
  for (const int64_t n : load) total += n;
  if (total == 0) return {};
  const double even = static_cast<double>(total) / static_cast<double>(load.size());
  const auto [lo, hi] = std::minmax_element(load.begin(), load.end());
  return fmt::format(", expert load {:.2f}–{:.2f}× even (expert {} busiest)", static_cast<double>(*lo) / even,
                     static_cast<double>(*hi) / even, hi - load.begin());
}

// Where a step's time went: each group's communication (the sum of its operations' wall times: they are
// waited on one by one, so they do not overlap), the rest counted as compute. The pipeline group's time
// is its point-to-point waits, which include the pipeline bubble; the tensor-parallel group's, its layers'
// all-reduces; the expert-parallel group's, its token exchanges. For the data-parallel group, the bytes
// this rank sent against the all-reduce minimum 2(n−1)/n·S for the gradient buffer S it exchanged.
std::string step_breakdown(const dist::StepSummary& summary, double seconds, const dist::Topology& topology) {
  double communication = 0;
  std::string groups;
  for (const dist::Group g : {dist::Group::tp, dist::Group::ep, dist::Group::dp, dist::Group::pp}) {
    const dist::GroupOpTotals t = summary.group_total(g);
    if (t.calls == 0) continue;
    communication += t.seconds;
    groups += fmt::format(" | {} {:.1f} ms ({} ops, sent {:.2f} MB", dist::group_name(g), t.seconds * 1e3, t.calls,
                          static_cast<double>(t.sent_bytes) / 1e6);
    const dist::GroupOpTotals* exchange = summary.find(g, dist::CollectiveOp::all_to_all_v);
    if (g == dist::Group::dp && exchange && exchange->calls > 0) {
      const double n = topology.dp(), S = static_cast<double>(exchange->payload_bytes) / exchange->calls;
      groups += fmt::format(", {:.3f}× the all-reduce minimum", static_cast<double>(t.sent_bytes) / (2 * (n - 1) / n * S));
    }
    groups += ")";
  }
  return fmt::format(" | compute {:.1f} ms{}", (seconds - communication) * 1e3, groups);
}

void run_training(const dist::MpiSession& mpi, const Config& config) {
  const int world = mpi.size(), rank = mpi.rank();
  // One process trains with the reference Trainer; several run the pipeline trainer (pp or tp > 1, with
  // dp replicas) or the data-parallel one.
  std::optional<dist::Topology> topology;
  std::unique_ptr<dist::ProcessGroups> groups;
  std::unique_ptr<dist::Communicators> comms;
  RankIdentity who{rank, 0, 0, 0, 0};
  if (world > 1) {
    topology = dist::Topology::build(world, dist::parallel_sizes(config.parallel));
    const dist::Coord c = topology->coord(rank);
    who = {rank, c.tp, c.pp, c.dp, c.ep};
    groups = std::make_unique<dist::ProcessGroups>(MPI_COMM_WORLD, *topology);
    comms = std::make_unique<dist::Communicators>(*groups, *topology, rank);
  }
  const auto log = make_rank_logger(config.logging.run_dir, who, config.logging.level);
  auto gpu = make_gpu_trainer(config, world);
  std::unique_ptr<train::Trainer> single;
  std::unique_ptr<train::DataParallelTrainer> parallel;
  std::unique_ptr<train::PipelineTrainer> pipeline;
  // Tensor and expert parallelism run in the pipeline trainer (one stage when pp = 1).
  const bool model_parallel = config.parallel.tp > 1 || config.parallel.ep > 1;
  if (!gpu && world > 1 && (config.parallel.pp > 1 || model_parallel))
    pipeline = std::make_unique<train::PipelineTrainer>(config, comms->get(dist::Group::pp), &comms->get(dist::Group::dp),
                                                        &comms->get(dist::Group::tp), &comms->get(dist::Group::ep),
                                                        &comms->get(dist::Group::edp));
  else if (!gpu && world > 1)
    parallel = std::make_unique<train::DataParallelTrainer>(config, comms->get(dist::Group::dp));
  else if (!gpu)
    single = std::make_unique<train::Trainer>(config);
  const int64_t num_params = model::total_parameters(config.model);

  const ModelConfig& m = config.model;
  const double flops_per_token = plan::model_flops_per_token(m, config.data.seq_length);
  // Packed HDF5 files when data.paths names them, else learnable synthetic rows. Every rank walks the
  // same global order and keeps its block of each step's microbatches (microbatches r·k … r·k + k − 1),
  // the split under which data parallelism reproduces the 1-rank run exactly.
  const std::unique_ptr<data::Loader> loader = config.data.paths.empty() ? nullptr : train::open_training_data(config);
  const int64_t micro = train::microbatches_per_step(config.train);
  // Data-parallel ranks keep their block of the step's microbatches; the stages of one pipeline all keep
  // their replica's block.
  const int data_ranks = topology ? topology->dp() : 1;
  const int64_t per_rank = micro / data_ranks, first = per_rank * (topology ? topology->coord(rank).dp : 0);

  // Checkpoints (CPU trainers): resume from the newest valid one, save every checkpoint.interval steps, at
  // the end, and when a preemption signal arrives (then exit kPreemptedExitCode).
  // Under tensor or expert parallelism the view is of the whole stage, gathered when it is taken: it is
  // taken again before each save (`current_view`).
  std::optional<train::CheckpointView> view =
      gpu ? std::nullopt
          : std::optional<train::CheckpointView>(pipeline ? pipeline->checkpoint_view()
                                                 : parallel ? parallel->checkpoint_view()
                                                            : single->checkpoint_view());
  auto current_view = [&]() -> const train::CheckpointView& {
    if (model_parallel) view = pipeline->checkpoint_view();
    return *view;
  };
  TESSERA_CHECK(!gpu || config.model.init_from.empty(),
                "model.init_from: starting a train.device: cuda run from a Hugging Face model is not built yet");
  TESSERA_CHECK(!gpu || config.checkpoint.interval == 0,
                "checkpoint.interval {}: checkpoints of train.device: cuda runs are not built yet", config.checkpoint.interval);
  if (gpu) log->warn("train.device: cuda: this run saves no checkpoints (not built for the GPU trainer yet)");
  int64_t first_step = 1;
  if (view) {
    const std::string found = train::find_checkpoint(MPI_COMM_WORLD, train::checkpoint_directory(config), config,
                                                     [&](const std::string& w) { log->warn("{}", w); });
    if (!found.empty()) {
      const train::Resumed r = train::load_checkpoint(found, config, *view);
      if (model_parallel) pipeline->checkpoint_loaded(true);
      if (loader) {
        TESSERA_CHECK(r.loader.has_value(), "{}: the checkpoint has no data-loader state, but data.paths is set", found);
        loader->restore(*r.loader);
      }
      first_step = r.step + 1;
      log->info("resumed from {} (step {}){}", found, r.step,
                std::getenv("SLURM_RESTART_COUNT") ? fmt::format(", SLURM_RESTART_COUNT={}", std::getenv("SLURM_RESTART_COUNT")) : "");
    } else if (!m.init_from.empty()) {
      const std::vector<model::ParameterSpec> all = model::parameter_specs(m);
      io::load_hf_weights(m.init_from, *view->store, &all);
      if (model_parallel) pipeline->checkpoint_loaded(false);
      log->info("initialised from the Hugging Face model {}", m.init_from);
    }
    // A tensor/expert-parallel view holds a copy of the whole stage; it is taken again for each save.
    if (model_parallel) pipeline->release_checkpoint_view();
    train::install_preemption_handlers();
  }
  if (first_step > config.train.steps) log->info("already trained to step {}: nothing to do", config.train.steps);
  log->info("training {} ({} parameters) on {} rank(s) for {} steps, {} microbatch(es) of {} × {} tokens per step, {}",
            m.name, num_params, world, config.train.steps, micro, config.train.micro_batch_size,
            config.data.seq_length,
            loader ? fmt::format("data {} ({} rows per epoch)", fmt::join(config.data.paths, ", "), loader->rows_per_epoch())
                   : std::string("synthetic data"));
  train::AsyncCheckpointer async_saver(MPI_COMM_WORLD);
  auto committed = [&](int64_t s) { log->info("checkpoint committed: {}/step-{:08d}", train::checkpoint_directory(config), s); };
  const auto run_start = std::chrono::steady_clock::now();
  double slowest_step = 0;
  for (int64_t step = first_step; step <= config.train.steps; ++step) {
    std::vector<model::Batch> batches;
    for (int64_t i = 0; i < micro; ++i) {
      const bool mine = parallel ? train::DataParallelTrainer::takes_microbatch(config, topology->coord(rank).dp,
                                                                              data_ranks, i, micro)
                                 : i >= first && i < first + per_rank;
      if (loader) {
        auto rows = loader->next_batch();
        if (mine) batches.push_back(train::batch_from_rows(rows, config.data.paths));
      } else if (mine) {
        batches.push_back(train::synthetic_batch(m.vocab_size, config.data.seq_length, config.train.micro_batch_size,
                                                 config.train.seed, step, i));
      }
    }
    if (comms) comms->trace().begin_step();
    const auto start = std::chrono::steady_clock::now();
    const train::StepStats s = gpu        ? gpu->step(batches)
                               : pipeline ? pipeline->step(batches)
                               : parallel ? parallel->step(batches)
                                          : single->step(batches);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (step % config.logging.interval == 0 || step == config.train.steps) {
      const double tokens_per_s = static_cast<double>(s.tokens) / seconds;
      const double tflops = tokens_per_s * flops_per_token / 1e12;
      log->info("step {:>5}/{} | loss {:.6f}{} | lr {:.3e} | grad norm {:.4f} | {:.0f} tokens/s | {:.3f} TFLOP/s "
                "| MFU {:.2f}% of {} × {} TFLOP/s{}{}",
                step, config.train.steps, s.loss,
                m.is_moe() ? fmt::format(" (ce {:.4f}, aux {:.4f}{})", s.ce_loss, s.aux_loss, expert_load_note(s.expert_load))
                           : "",
                s.lr, s.grad_norm,
                tokens_per_s, tflops, 100.0 * tflops / (config.train.peak_tflops * world), world,
                config.train.peak_tflops, device_memory_note(gpu.get()),
                comms ? step_breakdown(comms->trace().step_summary(), seconds, *topology) : std::string());
    }
    if (!view) continue;
    // Every rank learns whether any rank was signalled or is out of time, at the same step boundary.
    slowest_step = std::max(slowest_step, seconds);
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
    const bool out_of_time = config.train.max_duration > 0 && elapsed + 2 * slowest_step > config.train.max_duration;
    const bool exit_now = config.train.exit_interval > 0 && step % config.train.exit_interval == 0;
    int stop = train::preemption_requested() || out_of_time || exit_now ? 1 : 0;
    TESSERA_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &stop, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
    const bool interval = config.checkpoint.interval > 0 && step % config.checkpoint.interval == 0;
    const auto loader_state = loader ? std::optional<data::LoaderState>(loader->state()) : std::nullopt;
    if (config.checkpoint.async && async_saver.ready()) committed(*async_saver.finish());
    if (stop || step == config.train.steps) {
      if (const auto s = async_saver.finish()) committed(*s);  // an older save still in flight goes first
      train::save_checkpoint(MPI_COMM_WORLD, config, step, current_view(), loader_state);
      log->info("checkpoint saved: {}/step-{:08d}", train::checkpoint_directory(config), step);
    } else if (interval && config.checkpoint.async) {
      async_saver.start(config, step, current_view(), loader_state);  // copies what it writes
    } else if (interval) {
      train::save_checkpoint(MPI_COMM_WORLD, config, step, current_view(), loader_state);
      log->info("checkpoint saved: {}/step-{:08d}", train::checkpoint_directory(config), step);
    }
    if (model_parallel) pipeline->release_checkpoint_view();
    if (stop && step < config.train.steps) {  // after the last step the run is simply done
      log->warn("{}: checkpoint of step {} committed; exiting with code {} (restart to resume)",
                train::preemption_requested() ? fmt::format("preemption signal {} received", train::preemption_signal())
                : exit_now                    ? fmt::format("train.exit_interval {} reached", config.train.exit_interval)
                                              : fmt::format("train.max_duration {} s nearly used", config.train.max_duration),
                step, train::kPreemptedExitCode);
      log->flush();
      throw ExitRequest{train::kPreemptedExitCode};
    }
  }
  log->flush();
}

}  // namespace

void add_train_command(CLI::App& app) {
  struct Options {
    std::string file;
    std::vector<std::string> overrides;
  };
  auto opts = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "train", "Train a model: CPU fp32 in one process or data-parallel under mpirun, or one GPU (train.device: cuda); packed HDF5 or synthetic data");
  cmd->add_option("-c,--config", opts->file, "YAML config file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--set", opts->overrides, "Override a field: section.key=value (repeatable)");
  cmd->callback([opts] {
    // Under mpirun/srun every rank runs this; alone it is a world of one.
    const dist::MpiSession mpi(nullptr, nullptr);
    try {
      run_training(mpi, load_config(opts->file, opts->overrides));
    } catch (const std::exception& e) {
      if (mpi.size() > 1) mpi.abort_job(e.what());  // one rank's failure must not leave the others waiting
      throw;
    }
  });
}

}  // namespace tessera::apps
