// Arguments and CPU references of the activation ops (runtime/args: the data half of
// runtime/ops/activation.h, below both runtime/ops and runtime/cpu so that the CPU backend needs no
// op header).
#pragma once

#include "runtime/tensor.h"

namespace kvz {

enum class Activation { kSilu, kGeluTanh, kGelu };

// y = act(gate) * up, all f32 of the same shape ([n_tokens, d_ff]); y may alias gate.
// x8: optional, y also rounded to int8 for MatmulArgs::x8 in the same dispatch: the same bits as
// quantize_x8(y, x8) afterwards, all values as one vector (n_tokens * d_ff % 256 == 0).
struct GatedActArgs {
  Tensor gate, up, y;
  Activation act = Activation::kSilu;
  Tensor x8 = {};  // optional, [>= matvec_x8_elems(n_tokens * d_ff)] i32
};

// y[r, :] = softmax(x[r, :] * scale) over the last dim, fp32 accumulation; y may alias x.
struct SoftmaxArgs {
  Tensor x, y;
  float scale = 1.0f;
};

namespace cpu {
void gated_act_ref(const GatedActArgs& args);
void softmax_ref(const SoftmaxArgs& args);
}  // namespace cpu

}  // namespace kvz
