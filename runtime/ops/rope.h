// Rotary position embedding (runtime/ops).
#pragma once

#include <vector>

#include "runtime/args/rope.h"
#include "runtime/recorder.h"

namespace kvz {

// How inverse frequencies are derived (ALGORITHMS.md 6.1).
struct RopeScaling {
  enum class Type { kNone, kLinear, kLlama3, kYarn } type = Type::kNone;
  float factor = 1.0f;
  float low_freq_factor = 1.0f;   // llama3
  float high_freq_factor = 4.0f;  // llama3
  int original_context = 8192;    // llama3 / yarn
};

// inv_freq[i] = base^(-2i / rot_dims) for i < rot_dims/2, then scaled as `scaling` says.
std::vector<float> rope_inv_freqs(float base, int rot_dims, const RopeScaling& scaling);
// cos/sin multiplier (YaRN's 0.1 ln(factor) + 1; 1 otherwise).
float rope_attn_factor(const RopeScaling& scaling);

// RopeParams, RopeArgs: runtime/args/rope.h.
void rope(Recorder& rec, const RopeArgs& args);
// The rotated dims of `args` (rot_dims, or head_dim for 0), after checking shapes and dtypes as
// rope() does (aborts on a mismatch).
int rope_rot_dims(const RopeArgs& args);

}  // namespace kvz
