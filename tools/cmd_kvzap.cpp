// `kvzip kvzap-train`: builds KVzap training data with our own engine (log KVzip+ targets of the
// repeat chat, ALGORITHMS.md 3.1) from bundled text, fits the linear and the MLP surrogate of
// every layer (3.3) and reports validation R^2 on held-out prompts (tools/).
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kvzip/kvzap_train.h"
#include "model/kvzap_data.h"
#include "runtime/atomic_file.h"
#include "tools/cli_util.h"
#include "tools/commands.h"

namespace kvz::cli {
namespace {

// Pieces of about n tokens, cut at whitespace-led tokens so that words stay whole.
std::vector<std::vector<int32_t>> split_text(const Tokenizer& tok, const std::string& text, int n) {
  std::vector<int32_t> ids = tok.encode(text, false, false);
  std::vector<std::vector<int32_t>> out;
  size_t at = 0;
  while (at + static_cast<size_t>(n) / 2 < ids.size()) {
    size_t end = std::min(ids.size(), at + static_cast<size_t>(n));
    out.emplace_back(ids.begin() + static_cast<std::ptrdiff_t>(at),
                     ids.begin() + static_cast<std::ptrdiff_t>(end));
    at = end;
  }
  return out;
}

// Default corpus: the essay haystack, then the SQuAD paragraphs from index `squad_from` on (the
// evaluation's squad samples come first, so they stay unseen when --num <= squad_from).
std::vector<std::string> default_corpus(int squad_from) {
  const std::string dir = data_dir("eval");
  std::vector<std::string> texts{read_file(dir + "/pg_essays_haystack.txt")};
  auto j = nlohmann::json::parse(read_file(dir + "/squad_dev_first_paragraphs.json"));
  int i = 0;
  for (const auto& s : j["samples"])
    if (i++ >= squad_from) texts.push_back(s["context"].get<std::string>());
  return texts;
}

struct Split {
  std::vector<KvzapLayerData> train, val;
};

Split collect(const Model& m, const KvzapTrainArgs& a) {
  std::vector<std::string> texts;
  if (a.texts.empty()) {
    texts = default_corpus(a.squad_from);
  } else {
    for (const std::string& f : a.texts) texts.push_back(read_file(f));
  }
  std::vector<std::vector<int32_t>> prompts;
  for (const std::string& t : texts)
    for (auto& p : split_text(m.tokenizer(), t, a.prompt_tokens)) prompts.push_back(std::move(p));
  if (a.max_prompts > 0 && static_cast<int>(prompts.size()) > a.max_prompts)
    prompts.resize(static_cast<size_t>(a.max_prompts));
  if (prompts.size() < 2) throw InputError("KVzap corpus gives fewer than 2 prompts");
  KvzapCollector col(m, a.prompt_tokens);
  Split s;
  Progress bar("kvzap data", "prompts");
  for (size_t i = 0; i < prompts.size(); ++i) {
    // Every val_every-th prompt is held out: validation text never seen in training.
    col.collect(prompts[i],
                (i % static_cast<size_t>(a.val_every)) == a.val_every - 1u ? s.val : s.train);
    bar(static_cast<int64_t>(i + 1), static_cast<int64_t>(prompts.size()));
  }
  return s;
}

struct Summary {
  double pearson = 0, r2 = 0, mse = 0;
  std::vector<double> per_layer;
};

Summary validate(const KvzapModel& m, const std::vector<KvzapLayerData>& val) {
  Summary s;
  int n = 0;
  for (int il = 0; il < m.n_layers(); ++il) {
    KvzapFitStats st = evaluate_fit(m, il, val[static_cast<size_t>(il)]);
    double layer = 0;
    for (size_t h = 0; h < st.pearson_r2.size(); ++h) {
      s.pearson += st.pearson_r2[h];
      s.r2 += st.r2[h];
      layer += st.pearson_r2[h] / static_cast<double>(st.pearson_r2.size());
      ++n;
    }
    s.mse += st.mse / m.n_layers();
    s.per_layer.push_back(layer);
  }
  s.pearson /= n;
  s.r2 /= n;
  return s;
}

}  // namespace

int run_kvzap_train(const KvzapTrainArgs& a) {
  if (a.prompt_tokens < 8 || a.val_every < 2)
    throw InputError("--prompt-tokens must be >= 8 and --val-every >= 2");
  const std::string model_path = resolve_model(a.model);
  Loaded l = load(model_path);
  const Model& m = *l.model;
  const ModelConfig& c = m.config();
  Split data = collect(m, a);
  fmt::print(stderr, "kvzap: {} training and {} validation pairs per layer\n", data.train[0].n(),
             data.val.empty() ? 0 : data.val[0].n());
  if (data.val.empty()) throw InputError("no validation prompts: lower --val-every");
  std::filesystem::create_directories(a.out_dir);
  const std::string stem = std::filesystem::path(model_path).stem().string();
  nlohmann::json report = {{"model", std::filesystem::path(model_path).filename().string()},
                           {"train_pairs", data.train[0].n()},
                           {"val_pairs", data.val[0].n()},
                           {"prompt_tokens", a.prompt_tokens}};
  for (const std::string& kind_name : a.kinds) {
    const KvzapKind kind = kvzap_kind_from(kind_name);
    const int d_hidden = std::max(1, a.d_hidden > 0 ? a.d_hidden : c.d_model / 8);
    KvzapModel zm(kind, c.n_layers, c.d_model, d_hidden, c.n_kv_heads, m.identity());
    Progress bar(fmt::format("fit {}", kind_name), "layers");
    double first_loss = 0, last_loss = 0;
    for (int il = 0; il < c.n_layers; ++il) {
      if (kind == KvzapKind::kLinear) {
        fit_linear(data.train[static_cast<size_t>(il)], zm.layer(il));
      } else {
        MlpTrainOptions o;
        o.epochs = a.epochs;
        o.seed = 1000 + static_cast<uint64_t>(il);
        std::vector<double> loss =
            fit_mlp(data.train[static_cast<size_t>(il)], d_hidden, zm.layer(il), o);
        first_loss += loss.front() / c.n_layers;
        last_loss += loss.back() / c.n_layers;
      }
      bar(il + 1, c.n_layers);
    }
    const Summary v = validate(zm, data.val), t = validate(zm, data.train);
    const std::string path = fmt::format("{}/{}.{}.kvzap", a.out_dir, stem, kind_name);
    zm.save(path);
    fmt::print(
        "{:6} params {:>8}  val R^2 (squared Pearson, mean over {} heads) {:.3f}  "
        "val 1-SSE/SST {:.3f}  val MSE {:.3f}  train R^2 {:.3f}  -> {}\n",
        kind_name, zm.n_params(), c.n_layers * c.n_kv_heads, v.pearson, v.r2, v.mse, t.pearson,
        path);
    std::string layers;
    for (double r : v.per_layer) layers += fmt::format(" {:.2f}", r);
    fmt::print("       val R^2 per layer:{}\n", layers);
    report[kind_name] = {{"params", zm.n_params()},
                         {"val_pearson_r2", v.pearson},
                         {"val_r2", v.r2},
                         {"val_mse", v.mse},
                         {"train_pearson_r2", t.pearson},
                         {"val_pearson_r2_per_layer", v.per_layer},
                         {"file", std::filesystem::path(path).filename().string()}};
    if (kind == KvzapKind::kMlp) {
      report[kind_name]["epochs"] = a.epochs;
      report[kind_name]["train_mse_first_epoch"] = first_loss;
      report[kind_name]["train_mse_last_epoch"] = last_loss;
    }
  }
  write_file_atomic(fmt::format("{}/{}.kvzap.json", a.out_dir, stem), report.dump(2) + "\n");
  return 0;
}

}  // namespace kvz::cli
