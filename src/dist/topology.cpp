#include "tessera/dist/topology.hpp"

#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "tessera/core/error.hpp"

namespace tessera::dist {

ParallelSizes parallel_sizes(const ParallelConfig& p) { return {p.tp, p.cp, p.ep, p.etp, p.dp, p.pp, p.order}; }

namespace {

constexpr std::array kAllGroups = {Group::tp,    Group::cp,     Group::dp,        Group::pp,  Group::dp_cp,
                                   Group::tp_cp, Group::tp_pp,  Group::embedding, Group::etp, Group::ep,
                                   Group::edp,   Group::etp_ep, Group::etp_ep_pp};
// ProcessGroups sizes its communicator table by the last enumerator.
static_assert(kAllGroups.size() == static_cast<std::size_t>(Group::etp_ep_pp) + 1);

// Megatron appends omitted dimensions in this order (its name_to_size iteration order). The position of a
// size-1 dimension changes no rank, only the order string reported back.
constexpr std::array<std::string_view, 5> kAppendOrder = {"tp", "pp", "dp", "ep", "cp"};

// The sizes one RankGenerator sees. The dense view has ep = 1, the expert view cp = 1.
struct DimSizes {
  int tp, cp, ep, dp, pp;
  int of(std::string_view dim) const {
    if (dim == "tp") return tp;
    if (dim == "cp") return cp;
    if (dim == "ep") return ep;
    if (dim == "dp") return dp;
    return pp;
  }
};

// Decomposes `index` in the mixed radix `shape` (first digit fastest) and weights the digits by `stride`.
int mixed_radix_offset(int index, const std::vector<int>& shape, const std::vector<int>& stride) {
  int offset = 0;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    offset += (index % shape[i]) * stride[i];
    index /= shape[i];
  }
  return offset;
}

// Megatron's generate_masked_orthogonal_rank_groups: a group varies the masked dimensions and fixes the
// others; groups are numbered by the fixed dimensions, ranks within a group by the varying ones, both
// fastest-varying first.
std::vector<std::vector<int>> masked_orthogonal_groups(const std::vector<int>& sizes,
                                                       const std::vector<bool>& mask) {
  std::vector<int> in_shape, in_stride, out_shape, out_stride;
  int stride = 1;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    (mask[i] ? in_shape : out_shape).push_back(sizes[i]);
    (mask[i] ? in_stride : out_stride).push_back(stride);
    stride *= sizes[i];
  }
  const int world = stride;
  int group_size = 1;
  for (int s : in_shape) group_size *= s;

  std::vector<std::vector<int>> groups(static_cast<std::size_t>(world / group_size));
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const int base = mixed_radix_offset(static_cast<int>(g), out_shape, out_stride);
    groups[g].reserve(static_cast<std::size_t>(group_size));
    for (int r = 0; r < group_size; ++r)
      groups[g].push_back(base + mixed_radix_offset(r, in_shape, in_stride));
  }
  return groups;
}

// Megatron's RankGenerator over an already validated, complete order.
class RankGenerator {
 public:
  RankGenerator(const std::vector<std::string_view>& order, const DimSizes& sizes) : order_(order) {
    for (auto dim : order_) sizes_.push_back(sizes.of(dim));
  }

  std::vector<std::vector<int>> ranks(std::initializer_list<std::string_view> dims) const {
    std::vector<bool> mask(order_.size(), false);
    for (auto dim : dims)
      mask[static_cast<std::size_t>(std::find(order_.begin(), order_.end(), dim) - order_.begin())] = true;
    return masked_orthogonal_groups(sizes_, mask);
  }

 private:
  std::vector<std::string_view> order_;
  std::vector<int> sizes_;
};

// Product of layout sizes. Four ints can overflow even 64 bits, and a product beyond any world size only has
// to read as too big, so it saturates (p * f stays below 2^63 since p <= 2^32 and f < 2^31).
constexpr std::int64_t kHugeProduct = std::int64_t{1} << 32;

std::int64_t product(std::initializer_list<int> factors) {
  std::int64_t p = 1;
  for (int f : factors) p = std::min(p * f, kHugeProduct);
  return p;
}

std::string show_product(std::int64_t p) {
  return p >= kHugeProduct ? fmt::format("more than {}", kHugeProduct - 1) : fmt::format("{}", p);
}

// What the user calls a dimension of the expert view.
std::string_view expert_name(std::string_view dim) {
  if (dim == "tp") return "etp";
  if (dim == "dp") return "edp";
  return dim;
}

