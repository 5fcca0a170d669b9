#include "tessera/dist/collective_trace.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

namespace tessera::dist {

namespace {

// floor(payload · numerator / denominator) without the product overflowing 64 bits for any real buffer.
std::uint64_t scaled(std::uint64_t payload, std::uint64_t numerator, std::uint64_t denominator) {
  return payload / denominator * numerator + payload % denominator * numerator / denominator;
}

std::uint64_t group_size(int ranks) { return ranks < 1 ? 1 : static_cast<std::uint64_t>(ranks); }

std::string show_bytes(double bytes) {
  if (bytes >= 1024.0 * 1024 * 1024) return fmt::format("{:.2f} GiB", bytes / (1024.0 * 1024 * 1024));
  if (bytes >= 1024.0 * 1024) return fmt::format("{:.2f} MiB", bytes / (1024.0 * 1024));
  if (bytes >= 1024.0) return fmt::format("{:.1f} KiB", bytes / 1024.0);
  return fmt::format("{:.0f} B", bytes);
}

}  // namespace

std::string_view collective_op_name(CollectiveOp op) {
  switch (op) {
    case CollectiveOp::all_reduce: return "all_reduce";
    case CollectiveOp::reduce_scatter: return "reduce_scatter";
    case CollectiveOp::all_gather: return "all_gather";
    case CollectiveOp::all_to_all_v: return "all_to_all_v";
    case CollectiveOp::broadcast: return "broadcast";
    case CollectiveOp::send: return "send";
    case CollectiveOp::recv: return "recv";
    case CollectiveOp::barrier: return "barrier";
  }
  return "?";
}

std::int64_t monotonic_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

TrafficBytes all_reduce_traffic(std::uint64_t payload, int ranks) {
  const std::uint64_t n = group_size(ranks);
  const std::uint64_t bytes = scaled(payload, 2 * (n - 1), n);
  return {payload, bytes, bytes};
}

TrafficBytes reduce_scatter_traffic(std::uint64_t payload, int ranks) {
  const std::uint64_t n = group_size(ranks);
  const std::uint64_t bytes = scaled(payload, n - 1, n);
  return {payload, bytes, bytes};
}

TrafficBytes all_gather_traffic(std::uint64_t payload, int ranks) { return reduce_scatter_traffic(payload, ranks); }

TrafficBytes broadcast_traffic(std::uint64_t payload, bool is_root) {
  return is_root ? TrafficBytes{payload, payload, 0} : TrafficBytes{payload, 0, payload};
}

TrafficBytes send_traffic(std::uint64_t payload) { return {payload, payload, 0}; }
TrafficBytes recv_traffic(std::uint64_t payload) { return {payload, 0, payload}; }

TrafficBytes all_to_all_traffic(std::uint64_t payload, std::uint64_t sent_to_others,
                                std::uint64_t received_from_others) {
  return {payload, sent_to_others, received_from_others};
}

const GroupOpTotals* StepSummary::find(Group group, CollectiveOp op) const {
  for (const GroupOpTotals& t : totals)
    if (t.group == group && t.op == op) return &t;
  return nullptr;
}

GroupOpTotals StepSummary::group_total(Group group) const {
  GroupOpTotals sum;
  sum.group = group;
  for (const GroupOpTotals& t : totals) {
    if (t.group != group) continue;
    sum.calls += t.calls;
    sum.payload_bytes += t.payload_bytes;
    sum.sent_bytes += t.sent_bytes;
    sum.received_bytes += t.received_bytes;
    sum.seconds += t.seconds;
    sum.max_seconds = std::max(sum.max_seconds, t.max_seconds);
  }
  return sum;
}

std::string format_step_summary(const StepSummary& summary) {
  std::string out = fmt::format("step {} communication:", summary.step);
  if (summary.totals.empty()) out += " none";
  for (const GroupOpTotals& t : summary.totals) {
    // Bandwidth over the summed wall time: for overlapped calls a lower bound on what the link delivered.
    const double rate = t.seconds > 0 ? static_cast<double>(t.sent_bytes) / t.seconds : 0.0;
    out += fmt::format(
        "\n  {:<10} {:<14} {:>6} calls  payload {:>11}  sent {:>11}  received {:>11}  {:>9.3f} ms"
        "  (max {:.3f} ms, {}/s)",
        group_name(t.group), collective_op_name(t.op), t.calls, show_bytes(static_cast<double>(t.payload_bytes)),
        show_bytes(static_cast<double>(t.sent_bytes)), show_bytes(static_cast<double>(t.received_bytes)),
        t.seconds * 1e3, t.max_seconds * 1e3, show_bytes(rate));
  }
  return out;
}

CollectiveTrace::CollectiveTrace(std::size_t recent_capacity) : ring_(recent_capacity) {
  for (std::size_t g = 0; g < kGroups; ++g)
    for (std::size_t o = 0; o < kCollectiveOps; ++o) {
      step_totals_[g][o].group = static_cast<Group>(g);
      step_totals_[g][o].op = static_cast<CollectiveOp>(o);
    }
}

void CollectiveTrace::record(const CollectiveRecord& r) {
  const double seconds = r.seconds();
  GroupOpTotals& t = step_totals_.at(static_cast<std::size_t>(r.group)).at(static_cast<std::size_t>(r.op));
  ++t.calls;
  t.payload_bytes += r.bytes.payload;
  t.sent_bytes += r.bytes.sent;
  t.received_bytes += r.bytes.received;
  t.seconds += seconds;
  t.max_seconds = std::max(t.max_seconds, seconds);
  if (!ring_.empty()) {
    CollectiveRecord& slot = ring_[seen_ % ring_.size()];
    slot = r;
    slot.step = step_;
  }
  ++seen_;
}

void CollectiveTrace::begin_step() {
  for (auto& per_group : step_totals_)
    for (GroupOpTotals& t : per_group) t = GroupOpTotals{t.group, t.op};
  ++step_;
}

StepSummary CollectiveTrace::step_summary() const {
  StepSummary s;
  s.step = step_;
  for (const auto& per_group : step_totals_)
    for (const GroupOpTotals& t : per_group)
      if (t.calls > 0) s.totals.push_back(t);
  return s;
}

std::vector<CollectiveRecord> CollectiveTrace::recent() const {
  const std::size_t kept = static_cast<std::size_t>(std::min<std::uint64_t>(seen_, ring_.size()));
  std::vector<CollectiveRecord> out;
  out.reserve(kept);
  // The oldest kept record sits where the next one will be written once the ring has wrapped.
  const std::uint64_t first = seen_ - kept;
  for (std::uint64_t i = first; i < seen_; ++i) out.push_back(ring_[i % ring_.size()]);
  return out;
}

}  // namespace tessera::dist
