// KVzap methods of `kvzip eval`: surrogate scores per sample and the threshold of each cell
// (tools/). See eval_kvzap.h for the ratio mapping.
#include "tools/eval_kvzap.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "model/forward.h"
#include "model/kvzap_data.h"
#include "model/session.h"
#include "tools/cli_util.h"

namespace kvz::cli {

bool is_kvzap_method(std::string_view name) {
  return name == "kvzap_linear" || name == "kvzap_mlp";
}

KvzapEval::KvzapEval(const Model& m, const std::vector<EvalSample>& samples,
                     const std::vector<std::string>& methods, const std::vector<double>& ratios,
                     const KvzapEvalOptions& o)
    : window_(o.window) {
  if (o.window < 0) throw InputError("--kvzap-window must be >= 0");
  const std::vector<bool> prunable = kv_cache_config(m.config()).prunable;
  auto is_prunable = [&](int il) { return prunable.empty() || prunable[il]; };
  for (const std::string& name : methods) {
    const std::string kind = name.substr(name.find('_') + 1);
    const std::string path = fmt::format("{}/{}.{}.kvzap", o.weights_dir, o.model_stem, kind);
    const KvzapModel zm = KvzapModel::load(path);
    check_kvzap_model(zm, m, path);
    Method& me = methods_[name];
    // Pooled over samples: the scores of decidable pairs (left the window) and the pair counts.
    std::vector<float> decidable;
    int64_t n_total = 0, n_window = 0;
    Progress bar(fmt::format("{} scores", name), "samples");
    for (size_t i = 0; i < samples.size(); ++i) {
      Session s(m);
      KvzapOptions ko;
      ko.threshold = -std::numeric_limits<float>::infinity();  // observe only
      s.set_kvzap(&zm, ko);
      s.prefill(samples[i].context);
      me.scores.push_back(s.kvzap_scores());
      const Scores& sc = me.scores.back();
      for (int il = 0; il < sc.n_layers; ++il) {
        if (!is_prunable(il)) continue;
        for (int ih = 0; ih < sc.n_kv_heads; ++ih)
          for (int64_t j = 0; j < sc.n_ctx; ++j) {
            ++n_total;
            if (j < sc.n_ctx - o.window)
              decidable.push_back(sc.at(il, ih, j));
            else
              ++n_window;
          }
      }
      bar(static_cast<int64_t>(i + 1), static_cast<int64_t>(samples.size()));
    }
    std::sort(decidable.begin(), decidable.end(), std::greater<float>());
    auto kept_at = [&](float tau) {  // pooled kept fraction at threshold tau
      const auto above =
          std::lower_bound(decidable.begin(), decidable.end(), tau, std::greater_equal<float>()) -
          decidable.begin();
      return n_total ? static_cast<double>(n_window + above) / static_cast<double>(n_total) : 1.0;
    };
    if (o.threshold) {
      const double key = std::round(kept_at(*o.threshold) * 1000.0) / 1000.0;
      me.cells.push_back({key, *o.threshold});
      fmt::print(stderr, "{}: threshold {} keeps {:.3f} of the context pairs (pooled)\n", name,
                 *o.threshold, key);
      continue;
    }
    for (double r : ratios) {
      // Keep the n_keep highest decidable scores: tau = the n_keep-th largest (ties: all kept).
      const auto n_keep =
          static_cast<int64_t>(std::llround(r * static_cast<double>(n_total)) - n_window);
      float tau = std::numeric_limits<float>::infinity();
      if (n_keep >= static_cast<int64_t>(decidable.size()))
        tau = -std::numeric_limits<float>::infinity();
      else if (n_keep > 0)
        tau = decidable[static_cast<size_t>(n_keep - 1)];
      me.cells.push_back({r, tau});
      fmt::print(stderr, "{}: ratio {} -> threshold {:.3f}, pooled kept {:.3f}\n", name, r, tau,
                 kept_at(tau));
    }
  }
}

const std::vector<KvzapCell>& KvzapEval::cells(const std::string& method) const {
  return methods_.at(method).cells;
}

const Scores& KvzapEval::scores(const std::string& method, int sample) const {
  return methods_.at(method).scores.at(static_cast<size_t>(sample));
}

std::vector<double> KvzapEval::keys() const {
  std::vector<double> k;
  for (const auto& [name, me] : methods_)
    for (const KvzapCell& c : me.cells)
      if (std::find(k.begin(), k.end(), c.key) == k.end()) k.push_back(c.key);
  return k;
}

}  // namespace kvz::cli
