// RULER-style tasks (tools/). See eval_ruler.h; the recipes are tools/data/eval/RULER_TASKS.md
// (section numbers below refer to it) and ALGORITHMS.md 5.4.
#include "tools/eval_ruler.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <numbers>

#include "tools/eval_gen.h"

namespace kvz::cli {
namespace {

// Size fitting (section 0): tokens(context) + the longest query turn + tokens_to_generate <=
// --length (the system prefix is not counted). What is left for the context.
int64_t context_budget(const Tokenizer& tok, const std::vector<EvalQuery>& queries,
                       const TaskOptions& o, int64_t length) {
  int64_t overhead = 0;
  for (const EvalQuery& q : queries)
    overhead = std::max(overhead, n_tokens(tok, "\n\n" + q.question + q.answer_prefix));
  return length - overhead -
         (o.max_new_tokens > 0 ? o.max_new_tokens : ruler_max_new_tokens(o.task));
}

// The context render(n) for the largest n in [lo, hi] within context_budget (render's token count
// grows with n). Throws InputError naming `smallest` (what render(lo) holds) when even that does
// not fit.
template <class Render>
std::string fit_context(const Tokenizer& tok, const TaskOptions& o, int64_t length,
                        const std::vector<EvalQuery>& queries, int64_t lo, int64_t hi,
                        Render render, const std::string& smallest) {
  const int64_t budget = context_budget(tok, queries, o, length);
  auto fits = [&](int64_t m) { return n_tokens(tok, render(m)) <= budget; };
  if (!fits(lo))
    throw InputError(
        fmt::format("{}: --length {} is too short for {}: {} tokens, {} left for the context",
                    o.task, length, smallest, n_tokens(tok, render(lo)), budget));
  return render(largest_fitting(lo, hi, fits));
}

EvalQuery match_all_query(std::string question, std::string answer_prefix,
                          std::vector<std::string> answers) {
  return {std::move(question), std::move(answers), std::move(answer_prefix), Metric::kAllContained};
}

std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> words;
  std::string w;
  for (char c : text + " ") {
    if (!std::isspace(static_cast<unsigned char>(c))) {
      w += c;
    } else if (!w.empty()) {
      words.push_back(w);
      w.clear();
    }
  }
  return words;
}

// ---- NIAH family (section 1) ----

enum class Haystack { kNoise, kEssay, kNeedle };
enum class Kind { kWords, kNumbers, kUuids };

// One row of RULER's NIAH table: haystack, key/value types, keys k, values per key v, keys asked
// per query q. --queries N asks N such queries of one context (RULER: 1); keys = max(k, N q).
struct NiahConfig {
  std::string_view task, ruler_name;
  Haystack haystack = Haystack::kEssay;
  Kind key = Kind::kWords, value = Kind::kNumbers;
  int k = 1, v = 1, q = 1;
  int max_new_tokens = 32;  // RULER: 128; the answer prefix is given, the values come first
  // Sample s draws from Rng(seed * 1000003 + salt + s); the salts of all tasks are >= 1,000
  // apart, so no two tasks share a sample's stream (--num < 1,000).
  uint64_t salt = 0;
};

constexpr NiahConfig kNiah[] = {
    {"ruler_s1", "niah_single_1", Haystack::kNoise, Kind::kWords, Kind::kNumbers, 1, 1, 1, 32,
     51001},
    {"ruler_s2", "niah_single_2", Haystack::kEssay, Kind::kWords, Kind::kNumbers, 1, 1, 1, 32,
     56002},
    {"ruler_s3", "niah_single_3", Haystack::kEssay, Kind::kWords, Kind::kUuids, 1, 1, 1, 64, 57003},
    {"ruler_mk", "niah_multikey_1", Haystack::kEssay, Kind::kWords, Kind::kNumbers, 4, 1, 1, 32,
     31337},
    {"ruler_mk2", "niah_multikey_2", Haystack::kNeedle, Kind::kWords, Kind::kNumbers, 1, 1, 1, 32,
     60002},
    {"ruler_mk3", "niah_multikey_3", Haystack::kNeedle, Kind::kUuids, Kind::kUuids, 1, 1, 1, 64,
     61003},
    {"ruler_mv", "niah_multivalue", Haystack::kEssay, Kind::kWords, Kind::kNumbers, 1, 4, 1, 64,
     58006},
    {"ruler_mq", "niah_multiquery", Haystack::kEssay, Kind::kWords, Kind::kNumbers, 4, 1, 4, 64,
     59007},
};

const NiahConfig* niah_config(std::string_view task) {
  for (const NiahConfig& c : kNiah)
    if (c.task == task) return &c;
  return nullptr;
}

struct WordLists {
  std::vector<std::string> adj, noun;
};

std::string draw(Kind kind, Rng& rng, const WordLists& w) {
  if (kind == Kind::kNumbers) return std::to_string(1000000 + rng.below(9000000));
  if (kind == Kind::kUuids) return uuid(rng);
  // The noun is drawn first: the order in which GCC evaluated the unsequenced expression that
  // ruler_mk used before, kept so that its samples (and RESULTS.md's runs) stay the same.
  const std::string& n = w.noun[rng.below(w.noun.size())];
  return w.adj[rng.below(w.adj.size())] + "-" + n;
}

std::string kind_name(Kind kind, bool singular) {
  const char* n = kind == Kind::kWords ? "word" : kind == Kind::kNumbers ? "number" : "uuid";
  return singular ? n : std::string(n) + "s";
}

std::string needle_text(const NiahConfig& c, const std::string& key, const std::string& value) {
  return fmt::format("One of the special magic {} for {} is: {}.", kind_name(c.value, false), key,
                     value);
}

constexpr const char* kNoise =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";

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
  if (n > all.size()) throw InputError(fmt::format("{} needles > RULER's 40 depths", n));
  return {all.begin(), all.begin() + static_cast<int64_t>(n)};
}

