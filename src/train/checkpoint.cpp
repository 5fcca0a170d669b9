#include "tessera/train/checkpoint.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <map>
#include <thread>

#include "tessera/core/error.hpp"
#include "tessera/core/file.hpp"
#include "tessera/core/sha256.hpp"
#include "tessera/dist/mpi_check.hpp"
#include "tessera/io/atomic_file.hpp"
#include "tessera/io/safetensors.hpp"

namespace tessera::train {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kFormat = "tessera-checkpoint";

std::string step_name(int64_t step) { return fmt::format("step-{:08d}", step); }

int rank_of(MPI_Comm comm) {
  int rank = 0;
  TESSERA_MPI_CHECK(MPI_Comm_rank(comm, &rank));
  return rank;
}

// Every rank's string, on rank 0 (others get an empty list).
std::vector<std::string> gather_strings(MPI_Comm comm, const std::string& mine) {
  int size = 0;
  TESSERA_MPI_CHECK(MPI_Comm_size(comm, &size));
  const int rank = rank_of(comm);
  const int length = static_cast<int>(mine.size());
  std::vector<int> lengths(static_cast<size_t>(size)), offsets(static_cast<size_t>(size));
  TESSERA_MPI_CHECK(MPI_Gather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, 0, comm));
  int total = 0;
  for (int r = 0; r < size; ++r) offsets[r] = total, total += lengths[r];
  std::string all(rank == 0 ? static_cast<size_t>(total) : 0, '\0');
  TESSERA_MPI_CHECK(MPI_Gatherv(mine.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(), MPI_CHAR,
                                0, comm));
  std::vector<std::string> out;
  if (rank == 0)
    for (int r = 0; r < size; ++r) out.push_back(all.substr(static_cast<size_t>(offsets[r]), static_cast<size_t>(lengths[r])));
  return out;
}

std::string broadcast_string(MPI_Comm comm, std::string text) {
  int length = static_cast<int>(text.size());
  TESSERA_MPI_CHECK(MPI_Bcast(&length, 1, MPI_INT, 0, comm));
  text.resize(static_cast<size_t>(length));
  TESSERA_MPI_CHECK(MPI_Bcast(text.data(), length, MPI_CHAR, 0, comm));
  return text;
}

std::string file_sha256(const std::string& path) { return sha256_file_hex(path); }

int64_t total_parameters_of(const Config& c) { return model::total_parameters(c.model); }

// Why `dir` is not a usable checkpoint of this model, or empty when it is.
std::string problem_with(const fs::path& dir, const Config& config) {
  const fs::path manifest_path = dir / "manifest.json";
  if (!fs::exists(manifest_path)) return fmt::format("{}: missing", manifest_path.string());
  json m;
  try {
    m = json::parse(read_file(manifest_path.string()));
  } catch (const std::exception& e) {
    return fmt::format("{}: not valid JSON ({})", manifest_path.string(), e.what());
  }
  if (m.value("format", "") != kFormat) return fmt::format("{}: not a tessera checkpoint manifest", manifest_path.string());
  if (m.value("version", 0) != kCheckpointFormatVersion)
    return fmt::format("{}: format version {} (this tessera reads version {})", manifest_path.string(),
                       m.value("version", 0), kCheckpointFormatVersion);
  if (m.value("model", "") != config.model.name || m.value("total_params", int64_t{-1}) != total_parameters_of(config))
    return fmt::format("{}: a checkpoint of model '{}' with {} parameters, not '{}' with {}", manifest_path.string(),
                       m.value("model", ""), m.value("total_params", int64_t{-1}), config.model.name,
                       total_parameters_of(config));
  for (const auto& [file, digest] : m.at("files").items()) {
    const fs::path p = dir / file;
    if (!fs::exists(p)) return fmt::format("{}: missing (listed in the manifest)", p.string());
    const std::string actual = file_sha256(p.string());
    if (actual != digest.get<std::string>())
      return fmt::format("{}: sha256 {} does not match the manifest's {}", p.string(), actual, digest.get<std::string>());
  }
  return {};
}

}  // namespace

std::string checkpoint_directory(const Config& config) {
  return config.checkpoint.dir.empty() ? (fs::path(config.logging.run_dir) / "checkpoints").string()
                                       : config.checkpoint.dir;
}

