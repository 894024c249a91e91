// Evaluation tasks and metrics (tools/). See eval_tasks.h.
#include "tools/eval_tasks.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "kvzip/splitmix.h"
#include "runtime/error.h"
#include "tools/cli_util.h"

namespace kvz::cli {
namespace {

using Rng = SplitMix64;  // identical samples on every standard library

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
      e.queries.push_back({"Q: " + q["question"].get<std::string>(),
                           q["answers"].get<std::vector<std::string>>(),
                           {},
                           Metric::kAnyNormalized});
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
           {number},
           {},
           Metric::kAnyNormalized});
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
           {v},
           {},
           Metric::kAnyNormalized});
    }
    out.push_back(std::move(e));
  }
  return out;
}

// ---- RULER-style tasks (shared/data/niah/RULER_TASKS.md; ALGORITHMS.md 5.4) ----

std::vector<std::string> read_lines(const std::string& path) {
  std::vector<std::string> out;
  std::string text = read_file(path), line;
  for (char c : text + "\n") {
    if (c != '\n') {
      line += c;
      continue;
    }
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    if (!line.empty()) out.push_back(line);
    line.clear();
  }
  if (out.empty()) throw InputError(path + " holds no entries");
  return out;
}

// Largest n in [lo, hi] with fits(n) (fits is monotone decreasing; lo must fit).
template <class F>
int64_t largest_fitting(int64_t lo, int64_t hi, F fits) {
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo + 1) / 2;
    if (fits(mid))
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

int64_t n_tokens(const Tokenizer& tok, const std::string& s) {
  return static_cast<int64_t>(tok.encode(s, false, false).size());
}

// Sentences of `text` (after '.', '?' or '!' followed by a space; NLTK's Punkt in RULER).
std::vector<std::string> sentences(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i + 1 < text.size(); ++i)
    if ((text[i] == '.' || text[i] == '?' || text[i] == '!') && text[i + 1] == ' ') {
      out.push_back(text.substr(start, i + 1 - start));
      start = i + 2;
    }
  if (start < text.size()) out.push_back(text.substr(start));
  return out;
}

std::string join(const std::vector<std::string>& v, const std::string& sep, size_t b = 0,
                 size_t e = std::string::npos) {
  std::string out;
  for (size_t i = b; i < std::min(e, v.size()); ++i) out += (i > b ? sep : "") + v[i];
  return out;
}

// RULER essay haystack of the first n words (repeating the essays) with `needles` placed at
// distinct depths drawn from round(linspace(0, 100, 40)), between sentences.
std::string essay_with_needles(const std::vector<std::string>& words, int64_t n,
                               const std::vector<std::string>& needles,
                               const std::vector<int>& depths) {
  std::string text;
  for (int64_t i = 0; i < n; ++i)
    text += (i ? " " : "") + words[static_cast<size_t>(i) % words.size()];
  const std::vector<std::string> sent = sentences(text);
  std::vector<size_t> at{0};
  for (int d : depths) at.push_back(sent.size() * static_cast<size_t>(d) / 100);
  std::sort(at.begin() + 1, at.end());
  at.push_back(sent.size());
  std::vector<std::string> parts;
  for (size_t i = 1; i < at.size(); ++i) {
    parts.push_back(join(sent, " ", at[i - 1], at[i]));
    if (i - 1 < needles.size()) parts.push_back(needles[i - 1]);
  }
  return join(parts, " ");
}

std::vector<int> ruler_depths(size_t n, Rng& rng) {  // without replacement from 40 points
  std::vector<int> all(40);
  for (int i = 0; i < 40; ++i) all[i] = static_cast<int>(std::lround(100.0 * i / 39));
  shuffle(all, rng);
  KVZ_CHECK(n <= all.size(), "{} needles > 40 depths", n);
  return {all.begin(), all.begin() + static_cast<int64_t>(n)};
}

