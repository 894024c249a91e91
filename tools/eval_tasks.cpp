// Evaluation tasks and metrics (tools/). See eval_tasks.h.
#include "tools/eval_tasks.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "tools/eval_gen.h"
#include "tools/eval_ruler.h"

namespace kvz::cli {
namespace {

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

// The bundled essay haystack as tokens (not empty).
std::vector<int32_t> essay_tokens(const TaskOptions& o, const Tokenizer& tok) {
  std::vector<int32_t> essay =
      tok.encode(read_file(o.data_dir + "/pg_essays_haystack.txt"), false, false);
  if (essay.empty()) throw InputError("niah: the bundled essay haystack is empty");
  return essay;
}

// `n_tokens` tokens of the essay, as text: from token `start` (taken modulo its length), the
// essay repeated as often as needed.
std::string haystack(const Tokenizer& tok, const std::vector<int32_t>& essay, int64_t n_tokens,
                     int64_t start) {
  std::vector<int32_t> ids;
  ids.reserve(static_cast<size_t>(std::max<int64_t>(n_tokens, 0)));
  const auto size = static_cast<int64_t>(essay.size());
  for (int64_t i = 0; i < n_tokens; ++i)
    ids.push_back(essay[static_cast<size_t>((start + i) % size)]);
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
  const std::vector<int32_t> essay = essay_tokens(o, tok);  // once for every sample
  std::vector<EvalSample> out;
  for (int s = 0; s < num; ++s) {
    Rng rng(o.seed * 1000003 + static_cast<uint64_t>(s));
    std::vector<std::string> needles;
    EvalSample e;
    e.id = fmt::format("niah-{}-{}{}", length, s, o.vary_haystack ? "-v" : "");
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
    // --vary-haystack: sample s starts s / num of the way into the essay, so samples differ in
    // text, not only in their needles.
    const int64_t start =
        o.vary_haystack ? static_cast<int64_t>(s) * static_cast<int64_t>(essay.size()) / num : 0;
    std::string text = haystack(tok, essay, length - needle_tokens, start);
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

// GSM8K as KVzip builds it (tools/data/eval/SOURCE.md): the problem minus its last sentence is
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

std::vector<EvalSample> read_samples_jsonl(const std::string& path, int num) {
  const std::string text = read_file(path);
  std::vector<EvalSample> out;
  size_t line_no = 0;
  for (size_t at = 0; at < text.size() && (num <= 0 || static_cast<int>(out.size()) < num);) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(at, end - at);
    at = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto bad = [&](const std::string& why) {
      return InputError(fmt::format("{}:{}: {}", path, line_no, why));
    };
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw bad(std::string("not JSON: ") + e.what());
    }
    if (!j.is_object()) throw bad("not a JSON object");
    EvalSample e;
    if (j.contains("id")) {
      if (!j["id"].is_string()) throw bad("\"id\" is not a string");
      e.id = j["id"].get<std::string>();
    } else {
      e.id = fmt::format("line {}", line_no);
    }
    if (!j.contains("context") || !j["context"].is_string() ||
        j["context"].get<std::string>().empty())
      throw bad("\"context\" must be a non-empty string");
    e.context = j["context"].get<std::string>();
    const nlohmann::json &q = j.value("queries", nlohmann::json()),
                         &a = j.value("answers", nlohmann::json());
    if (!q.is_array() || q.empty()) throw bad("\"queries\" must be a non-empty list of strings");
    if (!a.is_array() || a.size() != q.size())
      throw bad(fmt::format("\"answers\" must be a list of {} entries, one per query", q.size()));
    for (size_t i = 0; i < q.size(); ++i) {
      if (!q[i].is_string() || q[i].get<std::string>().empty())
        throw bad(fmt::format("query {} is not a non-empty string", i));
      EvalQuery eq{q[i].get<std::string>(), {}, {}, Metric::kAnyNormalized};
      if (a[i].is_string()) {
        eq.answers.push_back(a[i].get<std::string>());
      } else if (a[i].is_array() && !a[i].empty()) {
        for (const auto& x : a[i]) {
          if (!x.is_string()) throw bad(fmt::format("answer {} holds a non-string", i));
          eq.answers.push_back(x.get<std::string>());
        }
      } else {
        throw bad(fmt::format("answer {} is neither a string nor a non-empty list of strings", i));
      }
      bool any = false;
      for (const std::string& g : eq.answers) any = any || !normalize_answer(g).empty();
      if (!any) throw bad(fmt::format("answer {} is empty once normalised", i));
      e.queries.push_back(std::move(eq));
    }
    out.push_back(std::move(e));
  }
  if (out.empty()) throw InputError(path + " holds no samples");
  return out;
}

std::vector<EvalSample> make_task(const TaskOptions& o, const Tokenizer& tok) {
  if (o.task == "samples") return read_samples_jsonl(o.samples_file, o.num);
  if (o.task == "squad") return squad(o);
  if (o.task == "niah") return niah(o, tok);
  if (o.task == "kv") return kv_retrieval(o, tok);
  if (is_ruler_task(o.task)) return make_ruler_task(o, tok);
  if (o.task == "gsm8k") return gsm8k(o, tok);
  throw InputError(fmt::format("unknown task '{}' (known: squad, niah, kv, {}, gsm8k, samples)",
                               o.task, fmt::join(ruler_task_names(), ", ")));
}

int task_max_new_tokens(std::string_view task) {
  if (task == "niah") return 16;
  if (task == "kv") return 48;
  if (const int n = ruler_max_new_tokens(task)) return n;
  if (task == "gsm8k") return 512;  // KVzip's setting: reasoning, then "The answer is"
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
    case Metric::kAnyContained: {  // RULER string_match_part
      const std::string p = lower(prediction);
      for (const std::string& a : q.answers)
        if (p.find(lower(a)) != std::string::npos) return 1.0;
      return 0.0;
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
