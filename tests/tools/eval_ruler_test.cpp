// The RULER-style `kvzip eval` tasks (tools/eval_ruler.h) with the stories260K tokenizer (CPU
// only, no model): same samples for the same seed, contexts fitted to --length, the references in
// the context as the task defines them, and RULER's two metrics.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <regex>
#include <set>
#include <string>

#include "runtime/error.h"
#include "tools/eval_ruler.h"
#include "tools/eval_tasks.h"

namespace kvz::cli {
namespace {

std::string src(const std::string& rel) {
  const char* root = std::getenv("KVZ_SOURCE_DIR");
  return std::string(root != nullptr && *root != '\0' ? root : ".") + "/" + rel;
}

const Tokenizer& tok512() {
  static const Tokenizer t = Tokenizer::from_llama2c(src("tests/data/stories260K/tok512.bin"));
  return t;
}

TaskOptions opts(const std::string& task, int64_t length, uint64_t seed = 1) {
  TaskOptions o;
  o.task = task;
  o.num = 2;
  o.length = length;
  o.seed = seed;
  o.data_dir = src("tools/data/eval");
  return o;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

int64_t n_tok(const std::string& s) {
  return static_cast<int64_t>(tok512().encode(s, false, false).size());
}

// tok512 spells most words in several tokens: 1,200 tokens hold a few hundred words, 3,000 tokens
// four SQuAD paragraphs.
constexpr int64_t kLength = 1200, kQaLength = 3000;

class RulerTask : public ::testing::TestWithParam<const char*> {};

TEST_P(RulerTask, SameSeedSameSamplesAndFitted) {
  const std::string task = GetParam();
  const int64_t length = task == "ruler_qa" ? kQaLength : kLength;
  const std::vector<EvalSample> a = make_task(opts(task, length), tok512()),
                                b = make_task(opts(task, length), tok512()),
                                c = make_task(opts(task, length, 2), tok512());
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_NE(a[0].context, a[1].context);
  EXPECT_NE(a[0].context, c[0].context);
  for (size_t s = 0; s < a.size(); ++s) {
    EXPECT_EQ(a[s].id, b[s].id);
    EXPECT_EQ(a[s].context, b[s].context);
    ASSERT_EQ(a[s].queries.size(), b[s].queries.size());
    ASSERT_FALSE(a[s].queries.empty());
    int64_t overhead = 0;
    for (size_t q = 0; q < a[s].queries.size(); ++q) {
      const EvalQuery &x = a[s].queries[q], &y = b[s].queries[q];
      EXPECT_EQ(x.question, y.question);
      EXPECT_EQ(x.answer_prefix, y.answer_prefix);
      EXPECT_EQ(x.answers, y.answers);
      EXPECT_FALSE(x.answers.empty());
      EXPECT_FALSE(x.answer_prefix.empty());
      overhead = std::max(overhead, n_tok("\n\n" + x.question + x.answer_prefix));
    }
    // RULER's fitting: context + query turn + tokens to generate <= length, and nearly all of it
    // used (one haystack unit is a few tokens; a QA document a few hundred).
    const int64_t used = n_tok(a[s].context) + overhead + task_max_new_tokens(task);
    EXPECT_LE(used, length) << task;
    EXPECT_GE(used, task == "ruler_qa" ? length * 3 / 4 : length * 9 / 10) << task;
  }
}

TEST_P(RulerTask, TooShortIsAnInputError) {
  EXPECT_THROW(make_task(opts(GetParam(), 40), tok512()), InputError);
}

INSTANTIATE_TEST_SUITE_P(All, RulerTask,
                         ::testing::Values("ruler_s1", "ruler_s2", "ruler_s3", "ruler_mk",
                                           "ruler_mk2", "ruler_mk3", "ruler_mv", "ruler_mq",
                                           "ruler_vt", "ruler_cwe", "ruler_fwe", "ruler_qa"),
                         [](const ::testing::TestParamInfo<const char*>& p) {
                           return std::string(p.param);
                         });

// NIAH family: needle count (k x v), the references are the needles' values, RULER's singular /
// plural task text and query list.
TEST(RulerNiah, NeedlesAndTexts) {
  struct Want {
    const char* task;
    size_t needles, answers;
    const char* type;
  };
  for (const Want& w : {Want{"ruler_s1", 1, 1, "number"}, Want{"ruler_s2", 1, 1, "number"},
                        Want{"ruler_s3", 1, 1, "uuid"}, Want{"ruler_mk", 4, 1, "number"},
                        Want{"ruler_mv", 4, 4, "numbers"}, Want{"ruler_mq", 4, 4, "numbers"}}) {
    const std::string task = w.task;
    for (const EvalSample& e : make_task(opts(task, kLength), tok512())) {
      SCOPED_TRACE(task);
      EXPECT_EQ(count(e.context, "One of the special magic "), w.needles);
      ASSERT_EQ(e.queries.size(), 1u);
      const EvalQuery& q = e.queries[0];
      ASSERT_EQ(q.answers.size(), w.answers);
      for (const std::string& v : q.answers) EXPECT_EQ(count(e.context, " is: " + v + "."), 1u);
      const bool singular = w.answers == 1;
      EXPECT_EQ(e.context.rfind(singular ? "A special magic " : "Some special magic ", 0), 0u);
      EXPECT_NE(q.question.find(std::string(singular ? "What is the special magic "
                                                     : "What are all the special magic ") +
                                w.type + " for "),
                std::string::npos);
      EXPECT_NE(q.answer_prefix.find(singular ? "provided text is" : "provided text are"),
                std::string::npos);
      EXPECT_EQ(q.metric, Metric::kAllContained);
      EXPECT_EQ(count(q.question, ", "), task == "ruler_mq" ? 3u : 0u);  // "a, b, c, and d"
      if (task == "ruler_s3") {
        EXPECT_TRUE(std::regex_match(q.answers[0],
                                     std::regex("[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}")));
      } else {
        EXPECT_TRUE(std::regex_match(q.answers[0], std::regex("[1-9][0-9]{6}")));
      }
    }
  }
  // niah_single_1: noise haystack lines, the needle on a line of its own.
  const EvalSample s1 = make_task(opts("ruler_s1", kLength), tok512())[0];
  EXPECT_GT(count(s1.context, "The grass is green. The sky is blue."), 10u);
  EXPECT_EQ(count(s1.context, "\nOne of the special magic numbers for "), 1u);
}

// Each task draws its samples from its own streams: no two NIAH tasks ask about the same key.
TEST(RulerNiah, TasksDoNotShareSamples) {
  std::set<std::string> keys;
  size_t n = 0;
  for (const char* task : {"ruler_s1", "ruler_s2", "ruler_s3", "ruler_mk", "ruler_mk2", "ruler_mk3",
                           "ruler_mv", "ruler_mq"})
    for (const EvalSample& e : make_task(opts(task, kLength), tok512())) {
      const std::string& q = e.queries.at(0).question;
      const size_t at = q.find(" for ") + 5;
      keys.insert(q.substr(at, q.find(" mentioned") - at));
      ++n;
    }
  EXPECT_EQ(keys.size(), n);
}

// niah_multikey_2/3: the haystack is distractor needles, one per line; the asked key is in the
// context once, in the one real needle.
TEST(RulerNiah, NeedleHaystack) {
  for (const char* task : {"ruler_mk2", "ruler_mk3"}) {
    SCOPED_TRACE(task);
    for (const EvalSample& e : make_task(opts(task, kLength), tok512())) {
      const EvalQuery& q = e.queries.at(0);
      const size_t at = q.question.find(" for ") + 5;
      const std::string key = q.question.substr(at, q.question.find(" mentioned") - at);
      EXPECT_EQ(count(e.context, key), 1u);
      EXPECT_EQ(count(e.context, key + " is: " + q.answers.at(0) + "."), 1u);
      const std::string hay = e.context.substr(e.context.find('\n') + 1);
      const size_t lines = count(hay, "\n") + 1;
      EXPECT_GE(lines, 4u);
      EXPECT_EQ(count(hay, "One of the special magic "), lines);
    }
  }
}

// --queries N asks N disjoint key sets of one context.
TEST(RulerNiah, SeveralQueries) {
  TaskOptions o = opts("ruler_mq", kLength);
  o.queries = 2;
  for (const EvalSample& e : make_task(o, tok512())) {
    EXPECT_EQ(count(e.context, "One of the special magic "), 8u);
    ASSERT_EQ(e.queries.size(), 2u);
    for (const std::string& v : e.queries[0].answers)
      EXPECT_EQ(std::find(e.queries[1].answers.begin(), e.queries[1].answers.end(), v),
                e.queries[1].answers.end());
  }
}

// cwe: each of the 10 common words appears 6 times in the real list (below 4,096 tokens), more
// often than any other word there.
TEST(RulerCwe, CommonWordsAreTheMostFrequent) {
  for (const EvalSample& e : make_task(opts("ruler_cwe", kLength), tok512())) {
    const EvalQuery& q = e.queries.at(0);
    ASSERT_EQ(q.answers.size(), 10u);
    const std::string task_text = "Below is a numbered list of words.";
    const std::string list = e.context.substr(e.context.rfind(task_text));
    std::map<std::string, int> freq;
    const std::regex entry("[0-9]+\\. ([^ 0-9][^0-9]*?)(?= [0-9]+\\. |$)");
    for (auto it = std::sregex_iterator(list.begin(), list.end(), entry);
         it != std::sregex_iterator(); ++it)
      ++freq[(*it)[1].str()];
    for (const std::string& w : q.answers) EXPECT_EQ(freq[w], 6) << w;
    for (const auto& [w, f] : freq) {
      const bool common = std::find(q.answers.begin(), q.answers.end(), w) != q.answers.end();
      EXPECT_EQ(f, common ? 6 : 1) << w;
    }
  }
}

// fwe: the references are the 2nd to 4th most frequent words, in order.
TEST(RulerFwe, ReferencesAreRanks2To4) {
  for (const EvalSample& e : make_task(opts("ruler_fwe", kLength), tok512())) {
    const EvalQuery& q = e.queries.at(0);
    ASSERT_EQ(q.answers.size(), 3u);
    std::map<std::string, int> freq;
    const std::string text = e.context.substr(e.context.find("coded words. ") + 13);
    const std::regex word("(?:^| )([a-z]{6})(?= |$)");
    for (auto it = std::sregex_iterator(text.begin(), text.end(), word);
         it != std::sregex_iterator(); ++it)
      ++freq[(*it)[1].str()];
    EXPECT_GT(freq[q.answers[0]], freq[q.answers[1]]);
    EXPECT_GT(freq[q.answers[1]], freq[q.answers[2]]);
    for (const auto& [w, f] : freq)
      if (std::find(q.answers.begin(), q.answers.end(), w) == q.answers.end()) {
        EXPECT_LT(f, freq[q.answers[2]]) << w;
      }
    EXPECT_GT(count(text, "..."), static_cast<size_t>(freq[q.answers[0]]));
  }
}

// qa: the gold paragraph holds an answer; string_match_part scoring.
TEST(RulerQa, GoldDocumentAndMetric) {
  for (const EvalSample& e : make_task(opts("ruler_qa", kQaLength), tok512())) {
    const EvalQuery& q = e.queries.at(0);
    EXPECT_EQ(q.metric, Metric::kAnyContained);
    EXPECT_EQ(q.answer_prefix, " Answer:");
    EXPECT_NE(e.context.find("Document 1:\n"), std::string::npos);
    bool found = false;
    for (const std::string& a : q.answers) found = found || e.context.find(a) != std::string::npos;
    EXPECT_TRUE(found);
  }
}

// niah --vary-haystack: sample 0 is the plain sample 0; later samples keep their needles and
// questions but take their haystack from further into the essay, so their texts differ.
TEST(NiahTask, VaryHaystackMovesTheTextNotTheNeedles) {
  TaskOptions plain = opts("niah", kLength);
  plain.num = 3;
  TaskOptions varied = plain;
  varied.vary_haystack = true;
  const std::vector<EvalSample> a = make_task(plain, tok512()), b = make_task(varied, tok512());
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(a[0].context, b[0].context);
  EXPECT_NE(a[0].id, b[0].id);  // a results file never mixes the two
  for (size_t s = 1; s < 3; ++s) {
    EXPECT_NE(a[s].context, b[s].context) << s;
    EXPECT_NE(b[0].context.substr(0, 200), b[s].context.substr(0, 200)) << s;
    ASSERT_EQ(a[s].queries.size(), b[s].queries.size());
    for (size_t q = 0; q < a[s].queries.size(); ++q) {
      EXPECT_EQ(a[s].queries[q].question, b[s].queries[q].question);
      ASSERT_FALSE(b[s].queries[q].answers.empty());
      EXPECT_NE(b[s].context.find(b[s].queries[q].answers[0]), std::string::npos);
    }
    const int64_t n = n_tok(b[s].context);
    EXPECT_GT(n, kLength * 9 / 10) << s;
    EXPECT_LT(n, kLength * 11 / 10) << s;
  }
}

TEST(RulerMetrics, StringMatchAllAndPart) {
  EvalQuery all{"q", {"Alpha", "beta", "gamma", "delta"}, "", Metric::kAllContained};
  EXPECT_DOUBLE_EQ(score_prediction(all, "ALPHA and Beta"), 0.5);
  EXPECT_DOUBLE_EQ(score_prediction(all, "alpha beta gamma delta"), 1.0);
  EXPECT_DOUBLE_EQ(score_prediction(all, "none"), 0.0);
  EvalQuery part{"q", {"Denver Broncos", "Broncos"}, "", Metric::kAnyContained};
  EXPECT_DOUBLE_EQ(score_prediction(part, " the broncos won"), 1.0);
  EXPECT_DOUBLE_EQ(score_prediction(part, "Carolina Panthers"), 0.0);
  // No SQuAD normalisation: punctuation inside the answer must match.
  EvalQuery dotted{"q", {"U.S."}, "", Metric::kAnyContained};
  EXPECT_DOUBLE_EQ(score_prediction(dotted, "the US"), 0.0);
  EXPECT_DOUBLE_EQ(score_prediction(dotted, "the u.s. army"), 1.0);
}

}  // namespace
}  // namespace kvz::cli