// niah_multikey_1: essay haystack, 4 needles "adjective-noun" -> 7-digit number, one asked per
// query (--queries asks that many of them, as separate queries; the rest stay distractors).
std::vector<EvalSample> ruler_multikey(const TaskOptions& o, const Tokenizer& tok) {
  const int64_t length = o.length > 0 ? o.length : 4096;
  const int n_asked = o.queries > 0 ? o.queries : 1, num = o.num > 0 ? o.num : 8;
  const int n_keys = std::max(4, n_asked);
  const std::vector<std::string> adj = read_lines(o.data_dir + "/wonderwords_adjectives.txt"),
                                 noun = read_lines(o.data_dir + "/wonderwords_nouns.txt");
  std::vector<std::string> words;
  {
    std::string w;
    for (char c : read_file(o.data_dir + "/pg_essays_haystack.txt") + " ") {
      if (!std::isspace(static_cast<unsigned char>(c))) {
        w += c;
      } else if (!w.empty()) {
        words.push_back(w);
        w.clear();
      }
    }
  }
  // num_needle_q * num_needle_v == 1: RULER's singular template.
  const std::string intro =
      "A special magic number is hidden within the following text. Make sure to memorize it. I "
      "will quiz you about the number afterwards.\n";
  std::vector<EvalSample> out;
  for (int s = 0; s < num; ++s) {
    Rng rng(o.seed * 1000003 + 31337 + static_cast<uint64_t>(s));
    std::vector<std::string> keys, values, needles;
    while (static_cast<int>(keys.size()) < n_keys) {
      std::string key = adj[rng.below(adj.size())] + "-" + noun[rng.below(noun.size())];
      if (std::find(keys.begin(), keys.end(), key) != keys.end()) continue;
      keys.push_back(key);
      values.push_back(std::to_string(1000000 + rng.below(9000000)));
      needles.push_back(
          fmt::format("One of the special magic numbers for {} is: {}.", key, values.back()));
    }
    shuffle(needles, rng);
    const std::vector<int> depths = ruler_depths(needles.size(), rng);
    std::vector<size_t> asked(keys.size());
    for (size_t i = 0; i < asked.size(); ++i) asked[i] = i;
    shuffle(asked, rng);
    asked.resize(static_cast<size_t>(n_asked));
    EvalSample e;
    e.id = fmt::format("ruler_mk-{}-{}", length, s);
    int64_t overhead = 0;
    for (size_t k : asked) {
      EvalQuery q;
      q.question = fmt::format(
          "What is the special magic number for {} mentioned in the provided text?", keys[k]);
      q.answer_prefix = fmt::format(
          " The special magic number for {} mentioned in the provided text is", keys[k]);
      q.answers = {values[k]};
      q.metric = Metric::kAllContained;
      overhead = std::max(overhead, n_tokens(tok, "\n\n" + q.question + q.answer_prefix));
      e.queries.push_back(std::move(q));
    }
    // RULER's size fitting: tokens(input) + tokens_to_generate <= length.
    const int64_t budget = length - overhead - task_max_new_tokens("ruler_mk");
    auto render = [&](int64_t n) { return intro + essay_with_needles(words, n, needles, depths); };
    auto fits = [&](int64_t m) { return n_tokens(tok, render(m)) <= budget; };
    if (!fits(1))
      throw InputError(fmt::format(
          "ruler_mk: --length {} is too short for the task text and {} needles ({} tokens left)",
          length, needles.size(), budget));
    const int64_t n = largest_fitting(1, 8 * std::max<int64_t>(length, 1), fits);
    e.context = render(n);
    out.push_back(std::move(e));
  }
  return out;
}

std::string random_letters(Rng& rng, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += static_cast<char>('A' + rng.below(26));
  return s;
}

constexpr const char* kNoise =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";

// Noise haystack of n lines with every chain's statements at sorted random lines, in order.
std::string vt_haystack(const std::vector<std::vector<std::string>>& chains, int64_t n,
                        uint64_t seed) {
  Rng rng(seed);
  std::vector<std::string> lines(static_cast<size_t>(n), kNoise);
  for (const std::vector<std::string>& chain : chains) {
    std::vector<size_t> idx(lines.size());
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
    shuffle(idx, rng);
    idx.resize(std::min(idx.size(), chain.size()));
    std::sort(idx.begin(), idx.end());
    for (size_t j = 0; j < chain.size(); ++j) {  // fewer lines than statements: append the rest
      const size_t at = std::min(j < idx.size() ? idx[j] + j : lines.size(), lines.size());
      lines.insert(lines.begin() + static_cast<int64_t>(at), chain[j]);
    }
  }
  std::string text = join(lines, "\n");
  for (size_t p; (p = text.find(". \n")) != std::string::npos;) text.replace(p, 3, ".\n");
  return text;
}

struct VtChains {
  std::vector<std::vector<std::string>> statements, names;
  std::vector<std::string> values;
};