// `lines` with `extra` inserted at random distinct line positions (RULER: random.sample of the
// haystack lines, inserted from the back), joined with '\n'.
std::string insert_lines(std::vector<std::string> lines, const std::vector<std::string>& extra,
                         Rng& rng) {
  std::vector<size_t> at = shuffled_indices(std::max(lines.size(), extra.size()), rng);
  at.resize(extra.size());
  std::vector<size_t> order(extra.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return at[a] > at[b]; });
  for (size_t i : order)
    lines.insert(lines.begin() + static_cast<int64_t>(std::min(at[i], lines.size())), extra[i]);
  return join(lines, "\n");
}

// The haystack of n units (essay words or lines) with the needles in it.
std::string niah_haystack(const NiahConfig& c, const std::vector<std::string>& essay,
                          const WordLists& wl, const std::vector<std::string>& needles,
                          const std::vector<std::string>& keys, const std::vector<int>& depths,
                          int64_t n, uint64_t seed) {
  if (c.haystack == Haystack::kEssay) return essay_with_needles(essay, n, needles, depths);
  Rng rng(seed);
  std::vector<std::string> lines;
  while (static_cast<int64_t>(lines.size()) < n) {
    if (c.haystack == Haystack::kNoise) {
      lines.emplace_back(kNoise);
      continue;
    }
    std::string key = draw(c.key, rng, wl);  // a distractor needle
    if (std::find(keys.begin(), keys.end(), key) != keys.end()) continue;
    lines.push_back(needle_text(c, key, draw(c.value, rng, wl)));
  }
  return insert_lines(std::move(lines), needles, rng);
}

