#include "tessera/train/pipeline_trainer.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>

#include "tessera/core/error.hpp"
#include "tessera/model/decoder.hpp"
#include "tessera/parallel/pipeline_schedule.hpp"
#include "tessera/plan/plan.hpp"
#include "tessera/train/data_parallel_reducer.hpp"
#include "tessera/train/optimizer.hpp"
#include "tessera/train/expert_parallel_group.hpp"
#include "tessera/train/tensor_parallel_group.hpp"
#include "tessera/train/tree_sum.hpp"

namespace tessera::train {
namespace {

using parallel::ActionKind;
using parallel::ScheduleKind;

// Where one virtual stage sits (a stage, without interleaving): its layers, its contiguous run of the
// model's tensor list, and that run's start in the whole model's flat parameter layout.
struct StageSpan {
  int first_layer = 0, end_layer = 0;
  size_t first_tensor = 0, end_tensor = 0;
  size_t offset = 0, numel = 0;
};

// Virtual stage c·pp + s is chunk c of stage s (Megatron's interleaving; pp of them without it).
std::vector<StageSpan> stage_spans(const Config& c, const std::vector<model::ParameterSpec>& specs) {
  const std::vector<int> layers = plan::layers_per_virtual_stage(c.model, c.parallel);
  const int pp = c.parallel.pp * c.parallel.virtual_stages;
  TESSERA_CHECK(static_cast<int>(layers.size()) == pp, "parallel.pipeline_layers lists {} stages, pp is {}",
                layers.size(), pp);
  TESSERA_CHECK(std::accumulate(layers.begin(), layers.end(), 0) == c.model.num_layers,
                "parallel.pipeline_layers adds up to {} layers, the model has {}",
                std::accumulate(layers.begin(), layers.end(), 0), c.model.num_layers);
  std::vector<StageSpan> spans(static_cast<size_t>(pp));
  int layer = 0;
  for (int s = 0; s < pp; ++s) {
    TESSERA_CHECK(layers[s] >= 1, "pipeline stage {} would hold {} layers; every stage needs at least one", s,
                  layers[s]);
    spans[s].first_layer = layer;
    layer += layers[s];
    spans[s].end_layer = layer;
  }
  // The tensor list runs embedding, layer 0 … layer L−1, final norm, head: each stage's tensors are one run.
  auto stage_of = [&](const model::ParameterSpec& spec) {
    if (spec.placement == model::Placement::embedding) return 0;
    if (spec.placement != model::Placement::layer) return pp - 1;
    int s = 0;
    while (spec.layer >= spans[s].end_layer) ++s;
    return s;
  };
  size_t offset = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    const int s = stage_of(specs[i]);
    StageSpan& span = spans[s];
    if (span.numel == 0 && span.end_tensor == 0) span.first_tensor = i, span.offset = offset;
    TESSERA_CHECK(span.end_tensor == 0 || span.end_tensor == i, "stage {}'s tensors are not contiguous", s);
    span.end_tensor = i + 1;
    span.numel += static_cast<size_t>(specs[i].numel());
    offset += static_cast<size_t>(specs[i].numel());
  }
  return spans;
}

const Config& checked(const Config& c, const dist::Communicator& pp, const dist::Communicator* dp,
                      const dist::Communicator* tp, const dist::Communicator* ep, const dist::Communicator* edp) {
  const ParallelConfig& p = c.parallel;
  TESSERA_CHECK(p.cp == 1, "context parallelism is not built yet; the config asks for cp={}", p.cp);
  TESSERA_CHECK(p.ep == (ep ? ep->size() : 1), "parallel.ep = {} but the expert-parallel group has {} ranks", p.ep,
                ep ? ep->size() : 1);
  model::check_expert_parallel(c.model, p.ep);
  if (p.ep > 1) {
    TESSERA_CHECK(p.etp == 0 || p.etp == p.tp,
                  "parallel.etp = {}: experts split over a tensor-parallel degree other than tp ({}) is not built yet",
                  p.etp, p.tp);
    TESSERA_CHECK((dp ? dp->size() : 1) % p.ep == 0,
                  "parallel.ep = {} with dp = {}: the experts' ranks are data-parallel replicas (MoE folding with "
                  "etp = tp), so ep must divide dp",
                  p.ep, dp ? dp->size() : 1);
    TESSERA_CHECK((edp ? edp->size() : 1) * p.ep == (dp ? dp->size() : 1),
                  "the expert data-parallel group has {} ranks, expected dp / ep = {}", edp ? edp->size() : 1,
                  (dp ? dp->size() : 1) / p.ep);
  }

  TESSERA_CHECK(p.pp == pp.size(), "parallel.pp = {} but the pipeline group has {} ranks", p.pp, pp.size());
  TESSERA_CHECK(p.ep == 1 || p.zero_stage <= 1, "parallel.zero_stage {} with ep: use 0 or 1", p.zero_stage);
  TESSERA_CHECK(p.virtual_stages == 1 || p.ep == 1,
                "parallel.virtual_stages {} with ep = {}: interleaved stages with expert parallelism are not built "
                "yet (an ep rank's store puts its experts after every dense tensor, which splits the chunks)",
                p.virtual_stages, p.ep);
  TESSERA_CHECK(p.tp == (tp ? tp->size() : 1), "parallel.tp = {} but the tensor-parallel group has {} ranks", p.tp,
                tp ? tp->size() : 1);
  model::check_tensor_parallel(c.model, p.tp);
  TESSERA_CHECK(p.zero_stage <= 1,
                "parallel.zero_stage {}: ZeRO-2 needs gradients reduced bucket by bucket during the backward, "
                "which is not built yet; use 0 or 1",
                p.zero_stage);
  const int dp_size = dp ? dp->size() : 1;
  const int64_t micro = microbatches_per_step(c.train);
  TESSERA_CHECK(micro % dp_size == 0,
                "train.global_batch_size / micro_batch_size = {} microbatches per step cannot be split over dp = {}",
                micro, dp_size);
  TESSERA_CHECK(!c.model.tie_embeddings || p.pp == 1,
                "a tied LM head under pipeline parallelism needs the embedding group's gradient exchange, which is "
                "not built yet");
  TESSERA_CHECK(c.train.precision == Precision::fp32 && c.train.device == Device::cpu,
                "pipeline training runs on the CPU backend in fp32 so far");
  return c;
}

// Doubles travel inside float messages as their bytes (two floats each), so they arrive unchanged.
void append_doubles(std::vector<float>& msg, std::span<const double> values) {
  const size_t at = msg.size();
  msg.resize(at + values.size() * 2);
  std::memcpy(msg.data() + at, values.data(), values.size() * sizeof(double));
}
void read_doubles(std::span<const float> msg, size_t& at, std::span<double> out) {
  std::memcpy(out.data(), msg.data() + at, out.size() * sizeof(double));
  at += out.size() * 2;
}

enum Tag : int { kActivation = 0, kGradient = 1 };

}  // namespace