// `n_chains` chains of `hops` assignments over distinct names of `name_len` letters.
VtChains vt_chains(Rng& rng, int n_chains, int hops, int name_len) {
  VtChains c;
  std::vector<std::string> used;
  for (int ic = 0; ic < n_chains; ++ic) {
    std::vector<std::string> names, st;
    while (static_cast<int>(names.size()) < hops + 1) {
      std::string v = random_letters(rng, name_len);
      if (std::find(used.begin(), used.end(), v) != used.end()) continue;
      used.push_back(v);
      names.push_back(v);
    }
    std::string value;
    do {
      value = std::to_string(10000 + rng.below(90000));
    } while (std::find(c.values.begin(), c.values.end(), value) != c.values.end());
    st.push_back(fmt::format("VAR {} = {} ", names[0], value));
    for (int h = 1; h <= hops; ++h)
      st.push_back(fmt::format("VAR {} = VAR {} ", names[h], names[h - 1]));
    c.statements.push_back(std::move(st));
    c.names.push_back(std::move(names));
    c.values.push_back(value);
  }
  return c;
}

constexpr const char* kVtTask =
    "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n";

std::string vt_question(const std::string& value) {
  return fmt::format(
      "Question: Find all variables that are assigned the value {} in the text above.", value);
}
std::string vt_answer_prefix(int num_v, const std::string& value) {
  return fmt::format(
      " Answer: According to the chain(s) of variable assignment in the text above, {} variables "
      "are assigned the value {}, they are: ",
      num_v, value);
}

// vt: noise haystack, one chain of 4 hops per asked query (RULER: 1 chain), a one-shot example
// with 3-letter names in front (at most min(500, length / 4) tokens; left out if it cannot fit).
std::vector<EvalSample> ruler_vt(const TaskOptions& o, const Tokenizer& tok) {
  const int64_t length = o.length > 0 ? o.length : 4096;
  const int n_chains = o.queries > 0 ? o.queries : 1, num = o.num > 0 ? o.num : 8;
  constexpr int kHops = 4;
  std::vector<EvalSample> out;
  for (int s = 0; s < num; ++s) {
    Rng rng(o.seed * 1000003 + 4242 + static_cast<uint64_t>(s));
    const VtChains ex = vt_chains(rng, 1, kHops, 3), real = vt_chains(rng, n_chains, kHops, 5);
    const uint64_t ex_seed = rng.next(), real_seed = rng.next();
    auto example = [&](int64_t n) {
      return kVtTask + vt_haystack(ex.statements, n, ex_seed) + "\n" + vt_question(ex.values[0]) +
             vt_answer_prefix(kHops + 1, ex.values[0]) + " " + join(ex.names[0], " ") + "\n";
    };
    const int64_t ex_budget = std::min<int64_t>(500, length / 4);
    // Left out when even its bare text does not fit (short CI contexts).
    auto ex_fits = [&](int64_t m) { return n_tokens(tok, example(m)) <= ex_budget; };
    const std::string shot = ex_fits(0) ? example(largest_fitting(0, 200, ex_fits)) : "";
    EvalSample e;
    e.id = fmt::format("ruler_vt-{}-{}", length, s);
    int64_t overhead = 0;
    for (int ic = 0; ic < n_chains; ++ic) {
      EvalQuery q;
      q.question = vt_question(real.values[ic]);
      q.answer_prefix = vt_answer_prefix(kHops + 1, real.values[ic]);
      q.answers = real.names[ic];
      q.metric = Metric::kAllContained;
      overhead = std::max(overhead, n_tokens(tok, "\n\n" + q.question + q.answer_prefix));
      e.queries.push_back(std::move(q));
    }
    const int64_t budget = length - overhead - task_max_new_tokens("ruler_vt");
    auto render = [&](int64_t n) {
      return shot + kVtTask + vt_haystack(real.statements, n, real_seed);
    };
    auto fits = [&](int64_t m) { return n_tokens(tok, render(m)) <= budget; };
    if (!fits(0))
      throw InputError(fmt::format(
          "ruler_vt: --length {} is too short: the one-shot example, the task text and {} chain(s) "
          "alone take {} of the {} tokens left for the context",
          length, n_chains, n_tokens(tok, render(0)), budget));
    const int64_t n = largest_fitting(0, std::max<int64_t>(length, 1), fits);
    e.context = render(n);
    out.push_back(std::move(e));
  }
  return out;
}

