#pragma once
// The rank grid: which ranks share a tensor-, context-, data-, pipeline- or expert-parallel group.
// Pure arithmetic, no MPI, so every layout can be tested exhaustively on one CPU. The groups are the ones
// Megatron-Core's RankGenerator builds, so a layout means the same thing here as in Megatron: the order
// string lists dimensions fastest-varying first, and with the default "tp-cp-ep-dp-pp" the ranks of a TP
// group are contiguous (and so share a node).
//
// Two views of the same ranks (MoE "folding"): dense layers use tp x cp x dp x pp; expert layers use
// etp x ep x edp x pp with edp = world / (etp * ep * pp). EP is therefore not bounded by DP. Both views must
// agree on the pipeline groups, since a pipeline stage holds both kinds of layer.

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/core/config.hpp"

namespace tessera::dist {

struct ParallelSizes {
  int tp = 1;
  int cp = 1;
  int ep = 1;
  int etp = 0;  // 0: same as tp
  int dp = 0;   // 0: derived from the world size
  int pp = 1;
  std::string order = "tp-cp-ep-dp-pp";
};

// The grid sizes a run's `parallel:` config section asks for.
ParallelSizes parallel_sizes(const ParallelConfig& parallel);

enum class Group { tp, cp, dp, pp, dp_cp, tp_cp, tp_pp, embedding, etp, ep, edp, etp_ep, etp_ep_pp };

// Names as Megatron spells the rank tokens: "tp", "dp-cp", "etp-ep-pp", ...
std::string_view group_name(Group);
std::span<const Group> all_groups();

// This rank's position inside each of its groups.
struct Coord {
  int tp, cp, dp, pp, ep, etp, edp;
};

class Topology {
 public:
  // Returned by group_index() for a rank that belongs to no group of a kind: only the embedding group
  // leaves ranks out (the middle pipeline stages when pp > 2).
  static constexpr int kNoGroup = -1;

  // Throws tessera::Error stating why the layout is impossible.
  static Topology build(int world_size, const ParallelSizes& sizes);

  int world_size() const { return world_size_; }
  int tp() const { return tp_; }
  int cp() const { return cp_; }
  int dp() const { return dp_; }
  int pp() const { return pp_; }
  int ep() const { return ep_; }
  int etp() const { return etp_; }
  int edp() const { return edp_; }
  // The order actually used: the requested one with any omitted size-1 dimensions appended.
  const std::string& order() const { return order_; }

  // All groups of a kind, each listing its ranks in group-rank order.
  const std::vector<std::vector<int>>& groups(Group kind) const;
  // The group of `kind` holding `rank`; empty for an embedding non-member.
  const std::vector<int>& group_of(Group kind, int rank) const;
  // Which group of `kind` holds `rank` (0..n-1, the MPI_Comm_split colour), or kNoGroup.
  int group_index(Group kind, int rank) const;
  // Position of `rank` inside its group of `kind` (the MPI_Comm_split key), or kNoGroup.
  int group_rank(Group kind, int rank) const;
  Coord coord(int rank) const;

 private:
  struct Kind {
    std::vector<std::vector<int>> groups;
    std::vector<int> index_of_rank;     // per world rank
    std::vector<int> position_of_rank;  // per world rank
  };

  Topology() = default;
  const Kind& kind(Group g) const;
  void check_rank(int rank) const;
  void set_groups(Group g, std::vector<std::vector<int>> groups);

  int world_size_ = 0, tp_ = 1, cp_ = 1, dp_ = 1, pp_ = 1, ep_ = 1, etp_ = 1, edp_ = 1;
  std::string order_;
  std::vector<Kind> kinds_;  // indexed by Group
};

}  // namespace tessera::dist