std::string lowercase(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

struct Order {
  std::vector<std::string_view> dims;  // complete: every dimension once
  std::string_view last_requested;     // the slowest dimension the user named
};

// Splits and validates the order, then appends omitted dimensions. A dimension may be omitted only when it
// has size 1 in both views, since Megatron refuses it in whichever generator sees it larger.
Order parse_order(const std::string& requested, const DimSizes& dense, const DimSizes& expert) {
  constexpr std::array<std::string_view, 5> kDims = {"tp", "cp", "ep", "dp", "pp"};
  const std::string text = lowercase(requested);
  std::vector<std::string_view> order;
  std::size_t begin = 0;
  while (true) {
    const std::size_t end = std::min(text.find('-', begin), text.size());
    const std::string_view token = std::string_view(text).substr(begin, end - begin);
    TESSERA_CHECK(!token.empty(),
                  "parallel order '{}' has an empty dimension name; join dimensions with '-', as in "
                  "tp-cp-ep-dp-pp",
                  requested);
    const auto known = std::find(kDims.begin(), kDims.end(), token);
    TESSERA_CHECK(
        known != kDims.end(),
        "parallel order '{}' names unknown dimension '{}'; the dimensions are tp, cp, ep, dp and pp",
        requested, token);
    TESSERA_CHECK(std::find(order.begin(), order.end(), *known) == order.end(),
                  "parallel order '{}' names {} more than once", requested, token);
    order.push_back(*known);  // views the static table, not `text`
    if (end == text.size()) break;
    begin = end + 1;
  }
  const std::string_view last_requested = order.back();

  for (auto dim : kAppendOrder) {
    if (std::find(order.begin(), order.end(), dim) != order.end()) continue;
    const bool dense_fits = dense.of(dim) == 1;
    TESSERA_CHECK(dense_fits && expert.of(dim) == 1,
                  "parallel order '{}' omits {}, but {}={}; only a dimension of size 1 may be left out",
                  requested, dim, dense_fits ? expert_name(dim) : dim,
                  dense_fits ? expert.of(dim) : dense.of(dim));
    order.push_back(dim);
  }
  return Order{std::move(order), last_requested};
}

}  // namespace

std::string_view group_name(Group g) {
  switch (g) {
    case Group::tp: return "tp";
    case Group::cp: return "cp";
    case Group::dp: return "dp";
    case Group::pp: return "pp";
    case Group::dp_cp: return "dp-cp";
    case Group::tp_cp: return "tp-cp";
    case Group::tp_pp: return "tp-pp";
    case Group::embedding: return "embedding";
    case Group::etp: return "etp";
    case Group::ep: return "ep";
    case Group::edp: return "edp";
    case Group::etp_ep: return "etp-ep";
    case Group::etp_ep_pp: return "etp-ep-pp";
  }
  return "?";
}

std::span<const Group> all_groups() { return kAllGroups; }

