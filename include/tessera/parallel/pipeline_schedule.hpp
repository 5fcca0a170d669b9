#pragma once
// Pipeline-parallel schedules as pure data (InfiniTrain's lesson): for each stage, the ordered list of
// computations and point-to-point transfers it performs in one optimizer step. Nothing here communicates,
// so every schedule can be checked exhaustively on one CPU, and the executor only walks a list.
//
// Layer placement: with `virtual_chunks` = v model chunks per stage, chunk c of stage s holds the layers of
// virtual stage c * num_stages + s (Megatron's interleaving). With v = 1 that is simply stage s.
//
// Transfers are blocking rendezvous operations: a send completes only when the peer reaches the matching
// recv. The lists are ordered so that this cannot deadlock, whatever the compute times (docs/pipeline.md).

#include <string>
#include <string_view>
#include <vector>

namespace tessera::parallel {

enum class ActionKind { forward, backward, send_activation, recv_activation, send_gradient, recv_gradient };

struct Action {
  ActionKind kind;
  int microbatch;
  // The model chunk on *this* stage the action computes, sends from or receives into. Across a wrap-around
  // of the interleaved pipeline (stage p-1 chunk c -> stage 0 chunk c+1) the two ends name different chunks.
  int chunk = 0;
  int peer = -1;  // stage sent to / received from; -1 for forward and backward

  friend bool operator==(const Action&, const Action&) = default;
};

enum class ScheduleKind { gpipe, one_f_one_b, interleaved_one_f_one_b };

std::string_view action_kind_name(ActionKind kind);
std::string_view schedule_kind_name(ScheduleKind kind);
// "send_activation(mb 3, chunk 1, to stage 2)": for logs and error messages.
std::string to_string(const Action& action);

// The ordered actions one pipeline stage executes for one optimizer step. Throws tessera::Error for an
// impossible request (no stages, stage out of range, interleaving that does not divide the microbatches).
std::vector<Action> pipeline_schedule(ScheduleKind kind, int stage, int num_stages, int num_microbatches,
                                      int virtual_chunks = 1);

struct ScheduleReport {
  // Per stage, the most (microbatch, chunk) pairs forwarded and not yet backwarded: activation memory.
  std::vector<int> max_in_flight;
  // Idle stage-slots / (num_stages * time_steps) when every forward and backward of one chunk takes one
  // time unit and transfers take none.
  double bubble_fraction;
  int time_steps;  // makespan of that unit-time run
};

// Checks an arbitrary set of per-stage lists (per_stage[s] is stage s's list) and simulates them with
// blocking rendezvous transfers. Throws tessera::Error naming the first violation (stage, action index, what):
// wrong counts or chunks, a compute before the transfer that feeds it, a send without exactly one matching
// recv, more microbatches in flight than `max_in_flight_allowed[s]` (when given), or a deadlock.
ScheduleReport verify_actions(const std::vector<std::vector<Action>>& per_stage, int num_microbatches,
                              int virtual_chunks = 1, const std::vector<int>& max_in_flight_allowed = {});

// Builds every stage's list of a schedule and verifies it, with the in-flight bound the schedule promises
// (GPipe: all microbatches; 1F1B: min(num_stages - stage, num_microbatches); interleaved: its warmup + 1).
ScheduleReport verify_schedule(ScheduleKind kind, int num_stages, int num_microbatches, int virtual_chunks = 1);

// The in-flight bound above for one stage (arguments as for pipeline_schedule).
int max_in_flight_bound(ScheduleKind kind, int stage, int num_stages, int num_microbatches,
                        int virtual_chunks = 1);

}  // namespace tessera::parallel