namespace {

// Phase 1 (collective): rank 0 makes a fresh temporary directory for the step.
void prepare_directory(MPI_Comm world, const Config& config, int64_t step) {
  const fs::path dir = checkpoint_directory(config), tmp = dir / (".tmp-" + step_name(step));
  if (rank_of(world) == 0) {
    fs::create_directories(dir);
    fs::remove_all(tmp);  // a crashed earlier attempt at this step
    fs::create_directories(tmp);
  }
  TESSERA_MPI_CHECK(MPI_Barrier(world));
}

// Phase 2 (local, any thread): this rank's files; returns what rank 0 needs for the manifest.
json write_files(const Config& config, int64_t step, const CheckpointView& view) {
  const fs::path tmp = fs::path(checkpoint_directory(config)) / (".tmp-" + step_name(step));
  json part = {{"files", json::object()}, {"tensors", json::array()}, {"optimizer", json::array()}};
  const model::ParameterStore& store = *view.store;
  if (view.writes_model) {
    const std::string file = "model-" + view.name + ".safetensors";
    std::vector<io::WriteTensor> tensors;
    for (size_t i = 0; i < store.size(); ++i) {
      tensors.push_back(io::tensor_view_f32(store.spec(i).hf_name, store.spec(i).shape, store.value(i)));
      part["tensors"].push_back({{"name", store.spec(i).hf_name}, {"shape", store.spec(i).shape}, {"file", file}});
    }
    io::write_safetensors((tmp / file).string(), tensors, {{"format", kFormat}});
    part["files"][file] = file_sha256((tmp / file).string());
  }
  if (view.writes_optimizer) {
    // One file per run of the store the optimizer's range overlaps (one, unless the store holds several
    // runs of the model), each a contiguous range of the whole model's flat layout.
    const AdamW& opt = *view.optimizer;
    const std::vector<CheckpointView::Run> runs = view.store_runs();
    for (size_t k = 0; k < runs.size(); ++k) {
      const CheckpointView::Run& r = runs[k];
      const size_t lo = std::max(opt.begin(), r.local), hi = std::min(opt.end(), r.local + r.length);
      if (lo >= hi && runs.size() > 1) continue;  // a lone run writes its (possibly empty) range regardless
      const std::string file =
          "optim-" + view.name + (runs.size() == 1 ? "" : fmt::format("-{}", k)) + ".safetensors";
      const size_t begin = r.global + (lo - r.local), end = begin + (hi - lo);
      const auto n = static_cast<int64_t>(end - begin);
      io::write_safetensors((tmp / file).string(),
                            {io::tensor_view_f32("exp_avg", {n}, opt.exp_avg().subspan(lo - opt.begin(), hi - lo)),
                             io::tensor_view_f32("exp_avg_sq", {n}, opt.exp_avg_sq().subspan(lo - opt.begin(), hi - lo))},
                            {{"format", kFormat}, {"begin", std::to_string(begin)}, {"end", std::to_string(end)}});
      part["optimizer"].push_back({{"file", file}, {"begin", begin}, {"end", end}});
      part["files"][file] = file_sha256((tmp / file).string());
    }
  }
  return part;
}

// Phase 3 (collective): rank 0 writes the manifest, renames the directory into place (the commit),
// replaces `latest` and prunes; everyone waits for it.
void commit(MPI_Comm world, const Config& config, int64_t step, int64_t adam_steps, const json& part,
            const std::optional<data::LoaderState>& loader) {
  const fs::path dir = checkpoint_directory(config), tmp = dir / (".tmp-" + step_name(step)), final = dir / step_name(step);
  const std::vector<std::string> parts = gather_strings(world, part.dump());
  if (rank_of(world) == 0) {
    json manifest = {{"format", kFormat},
                     {"version", kCheckpointFormatVersion},
                     {"step", step},
                     {"model", config.model.name},
                     {"total_params", total_parameters_of(config)},
                     {"adam_steps", adam_steps},
                     {"layout",
                      {{"pp", config.parallel.pp}, {"dp", config.parallel.dp}, {"zero_stage", config.parallel.zero_stage}}},
                     {"files", json::object()},
                     {"tensors", json::array()},
                     {"optimizer", json::array()},
                     {"loader", loader ? loader->to_json() : json(nullptr)},
                     {"config", to_yaml(config)}};
    for (const std::string& text : parts) {
      const json p = json::parse(text);
      for (const auto& [file, digest] : p["files"].items()) manifest["files"][file] = digest;
      for (const auto& t : p["tensors"]) manifest["tensors"].push_back(t);
      for (const auto& o : p["optimizer"]) manifest["optimizer"].push_back(o);
    }
    // The manifest last, then the rename: the commit. `latest` follows; readers do not depend on it.
    io::write_text_file_atomically((tmp / "manifest.json").string(), manifest.dump(1));
    if (fs::exists(final)) fs::remove_all(final);
    fs::rename(tmp, final);
    io::write_text_file_atomically((dir / "latest").string(), step_name(step) + "\n");
    std::vector<fs::path> steps;
    for (const auto& entry : fs::directory_iterator(dir))
      if (entry.is_directory() && entry.path().filename().string().starts_with("step-")) steps.push_back(entry.path());
    std::sort(steps.begin(), steps.end());
    for (size_t i = 0; i + static_cast<size_t>(config.checkpoint.keep_last) < steps.size(); ++i) fs::remove_all(steps[i]);
  }
  TESSERA_MPI_CHECK(MPI_Barrier(world));
}

}  // namespace