struct PipelineTrainer::Impl {
  Config config;
  dist::Communicator& pp;
  dist::Communicator* dp;
  std::unique_ptr<TensorParallelGroup> tp;  // tp > 1
  std::unique_ptr<ExpertParallelGroup> ep;  // ep > 1
  dist::Communicator* edp;                   // replicas holding the same experts (ep > 1, edp > 1)
  int stage, stages;
  int chunks;                     // virtual stages on this rank (1 without interleaving)
  std::vector<StageSpan> spans;   // per virtual stage c·stages + s
  size_t total_params;
  model::ParameterStore store;
  size_t dense;  // store values [0, dense) are reduced over dp; the rest are this rank's experts
  int64_t E;
  std::vector<std::pair<size_t, size_t>> chunk_range;  // each chunk's values in the store: [begin, end)
  std::vector<std::vector<std::unique_ptr<model::Decoder>>> slots;  // per chunk, one per microbatch in flight
  std::unique_ptr<DataParallelReducer> reducer;  // dp > 1
  AdamW optimizer;  // the stage's whole buffer, or (ZeRO-1) this dp rank's chunk of its dense part
  std::unique_ptr<DataParallelReducer> expert_reducer;  // edp > 1: expert gradients over edp
  std::unique_ptr<AdamW> expert_optimizer;
  // Tensor/expert-parallel checkpoints: the stage's tensors whole (every expert, no shards) with whole
  // optimizer state, the layout-independent form the checkpoint format stores.
  std::unique_ptr<model::ParameterStore> whole_store;
  std::unique_ptr<AdamW> whole_optimizer;
  // Per chunk: each microbatch's gradient added in microbatch order, as the 1-rank trainer adds them.
  std::vector<TreeSum> accumulators;
  std::vector<float> partial;
  std::vector<float> updated_chunk;  // ZeRO-1: this rank's updated weights, reused every step
  std::vector<std::vector<model::StageInput>> inputs;   // per chunk and slot: what the previous stage sent
  std::vector<std::vector<std::vector<float>>> hidden_in;
  std::vector<float> message;
  // Gradients received for, and computed by, a (chunk, microbatch) until its backward / its send.
  std::map<std::pair<int, int>, std::vector<float>> gradients_in, gradients_out;
  bool step_in_progress = false;  // set while step() runs: still set at the next call if it threw

  int virtual_stage(int chunk) const { return chunk * stages + stage; }

  // The whole (unsharded) tensors of this rank's chunks, in the model's order.
  std::vector<model::ParameterSpec> chunk_tensors() const {
    const auto all = model::parameter_specs(config.model);
    std::vector<model::ParameterSpec> out;
    for (int c = 0; c < chunks; ++c) {
      const StageSpan& span = spans[static_cast<size_t>(virtual_stage(c))];
      out.insert(out.end(), all.begin() + static_cast<std::ptrdiff_t>(span.first_tensor),
                 all.begin() + static_cast<std::ptrdiff_t>(span.end_tensor));
    }
    return out;
  }
  // The stage's tensors as this rank holds them: its experts only (dense tensors first), cut to its
  // tensor-parallel shards.
  std::vector<model::ParameterSpec> stage_specs() const {
    const int ep_rank = ep ? ep->rank() : 0, ep_size = ep ? ep->size() : 1;
    return model::shard_specs(model::expert_parallel_specs(chunk_tensors(), config.model, ep_rank, ep_size),
                              config.model, tp ? tp->rank() : 0, tp ? tp->size() : 1);
  }
  // This rank's ZeRO chunk of a `length`-value range reduced by `r` (the whole range without one).
  static size_t chunk_start(const DataParallelReducer* r, size_t length) {
    return r ? std::min(r->chunk_begin(), length) : 0;
  }
  static size_t chunk_end(const DataParallelReducer* r, size_t length) {
    return r ? std::min(r->chunk_begin() + r->chunk_size(), length) : length;
  }
  // Values before the first expert tensor: the part reduced over dp (all of it without expert parallelism).
  static size_t dense_prefix(const model::ParameterStore& store, bool expert_parallel) {
    if (!expert_parallel) return store.values().size();
    for (size_t i = 0; i < store.size(); ++i)
      if (store.spec(i).is_expert()) return store.offset(i);
    return store.values().size();
  }