std::vector<EvalSample> ruler_niah(const NiahConfig& c, const TaskOptions& o,
                                   const Tokenizer& tok) {
  const int64_t length = o.length > 0 ? o.length : 4096;
  const int n_queries = o.queries > 0 ? o.queries : 1, num = o.num > 0 ? o.num : 8;
  const int n_keys = std::max(c.k, n_queries * c.q);
  WordLists wl;
  if (c.key == Kind::kWords || c.value == Kind::kWords)
    wl = {read_lines(o.data_dir + "/wonderwords_adjectives.txt"),
          read_lines(o.data_dir + "/wonderwords_nouns.txt")};
  const std::vector<std::string> essay =
      c.haystack == Haystack::kEssay ? words_of(read_file(o.data_dir + "/pg_essays_haystack.txt"))
                                     : std::vector<std::string>{};
  // num_needle_q * num_needle_v == 1: RULER's singular template.
  const bool singular = c.q * c.v == 1;
  const std::string type = kind_name(c.value, singular);
  const std::string intro = fmt::format(
      "{} special magic {} {} hidden within the following text. Make sure to memorize "
      "it. I will quiz you about the {} afterwards.\n",
      singular ? "A" : "Some", type, singular ? "is" : "are", type);
  std::vector<EvalSample> out;
  for (int s = 0; s < num; ++s) {
    Rng rng(o.seed * 1000003 + c.salt + static_cast<uint64_t>(s));
    std::vector<std::string> keys, needles;
    std::vector<std::vector<std::string>> values;
    while (static_cast<int>(keys.size()) < n_keys) {
      std::string key = draw(c.key, rng, wl);
      if (std::find(keys.begin(), keys.end(), key) != keys.end()) continue;
      keys.push_back(key);
      values.emplace_back();
      for (int iv = 0; iv < c.v; ++iv) {
        values.back().push_back(draw(c.value, rng, wl));
        needles.push_back(needle_text(c, key, values.back().back()));
      }
    }
    shuffle(needles, rng);
    const std::vector<int> depths =
        c.haystack == Haystack::kEssay ? ruler_depths(needles.size(), rng) : std::vector<int>{};
    const std::vector<size_t> asked = shuffled_indices(keys.size(), rng);
    const uint64_t hay_seed = rng.next();
    EvalSample e;
    e.id = fmt::format("{}-{}-{}", c.task, length, s);
    for (int iq = 0; iq < n_queries; ++iq) {
      std::vector<std::string> qk, answers;
      for (int j = 0; j < c.q; ++j) {
        const size_t k = asked[static_cast<size_t>(iq * c.q + j)];
        qk.push_back(keys[k]);
        answers.insert(answers.end(), values[k].begin(), values[k].end());
      }
      const std::string query =
          qk.size() > 1 ? join(qk, ", ", 0, qk.size() - 1) + ", and " + qk.back() : qk[0];
      e.queries.push_back(match_all_query(
          fmt::format("What {} the special magic {} for {} mentioned in the provided text?",
                      singular ? "is" : "are all", type, query),
          fmt::format(" The special magic {} for {} mentioned in the provided text {}", type, query,
                      singular ? "is" : "are"),
          std::move(answers)));
    }
    auto render = [&](int64_t n) {
      return intro + niah_haystack(c, essay, wl, needles, keys, depths, n, hay_seed);
    };
    const bool essay_words = c.haystack == Haystack::kEssay;
    e.context = fit_context(tok, o, length, e.queries, essay_words ? 1 : 0,
                            essay_words ? 8 * std::max<int64_t>(length, 1) : length, render,
                            fmt::format("the task text and {} needles", needles.size()));
    out.push_back(std::move(e));
  }
  return out;
}

// ---- Variable tracking (section 2) ----

std::string random_letters(Rng& rng, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += static_cast<char>('A' + rng.below(26));
  return s;
}

// Noise haystack of n lines with every chain's statements at sorted random lines, in order.
std::string vt_haystack(const std::vector<std::vector<std::string>>& chains, int64_t n,
                        uint64_t seed) {
  Rng rng(seed);
  std::vector<std::string> lines(static_cast<size_t>(n), kNoise);
  for (const std::vector<std::string>& chain : chains) {
    std::vector<size_t> idx = shuffled_indices(lines.size(), rng);
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
    for (int ic = 0; ic < n_chains; ++ic)
      e.queries.push_back(match_all_query(vt_question(real.values[ic]),
                                          vt_answer_prefix(kHops + 1, real.values[ic]),
                                          real.names[ic]));
    auto render = [&](int64_t n) {
      return shot + kVtTask + vt_haystack(real.statements, n, real_seed);
    };
    e.context =
        fit_context(tok, o, length, e.queries, 0, std::max<int64_t>(length, 1), render,
                    fmt::format("the one-shot example, the task text and {} chain(s)", n_chains));
    out.push_back(std::move(e));
  }
  return out;
}

// ---- Common words extraction (section 3) ----

constexpr const char* kCweTask =
    "Below is a numbered list of words. In these words, some appear more often than others. "
    "Memorize the ones that appear most often.\n";
