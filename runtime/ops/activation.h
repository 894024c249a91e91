// Gated MLP activations and row softmax (runtime/ops).
#pragma once

#include "runtime/recorder.h"

namespace kvz {

enum class Activation { kSilu, kGeluTanh, kGelu };

// y = act(gate) * up, all f32 of the same shape ([n_tokens, d_ff]); y may alias gate.
struct GatedActArgs {
  Tensor gate, up, y;
  Activation act = Activation::kSilu;
};
void gated_act(Recorder& rec, const GatedActArgs& args);

// y[r, :] = softmax(x[r, :] * scale) over the last dim, fp32 accumulation; y may alias x.
struct SoftmaxArgs {
  Tensor x, y;
  float scale = 1.0f;
};
void softmax(Recorder& rec, const SoftmaxArgs& args);

namespace cpu {
void gated_act_ref(const GatedActArgs& args);
void softmax_ref(const SoftmaxArgs& args);
}  // namespace cpu

}  // namespace kvz