  Impl(const Config& c, dist::Communicator& comm, dist::Communicator* dp_comm, dist::Communicator* tp_comm,
       dist::Communicator* ep_comm, dist::Communicator* edp_comm)
      : config(checked(c, comm, dp_comm, tp_comm, ep_comm, edp_comm)), pp(comm),
        dp(dp_comm && dp_comm->size() > 1 ? dp_comm : nullptr),
        tp(tp_comm && tp_comm->size() > 1 ? std::make_unique<TensorParallelGroup>(*tp_comm) : nullptr),
        ep(ep_comm && ep_comm->size() > 1 ? std::make_unique<ExpertParallelGroup>(*ep_comm) : nullptr),
        edp(ep && edp_comm && edp_comm->size() > 1 ? edp_comm : nullptr), stage(comm.rank()), stages(comm.size()),
        chunks(c.parallel.virtual_stages), spans(stage_spans(c, model::parameter_specs(c.model))),
        total_params(spans.back().offset + spans.back().numel),
        store(stage_specs()),
        dense(dense_prefix(store, ep != nullptr)), E(c.model.num_experts),
        reducer(dp ? std::make_unique<DataParallelReducer>(*dp, dense) : nullptr),
        optimizer(c.optim, store, reducer && c.parallel.zero_stage == 1 ? chunk_start(reducer.get(), dense) : 0,
                  reducer && c.parallel.zero_stage == 1 ? chunk_end(reducer.get(), dense) : SIZE_MAX),
        expert_reducer(edp ? std::make_unique<DataParallelReducer>(*edp, store.values().size() - dense) : nullptr),
        // ZeRO-1 with expert parallelism: the experts' state on its own, sharded over edp when replicated.
        expert_optimizer(reducer && c.parallel.zero_stage == 1 && dense < store.values().size()
                             ? std::make_unique<AdamW>(c.optim, store, dense + chunk_start(expert_reducer.get(), store.values().size() - dense),
                                                       dense + chunk_end(expert_reducer.get(), store.values().size() - dense))
                             : nullptr),
        partial(store.values().size()) {
    model::initialize_parameters(store, c.model.init_std, c.train.seed);
    // The store holds the chunks' tensors in chunk order (shard_specs keeps the order; no ep reordering).
    size_t tensor = 0;
    for (int ch = 0; ch < chunks; ++ch) {
      const StageSpan& span = spans[static_cast<size_t>(virtual_stage(ch))];
      const size_t first = tensor;
      tensor += span.end_tensor - span.first_tensor;
      chunk_range.emplace_back(chunks == 1 ? 0 : store.offset(first),
                               chunks == 1 || tensor == store.size() ? store.values().size() : store.offset(tensor));
      accumulators.emplace_back(chunk_range.back().second - chunk_range.back().first);
    }
    slots.resize(static_cast<size_t>(chunks));
    inputs.resize(static_cast<size_t>(chunks));
    hidden_in.resize(static_cast<size_t>(chunks));
  }

  model::Decoder& slot(int chunk, int microbatch, int in_flight) {
    const auto i = static_cast<size_t>(microbatch % in_flight);
    auto& ring = slots[static_cast<size_t>(chunk)];
    const int vs = virtual_stage(chunk), last = stages * chunks - 1;
    while (ring.size() <= i) {
      const StageSpan& s = spans[static_cast<size_t>(vs)];
      ring.push_back(std::make_unique<model::Decoder>(
          config.model, store, config.train.micro_batch_size * config.data.seq_length, config.data.seq_length,
          config.train.recompute, model::StageLayers{s.first_layer, s.end_layer, vs == 0, vs == last}, tp.get(),
          ep.get(), config.parallel.sequence_parallel));
      inputs[static_cast<size_t>(chunk)].emplace_back();
      hidden_in[static_cast<size_t>(chunk)].emplace_back();
    }
    return *ring[i];
  }

  // Message tags name the receiving virtual stage, so both ends compute the same one.
  int tag(int microbatch, int receiver_virtual_stage, Tag kind) const {
    return (microbatch * stages * chunks + receiver_virtual_stage) * 2 + kind;
  }

  // The token rows a stage passes on: this tp rank's share under sequence parallelism, else all.
  int64_t stage_rows(const model::Batch& b) const {
    return tp && config.parallel.sequence_parallel ? model::sequence_parallel_rows(b.tokens(), tp->rank(), tp->size())
                                                   : b.tokens();
  }

