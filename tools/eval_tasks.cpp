// Evaluation tasks and metrics (tools/). See eval_tasks.h.
#include "tools/eval_tasks.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "runtime/error.h"
#include "tools/cli_util.h"

namespace kvz::cli {
namespace {

// splitmix64: identical samples on every standard library.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return next() % n; }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1p-53; }

 private:
  uint64_t s_;
};

template <class T>
void shuffle(std::vector<T>& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

std::vector<EvalSample> squad(const TaskOptions& o) {
  auto j = nlohmann::json::parse(read_file(o.data_dir + "/squad_dev_first_paragraphs.json"));
  std::vector<EvalSample> out;
  for (const auto& s : j["samples"]) {
    if (o.num > 0 && static_cast<int>(out.size()) == o.num) break;
    EvalSample e;
    e.id = s["title"].get<std::string>();
    e.context = s["context"].get<std::string>();
    for (const auto& q : s["questions"])
      e.queries.push_back(
          {"Q: " + q["question"].get<std::string>(), q["answers"].get<std::vector<std::string>>()});
    out.push_back(std::move(e));
  }
  return out;
}

// The first `n_tokens` tokens of the bundled essay haystack, as text.
std::string haystack(const TaskOptions& o, const Tokenizer& tok, int64_t n_tokens) {
  std::string text = read_file(o.data_dir + "/pg_essays_haystack.txt");
  std::vector<int32_t> ids = tok.encode(text, false, false);
  while (static_cast<int64_t>(ids.size()) < n_tokens) {  // repeat the text when more is needed
    std::vector<int32_t> more = tok.encode(text, false, false);
    ids.insert(ids.end(), more.begin(), more.end());
  }
  ids.resize(static_cast<size_t>(std::max<int64_t>(n_tokens, 0)));
  return tok.decode(ids, true);
}

// Char offset just after the sentence end at or before `at` (0 if none).
size_t sentence_start(const std::string& text, size_t at) {
  for (size_t i = std::min(at, text.size()); i > 0; --i)
    if (text[i - 1] == '.' &&
        (i == text.size() || std::isspace(static_cast<unsigned char>(text[i]))))
      return i;
  return 0;
}

constexpr const char* kAdjectives[] = {
    "amber", "brave", "calm",  "dusty", "eager", "fuzzy", "gentle", "hollow", "icy",  "jolly",
    "lucky", "misty", "noble", "odd",   "proud", "quiet", "rapid",  "silent", "tidy", "vivid"};
constexpr const char* kNouns[] = {"anchor", "badger",  "canyon", "dolphin", "engine",
                                  "falcon", "garden",  "harbor", "island",  "jacket",
                                  "kettle", "lantern", "meadow", "needle",  "orchard",
                                  "pepper", "quarry",  "river",  "saddle",  "tunnel"};

std::vector<EvalSample> niah(const TaskOptions& o, const Tokenizer& tok) {
  const int64_t length = o.length > 0 ? o.length : 3000;
  const int n_needles = o.queries > 0 ? o.queries : 4, num = o.num > 0 ? o.num : 8;
  std::vector<EvalSample> out;
  for (int s = 0; s < num; ++s) {
    Rng rng(o.seed * 1000003 + static_cast<uint64_t>(s));
    std::vector<std::string> needles;
    EvalSample e;
    e.id = fmt::format("niah-{}-{}", length, s);
    int64_t needle_tokens = 0;
    std::vector<std::string> keys;
    while (static_cast<int>(keys.size()) < n_needles) {
      std::string key = fmt::format("{}-{}", kAdjectives[rng.below(std::size(kAdjectives))],
                                    kNouns[rng.below(std::size(kNouns))]);
      if (std::find(keys.begin(), keys.end(), key) != keys.end()) continue;
      keys.push_back(key);
      std::string number = std::to_string(1000000 + rng.below(9000000));
      needles.push_back(fmt::format(" The special magic number for {} is: {}.", key, number));
      needle_tokens += static_cast<int64_t>(tok.encode(needles.back(), false, false).size());
      e.queries.push_back(
          {fmt::format("What is the special magic number for {} mentioned in the provided "
                       "text? Answer with the number only.",
                       key),
           {number}});
    }
    std::string text = haystack(o, tok, length - needle_tokens);
    // Needle k goes at a depth drawn in [k/n, (k+1)/n), at a sentence end; insert from the back
    // so earlier offsets stay valid.
    std::vector<size_t> at(needles.size());
    for (size_t k = 0; k < needles.size(); ++k) {
      double depth = (static_cast<double>(k) + rng.uniform()) / static_cast<double>(needles.size());
      at[k] = sentence_start(text, static_cast<size_t>(depth * static_cast<double>(text.size())));
    }
    for (size_t k = needles.size(); k-- > 0;) text.insert(at[k], needles[k]);
    e.context = std::move(text);
    shuffle(e.queries, rng);  // the first query (query-aware methods' window) is at a random depth
    out.push_back(std::move(e));
  }
  return out;
}

std::string uuid(Rng& rng) {
  const uint64_t a = rng.next(), b = rng.next();
  std::string h = fmt::format("{:016x}{:016x}", a, b);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20, 12);
}

std::vector<EvalSample> kv_retrieval(const TaskOptions& o, const Tokenizer& tok) {
  const int64_t length = o.length > 0 ? o.length : 2000;
  const int n_queries = o.queries > 0 ? o.queries : 4, num = o.num > 0 ? o.num : 8;
  std::vector<EvalSample> out;
  for (int s = 0; s < num; ++s) {
    Rng rng(o.seed * 1000003 + 7919 + static_cast<uint64_t>(s));
    std::vector<std::pair<std::string, std::string>> pairs;
    auto render = [&](size_t n) {
      std::string t = "JSON data:\n{";
      for (size_t i = 0; i < n; ++i)
        t += fmt::format("{}\"{}\": \"{}\"", i ? ", " : "", pairs[i].first, pairs[i].second);
      return t + "}";
    };
    // Add pairs while the context stays within `length` tokens (at least n_queries pairs).
    do {
      pairs.emplace_back(uuid(rng), uuid(rng));
    } while (static_cast<int>(pairs.size()) < n_queries ||
             static_cast<int64_t>(tok.encode(render(pairs.size()), false, false).size()) < length);
    if (static_cast<int>(pairs.size()) > n_queries) pairs.pop_back();
    EvalSample e;
    e.id = fmt::format("kv-{}-{}", length, s);
    e.context = render(pairs.size());
    std::vector<size_t> idx(pairs.size());
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
    shuffle(idx, rng);
    for (int q = 0; q < n_queries; ++q) {
      const auto& [k, v] = pairs[idx[static_cast<size_t>(q)]];
      e.queries.push_back(
          {fmt::format("Extract the value corresponding to the specified key in the JSON "
                       "object above. Key: \"{}\"\nCorresponding value:",
                       k),
           {v}});
    }
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace

std::vector<EvalSample> make_task(const TaskOptions& o, const Tokenizer& tok) {
  if (o.task == "squad") return squad(o);
  if (o.task == "niah") return niah(o, tok);
  if (o.task == "kv") return kv_retrieval(o, tok);
  throw InputError(fmt::format("unknown task '{}' (known: squad, niah, kv)", o.task));
}

int task_max_new_tokens(std::string_view task) {
  if (task == "niah") return 16;
  if (task == "kv") return 48;
  return 24;
}

std::string normalize_answer(std::string_view s) {
  static constexpr const char* kDigits[] = {"zero", "one", "two",   "three", "four",
                                            "five", "six", "seven", "eight", "nine"};
  std::string out, word;
  auto flush = [&] {
    if (word.empty() || word == "a" || word == "an" || word == "the") {
      word.clear();
      return;
    }
    for (int d = 0; d < 10; ++d)
      if (word == kDigits[d]) word = std::to_string(d);
    if (!out.empty()) out += ' ';
    out += word;
    word.clear();
  };
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 128 && std::ispunct(c)) continue;  // Python's string.punctuation: ASCII only
    if (std::isspace(c)) {
      flush();
    } else {
      word += static_cast<char>(c < 128 ? std::tolower(c) : c);
    }
  }
  flush();
  return out;
}

bool answer_matches(std::string_view prediction, const std::vector<std::string>& answers) {
  const std::string p = normalize_answer(prediction);
  for (const std::string& a : answers) {
    const std::string g = normalize_answer(a);
    if (!g.empty() && p.find(g) != std::string::npos) return true;
  }
  return false;
}

}  // namespace kvz::cli