void save_checkpoint(MPI_Comm world, const Config& config, int64_t step, const CheckpointView& view,
                     const std::optional<data::LoaderState>& loader) {
  TESSERA_CHECK(view.store && view.optimizer, "a checkpoint needs the rank's parameters and optimizer");
  prepare_directory(world, config, step);
  commit(world, config, step, view.optimizer->steps_taken(), write_files(config, step, view), loader);
}

AsyncCheckpointer::AsyncCheckpointer(MPI_Comm world) : world_(world) {}

AsyncCheckpointer::~AsyncCheckpointer() {
  // An unfinished save is abandoned (its temporary directory is never read); the thread must not outlive
  // the snapshot it writes from.
  if (writer_.joinable()) writer_.join();
}

void AsyncCheckpointer::start(const Config& config, int64_t step, const CheckpointView& view,
                              const std::optional<data::LoaderState>& loader) {
  TESSERA_CHECK(view.store && view.optimizer, "a checkpoint needs the rank's parameters and optimizer");
  finish();  // one save in flight at a time
  prepare_directory(world_, config, step);
  // The snapshot: what the writer reads, so training may change the live weights meanwhile.
  snapshot_store_ = std::make_unique<model::ParameterStore>(view.store->specs(), false);
  std::copy(view.store->values().begin(), view.store->values().end(), snapshot_store_->values().begin());
  snapshot_optimizer_ = std::make_unique<AdamW>(*view.optimizer);
  CheckpointView snapshot = view;
  snapshot.store = snapshot_store_.get();
  snapshot.optimizer = snapshot_optimizer_.get();
  config_ = config;
  step_ = step;
  loader_ = loader;
  part_.clear();
  error_.clear();
  done_ = false;
  writer_ = std::thread([this, snapshot] {
    try {
      part_ = write_files(config_, step_, snapshot).dump();
    } catch (const std::exception& e) {
      error_ = e.what();
    }
    done_ = true;
  });
}

bool AsyncCheckpointer::ready() {
  if (!writer_.joinable()) return false;
  int mine = done_ ? 1 : 0;
  TESSERA_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &mine, 1, MPI_INT, MPI_MIN, world_));
  return mine == 1;
}

std::optional<int64_t> AsyncCheckpointer::finish() {
  if (!writer_.joinable()) return std::nullopt;
  writer_.join();
  TESSERA_CHECK(error_.empty(), "checkpoint of step {}: {}", step_, error_);
  commit(world_, config_, step_, snapshot_optimizer_->steps_taken(), json::parse(part_), loader_);
  snapshot_store_.reset();
  snapshot_optimizer_.reset();
  return step_;
}

std::string find_checkpoint(MPI_Comm world, const std::string& dir, const Config& config,
                            const std::function<void(const std::string&)>& warn) {
  std::string chosen;
  if (rank_of(world) == 0 && fs::is_directory(dir)) {
    std::vector<fs::path> steps;
    for (const auto& entry : fs::directory_iterator(dir))
      if (entry.is_directory() && entry.path().filename().string().starts_with("step-")) steps.push_back(entry.path());
    std::sort(steps.rbegin(), steps.rend());
    for (const fs::path& p : steps) {
      const std::string problem = problem_with(p, config);
      if (problem.empty()) {
        chosen = p.string();
        break;
      }
      warn(fmt::format("skipping checkpoint {}: {}", p.string(), problem));
    }
  }
  return broadcast_string(world, chosen);
}