  size_t routing_doubles(int layers) const { return E > 0 ? static_cast<size_t>(layers) * (2 * E + 1) : 0; }

  void send_activation(const model::Decoder& d, int mb, int chunk, int peer) {
    message.assign(d.hidden_out().begin(), d.hidden_out().end());
    for (const model::LayerRouting& r : d.routing()) {
      append_doubles(message, r.selections);
      append_doubles(message, r.prob_sums);
      append_doubles(message, std::span<const double>(&r.z, 1));
    }
    pp.send(message, peer, tag(mb, virtual_stage(chunk) + 1, kActivation))->wait();
  }

  void recv_activation(const model::Batch& b, int mb, int chunk, int slot_index, int peer) {
    const int layers = spans[static_cast<size_t>(virtual_stage(chunk))].first_layer;
    const size_t hidden = static_cast<size_t>(stage_rows(b) * config.model.hidden_size);
    message.resize(hidden + 2 * routing_doubles(layers));
    pp.recv(message, peer, tag(mb, virtual_stage(chunk), kActivation))->wait();
    auto& h = hidden_in[static_cast<size_t>(chunk)][static_cast<size_t>(slot_index)];
    h.assign(message.begin(), message.begin() + static_cast<std::ptrdiff_t>(hidden));
    model::StageInput& in = inputs[static_cast<size_t>(chunk)][static_cast<size_t>(slot_index)];
    in.hidden = h;
    in.routing.assign(E > 0 ? static_cast<size_t>(layers) : 0, {});
    size_t at = hidden;
    for (model::LayerRouting& r : in.routing) {
      r.selections.resize(static_cast<size_t>(E));
      r.prob_sums.resize(static_cast<size_t>(E));
      read_doubles(message, at, r.selections);
      read_doubles(message, at, r.prob_sums);
      read_doubles(message, at, std::span<double>(&r.z, 1));
    }
  }

  // After a (chunk, microbatch)'s backward: the gradient its send_gradient will send (kept apart from the
  // decoder, whose slot a later microbatch may take first).
  void keep_gradient(const model::Decoder& d, int mb, int chunk) {
    std::vector<float>& out = gradients_out[{chunk, mb}];
    out.assign(d.d_hidden_in().begin(), d.d_hidden_in().end());
    if (E > 0) append_doubles(out, d.aux_grad());
  }

  void send_gradient(int mb, int chunk, int peer) {
    const auto it = gradients_out.find({chunk, mb});
    TESSERA_CHECK(it != gradients_out.end(), "stage {}: no gradient of microbatch {} chunk {} to send", stage, mb, chunk);
    pp.send(it->second, peer, tag(mb, virtual_stage(chunk) - 1, kGradient))->wait();
    gradients_out.erase(it);
  }

  void recv_gradient(const model::Batch& b, int mb, int chunk, int peer) {
    const size_t hidden = static_cast<size_t>(stage_rows(b) * config.model.hidden_size);
    std::vector<float>& buffer = gradients_in[{chunk, mb}];
    buffer.resize(hidden + (E > 0 ? 2 * static_cast<size_t>(E) : 0));
    pp.recv(buffer, peer, tag(mb, virtual_stage(chunk), kGradient))->wait();
  }

  // The gradient received for (chunk, microbatch), as the decoder's backward takes it.
  model::StageGradient received_gradient(const model::Batch& b, int mb, int chunk) {
    const size_t hidden = static_cast<size_t>(stage_rows(b) * config.model.hidden_size);
    const auto it = gradients_in.find({chunk, mb});
    TESSERA_CHECK(it != gradients_in.end(), "stage {}: no gradient received for microbatch {} chunk {}", stage, mb, chunk);
    const std::vector<float>& buffer = it->second;
    model::StageGradient g;
    g.d_hidden = std::span<const float>(buffer).first(hidden);
    if (E > 0) {
      g.aux_grad.resize(static_cast<size_t>(E));
      size_t at = hidden;
      read_doubles(buffer, at, g.aux_grad);
    }
    return g;
  }

  // sqrt(Σ g²) over the whole model: each rank adds the squares of the values it alone counts — its
  // ZeRO chunk (or, without ZeRO-1, dp rank 0 all of them), its own experts (split the same way over edp),
  // tensors every tp rank holds whole only on tp rank 0 — and the exact sums (square_sum.hpp) are added
  // over tp, dp and pp, which between them cover every rank once. Any layout gives the 1-rank bits.
  double grad_norm() {
    const auto g = std::span<const float>(store.grads());
    const bool zero1 = config.parallel.zero_stage == 1;
    auto owned = [&](bool expert) -> std::pair<size_t, size_t> {
      if (!expert) {
        if (reducer && zero1) return {optimizer.begin(), optimizer.end()};
        return {0, reducer && dp->rank() != 0 ? 0 : dense};
      }
      if (expert_reducer && expert_optimizer) return {expert_optimizer->begin(), expert_optimizer->end()};
      return {dense, expert_reducer && edp->rank() != 0 ? dense : g.size()};
    };
    const std::array<std::pair<size_t, size_t>, 2> ranges = {owned(false), owned(true)};
    SquareSum mine;
    for (size_t i = 0; i < store.size(); ++i) {
      const model::ParameterSpec& spec = store.spec(i);
      if (!counts_for_norm(spec, config.model, tp ? tp->rank() : 0, tp ? tp->size() : 1)) continue;
      const auto [lo, hi] = ranges[ep && spec.is_expert() ? 1 : 0];
      const size_t begin = std::max(lo, store.offset(i)), end = std::min(hi, store.offset(i) + store.numel(i));
      if (begin < end) mine.add(g.subspan(begin, end - begin));
    }
    return std::sqrt(sum_over({tp ? &tp->communicator() : nullptr, dp, &pp}, mine).value());
  }

