// Fitting KVzap surrogates (kvzip/): ridge regression for the linear map and AdamW on the MSE for
// the MLP, one layer at a time, plus the validation metrics of KVzap Table 1 (ALGORITHMS.md 3.3).
// Pure host code on Eigen; the data come from model/kvzap_data.h.
#pragma once

#include <cstdint>
#include <vector>

#include "kvzip/kvzap.h"

namespace kvz {

// One layer's training pairs: x [n, d_model] attention-input hidden states, y [n, n_kv_heads]
// log KVzip+ targets, row i of both from the same token.
struct KvzapLayerData {
  int d_model = 0, n_kv_heads = 0;
  std::vector<float> x, y;
  int64_t n() const { return d_model ? static_cast<int64_t>(x.size()) / d_model : 0; }
  void append(const float* xs, const float* ys, int64_t n_rows);
};

// scikit-learn Ridge(alpha) with intercept: centred least squares in f64, (Xc^T Xc + alpha I) w =
// Xc^T yc, b = mean(y) - mean(x) w. `out` must be a kLinear layer of the data's shape.
void fit_linear(const KvzapLayerData& d, KvzapLayer& out, double alpha = 1.0);

struct MlpTrainOptions {
  int epochs = 15, batch = 512;
  float lr = 5e-3f, weight_decay = 0.01f, clip = 1.0f;  // AdamW, cosine over epochs, grad-norm clip
  uint64_t seed = 1;
};
// PyTorch Linear initialisation (uniform +-1/sqrt(fan_in)) except the output bias, which starts
// at the per-head target mean (short runs need not spend steps shifting it). Returns the mean
// training MSE of every epoch. `out` must be a kMlp layer of the data's shape and d_hidden.
std::vector<double> fit_mlp(const KvzapLayerData& d, int d_hidden, KvzapLayer& out,
                            const MlpTrainOptions& o = {});

// Validation metrics of one layer's predictions: per head, the squared Pearson correlation (the
// R^2 KVzap reports) and the coefficient of determination 1 - SSE/SST; plus the MSE.
struct KvzapFitStats {
  std::vector<double> pearson_r2, r2;  // [n_kv_heads]
  double mse = 0;
};
KvzapFitStats evaluate_fit(const KvzapModel& m, int il, const KvzapLayerData& d);

}  // namespace kvz
