// The eval's samples as token ids, and this engine's KVzip scores of them (tools/). See
// eval_dump.h; the format is described in docs/FIDELITY.md.
#include "tools/eval_dump.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kvzip/compressor.h"
#include "tools/cli_util.h"

namespace kvz::cli {

std::vector<int32_t> query_prompt(const Session& s, const EvalQuery& q) {
  std::vector<int32_t> t = s.query_tokens(q.question);
  if (!q.answer_prefix.empty()) {
    std::vector<int32_t> p = s.model().tokenizer().encode(q.answer_prefix, false, false);
    t.insert(t.end(), p.begin(), p.end());
  }
  return t;
}

const char* metric_name(Metric m) {
  switch (m) {
    case Metric::kAnyNormalized:
      return "any_normalized";
    case Metric::kAllContained:
      return "all_contained";
    case Metric::kAnyContained:
      return "any_contained";
    case Metric::kGsmNumber:
      return "gsm_number";
  }
  return "any_normalized";
}

namespace {

// One sample as the eval feeds it: prefix + context prefilled at positions 0..N-1, the KVzip
// reconstruction inputs (original sink rule: the whole prefix), then every query prompt.
nlohmann::json sample_json(const Session& s, const EvalSample& e, int index, const DumpOptions& o) {
  const Tokenizer& tok = s.model().tokenizer();
  const std::vector<int32_t> prefix = s.prefix_tokens(),
                             context = tok.encode(e.context, false, false);
  const auto P = static_cast<int64_t>(prefix.size()), n = static_cast<int64_t>(context.size());
  CompressorOptions co;
  co.chunk = o.chunk;
  const ReconstructionPrompts rp = s.reconstruction_prompts(co.sinks);
  nlohmann::json chunks = nlohmann::json::array();
  for (int64_t a = 0; a < n; a += co.chunk) {
    const int64_t b = std::min<int64_t>(a + co.chunk, n);
    chunks.push_back({{"start", P + a},
                      {"end", P + b},
                      {"sink", P},
                      {"repeat_ids", reconstruction_input(context, a, b, rp, co.overlap)}});
  }
  const int max_new = o.max_new_tokens > 0 ? o.max_new_tokens : task_max_new_tokens(o.task);
  nlohmann::json queries = nlohmann::json::array();
  for (const EvalQuery& q : e.queries)
    queries.push_back({{"question", q.question},
                       {"answer_prefix", q.answer_prefix},
                       {"prompt_ids", query_prompt(s, q)},
                       {"answers", q.answers},
                       {"metric", metric_name(q.metric)},
                       {"max_new_tokens", max_new}});
  return {
      {"format", "kvz-eval-sample/1"},
      {"task", o.task},
      {"index", index},
      {"id", e.id},
      {"model_identity", s.model().identity()},
      {"prefix_ids", prefix},
      {"context_ids", context},
      {"stop_ids", s.model().chat_template().stop_ids},
      {"scoring",
       {{"chunk", co.chunk}, {"overlap", co.overlap}, {"sinks", "original"}, {"chunks", chunks}}},
      {"queries", queries}};
}

void write_scores(const std::string& path, const Scores& sc) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(sc.data.data()),
          static_cast<std::streamsize>(sc.data.size() * sizeof(float)));
  if (!f) throw InputError("cannot write " + path);
}

}  // namespace

void dump_samples(const Model& model, const std::vector<EvalSample>& samples,
                  const DumpOptions& o) {
  std::ofstream out(o.samples_path, std::ios::trunc);
  if (!out) throw InputError("cannot write " + o.samples_path);
  if (!o.scores_dir.empty()) std::filesystem::create_directories(o.scores_dir);
  for (int i = 0; i < static_cast<int>(samples.size()); ++i) {
    const EvalSample& e = samples[static_cast<size_t>(i)];
    SessionOptions so;
    so.score_chunk = o.chunk;
    if (e.reasoning) so.instruction = kInstructionReasoning;
    Session s(model, so);
    out << sample_json(s, e, i, o).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
        << '\n';
    if (!out) throw InputError("cannot write " + o.samples_path);
    if (o.scores_dir.empty()) continue;
    s.prefill(e.context);
    CompressorOptions co;
    co.chunk = o.chunk;
    const Scores& sc = s.score(co);
    write_scores(fmt::format("{}/{}.f32", o.scores_dir, i), sc);
    fmt::print(stderr,
               "dump: sample {} ({} context tokens) scored in {:.0f} ms (prefill {:.0f} ms)\n", i,
               s.n_context(), s.score_ms(), s.prefill_ms());
  }
}

}  // namespace kvz::cli