  StepStats step(const std::vector<model::Batch>& mbs) {
    TESSERA_CHECK(!mbs.empty(), "a pipeline step needs at least one microbatch");
    if (step_in_progress) {
      // The last step threw part-way: drop its partial gradient sums and unsent messages.
      for (size_t ch = 0; ch < accumulators.size(); ++ch)
        accumulators[ch] = TreeSum(chunk_range[ch].second - chunk_range[ch].first);
      gradients_in.clear();
      gradients_out.clear();
    }
    step_in_progress = true;
    const int M = static_cast<int>(mbs.size());  // this replica's
    const int replicas = dp ? dp->size() : 1;
    StepStats stats;
    stats.step = optimizer.steps_taken() + 1;
    std::array<int64_t, 2> counts = {0, 0};
    for (const auto& mb : mbs) counts[0] += mb.num_targets(), counts[1] += mb.tokens();
    if (dp) dp->all_reduce(std::span<int64_t>(counts), dist::ReduceOp::sum)->wait();
    stats.targets = counts[0], stats.tokens = counts[1];
    TESSERA_CHECK(stats.targets > 0, "step {}: no token of its microbatches carries a loss label", stats.step);
    // The same scaling as Trainer::step over all replicas' microbatches.
    const double total_micro = static_cast<double>(M) * replicas;
    const float ce_scale = 1.0f / static_cast<float>(stats.targets);
    const auto aux_scale = static_cast<float>(config.model.router_aux_loss_coef / total_micro);
    const auto z_scale = static_cast<float>(config.model.router_z_loss_coef / total_micro);
    const ScheduleKind kind = chunks > 1 ? ScheduleKind::interleaved_one_f_one_b : ScheduleKind::one_f_one_b;
    const int in_flight = parallel::max_in_flight_bound(kind, stage, stages, M, chunks);
    const int last = stages * chunks - 1;  // the virtual stage with the LM head and loss
    std::vector<double> losses(static_cast<size_t>(3 * M), 0.0);  // ce, aux, z per microbatch (last stage)
    for (const parallel::Action& a : parallel::pipeline_schedule(kind, stage, stages, M, chunks)) {
      const model::Batch& b = mbs[static_cast<size_t>(a.microbatch)];
      const int vs = virtual_stage(a.chunk), ring = a.microbatch % in_flight;
      model::Decoder& d = slot(a.chunk, a.microbatch, in_flight);
      switch (a.kind) {
        case ActionKind::recv_activation:
          recv_activation(b, a.microbatch, a.chunk, ring, a.peer);
          break;
        case ActionKind::forward: {
          const model::ForwardLoss l = d.forward(
              b, vs == 0 ? model::StageInput{} : inputs[static_cast<size_t>(a.chunk)][static_cast<size_t>(ring)]);
          if (vs == last) {
            const auto at = static_cast<size_t>(3 * a.microbatch);
            losses[at] = l.ce_sum, losses[at + 1] = l.aux, losses[at + 2] = l.z;
            add_expert_load(stats.expert_load, l.expert_load);
          }
          break;
        }
        case ActionKind::send_activation:
          send_activation(d, a.microbatch, a.chunk, a.peer);
          break;
        case ActionKind::recv_gradient:
          recv_gradient(b, a.microbatch, a.chunk, a.peer);
          break;
        case ActionKind::backward: {
          const auto [begin, end] = chunk_range[static_cast<size_t>(a.chunk)];
          const std::span<float> grads = std::span<float>(store.grads()).subspan(begin, end - begin);
          std::fill(grads.begin(), grads.end(), 0.0f);
          d.backward(ce_scale, aux_scale, z_scale,
                     vs == last ? model::StageGradient{} : received_gradient(b, a.microbatch, a.chunk));
          gradients_in.erase({a.chunk, a.microbatch});
          accumulators[static_cast<size_t>(a.chunk)].add(grads);
          if (vs > 0) keep_gradient(d, a.microbatch, a.chunk);
          break;
        }
        case ActionKind::send_gradient:
          send_gradient(a.microbatch, a.chunk, a.peer);
          break;
      }
    }
    // Each chunk's microbatch sum into its part of the stage's gradient.
    const std::span<float> summed = dp ? std::span<float>(partial) : std::span<float>(store.grads());
    for (int ch = 0; ch < chunks; ++ch) {
      const auto [begin, end] = chunk_range[static_cast<size_t>(ch)];
      accumulators[static_cast<size_t>(ch)].finish(summed.subspan(begin, end - begin));
    }
    // The stage's gradient: this replica's tree sum, then (dp) the tree over replicas, whole on every rank.
    if (dp) {
      reduce_gradients(*reducer, 0, dense, tree_level(M), &optimizer);
      // Expert gradients already hold their ep group's tokens (they came over the ep exchange); replicas
      // holding the same experts add theirs.
      if (expert_reducer)
        reduce_gradients(*expert_reducer, dense, partial.size() - dense, tree_level(M), expert_optimizer.get());
      else
        std::copy(partial.begin() + static_cast<std::ptrdiff_t>(dense), partial.end(),
                  store.grads().begin() + static_cast<std::ptrdiff_t>(dense));
    }
    if (tp) reduce_partial_gradients(store, config.model, *tp, config.parallel.sequence_parallel);

    // The last stage saw the losses; every stage reports them, summed in global microbatch order.
    std::vector<int64_t> bits(losses.size());
    std::memcpy(bits.data(), losses.data(), losses.size() * sizeof(double));
    pp.broadcast(std::span<int64_t>(bits), stages - 1)->wait();
    std::memcpy(losses.data(), bits.data(), losses.size() * sizeof(double));
    if (dp) losses = all_gather_doubles(*dp, losses);
    if (E > 0) {
      // The last stage counted every layer's routing (it travels with the activations); every replica's.
      stats.expert_load.resize(static_cast<size_t>(E), 0);
      pp.broadcast(std::span<int64_t>(stats.expert_load), stages - 1)->wait();
      if (dp) dp->all_reduce(std::span<int64_t>(stats.expert_load), dist::ReduceOp::sum)->wait();
    }
    std::array<double, 3> sums = {0, 0, 0};
    for (size_t i = 0; i < losses.size(); i += 3) sums[0] += losses[i], sums[1] += losses[i + 1], sums[2] += losses[i + 2];
    stats.ce_loss = sums[0] / static_cast<double>(stats.targets);
    stats.aux_loss = sums[1] / total_micro;
    stats.z_loss = sums[2] / total_micro;
    stats.loss = stats.ce_loss + config.model.router_aux_loss_coef * stats.aux_loss +
                 config.model.router_z_loss_coef * stats.z_loss;

    stats.grad_norm = grad_norm();
    TESSERA_CHECK(std::isfinite(stats.grad_norm), "step {}: the gradient norm is not finite (loss {})", stats.step,
                  stats.loss);
    clip_grad_norm(store.grads(), stats.grad_norm, config.optim.clip_grad);
    stats.lr = learning_rate(config.optim, config.train.steps, stats.step);
    if (reducer && config.parallel.zero_stage == 1) {
      // ZeRO-1: this rank updates its chunk of the stage's dense values (and of its experts' over edp);
      // the updated chunks are gathered into every rank.
      update_chunk(optimizer, reducer.get(), 0, dense, stats.lr);
      if (expert_optimizer)
        update_chunk(*expert_optimizer, expert_reducer.get(), dense, store.values().size() - dense, stats.lr);
    } else {
      optimizer.step(store, stats.lr);
    }
    step_in_progress = false;
    return stats;
  }

