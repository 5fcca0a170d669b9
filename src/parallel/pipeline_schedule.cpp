// Pipeline schedules in three steps, each a pure function of (kind, stages, microbatches, chunks):
//   1. the order in which each stage runs its forwards and backwards (GPipe, 1F1B, Megatron's interleaving);
//   2. a unit-time timeline of those computations, each starting as soon as its stage is free and its
//      input exists (transfers instantaneous and buffered);
//   3. the transfers, inserted where that timeline says each one happens: a message meets at the instant
//      its consumer starts, and at any instant every stage handles its messages sorted by receiving stage.
// Step 3 gives every stage's list the same global order of messages, keyed (instant, receiver), which is
// what makes blocking rendezvous transfers deadlock-free (docs/pipeline.md has the argument).

#include <algorithm>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "tessera/core/error.hpp"
#include "tessera/parallel/pipeline_schedule.hpp"

namespace tessera::parallel {

std::string_view action_kind_name(ActionKind kind) {
  switch (kind) {
    case ActionKind::forward: return "forward";
    case ActionKind::backward: return "backward";
    case ActionKind::send_activation: return "send_activation";
    case ActionKind::recv_activation: return "recv_activation";
    case ActionKind::send_gradient: return "send_gradient";
    case ActionKind::recv_gradient: return "recv_gradient";
  }
  return "unknown";
}

std::string_view schedule_kind_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::gpipe: return "gpipe";
    case ScheduleKind::one_f_one_b: return "1f1b";
    case ScheduleKind::interleaved_one_f_one_b: return "interleaved-1f1b";
  }
  return "unknown";
}

std::string to_string(const Action& a) {
  switch (a.kind) {
    case ActionKind::forward:
    case ActionKind::backward:
      return fmt::format("{}(mb {}, chunk {})", action_kind_name(a.kind), a.microbatch, a.chunk);
    case ActionKind::send_activation:
    case ActionKind::send_gradient:
      return fmt::format("{}(mb {}, chunk {}, to stage {})", action_kind_name(a.kind), a.microbatch, a.chunk,
                         a.peer);
    case ActionKind::recv_activation:
    case ActionKind::recv_gradient:
      return fmt::format("{}(mb {}, chunk {}, from stage {})", action_kind_name(a.kind), a.microbatch, a.chunk,
                         a.peer);
  }
  return "unknown action";
}