Topology Topology::build(int world_size, const ParallelSizes& s) {
  TESSERA_CHECK(world_size >= 1, "world size {} must be at least 1", world_size);
  for (auto [name, value] : {std::pair{"tp", s.tp}, {"cp", s.cp}, {"ep", s.ep}, {"pp", s.pp}})
    TESSERA_CHECK(value >= 1, "{}={} must be at least 1", name, value);
  for (auto [name, value] : {std::pair{"dp", s.dp}, {"etp", s.etp}})
    TESSERA_CHECK(value >= 0, "{}={} must be at least 1, or 0 to derive it", name, value);

  const std::int64_t model = product({s.tp, s.cp, s.pp});
  TESSERA_CHECK(world_size % model == 0, "tp={} × cp={} × pp={} = {} does not divide world size {}", s.tp,
                s.cp, s.pp, show_product(model), world_size);
  const int dp = static_cast<int>(world_size / model);
  TESSERA_CHECK(s.dp == 0 || s.dp == dp,
                "tp={} × cp={} × dp={} × pp={} = {} does not equal world size {} (dp would have to be {})",
                s.tp, s.cp, s.dp, s.pp, show_product(product({s.tp, s.cp, s.dp, s.pp})), world_size, dp);

  const int etp = s.etp == 0 ? s.tp : s.etp;
  const std::int64_t expert_model = product({etp, s.ep, s.pp});
  TESSERA_CHECK(world_size % expert_model == 0, "etp={} × ep={} × pp={} = {} does not divide world size {}",
                etp, s.ep, s.pp, show_product(expert_model), world_size);
  const int edp = static_cast<int>(world_size / expert_model);

  const DimSizes dense{s.tp, s.cp, 1, dp, s.pp};
  const DimSizes expert{etp, 1, s.ep, edp, s.pp};
  const Order order = parse_order(s.order, dense, expert);

  // Megatron's own precondition: with pp not slowest, the pipeline stride is made of the other dimensions,
  // which only line up in both views when the data-parallel sizes match.
  TESSERA_CHECK(
      order.last_requested == "pp" || s.pp == 1 || edp == dp,
      "parallel order '{}' does not end with pp, so expert layers need the data-parallel size of dense "
      "layers, but edp={} (world {} / (etp={} × ep={} × pp={})) differs from dp={}",
      s.order, edp, world_size, etp, s.ep, s.pp, dp);

  Topology t;
  t.world_size_ = world_size;
  t.tp_ = s.tp;
  t.cp_ = s.cp;
  t.dp_ = dp;
  t.pp_ = s.pp;
  t.ep_ = s.ep;
  t.etp_ = etp;
  t.edp_ = edp;
  t.order_ = fmt::format("{}", fmt::join(order.dims, "-"));
  t.kinds_.resize(kAllGroups.size());

  const RankGenerator dense_gen(order.dims, dense);
  const RankGenerator expert_gen(order.dims, expert);
  auto pp_groups = dense_gen.ranks({"pp"});
  const auto expert_pp_groups = expert_gen.ranks({"pp"});
  if (pp_groups != expert_pp_groups) {
    std::size_t i = 0;
    while (pp_groups[i] == expert_pp_groups[i]) ++i;
    TESSERA_FAIL(
        "parallel order '{}' gives dense layers (tp × cp × dp × pp) and expert layers (etp × ep × edp × "
        "pp) different pipeline groups ([{}] vs [{}]); put pp last in the order",
        s.order, fmt::join(pp_groups[i], ", "), fmt::join(expert_pp_groups[i], ", "));
  }

  std::vector<std::vector<int>> embedding;
  for (const auto& g : pp_groups)
    embedding.push_back(g.size() == 1 ? std::vector<int>{g.front()} : std::vector<int>{g.front(), g.back()});

  t.set_groups(Group::tp, dense_gen.ranks({"tp"}));
  t.set_groups(Group::cp, dense_gen.ranks({"cp"}));
  t.set_groups(Group::dp, dense_gen.ranks({"dp"}));
  t.set_groups(Group::dp_cp, dense_gen.ranks({"dp", "cp"}));
  t.set_groups(Group::tp_cp, dense_gen.ranks({"tp", "cp"}));
  t.set_groups(Group::tp_pp, dense_gen.ranks({"tp", "pp"}));
  t.set_groups(Group::pp, std::move(pp_groups));
  t.set_groups(Group::embedding, std::move(embedding));
  t.set_groups(Group::etp, expert_gen.ranks({"tp"}));
  t.set_groups(Group::ep, expert_gen.ranks({"ep"}));
  t.set_groups(Group::edp, expert_gen.ranks({"dp"}));
  t.set_groups(Group::etp_ep, expert_gen.ranks({"tp", "ep"}));
  t.set_groups(Group::etp_ep_pp, expert_gen.ranks({"tp", "ep", "pp"}));
  return t;
}

void Topology::set_groups(Group g, std::vector<std::vector<int>> groups) {
  Kind& k = kinds_[static_cast<std::size_t>(g)];
  k.index_of_rank.assign(static_cast<std::size_t>(world_size_), kNoGroup);
  k.position_of_rank.assign(static_cast<std::size_t>(world_size_), kNoGroup);
  for (std::size_t i = 0; i < groups.size(); ++i)
    for (std::size_t p = 0; p < groups[i].size(); ++p) {
      const auto rank = static_cast<std::size_t>(groups[i][p]);
      k.index_of_rank[rank] = static_cast<int>(i);
      k.position_of_rank[rank] = static_cast<int>(p);
    }
  k.groups = std::move(groups);
}

const Topology::Kind& Topology::kind(Group g) const { return kinds_.at(static_cast<std::size_t>(g)); }

void Topology::check_rank(int rank) const {
  TESSERA_CHECK(rank >= 0 && rank < world_size_, "rank {} is outside a world of {} ranks", rank, world_size_);
}

const std::vector<std::vector<int>>& Topology::groups(Group g) const { return kind(g).groups; }

const std::vector<int>& Topology::group_of(Group g, int rank) const {
  static const std::vector<int> kNone;
  const int index = group_index(g, rank);
  return index == kNoGroup ? kNone : kind(g).groups[static_cast<std::size_t>(index)];
}

int Topology::group_index(Group g, int rank) const {
  check_rank(rank);
  return kind(g).index_of_rank[static_cast<std::size_t>(rank)];
}

int Topology::group_rank(Group g, int rank) const {
  check_rank(rank);
  return kind(g).position_of_rank[static_cast<std::size_t>(rank)];
}

Coord Topology::coord(int rank) const {
  return Coord{group_rank(Group::tp, rank), group_rank(Group::cp, rank), group_rank(Group::dp, rank),
               group_rank(Group::pp, rank), group_rank(Group::ep, rank), group_rank(Group::etp, rank),
               group_rank(Group::edp, rank)};
}

}  // namespace tessera::dist
