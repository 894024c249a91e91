// Arguments and CPU references of the token selection ops (runtime/args: the data half of
// runtime/ops/sampling.h, below both runtime/ops and runtime/cpu so that the CPU backend needs no
// op header).
#pragma once

#include "runtime/tensor.h"

namespace kvz {

// out[r] = argmax_j logits[r, j] (lowest index on ties). logits: [n_rows, n_vocab] f32; out:
// [n_rows] i32.
struct ArgmaxArgs {
  Tensor logits, out;
};

// Samples one token per row from softmax(logits / temperature) restricted to the top_k most likely
// tokens (0 = all) and then to the smallest prefix whose mass reaches top_p. `uniform[r]` in [0,1)
// drives the draw, so results are reproducible from the caller's RNG.
// logits: [n_rows, n_vocab] f32; uniform: [n_rows] f32; out: [n_rows] i32.
struct SampleArgs {
  Tensor logits, uniform, out;
  float temperature = 1.0f;
  int top_k = 0;
  float top_p = 1.0f;
};

namespace cpu {
void argmax_ref(const ArgmaxArgs& args);
void sample_ref(const SampleArgs& args);
}  // namespace cpu

}  // namespace kvz
