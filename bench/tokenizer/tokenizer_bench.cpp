// Encode throughput of tessera's tokenizer on the golden corpus, single-threaded and with every hardware
// thread (documents handed out through an atomic counter). run.sh builds it and runs HF tokenizers on the
// same documents in the same run; this prints one JSON line per measurement.
#include <nlohmann/json.hpp>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "tessera/data/tokenizer.hpp"

namespace {

std::vector<std::string> load_corpus(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) throw std::runtime_error("cannot open " + path);
  std::string text;
  char buffer[1 << 16];
  int n = 0;
  while ((n = gzread(file, buffer, sizeof(buffer))) > 0) text.append(buffer, static_cast<size_t>(n));
  gzclose(file);
  std::vector<std::string> docs;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) {
      const auto line = nlohmann::json::parse(text.substr(start, end - start));
      if (line.contains("hex")) {
        const auto hex = line.at("hex").get<std::string>();
        std::string bytes;
        for (size_t i = 0; i + 1 < hex.size(); i += 2) bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
        docs.push_back(std::move(bytes));
      } else {
        docs.push_back(line.at("text").get<std::string>());
      }
    }
    start = end + 1;
  }
  return docs;
}

// Seconds for one pass over all documents with `threads` threads; `tokens` gets the ids produced.
double pass(const tessera::data::Tokenizer& tok, const std::vector<std::string>& docs, unsigned threads,
            size_t& tokens) {
  std::atomic<size_t> next{0};
  std::atomic<size_t> count{0};
  const auto start = std::chrono::steady_clock::now();
  auto work = [&] {
    size_t local = 0;
    for (size_t i; (i = next.fetch_add(1)) < docs.size();) local += tok.encode(docs[i]).size();
    count += local;
  };
  if (threads == 1) {
    work();
  } else {
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t) pool.emplace_back(work);
    for (auto& th : pool) th.join();
  }
  tokens = count;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// CPU seconds used by the whole process so far: with more threads than free cores, wall time cannot show
// scaling, but CPU time per token shows whether threads cost each other anything.
double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s TOKENIZER_DIR CORPUS.jsonl.gz [REPEATS]\n", argv[0]);
    return 2;
  }
  const int repeats = argc > 3 ? std::stoi(argv[3]) : 5;
  const auto load_start = std::chrono::steady_clock::now();
  const auto tok = tessera::data::Tokenizer::load(argv[1]);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
  const auto docs = load_corpus(argv[2]);
  size_t bytes = 0;
  for (const auto& d : docs) bytes += d.size();
  std::printf("{\"side\": \"tessera\", \"what\": \"load\", \"seconds\": %.3f}\n", load_s);

  const unsigned all = std::max(1u, std::thread::hardware_concurrency());
  for (const unsigned threads : {1u, all}) {
    size_t tokens = 0;
    pass(tok, docs, threads, tokens);  // warm-up: the word cache fills as HF's does in its warm-up
    std::vector<double> times;
    const double cpu_start = cpu_seconds();
    for (int r = 0; r < repeats; ++r) times.push_back(pass(tok, docs, threads, tokens));
    const double cpu_per_pass = (cpu_seconds() - cpu_start) / repeats;
    std::sort(times.begin(), times.end());
    const double median = times[times.size() / 2];
    std::printf("{\"side\": \"tessera\", \"threads\": %u, \"documents\": %zu, \"bytes\": %zu, \"tokens\": %zu, "
                "\"seconds\": %.4f, \"tokens_per_s\": %.0f, \"cpu_seconds\": %.4f}\n",
                threads, docs.size(), bytes, tokens, median, static_cast<double>(tokens) / median, cpu_per_pass);
  }
  return 0;
}