namespace {

struct Shape {
  ScheduleKind kind;
  int stages;
  int microbatches;
  int chunks;
  int virtual_stages() const { return stages * chunks; }
};

Shape checked_shape(ScheduleKind kind, int num_stages, int num_microbatches, int virtual_chunks) {
  const auto name = schedule_kind_name(kind);
  TESSERA_CHECK(num_stages >= 1, "{} pipeline schedule: num_stages must be at least 1 (got {})", name, num_stages);
  TESSERA_CHECK(num_microbatches >= 1, "{} pipeline schedule: num_microbatches must be at least 1 (got {})", name,
                num_microbatches);
  TESSERA_CHECK(virtual_chunks >= 1, "{} pipeline schedule: virtual_chunks must be at least 1 (got {})", name,
                virtual_chunks);
  if (kind != ScheduleKind::interleaved_one_f_one_b) {
    TESSERA_CHECK(virtual_chunks == 1,
                  "{} pipeline schedule: virtual_chunks = {} needs the interleaved-1f1b schedule (only it runs "
                  "more than one model chunk per stage)",
                  name, virtual_chunks);
  } else {
    TESSERA_CHECK(virtual_chunks >= 2,
                  "interleaved-1f1b pipeline schedule: virtual_chunks must be at least 2 (got {}); with one chunk "
                  "per stage use 1f1b",
                  virtual_chunks);
    TESSERA_CHECK(num_stages >= 2,
                  "interleaved-1f1b pipeline schedule: needs at least 2 stages (got {}); one stage has no bubble "
                  "to shrink",
                  num_stages);
    TESSERA_CHECK(num_microbatches % num_stages == 0,
                  "interleaved-1f1b pipeline schedule: num_microbatches ({}) must be a multiple of num_stages ({}), "
                  "since microbatches go round the virtual pipeline in groups of num_stages",
                  num_microbatches, num_stages);
  }
  return {kind, num_stages, num_microbatches, virtual_chunks};
}

void check_stage(const Shape& shape, int stage) {
  TESSERA_CHECK(stage >= 0 && stage < shape.stages, "{} pipeline schedule: stage {} is out of range [0, {})",
                schedule_kind_name(shape.kind), stage, shape.stages);
}

// Megatron's interleaved warmup: enough forwards that the first backward of chunk v-1 finds its input.
int interleaved_warmup(const Shape& shape, int stage) {
  const int total = shape.microbatches * shape.chunks;
  return std::min((shape.stages - stage - 1) * 2 + (shape.chunks - 1) * shape.stages, total);
}

struct Compute {
  bool forward;
  int microbatch;
  int chunk;
};

// Step 1: the order of one stage's computations.
std::vector<Compute> compute_order(const Shape& shape, int stage) {
  const int m = shape.microbatches;
  std::vector<Compute> order;
  order.reserve(static_cast<std::size_t>(2 * m * shape.chunks));
  switch (shape.kind) {
    case ScheduleKind::gpipe:
      for (int mb = 0; mb < m; ++mb) order.push_back({true, mb, 0});
      for (int mb = 0; mb < m; ++mb) order.push_back({false, mb, 0});
      break;
    case ScheduleKind::one_f_one_b: {
      // Warmup forwards fill the pipeline below this stage; then each forward is followed by the oldest
      // backward, so at most warmup + 1 microbatches are ever held.
      const int warmup = std::min(shape.stages - stage - 1, m);
      for (int mb = 0; mb < warmup; ++mb) order.push_back({true, mb, 0});
      for (int mb = warmup; mb < m; ++mb) {
        order.push_back({true, mb, 0});
        order.push_back({false, mb - warmup, 0});
      }
      for (int mb = m - warmup; mb < m; ++mb) order.push_back({false, mb, 0});
      break;
    }
    case ScheduleKind::interleaved_one_f_one_b: {
      // Megatron-LM's forward_backward_pipelining_with_interleaving: the k-th forward of a stage runs
      // chunk (k mod p·v) / p on microbatch (k / p·v)·p + k mod p, i.e. groups of p microbatches pass through
      // chunk 0, then chunk 1, ...; backwards walk the chunks in reverse.
      const int p = shape.stages, v = shape.chunks, total = m * v;
      auto unit = [&](int k, bool forward) {
        const int chunk = (k % (p * v)) / p;
        return Compute{forward, (k / (p * v)) * p + k % p, forward ? chunk : v - 1 - chunk};
      };
      const int warmup = interleaved_warmup(shape, stage);
      for (int k = 0; k < warmup; ++k) order.push_back(unit(k, true));
      for (int k = warmup; k < total; ++k) {
        order.push_back(unit(k, true));
        order.push_back(unit(k - warmup, false));
      }
      for (int k = total - warmup; k < total; ++k) order.push_back(unit(k, false));
      break;
    }
  }
  return order;
}

// Step 2: start times, unit-time computations, as-soon-as-possible in each stage's order.
std::vector<std::vector<int>> compute_times(const Shape& shape, const std::vector<std::vector<Compute>>& orders) {
  const int p = shape.stages, m = shape.microbatches, vs_count = shape.virtual_stages();
  constexpr int unknown = -1;
  // End times of forward / backward of (virtual stage, microbatch).
  std::vector<int> fwd_end(static_cast<std::size_t>(vs_count * m), unknown), bwd_end = fwd_end;
  auto at = [m](std::vector<int>& v, int vs, int mb) -> int& { return v[static_cast<std::size_t>(vs * m + mb)]; };

  std::vector<std::vector<int>> start(orders.size());
  std::vector<int> free_at(orders.size(), 0);
  std::size_t remaining = 0;
  for (const auto& o : orders) remaining += o.size();
  while (remaining > 0) {
    bool progress = false;
    for (int s = 0; s < p; ++s) {
      auto& times = start[static_cast<std::size_t>(s)];
      const auto& order = orders[static_cast<std::size_t>(s)];
      while (times.size() < order.size()) {
        const Compute& c = order[times.size()];
        const int vs = c.chunk * p + s;
        int ready = 0;
        if (c.forward) {
          ready = vs > 0 ? at(fwd_end, vs - 1, c.microbatch) : 0;
        } else {
          const int own = at(fwd_end, vs, c.microbatch);
          const int next = vs + 1 < vs_count ? at(bwd_end, vs + 1, c.microbatch) : 0;
          ready = own == unknown || next == unknown ? unknown : std::max(own, next);
        }
        if (ready == unknown) break;
        const int t = std::max(ready, free_at[static_cast<std::size_t>(s)]);
        times.push_back(t);
        free_at[static_cast<std::size_t>(s)] = t + 1;
        at(c.forward ? fwd_end : bwd_end, vs, c.microbatch) = t + 1;
        --remaining;
        progress = true;
      }
    }
    // Only a wrong compute order (a computation waiting on one placed after it) can stall here.
    if (!progress)
      TESSERA_FAIL("{} pipeline schedule: internal error, the computation order of {} stages x {} microbatches "
                   "x {} chunks waits on itself",
                   schedule_kind_name(shape.kind), p, m, shape.chunks);
  }
  return start;
}

// Step 3: every stage's action list.
std::vector<std::vector<Action>> build_all(const Shape& shape) {
  const int p = shape.stages, vs_count = shape.virtual_stages();
  std::vector<std::vector<Compute>> orders;
  for (int s = 0; s < p; ++s) orders.push_back(compute_order(shape, s));
  const auto start = compute_times(shape, orders);

  // (instant, phase, receiver): at one instant a stage first exchanges messages, sorted by receiving stage
  // (each stage receives at most one message per instant, so the key is unique), then starts its compute.
  struct Event {
    int instant, phase, receiver;
    Action action;
  };
  constexpr int kTransfer = 0, kCompute = 1;
  std::vector<std::vector<Event>> events(static_cast<std::size_t>(p));
  for (int s = 0; s < p; ++s) {
    for (std::size_t i = 0; i < orders[static_cast<std::size_t>(s)].size(); ++i) {
      const Compute& c = orders[static_cast<std::size_t>(s)][i];
      const int t = start[static_cast<std::size_t>(s)][i];
      const int vs = c.chunk * p + s;
      events[static_cast<std::size_t>(s)].push_back(
          {t, kCompute, s, {c.forward ? ActionKind::forward : ActionKind::backward, c.microbatch, c.chunk, -1}});
      // The input this computation consumes comes from the neighbouring virtual stage; the message meets
      // now, when it is needed, so a stage never blocks on data it does not need yet.
      const int source_vs = c.forward ? vs - 1 : vs + 1;
      if (source_vs < 0 || source_vs >= vs_count) continue;
      const int q = source_vs % p, q_chunk = source_vs / p;
      events[static_cast<std::size_t>(s)].push_back(
          {t, kTransfer, s,
           {c.forward ? ActionKind::recv_activation : ActionKind::recv_gradient, c.microbatch, c.chunk, q}});
      events[static_cast<std::size_t>(q)].push_back(
          {t, kTransfer, s,
           {c.forward ? ActionKind::send_activation : ActionKind::send_gradient, c.microbatch, q_chunk, s}});
    }
  }
  std::vector<std::vector<Action>> lists(static_cast<std::size_t>(p));
  for (int s = 0; s < p; ++s) {
    auto& ev = events[static_cast<std::size_t>(s)];
    std::sort(ev.begin(), ev.end(), [](const Event& a, const Event& b) {
      return std::tie(a.instant, a.phase, a.receiver) < std::tie(b.instant, b.phase, b.receiver);
    });
    for (const Event& e : ev) lists[static_cast<std::size_t>(s)].push_back(e.action);
  }
  return lists;
}

}  // namespace