constexpr const char* kCweQuestion =
    "Question: What are the 10 most common words in the above list?";
constexpr const char* kCweAnswerPrefix =
    " Answer: The top 10 words that appear most often in the list are:";
constexpr size_t kCweCommon = 10;

std::string numbered(const std::vector<std::string>& list) {
  std::string out;
  for (size_t i = 0; i < list.size(); ++i)
    out += fmt::format("{}{}. {}", i ? " " : "", i + 1, list[i]);
  return out;
}

// The numbered list of words[b, b + n): the first 10 `freq_c` times each, the rest `freq_u`
// times, shuffled by Rng(seed).
std::string cwe_list(const std::vector<std::string>& words, size_t b, size_t n, int freq_c,
                     int freq_u, uint64_t seed) {
  std::vector<std::string> list;
  for (size_t i = 0; i < n; ++i)
    for (int r = 0; r < (i < kCweCommon ? freq_c : freq_u); ++r) list.push_back(words[b + i]);
  Rng rng(seed);
  shuffle(list, rng);
  return numbered(list);
}

// cwe: few-shot example (20 words, common x3, others x1; 40 words, x10 / x3 from 4,096 tokens)
// then the real list (n words, x6 / x1; x30 / x3 from 4,096), n fitted. The example is left
// out when it does not fit next to the 10 common words alone.
std::vector<EvalSample> ruler_cwe(const TaskOptions& o, const Tokenizer& tok) {
  const int64_t length = o.length > 0 ? o.length : 4096;
  const int num = o.num > 0 ? o.num : 8;
  const bool big = length >= 4096;
  const size_t shot_n = big ? 40 : 20;
  const int shot_c = big ? 10 : 3, shot_u = big ? 3 : 1, freq_c = big ? 30 : 6,
            freq_u = big ? 3 : 1;
  std::vector<std::string> vocab;  // nouns + adjectives + verbs, distinct, sorted, shuffled once
  for (const char* f : {"nouns", "adjectives", "verbs"})
    for (std::string& w : read_lines(o.data_dir + "/wonderwords_" + f + ".txt"))
      vocab.push_back(std::move(w));
  std::sort(vocab.begin(), vocab.end());
  vocab.erase(std::unique(vocab.begin(), vocab.end()), vocab.end());
  Rng vocab_rng(o.seed);
  shuffle(vocab, vocab_rng);
  std::vector<EvalSample> out;
  for (int s = 0; s < num; ++s) {
    Rng rng(o.seed * 1000003 + 52001 + static_cast<uint64_t>(s));
    // Per sample: a permutation; the example takes its first shot_n words, the real list the next.
    std::vector<std::string> words = vocab;
    shuffle(words, rng);
    const uint64_t shot_seed = rng.next(), list_seed = rng.next();
    const std::vector<std::string> shot_answers(words.begin(), words.begin() + kCweCommon),
        answers(words.begin() + static_cast<int64_t>(shot_n),
                words.begin() + static_cast<int64_t>(shot_n + kCweCommon));
    std::string shot = kCweTask + cwe_list(words, 0, shot_n, shot_c, shot_u, shot_seed) + "\n" +
                       kCweQuestion + kCweAnswerPrefix + " " + numbered(shot_answers) + "\n";
    EvalSample e;
    e.id = fmt::format("ruler_cwe-{}-{}", length, s);
    e.queries.push_back(match_all_query(kCweQuestion, kCweAnswerPrefix, answers));
    auto render = [&](int64_t n) {
      return shot + kCweTask +
             cwe_list(words, shot_n, static_cast<size_t>(n), freq_c, freq_u, list_seed);
    };
    const auto lo = static_cast<int64_t>(kCweCommon);
    if (n_tokens(tok, render(lo)) > context_budget(tok, e.queries, o, length)) shot.clear();
    // Every word adds at least one token: n <= length bounds the search.
    const int64_t hi = std::min(static_cast<int64_t>(words.size() - shot_n), length);
    e.context = fit_context(tok, o, length, e.queries, lo, hi, render,
                            fmt::format("the task text and 10 words x {}", freq_c));
    out.push_back(std::move(e));
  }
  return out;
}

