// The rank grid is checked against an independent model: a rank's coordinates are its digits in the mixed
// radix given by the order (fastest first), a group of kind K holds the ranks that agree on every dimension
// outside K, groups are numbered by those fixed digits and ranks within a group by the varying ones. That is
// what Megatron-Core's RankGenerator computes; the hand-written cases below pin it to Megatron's examples.

#include "tessera/dist/topology.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <climits>
#include <string>
#include <vector>

#include "tessera/core/error.hpp"

namespace tessera::dist {
namespace {

using Groups = std::vector<std::vector<int>>;

std::vector<int> divisors(int n) {
  std::vector<int> out;
  for (int d = 1; d <= n; ++d)
    if (n % d == 0) out.push_back(d);
  return out;
}

std::vector<std::string> split_order(const std::string& order) {
  std::vector<std::string> dims;
  std::size_t begin = 0;
  for (std::size_t end; (end = order.find('-', begin)) != std::string::npos; begin = end + 1)
    dims.push_back(order.substr(begin, end - begin));
  dims.push_back(order.substr(begin));
  return dims;
}

// One view of the grid (dense or expert), as sizes aligned with the complete order.
struct View {
  std::vector<int> sizes;

  std::vector<int> digits(int rank) const {
    std::vector<int> d;
    for (int s : sizes) {
      d.push_back(rank % s);
      rank /= s;
    }
    return d;
  }
  // Mixed-radix number formed by the digits whose mask bit equals `masked`.
  int number(const std::vector<int>& digits, const std::vector<bool>& mask, bool masked) const {
    int value = 0, scale = 1;
    for (std::size_t i = 0; i < sizes.size(); ++i)
      if (mask[i] == masked) {
        value += digits[i] * scale;
        scale *= sizes[i];
      }
    return value;
  }
};

struct Sizes {
  int tp, cp, dp, pp, ep, etp, edp;
};

// Sizes aligned with `order` in one view: the dense view has no ep, the expert view no cp.
View make_view(const std::vector<std::string>& order, const Sizes& s, bool expert) {
  View v;
  for (const auto& dim : order) {
    int size = s.pp;
    if (dim == "tp") size = expert ? s.etp : s.tp;
    if (dim == "cp") size = expert ? 1 : s.cp;
    if (dim == "ep") size = expert ? s.ep : 1;
    if (dim == "dp") size = expert ? s.edp : s.dp;
    v.sizes.push_back(size);
  }
  return v;
}

struct KindModel {
  Group kind;
  bool expert;
  std::vector<std::string> dims;
};

// PP appears in both views: checking it against both is the "both views agree" property.
const std::vector<KindModel>& kind_models() {
  static const std::vector<KindModel> models = {
      {Group::tp, false, {"tp"}},          {Group::cp, false, {"cp"}},
      {Group::dp, false, {"dp"}},          {Group::pp, false, {"pp"}},
      {Group::dp_cp, false, {"dp", "cp"}}, {Group::tp_cp, false, {"tp", "cp"}},
      {Group::tp_pp, false, {"tp", "pp"}}, {Group::etp, true, {"tp"}},
      {Group::ep, true, {"ep"}},           {Group::edp, true, {"dp"}},
      {Group::etp_ep, true, {"tp", "ep"}}, {Group::etp_ep_pp, true, {"tp", "ep", "pp"}},
      {Group::pp, true, {"pp"}},
  };
  return models;
}

// Returns the first violated property, or an empty string.
std::string check_topology(const Topology& t) {
  const int world = t.world_size();
  const std::vector<std::string> order = split_order(t.order());
  for (const char* dim : {"tp", "cp", "ep", "dp", "pp"})
    if (std::count(order.begin(), order.end(), dim) != 1)
      return fmt::format("order {} lacks {}", t.order(), dim);

  const Sizes sizes{t.tp(), t.cp(), t.dp(), t.pp(), t.ep(), t.etp(), t.edp()};
  const View dense = make_view(order, sizes, false), expert = make_view(order, sizes, true);
  auto index_of = [&](const std::string& dim) {
    return static_cast<std::size_t>(std::find(order.begin(), order.end(), dim) - order.begin());
  };

  for (const KindModel& m : kind_models()) {
    const View& view = m.expert ? expert : dense;
    std::vector<bool> mask(order.size(), false);
    int size = 1;
    for (const auto& dim : m.dims) {
      mask[index_of(dim)] = true;
      size *= view.sizes[index_of(dim)];
    }
    const auto name = fmt::format("{} ({} view)", group_name(m.kind), m.expert ? "expert" : "dense");
    const Groups& groups = t.groups(m.kind);
    if (static_cast<int>(groups.size()) != world / size)
      return fmt::format("{}: {} groups, expected {}", name, groups.size(), world / size);
    std::vector<int> seen(static_cast<std::size_t>(world), 0);
    for (std::size_t g = 0; g < groups.size(); ++g) {
      if (static_cast<int>(groups[g].size()) != size)
        return fmt::format("{} group {} has {} ranks, expected {}", name, g, groups[g].size(), size);
      for (std::size_t p = 0; p < groups[g].size(); ++p) {
        const int r = groups[g][p];
        if (r < 0 || r >= world) return fmt::format("{} group {} holds rank {}", name, g, r);
        ++seen[static_cast<std::size_t>(r)];
        const auto digits = view.digits(r);
        if (view.number(digits, mask, false) != static_cast<int>(g) ||
            view.number(digits, mask, true) != static_cast<int>(p))
          return fmt::format("{}: rank {} at group {} position {} disagrees with its coordinates", name, r, g,
                             p);
        if (t.group_index(m.kind, r) != static_cast<int>(g) ||
            t.group_rank(m.kind, r) != static_cast<int>(p) || &t.group_of(m.kind, r) != &groups[g])
          return fmt::format("{}: lookups for rank {} disagree with groups()", name, r);
      }
    }
    for (int r = 0; r < world; ++r)
      if (seen[static_cast<std::size_t>(r)] != 1)
        return fmt::format("{}: rank {} appears {} times", name, r, seen[static_cast<std::size_t>(r)]);
  }

  // Embedding: first and last stage of each pipeline; middle stages belong to none.
  const Groups& pp_groups = t.groups(Group::pp);
  const Groups& embedding = t.groups(Group::embedding);
  if (embedding.size() != pp_groups.size()) return "embedding: one group per pipeline expected";
  for (std::size_t g = 0; g < pp_groups.size(); ++g) {
    const auto& pipe = pp_groups[g];
    const std::vector<int> expected =
        pipe.size() == 1 ? std::vector<int>{pipe.front()} : std::vector<int>{pipe.front(), pipe.back()};
    if (embedding[g] != expected)
      return fmt::format("embedding group {} is [{}]", g, fmt::join(embedding[g], ","));
    for (std::size_t stage = 0; stage < pipe.size(); ++stage) {
      const bool member = stage == 0 || stage + 1 == pipe.size();
      const int r = pipe[stage];
      if ((t.group_index(Group::embedding, r) == Topology::kNoGroup) == member ||
          t.group_of(Group::embedding, r).empty() == member)
        return fmt::format("embedding membership of rank {} (stage {}) is wrong", r, stage);
    }
  }

  for (int r = 0; r < world; ++r) {
    const auto d = dense.digits(r);
    const auto e = expert.digits(r);
    const Coord c = t.coord(r);
    if (c.tp != d[index_of("tp")] || c.cp != d[index_of("cp")] || c.dp != d[index_of("dp")] ||
        c.pp != d[index_of("pp")] || c.etp != e[index_of("tp")] || c.ep != e[index_of("ep")] ||
        c.edp != e[index_of("dp")])
      return fmt::format("coord({}) disagrees with its coordinates", r);
    if (c.tp != t.group_rank(Group::tp, r) || c.cp != t.group_rank(Group::cp, r) ||
        c.dp != t.group_rank(Group::dp, r) || c.pp != t.group_rank(Group::pp, r) ||
        c.ep != t.group_rank(Group::ep, r) || c.etp != t.group_rank(Group::etp, r) ||
        c.edp != t.group_rank(Group::edp, r))
      return fmt::format("coord({}) disagrees with its positions in group_of()", r);
  }

  // TP neighbours are contiguous ranks whenever tp varies fastest (the default order).
  if (order.front() == "tp")
    for (const auto& g : t.groups(Group::tp))
      for (std::size_t p = 0; p < g.size(); ++p)
        if (g[p] != g.front() + static_cast<int>(p) || g.front() % t.tp() != 0)
          return fmt::format("tp group [{}] is not contiguous", fmt::join(g, ","));
  return {};
}

std::string describe(int world, const ParallelSizes& s) {
  return fmt::format("world={} tp={} cp={} ep={} etp={} dp={} pp={} order={}", world, s.tp, s.cp, s.ep, s.etp,
                     s.dp, s.pp, s.order);
}

// Exhaustive over the default order: every world 1..64, every tp·cp·dp·pp = world, every ep·etp dividing
// world/pp.
TEST(Topology, ExhaustiveDefaultOrder) {
  int cases = 0, failures = 0;
  for (int world = 1; world <= 64 && failures < 10; ++world)
    for (int tp : divisors(world))
      for (int cp : divisors(world / tp))
        for (int pp : divisors(world / tp / cp))
          for (int ep : divisors(world / pp))
            for (int etp : divisors(world / pp / ep)) {
              const ParallelSizes s{
                  .tp = tp, .cp = cp, .ep = ep, .etp = etp, .dp = world / (tp * cp * pp), .pp = pp};
              ++cases;
              try {
                const Topology t = Topology::build(world, s);
                const std::string problem = check_topology(t);
                if (!problem.empty()) {
                  ADD_FAILURE() << describe(world, s) << ": " << problem;
                  ++failures;
                }
              } catch (const Error& e) {
                ADD_FAILURE() << describe(world, s) << ": refused: " << e.what();
                ++failures;
              }
            }
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(cases, 27642);  // guards the enumeration itself against silently shrinking
}

// Every order permutation: either the grid satisfies the model, or it is refused for exactly the reason
// Megatron would refuse it (pp not last with edp != dp, or the two views' pipelines differ).
TEST(Topology, EveryOrderPermutation) {
  struct Layout {
    int world;
    ParallelSizes sizes;
  };
  const std::vector<Layout> layouts = {
      {16, {.tp = 2, .cp = 1, .ep = 2, .etp = 1, .dp = 0, .pp = 2}},
      {24, {.tp = 2, .cp = 2, .ep = 3, .etp = 2, .dp = 0, .pp = 2}},
      {48, {.tp = 2, .cp = 3, .ep = 4, .etp = 1, .dp = 0, .pp = 2}},
      {32, {.tp = 2, .cp = 2, .ep = 4, .etp = 1, .dp = 0, .pp = 4}},
      {8, {.tp = 1, .cp = 2, .ep = 2, .etp = 1, .dp = 0, .pp = 2}},
      {16, {.tp = 2, .cp = 2, .ep = 2, .etp = 2, .dp = 0, .pp = 2}},
  };
  std::array<std::string, 5> dims = {"cp", "dp", "ep", "pp", "tp"};  // sorted for next_permutation
  int built = 0, refused = 0;
  do {
    const std::string order = fmt::format("{}", fmt::join(dims, "-"));
    for (const Layout& l : layouts) {
      ParallelSizes s = l.sizes;
      s.order = order;
      // The independent expectation: pipeline groups from both views' coordinates.
      const int dp = l.world / (s.tp * s.cp * s.pp), edp = l.world / (s.etp * s.ep * s.pp);
      const Sizes sizes{s.tp, s.cp, dp, s.pp, s.ep, s.etp, edp};
      const std::vector<std::string> order_dims(dims.begin(), dims.end());
      const View dense = make_view(order_dims, sizes, false), expert = make_view(order_dims, sizes, true);
      std::vector<bool> pp_mask(5, false);
      pp_mask[static_cast<std::size_t>(std::find(dims.begin(), dims.end(), "pp") - dims.begin())] = true;
      bool same_pipelines = true;
      for (int r = 0; r < l.world; ++r)
        for (int q = 0; q < l.world; ++q) {
          const bool dense_same =
              dense.number(dense.digits(r), pp_mask, false) == dense.number(dense.digits(q), pp_mask, false);
          const bool expert_same = expert.number(expert.digits(r), pp_mask, false) ==
                                   expert.number(expert.digits(q), pp_mask, false);
          same_pipelines = same_pipelines && dense_same == expert_same;
        }
      const bool megatron_allows = dims.back() == "pp" || edp == dp;
      try {
        const Topology t = Topology::build(l.world, s);
        ++built;
        EXPECT_TRUE(megatron_allows && same_pipelines) << describe(l.world, s) << " should be refused";
        EXPECT_EQ(check_topology(t), "") << describe(l.world, s);
        EXPECT_EQ(t.order(), order);
      } catch (const Error& e) {
        ++refused;
        const std::string what = e.what();
        if (!megatron_allows)
          EXPECT_NE(what.find("does not end with pp"), std::string::npos) << what;
        else
          EXPECT_NE(what.find("different pipeline groups"), std::string::npos) << what;
        EXPECT_FALSE(megatron_allows && same_pipelines) << describe(l.world, s) << ": " << what;
      }
    }
  } while (std::next_permutation(dims.begin(), dims.end()));
  EXPECT_GT(built, 0);
  EXPECT_GT(refused, 0);
}

// Megatron's initialize_model_parallel docstring: 16 GPUs, tp 2, pp 4.
TEST(Topology, MegatronDocstringExample) {
  const Topology t = Topology::build(16, {.tp = 2, .pp = 4});
  EXPECT_EQ(t.dp(), 2);
  EXPECT_EQ(t.groups(Group::dp),
            (Groups{{0, 2}, {1, 3}, {4, 6}, {5, 7}, {8, 10}, {9, 11}, {12, 14}, {13, 15}}));
  EXPECT_EQ(t.groups(Group::tp),
            (Groups{{0, 1}, {2, 3}, {4, 5}, {6, 7}, {8, 9}, {10, 11}, {12, 13}, {14, 15}}));
  EXPECT_EQ(t.groups(Group::pp), (Groups{{0, 4, 8, 12}, {1, 5, 9, 13}, {2, 6, 10, 14}, {3, 7, 11, 15}}));
  EXPECT_EQ(t.groups(Group::embedding), (Groups{{0, 12}, {1, 13}, {2, 14}, {3, 15}}));
  EXPECT_TRUE(t.group_of(Group::embedding, 5).empty());
  EXPECT_EQ(t.group_index(Group::embedding, 5), Topology::kNoGroup);
}

TEST(Topology, HandCheckedTp2Pp2Dp4) {
  const Topology t = Topology::build(16, {.tp = 2, .dp = 4, .pp = 2});
  EXPECT_EQ(t.order(), "tp-cp-ep-dp-pp");
  EXPECT_EQ(t.groups(Group::tp),
            (Groups{{0, 1}, {2, 3}, {4, 5}, {6, 7}, {8, 9}, {10, 11}, {12, 13}, {14, 15}}));
  EXPECT_EQ(t.groups(Group::pp),
            (Groups{{0, 8}, {1, 9}, {2, 10}, {3, 11}, {4, 12}, {5, 13}, {6, 14}, {7, 15}}));
  EXPECT_EQ(t.groups(Group::dp), (Groups{{0, 2, 4, 6}, {1, 3, 5, 7}, {8, 10, 12, 14}, {9, 11, 13, 15}}));
  EXPECT_EQ(t.groups(Group::dp_cp), t.groups(Group::dp));
  EXPECT_EQ(t.groups(Group::tp_pp), (Groups{{0, 1, 8, 9}, {2, 3, 10, 11}, {4, 5, 12, 13}, {6, 7, 14, 15}}));
  EXPECT_EQ(t.groups(Group::embedding), t.groups(Group::pp));
  // etp defaults to tp, ep to 1: the expert view repeats the dense one.
  EXPECT_EQ(t.groups(Group::etp), t.groups(Group::tp));
  EXPECT_EQ(t.groups(Group::edp), t.groups(Group::dp));
  EXPECT_EQ(t.group_of(Group::dp, 11), (std::vector<int>{9, 11, 13, 15}));
  EXPECT_EQ(t.group_index(Group::dp, 11), 3);
  const Coord c = t.coord(11);
  EXPECT_EQ((std::array{c.tp, c.cp, c.dp, c.pp, c.ep, c.etp, c.edp}), (std::array{1, 0, 1, 1, 0, 1, 1}));
}

// MoE folding: EP spans the dense TP and DP dimensions, so ep=8 is legal on 8 ranks with dp=4.
TEST(Topology, MoeFoldingEpBeyondDp) {
  const Topology t = Topology::build(8, {.tp = 2, .ep = 8, .etp = 1});
  EXPECT_EQ(t.dp(), 4);
  EXPECT_EQ(t.edp(), 1);
  EXPECT_EQ(t.groups(Group::tp), (Groups{{0, 1}, {2, 3}, {4, 5}, {6, 7}}));
  EXPECT_EQ(t.groups(Group::dp), (Groups{{0, 2, 4, 6}, {1, 3, 5, 7}}));
  EXPECT_EQ(t.groups(Group::ep), (Groups{{0, 1, 2, 3, 4, 5, 6, 7}}));
  EXPECT_EQ(t.groups(Group::etp), (Groups{{0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}}));
  EXPECT_EQ(t.groups(Group::edp), t.groups(Group::etp));
  EXPECT_EQ(t.groups(Group::etp_ep), t.groups(Group::ep));
  EXPECT_EQ(t.groups(Group::etp_ep_pp), t.groups(Group::ep));
  const Coord c = t.coord(5);
  EXPECT_EQ((std::array{c.tp, c.dp, c.ep, c.etp, c.edp}), (std::array{1, 2, 5, 0, 0}));
}

// With CP the expert groups cut across the tp-cp block: ep=4 covers tp×cp of one dp replica.
TEST(Topology, MoeFoldingWithContextParallel) {
  const Topology t = Topology::build(16, {.tp = 2, .cp = 2, .ep = 4, .etp = 1, .pp = 2});
  EXPECT_EQ(t.dp(), 2);
  EXPECT_EQ(t.edp(), 2);
  EXPECT_EQ(t.group_of(Group::cp, 1), (std::vector<int>{1, 3}));
  EXPECT_EQ(t.group_of(Group::dp, 1), (std::vector<int>{1, 5}));
  EXPECT_EQ(t.group_of(Group::dp_cp, 1), (std::vector<int>{1, 3, 5, 7}));
  EXPECT_EQ(t.group_of(Group::tp_cp, 6), (std::vector<int>{4, 5, 6, 7}));
  EXPECT_EQ(t.group_of(Group::ep, 6), (std::vector<int>{4, 5, 6, 7}));
  EXPECT_EQ(t.group_of(Group::edp, 6), (std::vector<int>{2, 6}));
  EXPECT_EQ(t.group_of(Group::etp_ep_pp, 6), (std::vector<int>{4, 5, 6, 7, 12, 13, 14, 15}));
  EXPECT_EQ(t.group_of(Group::pp, 6), (std::vector<int>{6, 14}));
}

TEST(Topology, OmittedSizeOneDimensionsAreAppendedAsMegatronDoes) {
  const Topology t = Topology::build(8, {.tp = 2, .dp = 2, .pp = 2, .order = "TP-DP-PP"});
  EXPECT_EQ(t.order(), "tp-dp-pp-ep-cp");
  EXPECT_EQ(t.groups(Group::pp), (Groups{{0, 4}, {1, 5}, {2, 6}, {3, 7}}));
}

TEST(Topology, GroupNames) {
  const std::vector<std::string_view> expected = {"tp",    "cp",     "dp",        "pp",  "dp-cp",
                                                  "tp-cp", "tp-pp",  "embedding", "etp", "ep",
                                                  "edp",   "etp-ep", "etp-ep-pp"};
  std::vector<std::string_view> names;
  for (Group g : all_groups()) names.push_back(group_name(g));
  EXPECT_EQ(names, expected);
}

void expect_refused(int world, const ParallelSizes& s, const std::string& reason) {
  try {
    Topology::build(world, s);
    ADD_FAILURE() << describe(world, s) << " was accepted; expected: " << reason;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(reason), std::string::npos)
        << describe(world, s) << "\n  message: " << e.what() << "\n  expected: " << reason;
  }
}

TEST(Topology, RefusesNonPositiveSizes) {
  expect_refused(0, {}, "world size 0 must be at least 1");
  expect_refused(8, {.tp = 0}, "tp=0 must be at least 1");
  expect_refused(8, {.cp = -1}, "cp=-1 must be at least 1");
  expect_refused(8, {.ep = 0}, "ep=0 must be at least 1");
  expect_refused(8, {.pp = 0}, "pp=0 must be at least 1");
  expect_refused(8, {.dp = -1}, "dp=-1 must be at least 1, or 0 to derive it");
  expect_refused(8, {.etp = -2}, "etp=-2 must be at least 1, or 0 to derive it");
}

TEST(Topology, RefusesSizesThatDoNotFitTheWorld) {
  expect_refused(8, {.tp = 3, .pp = 2}, "tp=3 × cp=1 × pp=2 = 6 does not divide world size 8");
  expect_refused(8, {.tp = 100000, .cp = 100000},
                 "tp=100000 × cp=100000 × pp=1 = more than 4294967295 does not divide world size 8");
  expect_refused(8, {.tp = INT_MAX, .cp = INT_MAX, .ep = INT_MAX, .pp = INT_MAX},
                 "= more than 4294967295 does not divide world size 8");
  expect_refused(8, {.tp = 1, .dp = INT_MAX, .pp = 2}, "dp would have to be 4");
  expect_refused(8, {.tp = 2, .dp = 3, .pp = 2},
                 "tp=2 × cp=1 × dp=3 × pp=2 = 12 does not equal world size 8 (dp would have to be 2)");
  expect_refused(8, {.ep = 3}, "etp=1 × ep=3 × pp=1 = 3 does not divide world size 8");
  expect_refused(8, {.tp = 2, .ep = 4, .pp = 2}, "etp=2 × ep=4 × pp=2 = 16 does not divide world size 8");
}

TEST(Topology, RefusesBadOrders) {
  expect_refused(8, {.order = "tp-xp-dp"}, "parallel order 'tp-xp-dp' names unknown dimension 'xp'");
  expect_refused(8, {.order = "tp-dp-tp"}, "parallel order 'tp-dp-tp' names tp more than once");
  expect_refused(8, {.order = "tp--dp"}, "parallel order 'tp--dp' has an empty dimension name");
  expect_refused(8, {.order = ""}, "parallel order '' has an empty dimension name");
  expect_refused(8, {.tp = 2, .pp = 2, .order = "tp-dp"}, "parallel order 'tp-dp' omits pp, but pp=2");
  expect_refused(8, {.ep = 2, .order = "tp-cp-dp-pp"}, "omits ep, but ep=2");
  expect_refused(8, {.etp = 2, .order = "cp-ep-dp-pp"}, "omits tp, but etp=2");
  expect_refused(8, {.tp = 8, .ep = 1, .etp = 1, .order = "tp-cp-ep-pp"}, "omits dp, but edp=8");
}

TEST(Topology, RefusesOrdersWhereTheViewsDisagreeOnPipelines) {
  // Megatron's precondition: pp not last needs edp == dp.
  expect_refused(
      8, {.tp = 2, .ep = 2, .etp = 2, .pp = 2, .order = "tp-cp-pp-ep-dp"},
      "parallel order 'tp-cp-pp-ep-dp' does not end with pp, so expert layers need the data-parallel "
      "size of dense layers, but edp=1 (world 8 / (etp=2 × ep=2 × pp=2)) differs from dp=2");
  // edp == dp, yet pp strides over cp in the dense view and over ep in the expert view.
  expect_refused(8, {.cp = 2, .ep = 2, .pp = 2, .order = "tp-ep-pp-cp-dp"},
                 "gives dense layers (tp × cp × dp × pp) and expert layers (etp × ep × edp × pp) different "
                 "pipeline groups ([0, 1] vs [0, 2]); put pp last in the order");
}

TEST(Topology, RefusesRanksOutsideTheWorld) {
  const Topology t = Topology::build(8, {.tp = 2});
  EXPECT_THROW(t.group_of(Group::tp, 8), Error);
  EXPECT_THROW(t.coord(-1), Error);
  try {
    t.group_index(Group::dp, 9);
    ADD_FAILURE() << "rank 9 was accepted in a world of 8";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "rank 9 is outside a world of 8 ranks");
  }
}

}  // namespace
}  // namespace tessera::dist