std::vector<Action> pipeline_schedule(ScheduleKind kind, int stage, int num_stages, int num_microbatches,
                                      int virtual_chunks) {
  const Shape shape = checked_shape(kind, num_stages, num_microbatches, virtual_chunks);
  check_stage(shape, stage);
  // The timeline couples all stages, so one stage's list is cut from the whole set.
  return std::move(build_all(shape)[static_cast<std::size_t>(stage)]);
}

int max_in_flight_bound(ScheduleKind kind, int stage, int num_stages, int num_microbatches, int virtual_chunks) {
  const Shape shape = checked_shape(kind, num_stages, num_microbatches, virtual_chunks);
  check_stage(shape, stage);
  switch (kind) {
    case ScheduleKind::gpipe: return num_microbatches;
    case ScheduleKind::one_f_one_b: return std::min(num_stages - stage, num_microbatches);
    case ScheduleKind::interleaved_one_f_one_b: {
      const int total = num_microbatches * virtual_chunks, warmup = interleaved_warmup(shape, stage);
      return warmup < total ? warmup + 1 : total;
    }
  }
  return 0;
}

ScheduleReport verify_schedule(ScheduleKind kind, int num_stages, int num_microbatches, int virtual_chunks) {
  const Shape shape = checked_shape(kind, num_stages, num_microbatches, virtual_chunks);
  std::vector<int> bounds;
  for (int s = 0; s < num_stages; ++s)
    bounds.push_back(max_in_flight_bound(kind, s, num_stages, num_microbatches, virtual_chunks));
  return verify_actions(build_all(shape), num_microbatches, virtual_chunks, bounds);
}

}  // namespace tessera::parallel