// ---- Frequent words extraction (section 4) ----

constexpr const char* kFweTask =
    "Read the following coded text and track the frequency of each coded word. Find the three "
    "most frequently appeared coded words. ";
constexpr const char* kFweQuestion =
    "Question: Do not provide any explanation. Please ignore the dots '....'. What are the three "
    "most frequently appeared words in the above coded text?";
constexpr const char* kFweAnswerPrefix =
    " Answer: According to the coded text above, the three most frequently appeared words are:";

// n_words words where rank r (1-based) appears int(n_words r^-alpha / zeta(alpha)) times,
// alpha = 2 (zeta(2) = pi^2 / 6), shuffled by Rng(seed), joined by spaces.
std::string fwe_text(const std::vector<std::string>& vocab, int64_t n_words, uint64_t seed) {
  const double zeta2 = std::numbers::pi * std::numbers::pi / 6.0;
  std::vector<std::string> list;
  for (size_t r = 1; r <= vocab.size(); ++r) {
    const auto c =
        static_cast<int64_t>(static_cast<double>(n_words) / (static_cast<double>(r * r) * zeta2));
    for (int64_t i = 0; i < c; ++i) list.push_back(vocab[r - 1]);
  }
  Rng rng(seed);
  shuffle(list, rng);
  return join(list, " ");
}

// fwe: vocabulary of (length - 50) / 50 random 6-letter words (at least 5), rank 1 replaced by
// "..." (noise), the total word count fitted (RULER steps it by budget / 32; we binary-search).
// References: the words of rank 2, 3 and 4.
std::vector<EvalSample> ruler_fwe(const TaskOptions& o, const Tokenizer& tok) {
  const int64_t length = o.length > 0 ? o.length : 4096;
  const int num = o.num > 0 ? o.num : 8;
  const auto vocab_size =
      static_cast<size_t>(std::max<int64_t>(5, (length - ruler_max_new_tokens("ruler_fwe")) / 50));
  std::vector<EvalSample> out;
  for (int s = 0; s < num; ++s) {
    Rng rng(o.seed * 1000003 + 53001 + static_cast<uint64_t>(s));
    std::vector<std::string> vocab;
    while (vocab.size() < vocab_size) {
      std::string w;
      for (int i = 0; i < 6; ++i) w += static_cast<char>('a' + rng.below(26));
      if (std::find(vocab.begin(), vocab.end(), w) == vocab.end()) vocab.push_back(w);
    }
    std::sort(vocab.begin(), vocab.end());
    shuffle(vocab, rng);
    vocab[0] = "...";
    const uint64_t text_seed = rng.next();
    EvalSample e;
    e.id = fmt::format("ruler_fwe-{}-{}", length, s);
    e.queries.push_back(
        match_all_query(kFweQuestion, kFweAnswerPrefix, {vocab[1], vocab[2], vocab[3]}));
    auto render = [&](int64_t n) { return kFweTask + fwe_text(vocab, n, text_seed); };
    constexpr int64_t kLo = 27;  // the smallest count at which the rank-4 word appears
    e.context = fit_context(tok, o, length, e.queries, kLo, 2 * length, render,
                            fmt::format("the task text and {} words", kLo));
    out.push_back(std::move(e));
  }
  return out;
}

// ---- Multi-document QA over the bundled SQuAD paragraphs (section 5) ----

constexpr const char* kQaTask =
    "Answer the question based on the given documents. Only give me the answer and do not output "
    "any other words.";