  bool stage_root() const {
    return (!tp || tp->rank() == 0) && (!dp || dp->rank() == 0);
  }

  // The whole stage: specs in the model's order, every expert, no shards.
  std::vector<model::ParameterSpec> whole_stage_specs() const { return chunk_tensors(); }

  // Where the chunks of a store holding them in order (unsharded: numel the whole tensors') sit in the
  // model's flat layout.
  std::vector<CheckpointView::Run> chunk_runs(bool whole) const {
    std::vector<CheckpointView::Run> runs;
    size_t at = 0;
    for (int ch = 0; ch < chunks; ++ch) {
      const StageSpan& span = spans[static_cast<size_t>(virtual_stage(ch))];
      const size_t length = whole ? span.numel : chunk_range[static_cast<size_t>(ch)].second - chunk_range[static_cast<size_t>(ch)].first;
      runs.push_back({whole ? at : chunk_range[static_cast<size_t>(ch)].first, span.offset, length});
      at += length;
    }
    return runs;
  }

  // This rank's optimizer moments laid out like its store: ZeRO-1 chunks gathered over dp (dense) and
  // edp (experts). Collective over those groups.
  std::array<std::vector<float>, 2> local_moments() {
    const size_t n = store.values().size();
    std::array<std::vector<float>, 2> out = {std::vector<float>(n, 0.0f), std::vector<float>(n, 0.0f)};
    auto place = [&](const AdamW& opt, DataParallelReducer* r, size_t base, size_t length) {
      const std::array<std::span<const float>, 2> moments = {opt.exp_avg(), opt.exp_avg_sq()};
      for (size_t k = 0; k < 2; ++k) {
        if (r == nullptr || config.parallel.zero_stage == 0) {
          std::copy(moments[k].begin(), moments[k].end(), out[k].begin() + static_cast<std::ptrdiff_t>(opt.begin()));
          continue;
        }
        updated_chunk.assign(r->chunk_size(), 0.0f);
        std::copy(moments[k].begin(), moments[k].end(), updated_chunk.begin());
        const std::span<const float> whole = r->all_gather(updated_chunk);
        std::copy_n(whole.begin(), length, out[k].begin() + static_cast<std::ptrdiff_t>(base));
      }
    };
    place(optimizer, reducer.get(), 0, dense);
    if (expert_optimizer) place(*expert_optimizer, expert_reducer.get(), dense, n - dense);
    return out;
  }

