#pragma once
// The BPE model of a byte-level tokenizer: a word (one pre-token, as raw bytes) starts as one symbol per
// byte and adjacent pairs are merged lowest rank first, leftmost first among equal ranks, exactly the
// order of HF's Word::merge_all. Results are cached per word in a pool of caches: an encode() call leases
// one for its whole duration (a thread tends to get its own back), so words are looked up without locks
// and without cache lines bouncing between cores.

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tessera::data {

class WordCache;
class WordCachePool;

struct MergeRule {
  int32_t left = 0;
  int32_t right = 0;
  int32_t result = 0;
};

// Reused buffers for one encode() call, and the word cache it leased (null: none was free).
struct BpeScratch {
  WordCache* cache = nullptr;
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    uint32_t len;
  };
  struct Candidate {
    uint32_t rank;
    uint32_t pos;
    int32_t result;
  };
  std::vector<int32_t> ids;
  std::vector<uint32_t> ranks;
  std::vector<int32_t> results;
  std::vector<Symbol> symbols;
  std::vector<Candidate> heap;
};

class BpeModel {
 public:
  // `byte_ids[b]`: the id of the single-byte token for byte b. `merges` in rank order (a later duplicate
  // pair overrides an earlier one, as HF's map does). With ignore_merges, a word that is itself in
  // `raw_vocab` (raw bytes -> id) is that one token (Llama-3).
  BpeModel(std::array<int32_t, 256> byte_ids, const std::vector<MergeRule>& merges, bool ignore_merges,
           std::unordered_map<std::string, int32_t> raw_vocab);

  BpeModel(BpeModel&&) noexcept;
  ~BpeModel();

  // A word cache for one encode() call: held until the lease is destroyed, empty when all are in use.
  class CacheLease {
   public:
    CacheLease() = default;
    CacheLease(CacheLease&& other) noexcept : cache_(std::exchange(other.cache_, nullptr)) {}
    CacheLease& operator=(CacheLease&&) = delete;
    ~CacheLease();
    WordCache* get() const { return cache_; }

   private:
    friend class BpeModel;
    explicit CacheLease(WordCache* cache) : cache_(cache) {}
    WordCache* cache_ = nullptr;
  };
  CacheLease lease_cache() const;

  // Appends the ids of `word` (raw bytes, non-empty) to `out`, using and filling scratch.cache if any.
  void encode_word(std::string_view word, BpeScratch& scratch, std::vector<int32_t>& out) const;

 private:
  struct Slot {
    uint64_t key;
    uint32_t rank;
    int32_t result;
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  const Slot* find(int32_t a, int32_t b) const {
    const uint64_t key = pair_key(a, b);
    for (uint64_t i = (key * 0x9E3779B97F4A7C15ULL) >> shift_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == key) return &s;
      if (s.key == kEmpty) return nullptr;
    }
  }
  void merge_short(BpeScratch& scratch) const;
  void merge_long(BpeScratch& scratch) const;

  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::array<int32_t, 256> byte_ids_;
  std::vector<Slot> slots_;
  uint64_t mask_ = 0;
  int shift_ = 64;
  bool ignore_merges_ = false;
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> raw_vocab_;
  std::unique_ptr<WordCachePool> caches_;
};

}  // namespace tessera::data
