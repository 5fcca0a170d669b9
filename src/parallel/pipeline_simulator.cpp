// verify_actions: static checks of each stage's list, then a unit-time run of all lists with blocking
// rendezvous transfers (a send completes only when its peer reaches the matching recv, the worst case of
// MPI_Send for large messages).
//
// Why one unit-time run proves deadlock freedom for any compute times: every transfer names its one partner
// action (peer, microbatch, chunk; no wildcard receives), so the runs are confluent. Whichever durations the
// computations take, the set of transfers that can ever complete is the same, and a list set that finishes
// here finishes everywhere. Only the idle time depends on durations.

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include "tessera/core/error.hpp"
#include "tessera/parallel/pipeline_schedule.hpp"

namespace tessera::parallel {
namespace {

bool is_compute(ActionKind k) { return k == ActionKind::forward || k == ActionKind::backward; }

struct Layout {
  int stages, microbatches, chunks;
  int virtual_stages() const { return stages * chunks; }
  int virtual_stage(int stage, int chunk) const { return chunk * stages + stage; }
  int stage_of(int vs) const { return vs % stages; }
  int chunk_of(int vs) const { return vs / stages; }
};

// Where the action's message goes to / comes from, as a virtual stage; -1 if there is none.
int neighbour(const Layout& l, int stage, const Action& a) {
  const int vs = l.virtual_stage(stage, a.chunk);
  const bool downstream = a.kind == ActionKind::send_activation || a.kind == ActionKind::recv_gradient;
  const int other = downstream ? vs + 1 : vs - 1;
  return other >= 0 && other < l.virtual_stages() ? other : -1;
}

// Static checks of one stage's list, in list order, so the first violation is the one reported. A negative
// `in_flight_allowed` means no bound. Returns the most microbatch-chunks held at once.
int check_stage_list(const Layout& l, int s, const std::vector<Action>& list, int in_flight_allowed) {
  // Index of each action per (chunk, microbatch); -1 until seen.
  struct Seen {
    int forward = -1, backward = -1, send_activation = -1, recv_activation = -1, send_gradient = -1,
        recv_gradient = -1;
  };
  std::vector<Seen> seen(static_cast<std::size_t>(l.chunks * l.microbatches));
  int in_flight = 0, max_in_flight = 0;

  for (std::size_t i = 0; i < list.size(); ++i) {
    const Action& a = list[i];
    auto fail = [&](const std::string& what) {
      TESSERA_FAIL("pipeline schedule: stage {}, action {} ({}): {}", s, i, to_string(a), what);
    };
    if (a.microbatch < 0 || a.microbatch >= l.microbatches)
      fail(fmt::format("microbatch out of range [0, {})", l.microbatches));
    if (a.chunk < 0 || a.chunk >= l.chunks) fail(fmt::format("chunk out of range [0, {})", l.chunks));
    Seen& it = seen[static_cast<std::size_t>(a.chunk * l.microbatches + a.microbatch)];
    auto once = [&](int& slot) {
      if (slot >= 0) fail(fmt::format("repeats action {}", slot));
      slot = static_cast<int>(i);
    };

    const int vs = l.virtual_stage(s, a.chunk);
    if (is_compute(a.kind)) {
      if (a.peer != -1) fail("a computation has no peer");
    } else {
      const int other = neighbour(l, s, a);
      if (other < 0)
        fail(fmt::format("virtual stage {} has no neighbour {} it", vs,
                         a.kind == ActionKind::send_activation || a.kind == ActionKind::send_gradient ? "to send to"
                                                                                                     : "to receive from"));
      if (a.peer != l.stage_of(other))
        fail(fmt::format("the peer of virtual stage {} is virtual stage {} on stage {}", vs, other,
                         l.stage_of(other)));
    }

    switch (a.kind) {
      case ActionKind::forward:
        once(it.forward);
        if (vs > 0 && it.recv_activation < 0)
          fail(fmt::format("forward before its activation is received from stage {}", l.stage_of(vs - 1)));
        max_in_flight = std::max(max_in_flight, ++in_flight);
        if (in_flight_allowed >= 0 && in_flight > in_flight_allowed)
          fail(fmt::format("{} microbatch-chunks in flight, more than the bound {}", in_flight, in_flight_allowed));
        break;
      case ActionKind::backward:
        once(it.backward);
        if (it.forward < 0) fail("backward before its forward");
        if (vs + 1 < l.virtual_stages() && it.recv_gradient < 0)
          fail(fmt::format("backward before its gradient is received from stage {}", l.stage_of(vs + 1)));
        --in_flight;
        break;
      case ActionKind::send_activation:
        once(it.send_activation);
        if (it.forward < 0) fail("activation sent before the forward that produces it");
        break;
      case ActionKind::recv_activation: once(it.recv_activation); break;
      case ActionKind::send_gradient:
        once(it.send_gradient);
        if (it.backward < 0) fail("gradient sent before the backward that produces it");
        break;
      case ActionKind::recv_gradient: once(it.recv_gradient); break;
    }
  }

  // Everything must have happened once. Receives are already forced by the computations that need them, so
  // with each end's peer fixed by the layout, every send has exactly one matching recv and vice versa.
  for (int c = 0; c < l.chunks; ++c) {
    const int vs = l.virtual_stage(s, c);
    for (int mb = 0; mb < l.microbatches; ++mb) {
      const Seen& it = seen[static_cast<std::size_t>(c * l.microbatches + mb)];
      auto missing = [&](const char* what) {
        TESSERA_FAIL("pipeline schedule: stage {}, end of its {} actions: {} of microbatch {} chunk {} never happens",
                     s, list.size(), what, mb, c);
      };
      if (it.forward < 0) missing("the forward");
      if (it.backward < 0) missing("the backward");
      if (vs + 1 < l.virtual_stages() && it.send_activation < 0) missing("the activation send");
      if (vs > 0 && it.send_gradient < 0) missing("the gradient send");
    }
  }
  return max_in_flight;
}

// Does `send` on stage `from` rendezvous with `recv` on stage `to`?
bool is_pair(const Layout& l, int from, const Action& send, int to, const Action& recv) {
  const bool activation = send.kind == ActionKind::send_activation && recv.kind == ActionKind::recv_activation;
  const bool gradient = send.kind == ActionKind::send_gradient && recv.kind == ActionKind::recv_gradient;
  if (!(activation || gradient) || send.peer != to || recv.peer != from || send.microbatch != recv.microbatch)
    return false;
  const int other = neighbour(l, from, send);
  return other >= 0 && l.stage_of(other) == to && l.chunk_of(other) == recv.chunk;
}

}  // namespace

ScheduleReport verify_actions(const std::vector<std::vector<Action>>& per_stage, int num_microbatches,
                              int virtual_chunks, const std::vector<int>& max_in_flight_allowed) {
  const int p = static_cast<int>(per_stage.size());
  TESSERA_CHECK(p >= 1, "pipeline schedule: no stages to verify");
  TESSERA_CHECK(num_microbatches >= 1, "pipeline schedule: num_microbatches must be at least 1 (got {})",
                num_microbatches);
  TESSERA_CHECK(virtual_chunks >= 1, "pipeline schedule: virtual_chunks must be at least 1 (got {})",
                virtual_chunks);
  TESSERA_CHECK(max_in_flight_allowed.empty() || max_in_flight_allowed.size() == per_stage.size(),
                "pipeline schedule: {} in-flight bounds for {} stages", max_in_flight_allowed.size(), p);
  const Layout layout{p, num_microbatches, virtual_chunks};

  ScheduleReport report{};
  for (int s = 0; s < p; ++s) {
    const int bound = max_in_flight_allowed.empty() ? -1 : max_in_flight_allowed[static_cast<std::size_t>(s)];
    report.max_in_flight.push_back(check_stage_list(layout, s, per_stage[static_cast<std::size_t>(s)], bound));
  }

  // Unit-time run: a computation occupies its stage for [t, t+1); transfers take no time but need both ends
  // at the matching actions. At each instant, repeat until nothing more can move, then jump to the next
  // instant a computation ends.
  std::vector<std::size_t> pc(static_cast<std::size_t>(p), 0);
  std::vector<int> busy_until(static_cast<std::size_t>(p), 0), busy(static_cast<std::size_t>(p), 0);
  auto done = [&](int s) { return pc[static_cast<std::size_t>(s)] >= per_stage[static_cast<std::size_t>(s)].size(); };
  auto current = [&](int s) -> const Action& {
    return per_stage[static_cast<std::size_t>(s)][pc[static_cast<std::size_t>(s)]];
  };
  auto ready = [&](int s, int t) { return !done(s) && busy_until[static_cast<std::size_t>(s)] <= t; };

  for (int t = 0;;) {
    for (bool progress = true; progress;) {
      progress = false;
      for (int s = 0; s < p; ++s) {
        if (!ready(s, t)) continue;
        const Action& a = current(s);
        if (is_compute(a.kind)) {
          busy_until[static_cast<std::size_t>(s)] = t + 1;
          ++busy[static_cast<std::size_t>(s)];
          ++pc[static_cast<std::size_t>(s)];
          progress = true;
          continue;
        }
        const int q = a.peer;  // in range: the static checks fixed every peer
        if (!ready(q, t)) continue;
        const Action& b = current(q);
        const bool sending = a.kind == ActionKind::send_activation || a.kind == ActionKind::send_gradient;
        if (sending ? is_pair(layout, s, a, q, b) : is_pair(layout, q, b, s, a)) {
          ++pc[static_cast<std::size_t>(s)];
          ++pc[static_cast<std::size_t>(q)];
          progress = true;
        }
      }
    }
    bool all_done = true;
    int next = -1;
    for (int s = 0; s < p; ++s) {
      all_done = all_done && done(s);
      const int until = busy_until[static_cast<std::size_t>(s)];
      if (until > t && (next < 0 || until < next)) next = until;
    }
    if (all_done) break;
    if (next < 0) {
      // Nothing computes and nothing can move: name the first blocked stage and what its peer is doing.
      int s = 0;
      while (done(s)) ++s;
      const int q = current(s).peer;
      const std::string peer_state =
          done(q) ? fmt::format("stage {} has finished its list", q)
                  : fmt::format("stage {} waits at action {} ({})", q, pc[static_cast<std::size_t>(q)],
                                to_string(current(q)));
      TESSERA_FAIL("pipeline schedule deadlocks at time {}: stage {}, action {} ({}) blocks while {}", t, s,
                   pc[static_cast<std::size_t>(s)], to_string(current(s)), peer_state);
    }
    t = next;
  }

  report.time_steps = *std::max_element(busy_until.begin(), busy_until.end());
  long long idle = 0;
  for (int b : busy) idle += report.time_steps - b;
  report.bubble_fraction = static_cast<double>(idle) / (static_cast<double>(p) * report.time_steps);
  return report;
}

}  // namespace tessera::parallel