  // Fills whole_store / whole_optimizer on every rank of the stage from the ranks' shards and experts.
  // Collective over tp, dp, edp and ep.
  void gather_whole_stage() {
    const std::vector<model::ParameterSpec> specs = whole_stage_specs();
    whole_store = std::make_unique<model::ParameterStore>(specs, false);
    whole_optimizer = std::make_unique<AdamW>(config.optim, *whole_store);
    std::array<std::vector<float>, 2> moments = local_moments();
    // Each of values, exp_avg, exp_avg_sq: this rank's tensors whole (tp gathered), in its store's order.
    std::array<std::vector<float>, 3> mine;
    const std::array<std::span<const float>, 3> sources = {store.values(), moments[0], moments[1]};
    for (size_t k = 0; k < 3; ++k)
      mine[k] = tp ? gather_whole(store, config.model, *tp, sources[k])
                   : std::vector<float>(sources[k].begin(), sources[k].end());
    // Under ep every rank's experts (equal counts and shapes) gathered over the ep group; rank r's tensors
    // are expert_parallel_specs(..., r, ep): its dense ones, then its experts.
    const int ranks = ep ? ep->size() : 1;
    std::vector<std::vector<model::ParameterSpec>> held(static_cast<size_t>(ranks));
    for (int r = 0; r < ranks; ++r) held[r] = model::expert_parallel_specs(specs, config.model, r, ranks);
    size_t dense_whole = 0;
    for (const auto& s : held[0])
      if (!s.is_expert()) dense_whole += static_cast<size_t>(s.numel());
    std::array<std::vector<float>, 3> all;
    for (size_t k = 0; k < 3; ++k) {
      if (!ep) {
        all[k] = std::move(mine[k]);
        continue;
      }
      const size_t experts = mine[k].size() - dense_whole;
      std::vector<float> gathered(experts * static_cast<size_t>(ranks));
      ep->communicator().all_gather(std::span<const float>(mine[k]).subspan(dense_whole), gathered)->wait();
      all[k].assign(mine[k].begin(), mine[k].begin() + static_cast<std::ptrdiff_t>(dense_whole));
      all[k].insert(all[k].end(), gathered.begin(), gathered.end());
    }
    // Place by name: dense tensors from this rank's part, then each ep rank's experts in turn.
    std::vector<const model::ParameterSpec*> order;
    for (const auto& s : held[0])
      if (ranks == 1 || !s.is_expert()) order.push_back(&s);
    for (int r = 0; r < ranks && ranks > 1; ++r)
      for (const auto& s : held[r])
        if (s.is_expert()) order.push_back(&s);
    std::array<std::vector<float>, 2> whole_moments = {std::vector<float>(whole_store->values().size()),
                                                        std::vector<float>(whole_store->values().size())};
    size_t at = 0;
    for (const model::ParameterSpec* s : order) {
      const size_t j = *whole_store->find(s->hf_name), n = whole_store->numel(j);
      std::copy_n(all[0].begin() + static_cast<std::ptrdiff_t>(at), n, whole_store->value(j).begin());
      for (size_t k = 0; k < 2; ++k)
        std::copy_n(all[k + 1].begin() + static_cast<std::ptrdiff_t>(at), n,
                    whole_moments[k].begin() + static_cast<std::ptrdiff_t>(whole_store->offset(j)));
      at += n;
    }
    TESSERA_CHECK(at == whole_store->values().size(), "stage {}: gathered {} of its {} values", stage, at,
                  whole_store->values().size());
    whole_optimizer->restore(optimizer.steps_taken(), [&](std::span<float> m, std::span<float> v) {
      std::copy(whole_moments[0].begin(), whole_moments[0].end(), m.begin());
      std::copy(whole_moments[1].begin(), whole_moments[1].end(), v.begin());
    });
  }

  // The inverse, with no communication: this rank's shards and experts (and, with `optimizer_state`, its
  // moments and step count) from whole_store / whole_optimizer.
  void scatter_whole_stage(bool optimizer_state) {
    std::array<std::vector<float>, 2> moments = {std::vector<float>(store.values().size()),
                                                  std::vector<float>(store.values().size())};
    for (size_t i = 0; i < store.size(); ++i) {
      const model::ParameterSpec& spec = store.spec(i);
      const auto j = whole_store->find(spec.hf_name);
      TESSERA_CHECK(j.has_value(), "the whole stage has no tensor {}", spec.hf_name);
      model::copy_shard(store.value(i), whole_store->value(*j), spec);
      const size_t at = whole_store->offset(*j), n = whole_store->numel(*j);
      for (size_t k = 0; k < 2; ++k) {
        const std::span<const float> src = (k == 0 ? whole_optimizer->exp_avg() : whole_optimizer->exp_avg_sq()).subspan(at, n);
        model::copy_shard(std::span<float>(moments[k]).subspan(store.offset(i), store.numel(i)), src, spec);
      }
    }
    if (!optimizer_state) return;
    for (AdamW* opt : {&optimizer, expert_optimizer.get()}) {
      if (opt == nullptr) continue;
      opt->restore(whole_optimizer->steps_taken(), [&](std::span<float> m, std::span<float> v) {
        std::copy_n(moments[0].begin() + static_cast<std::ptrdiff_t>(opt->begin()), m.size(), m.begin());
        std::copy_n(moments[1].begin() + static_cast<std::ptrdiff_t>(opt->begin()), v.size(), v.begin());
      });
    }
  }