// GSM8K as KVzip builds it (shared/data/gsm8k/SOURCE.md): the problem minus its last sentence is
// the context, the last sentence the question; contexts under 72 tokens are skipped.
std::vector<EvalSample> gsm8k(const TaskOptions& o, const Tokenizer& tok) {
  const int num = o.num > 0 ? o.num : 50;
  std::vector<EvalSample> out;
  for (const std::string& line : read_lines(o.data_dir + "/gsm8k_test_long_contexts.jsonl")) {
    if (static_cast<int>(out.size()) == num) break;
    const auto j = nlohmann::json::parse(line);
    const std::string problem = j.at("question").get<std::string>();
    std::vector<std::string> parts;
    for (size_t b = 0;;) {
      const size_t p = problem.find(". ", b);
      parts.push_back(problem.substr(b, p == std::string::npos ? std::string::npos : p - b));
      if (p == std::string::npos) break;
      b = p + 2;
    }
    if (parts.size() < 2) continue;
    auto strip = [](std::string t) {
      while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
      while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front()))) t.erase(0, 1);
      return t;
    };
    EvalSample e;
    e.context = strip(join(parts, ". ", 0, parts.size() - 1)) + ".";
    if (n_tokens(tok, e.context) < 72) continue;
    e.id = fmt::format("gsm8k-{}", j.at("line").get<int>());
    e.reasoning = true;
    EvalQuery q;
    q.question =
        "Reason and answer the question. You must say the answer in the last sentence beginning "
        "with 'The answer is'. Q: " +
        strip(parts.back());
    q.answers = {gsm8k_gold(j.at("answer").get<std::string>())};
    q.metric = Metric::kGsmNumber;
    e.queries.push_back(std::move(q));
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace

std::vector<EvalSample> make_task(const TaskOptions& o, const Tokenizer& tok) {
  if (o.task == "squad") return squad(o);
  if (o.task == "niah") return niah(o, tok);
  if (o.task == "kv") return kv_retrieval(o, tok);
  if (o.task == "ruler_mk") return ruler_multikey(o, tok);
  if (o.task == "ruler_vt") return ruler_vt(o, tok);
  if (o.task == "gsm8k") return gsm8k(o, tok);
  throw InputError(
      fmt::format("unknown task '{}' (known: squad, niah, kv, ruler_mk, ruler_vt, gsm8k)", o.task));
}

int task_max_new_tokens(std::string_view task) {
  if (task == "niah") return 16;
  if (task == "kv") return 48;
  if (task == "ruler_mk") return 32;  // the answer prefix is given: the number comes first
  if (task == "ruler_vt") return 30;  // RULER's tokens_to_generate
  if (task == "gsm8k") return 512;    // KVzip's setting: reasoning, then "The answer is"
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

std::string gsm8k_gold(std::string_view answer) {
  const size_t p = answer.rfind("#### ");
  if (p == std::string_view::npos) return {};
  std::string_view g = answer.substr(p + 5);
  while (!g.empty() && std::isspace(static_cast<unsigned char>(g.front()))) g.remove_prefix(1);
  while (!g.empty() && std::isspace(static_cast<unsigned char>(g.back()))) g.remove_suffix(1);
  return std::string(g);
}

double score_prediction(const EvalQuery& q, std::string_view prediction) {
  auto lower = [](std::string_view t) {
    std::string r(t);
    for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return r;
  };
  switch (q.metric) {
    case Metric::kAnyNormalized:
      return answer_matches(prediction, q.answers) ? 1.0 : 0.0;
    case Metric::kAllContained: {  // RULER string_match_all
      if (q.answers.empty()) return 0.0;
      const std::string p = lower(prediction);
      int found = 0;
      for (const std::string& a : q.answers) found += p.find(lower(a)) != std::string::npos;
      return static_cast<double>(found) / static_cast<double>(q.answers.size());
    }
    case Metric::kGsmNumber: {  // KVzip results/metric.py: gold in the text after the last phrase
      std::string p = lower(prediction);
      while (!p.empty() && std::isspace(static_cast<unsigned char>(p.back()))) p.pop_back();
      const size_t at = p.rfind("the answer is ");
      const std::string tail = at == std::string::npos ? p : p.substr(at + 14);
      return !q.answers.empty() && !q.answers[0].empty() &&
                     tail.find(q.answers[0]) != std::string::npos
                 ? 1.0
                 : 0.0;
    }
  }
  return 0.0;
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
