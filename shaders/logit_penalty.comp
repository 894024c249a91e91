#version 450
// logit_penalty: in place, per row, llama.cpp's repetition penalty over the distinct ids of a
// history (l / penalty where l > 0, else l * penalty), then min-p (logits below the row's max +
// ln(min_p) become -inf; NaNs too). cpu::logit_penalty_ref defines the semantics.
// Bindings: 0 logits f32 [n_rows, n_vocab] read/write | 1 history i32 [n_hist] read
// Push: n_rows, n_vocab, rows_per_y, n_hist (0 = no penalty), penalty, log_min_p (-inf = off).
// Spec: 0 = workgroup size (power of two <= 1024).
// Grid: one workgroup per row, row = y * rows_per_y + x (x <= 65535). A history entry is applied
// by one thread only where no earlier entry holds the same id, so no logit is written twice.
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(std430, binding = 0) buffer L { float logits[]; };
layout(std430, binding = 1) readonly buffer H { int hist[]; };
layout(push_constant) uniform Push {
  uint n_rows;
  uint n_vocab;
  uint rows_per_y;
  uint n_hist;
  float penalty;
  float log_min_p;
} p;

shared float red[1024];

void main() {
  const uint row = gl_WorkGroupID.y * p.rows_per_y + gl_WorkGroupID.x;
  if (row >= p.n_rows) return;  // uniform per workgroup
  const uint tid = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x, base = row * p.n_vocab;
  for (uint i = tid; i < p.n_hist; i += wg) {
    const int t = hist[i];
    if (t < 0 || uint(t) >= p.n_vocab) continue;
    bool first = true;
    for (uint k = 0u; k < i && first; ++k) first = hist[k] != t;
    if (!first) continue;
    const float l = logits[base + uint(t)];
    logits[base + uint(t)] = l > 0.0 ? l / p.penalty : l * p.penalty;
  }
  if (isinf(p.log_min_p)) return;  // uniform: min-p off
  memoryBarrierBuffer();
  barrier();
  float m = -1.0 / 0.0;
  for (uint j = tid; j < p.n_vocab; j += wg) {
    const float l = logits[base + j];
    if (!isnan(l)) m = max(m, l);
  }
  red[tid] = m;
  barrier();
  for (uint s = wg / 2u; s > 0u; s /= 2u) {
    if (tid < s) red[tid] = max(red[tid], red[tid + s]);
    barrier();
  }
  const float cut = red[0] + p.log_min_p;
  for (uint j = tid; j < p.n_vocab; j += wg)
    if (!(logits[base + j] >= cut)) logits[base + j] = -1.0 / 0.0;
}