  // The store's gradients [base, base + length) summed over `r`'s group from every rank's `partial`: all
  // of them (ZeRO-0), or under ZeRO-1 only the chunk `opt` updates — no rank needs the rest, and the
  // norm is summed from the chunks.
  void reduce_gradients(DataParallelReducer& r, size_t base, size_t length, int level, const AdamW* opt) {
    const std::span<const float> chunk = r.reduce_scatter(std::span<const float>(partial).subspan(base, length), level);
    if (config.parallel.zero_stage == 1) {
      std::copy_n(chunk.begin(), opt->end() - opt->begin(), store.grads().begin() + static_cast<std::ptrdiff_t>(opt->begin()));
      return;
    }
    const std::span<const float> whole = r.all_gather(chunk);
    std::copy_n(whole.begin(), length, store.grads().begin() + static_cast<std::ptrdiff_t>(base));
  }

  // ZeRO-1 over [base, base + length): `opt` updates this rank's chunk, which `r` (null: no replicas)
  // gathers into every rank's values.
  void update_chunk(AdamW& opt, DataParallelReducer* r, size_t base, size_t length, double lr) {
    const size_t begin = opt.begin(), end = opt.end();
    opt.step_range(store, std::span<const float>(store.grads()).subspan(begin, end - begin), lr);
    if (!r) return;
    // The chunk's tail past the range's last value stays zero (padding).
    updated_chunk.assign(r->chunk_size(), 0.0f);
    std::copy(store.values().begin() + static_cast<std::ptrdiff_t>(begin),
              store.values().begin() + static_cast<std::ptrdiff_t>(end), updated_chunk.begin());
    const std::span<const float> whole = r->all_gather(updated_chunk);
    std::copy_n(whole.begin(), length, store.values().begin() + static_cast<std::ptrdiff_t>(base));
  }
};

PipelineTrainer::PipelineTrainer(const Config& config, dist::Communicator& pp, dist::Communicator* dp,
                                 dist::Communicator* tp, dist::Communicator* ep, dist::Communicator* edp)
    : impl_(std::make_unique<Impl>(config, pp, dp, tp, ep, edp)) {}
PipelineTrainer::~PipelineTrainer() = default;
StepStats PipelineTrainer::step(const std::vector<model::Batch>& microbatches) { return impl_->step(microbatches); }
model::ParameterStore& PipelineTrainer::parameters() { return impl_->store; }
size_t PipelineTrainer::global_offset() const { return impl_->spans[impl_->stage].offset; }
void PipelineTrainer::checkpoint_loaded(bool optimizer_state) {
  if (impl_->tp || impl_->ep) impl_->scatter_whole_stage(optimizer_state);
}

void PipelineTrainer::release_checkpoint_view() {
  impl_->whole_store.reset();
  impl_->whole_optimizer.reset();
}

std::vector<std::pair<std::string, std::vector<float>>> PipelineTrainer::whole_tensors(bool grads) {
  const model::ParameterStore& store = impl_->store;
  std::vector<float> flat;
  if (impl_->tp) {
    flat = gather_whole(store, impl_->config.model, *impl_->tp, grads ? store.grads() : store.values());
  } else {
    const auto v = grads ? store.grads() : store.values();
    flat.assign(v.begin(), v.end());
  }
  std::vector<std::pair<std::string, std::vector<float>>> out;
  size_t at = 0;
  for (const model::ParameterSpec& spec : store.specs()) {
    const auto n = static_cast<size_t>(model::ParameterSpec{spec.hf_name, spec.full_shape()}.numel());
    out.emplace_back(spec.hf_name, std::vector<float>(flat.begin() + static_cast<std::ptrdiff_t>(at),
                                                      flat.begin() + static_cast<std::ptrdiff_t>(at + n)));
    at += n;
  }
  return out;
}

CheckpointView PipelineTrainer::checkpoint_view() {
  if (impl_->tp || impl_->ep) {
    // Shards and expert subsets are gathered into the whole stage; its root writes it like a pp stage.
    impl_->gather_whole_stage();
    return {impl_->whole_store.get(), impl_->spans[impl_->stage].offset, impl_->whole_optimizer.get(),
            impl_->stage_root(), impl_->stage_root(), fmt::format("pp{:02}", impl_->stage),
            impl_->chunks > 1 ? impl_->chunk_runs(true) : std::vector<CheckpointView::Run>{}};
  }
  const int dp_rank = impl_->dp ? impl_->dp->rank() : 0;
  const bool first = dp_rank == 0;
  return {&impl_->store, impl_->spans[impl_->stage].offset, &impl_->optimizer, first,
          first || (impl_->reducer && impl_->config.parallel.zero_stage == 1),
          fmt::format("pp{:02}-dp{:03}", impl_->stage, dp_rank),
          impl_->chunks > 1 ? impl_->chunk_runs(false) : std::vector<CheckpointView::Run>{}};
}

}  // namespace tessera::train