// qa: RULER qa_1's recipe over the bundled SQuAD dev first paragraphs (48 articles, 327
// questions; RULER: every dev paragraph). Sample i is question i in file order; its paragraph is
// the gold document, the other paragraphs are the distractor pool (no same-article paragraphs
// in the cut); the number of documents is fitted. --queries N adds the next questions of the
// same paragraph as further queries.
std::vector<EvalSample> ruler_qa(const TaskOptions& o, const Tokenizer& tok) {
  const int64_t length = o.length > 0 ? o.length : 4096;
  const int n_queries = o.queries > 0 ? o.queries : 1, num = o.num > 0 ? o.num : 8;
  const auto j = nlohmann::json::parse(read_file(o.data_dir + "/squad_dev_first_paragraphs.json"));
  std::vector<std::string> docs;
  std::vector<std::pair<size_t, size_t>> questions;  // (paragraph, question) in file order
  for (const auto& p : j.at("samples")) {
    docs.push_back(p.at("context").get<std::string>());
    for (size_t iq = 0; iq < p.at("questions").size(); ++iq)
      questions.emplace_back(docs.size() - 1, iq);
  }
  std::vector<size_t> pool(docs.size());  // RULER sorts the documents as strings
  for (size_t i = 0; i < pool.size(); ++i) pool[i] = i;
  std::sort(pool.begin(), pool.end(), [&](size_t a, size_t b) { return docs[a] < docs[b]; });
  std::vector<EvalSample> out;
  for (int s = 0; s < num && s < static_cast<int>(questions.size()); ++s) {
    Rng rng(o.seed * 1000003 + 54001 + static_cast<uint64_t>(s));
    const auto [gold, first_q] = questions[static_cast<size_t>(s)];
    const auto& qs = j.at("samples")[gold].at("questions");
    EvalSample e;
    e.id = fmt::format("ruler_qa-{}-{}", length, s);
    for (size_t iq = 0; iq < std::min<size_t>(static_cast<size_t>(n_queries), qs.size()); ++iq) {
      const auto& q = qs[(first_q + iq) % qs.size()];
      e.queries.push_back(
          {fmt::format("{}\n\nQuestion: {}", kQaTask, q.at("question").get<std::string>()),
           q.at("answers").get<std::vector<std::string>>(), " Answer:", Metric::kAnyContained});
    }
    std::vector<size_t> others;
    for (size_t i : pool)
      if (i != gold) others.push_back(i);
    shuffle(others, rng);
    const uint64_t order_seed = rng.next();
    auto render = [&](int64_t n) {  // gold + the first n - 1 others (the pool repeats), shuffled
      std::vector<size_t> chosen{gold};
      for (int64_t i = 0; i + 1 < n; ++i)
        chosen.push_back(others[static_cast<size_t>(i) % others.size()]);
      Rng order(order_seed);
      shuffle(chosen, order);
      std::string text = std::string(kQaTask) + "\n\nThe following are given documents.\n\n";
      for (size_t i = 0; i < chosen.size(); ++i)
        text += fmt::format("{}Document {}:\n{}", i ? "\n\n" : "", i + 1, docs[chosen[i]]);
      return text;
    };
    e.context = fit_context(tok, o, length, e.queries, 1, std::max<int64_t>(1, length / 8), render,
                            "the task text and the gold paragraph");
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace

const std::vector<std::string_view>& ruler_task_names() {
  static const std::vector<std::string_view> names = [] {
    std::vector<std::string_view> v;
    for (const NiahConfig& c : kNiah) v.push_back(c.task);
    for (std::string_view t : {"ruler_vt", "ruler_cwe", "ruler_fwe", "ruler_qa"}) v.push_back(t);
    return v;
  }();
  return names;
}

bool is_ruler_task(std::string_view task) {
  const auto& n = ruler_task_names();
  return std::find(n.begin(), n.end(), task) != n.end();
}

std::vector<EvalSample> make_ruler_task(const TaskOptions& o, const Tokenizer& tok) {
  if (const NiahConfig* c = niah_config(o.task)) return ruler_niah(*c, o, tok);
  if (o.task == "ruler_vt") return ruler_vt(o, tok);
  if (o.task == "ruler_cwe") return ruler_cwe(o, tok);
  if (o.task == "ruler_fwe") return ruler_fwe(o, tok);
  if (o.task == "ruler_qa") return ruler_qa(o, tok);
  throw InputError(fmt::format("'{}' is not a RULER-style task", o.task));
}

int ruler_max_new_tokens(std::string_view task) {
  if (const NiahConfig* c = niah_config(task)) return c->max_new_tokens;
  if (task == "ruler_vt") return 30;    // RULER's tokens_to_generate
  if (task == "ruler_cwe") return 120;  // RULER's
  if (task == "ruler_fwe") return 50;   // RULER's
  if (task == "ruler_qa") return 32;    // RULER's
  return 0;
}

}  // namespace kvz::cli