void load_checkpoint_weights(const std::string& path, model::ParameterStore& store) {
  const fs::path dir = path;
  const json m = json::parse(read_file((dir / "manifest.json").string()));
  std::map<std::string, std::string> file_of;
  std::map<std::string, std::vector<int64_t>> shape_of;
  for (const auto& t : m.at("tensors")) {
    file_of[t.at("name").get<std::string>()] = t.at("file").get<std::string>();
    shape_of[t.at("name").get<std::string>()] = t.at("shape").get<std::vector<int64_t>>();
  }
  std::map<std::string, io::SafetensorsFile> open;
  auto file = [&](const std::string& name) -> io::SafetensorsFile& {
    auto it = open.find(name);
    if (it == open.end()) it = open.emplace(name, io::SafetensorsFile::open((dir / name).string())).first;
    return it->second;
  };
  for (size_t i = 0; i < store.size(); ++i) {
    const model::ParameterSpec& spec = store.spec(i);
    const auto f = file_of.find(spec.hf_name);
    TESSERA_CHECK(f != file_of.end(), "{}: the checkpoint has no tensor {}", (dir / "manifest.json").string(),
                  spec.hf_name);
    TESSERA_CHECK(shape_of[spec.hf_name] == spec.shape, "{}: tensor {} has shape [{}], the model wants [{}]",
                  (dir / "manifest.json").string(), spec.hf_name, fmt::join(shape_of[spec.hf_name], ", "),
                  fmt::join(spec.shape, ", "));
    file(f->second).read_f32_into(spec.hf_name, store.value(i));
  }
}

std::string resolve_checkpoint(const std::string& path) {
  const fs::path p = path;
  if (fs::exists(p / "manifest.json")) return p.string();
  const fs::path latest = p / "latest";
  TESSERA_CHECK(fs::exists(latest), "{}: neither a checkpoint (no manifest.json) nor a checkpoint directory (no latest)",
                path);
  std::string name = read_file(latest.string());
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  TESSERA_CHECK(fs::exists(p / name / "manifest.json"), "{}: names {}, which has no manifest.json", latest.string(),
                name);
  return (p / name).string();
}

Config checkpoint_config(const std::string& path) {
  const std::string manifest = (fs::path(path) / "manifest.json").string();
  const json m = json::parse(read_file(manifest));
  return parse_config(m.at("config").get<std::string>(), manifest + " (config)");
}

Resumed load_checkpoint(const std::string& path, const Config& config, const CheckpointView& view) {
  TESSERA_CHECK(view.store && view.optimizer, "loading a checkpoint needs the rank's parameters and optimizer");
  const fs::path dir = path;
  const json m = json::parse(read_file((dir / "manifest.json").string()));
  TESSERA_CHECK(m.value("model", "") == config.model.name, "{}: a checkpoint of model '{}', not '{}'",
                (dir / "manifest.json").string(), m.value("model", ""), config.model.name);
  load_checkpoint_weights(path, *view.store);
  std::map<std::string, io::SafetensorsFile> open;
  auto file = [&](const std::string& name) -> io::SafetensorsFile& {
    auto it = open.find(name);
    if (it == open.end()) it = open.emplace(name, io::SafetensorsFile::open((dir / name).string())).first;
    return it->second;
  };

  AdamW& opt = *view.optimizer;
  size_t covered = 0, needed = 0;
  opt.restore(m.at("adam_steps").get<int64_t>(), [&](std::span<float> m1, std::span<float> m2) {
    // Each run of the store the optimizer's range overlaps, from every saved range that overlaps it.
    for (const CheckpointView::Run& r : view.store_runs()) {
      const size_t local_lo = std::max(opt.begin(), r.local), local_hi = std::min(opt.end(), r.local + r.length);
      if (local_lo >= local_hi) continue;
      const size_t begin = r.global + (local_lo - r.local), end = begin + (local_hi - local_lo);
      needed += end - begin;
      for (const auto& o : m.at("optimizer")) {
        const auto b = o.at("begin").get<size_t>(), e = o.at("end").get<size_t>();
        const size_t lo = std::max(b, begin), hi = std::min(e, end);
        if (lo >= hi) continue;
        const io::SafetensorsFile& f = file(o.at("file").get<std::string>());
        for (const char* name : {"exp_avg", "exp_avg_sq"}) {
          const io::TensorInfo* info = f.find(name);
          TESSERA_CHECK(info && info->numel() == static_cast<int64_t>(e - b),
                        "{}: optimizer range [{}, {}) has no {} of {} values", f.path(), b, e, name, e - b);
        }
        // Only the overlap, read straight into the optimizer's buffers.
        const size_t into = local_lo - opt.begin() + (lo - begin);
        f.read_f32_range("exp_avg", lo - b, m1.subspan(into, hi - lo));
        f.read_f32_range("exp_avg_sq", lo - b, m2.subspan(into, hi - lo));
        covered += hi - lo;
      }
    }
  });
  TESSERA_CHECK(covered == needed, "{}: the optimizer state covers {} of the {} values this rank needs",
                (dir / "manifest.json").string(), covered, needed);

  Resumed r;
  r.step = m.at("step").get<int64_t>();
  if (!m.at("loader").is_null()) r.loader = data::LoaderState::from_json(m.at("loader"));
  return r;
}

}  // namespace tessera::train
