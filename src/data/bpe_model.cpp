#include "bpe_model.hpp"

#include <algorithm>
#include <bit>
#include <mutex>
#include <thread>

namespace tessera::data {

// One word -> ids map, used by one encode() call at a time (the mutex is the lease, not a per-word lock).
class WordCache {
 public:
  std::mutex lease;
  static constexpr size_t kCapacity = 16384;
  static constexpr size_t kMaxWord = 256;  // longer words are rare and cheap to miss
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::vector<int32_t>, Hash, std::equal_to<>> words;
};

class WordCachePool {
 public:
  WordCachePool() : size_(std::clamp<size_t>(2 * std::thread::hardware_concurrency(), 4, 256)),
                    caches_(std::make_unique<WordCache[]>(size_)) {}

  WordCache* acquire() {
    // Start from the thread's own slot so that a thread keeps finding its warm cache.
    const size_t start = std::hash<std::thread::id>{}(std::this_thread::get_id());
    for (size_t k = 0; k < size_; ++k) {
      WordCache& cache = caches_[(start + k) % size_];
      if (cache.lease.try_lock()) return &cache;
    }
    return nullptr;
  }

 private:
  size_t size_;
  std::unique_ptr<WordCache[]> caches_;
};

namespace {

constexpr uint32_t kNoMerge = ~uint32_t{0};
// Below this many bytes a word is merged by rescanning a rank array, above it with HF's heap.
constexpr size_t kShortWord = 48;

}  // namespace

BpeModel::BpeModel(std::array<int32_t, 256> byte_ids, const std::vector<MergeRule>& merges, bool ignore_merges,
                   std::unordered_map<std::string, int32_t> raw_vocab)
    : byte_ids_(byte_ids), ignore_merges_(ignore_merges), caches_(std::make_unique<WordCachePool>()) {
  // Open addressing at most half full: a merge lookup is one or two probes in a flat array.
  const size_t capacity = std::bit_ceil(std::max<size_t>(16, merges.size() * 2));
  slots_.assign(capacity, Slot{kEmpty, 0, 0});
  mask_ = capacity - 1;
  shift_ = 64 - std::countr_zero(capacity);
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const MergeRule& m = merges[rank];
    const uint64_t key = pair_key(m.left, m.right);
    for (uint64_t i = (key * 0x9E3779B97F4A7C15ULL) >> shift_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.key == kEmpty || s.key == key) {
        s = Slot{key, static_cast<uint32_t>(rank), m.result};
        break;
      }
    }
  }
  if (ignore_merges_) raw_vocab_.insert(raw_vocab.begin(), raw_vocab.end());
}

BpeModel::BpeModel(BpeModel&&) noexcept = default;
BpeModel::~BpeModel() = default;

BpeModel::CacheLease::~CacheLease() {
  if (cache_ != nullptr) cache_->lease.unlock();
}

BpeModel::CacheLease BpeModel::lease_cache() const { return CacheLease(caches_->acquire()); }

void BpeModel::merge_short(BpeScratch& scratch) const {
  // Same choice as the heap: the lowest rank, and among equal ranks the leftmost pair.
  auto& ids = scratch.ids;
  auto& ranks = scratch.ranks;
  auto& results = scratch.results;
  ranks.resize(ids.size());
  results.resize(ids.size());
  auto rank_of = [&](size_t i) {
    const Slot* s = find(ids[i], ids[i + 1]);
    if (s == nullptr) return kNoMerge;
    results[i] = s->result;
    return s->rank;
  };
  for (size_t i = 0; i + 1 < ids.size(); ++i) ranks[i] = rank_of(i);
  while (ids.size() > 1) {
    size_t best = 0;
    for (size_t i = 1; i + 1 < ids.size(); ++i) {
      if (ranks[i] < ranks[best]) best = i;
    }
    if (ranks[best] == kNoMerge) break;
    ids[best] = results[best];
    ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(best) + 1);
    ranks.erase(ranks.begin() + static_cast<std::ptrdiff_t>(best) + 1);
    results.erase(results.begin() + static_cast<std::ptrdiff_t>(best) + 1);
    if (best + 1 < ids.size()) ranks[best] = rank_of(best);
    if (best > 0) ranks[best - 1] = rank_of(best - 1);
  }
}

void BpeModel::merge_long(BpeScratch& scratch) const {
  // HF's Word::merge_all: a min-heap of (rank, position) with stale entries skipped when popped.
  auto& symbols = scratch.symbols;
  auto& heap = scratch.heap;
  const auto n = static_cast<int32_t>(scratch.ids.size());
  symbols.clear();
  for (int32_t i = 0; i < n; ++i) symbols.push_back({scratch.ids[i], i - 1, i + 1 < n ? i + 1 : -1, 1});
  auto later = [](const BpeScratch::Candidate& a, const BpeScratch::Candidate& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  heap.clear();
  for (int32_t i = 0; i + 1 < n; ++i) {
    if (const Slot* s = find(symbols[i].id, symbols[i + 1].id)) heap.push_back({s->rank, static_cast<uint32_t>(i), s->result});
  }
  std::make_heap(heap.begin(), heap.end(), later);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const BpeScratch::Candidate top = heap.back();
    heap.pop_back();
    auto& left = symbols[top.pos];
    if (left.len == 0 || left.next < 0) continue;
    const int32_t right_pos = left.next;
    const auto right = symbols[right_pos];
    const Slot* current = find(left.id, right.id);
    if (current == nullptr || current->result != top.result) continue;  // stale: the pair changed
    left.id = top.result;
    left.len += right.len;
    left.next = right.next;
    symbols[right_pos].len = 0;
    if (right.next >= 0) symbols[right.next].prev = static_cast<int32_t>(top.pos);
    if (left.prev >= 0) {
      if (const Slot* s = find(symbols[left.prev].id, left.id)) {
        heap.push_back({s->rank, static_cast<uint32_t>(left.prev), s->result});
        std::push_heap(heap.begin(), heap.end(), later);
      }
    }
    if (left.next >= 0) {
      if (const Slot* s = find(left.id, symbols[left.next].id)) {
        heap.push_back({s->rank, top.pos, s->result});
        std::push_heap(heap.begin(), heap.end(), later);
      }
    }
  }
  scratch.ids.clear();
  for (const auto& s : symbols) {
    if (s.len != 0) scratch.ids.push_back(s.id);
  }
}

void BpeModel::encode_word(std::string_view word, BpeScratch& scratch, std::vector<int32_t>& out) const {
  if (word.size() == 1) {
    out.push_back(byte_ids_[static_cast<unsigned char>(word[0])]);
    return;
  }
  if (ignore_merges_) {
    if (auto it = raw_vocab_.find(word); it != raw_vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  WordCache* cache = word.size() <= WordCache::kMaxWord ? scratch.cache : nullptr;
  if (cache != nullptr) {
    if (auto it = cache->words.find(word); it != cache->words.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  scratch.ids.clear();
  for (const char c : word) scratch.ids.push_back(byte_ids_[static_cast<unsigned char>(c)]);
  if (word.size() <= kShortWord) {
    merge_short(scratch);
  } else {
    merge_long(scratch);
  }
  out.insert(out.end(), scratch.ids.begin(), scratch.ids.end());
  if (cache != nullptr) {
    // A full cache starts over: simpler than LRU and enough for the skewed word frequencies of text.
    if (cache->words.size() >= WordCache::kCapacity) cache->words.clear();
    cache->words.emplace(std::string(word), scratch.ids);
  }
}

}  // namespace tessera::data
