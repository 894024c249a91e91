#version 450
// sample: draws one token per row from softmax(logits / temperature) restricted to the top_k most
// likely tokens and then to the smallest prefix (by probability, descending) whose mass reaches
// top_p, by inverse CDF with the caller's uniform[r]; semantics defined by cpu::sample_ref.
// Bindings: 0 logits f32 [n_rows, n_vocab] read | 1 uniform f32 [n_rows] read | 2 out i32 [n_rows] write
// Push: n_rows, n_vocab, rows_per_y, top_k (0 = all), inv_temperature, top_p.
// Spec: 0 = workgroup size (power of two <= 1024).
// Grid: one workgroup per row, row = y * rows_per_y + x (x <= 65535).
// Method (no sort, no scratch memory): weights w_j = exp((l_j - max) / T) lie in [0, 1], so their
// bit patterns order like their values. Each cut is a bisection over those bits (~30 passes over
// the row, each a workgroup reduction): top-k = the k-th largest weight, top-p = the largest
// threshold keeping mass >= top_p of the top-k mass, and the draw = the largest threshold whose
// kept mass still exceeds uniform * total, i.e. the weight where the descending CDF crosses it.
// Ties at a cut keep every tied token (the reference cuts them by index); the draw itself picks
// the lowest index among equal weights, as the reference's (prob desc, index asc) order does.
#include "common.glsl"
layout(local_size_x_id = 0) in;
#include "sample_row.glsl"

const uint kAboveOne = 0x3f800001u;  // bits of the first float above 1: no weight reaches it
shared float red[1024];

// Op 0 = sum, 1 = max, 2 = min; every thread gets the result.
float reduce(float v, uint op) {
  uint tid = gl_LocalInvocationID.x;
  red[tid] = v;
  barrier();
  for (uint stride = gl_WorkGroupSize.x / 2; stride > 0; stride /= 2) {
    if (tid < stride) {
      float o = red[tid + stride];
      red[tid] = op == 0u ? red[tid] + o : (op == 1u ? max(red[tid], o) : min(red[tid], o));
    }
    barrier();
  }
  float r = red[0];
  barrier();
  return r;
}

uint weight_bits(uint j) {
  return floatBitsToUint(exp((logits[base + j] - row_max) * p.inv_temperature));
}

// Count (as_mass false) or mass of the tokens whose weight bits are >= t.
float kept(uint t, bool as_mass) {
  float s = 0.0;
  for (uint j = gl_LocalInvocationID.x; j < p.n_vocab; j += gl_WorkGroupSize.x) {
    uint b = weight_bits(j);
    if (b >= t) s += as_mass ? uintBitsToFloat(b) : 1.0;
  }
  return reduce(s, 0u);
}

void main() {
  uint row = gl_WorkGroupID.y * p.rows_per_y + gl_WorkGroupID.x;
  if (row >= p.n_rows) return;  // uniform per workgroup
  start_row(row);

  // Invariant of each bisection: lo satisfies the predicate, hi does not.
  uint tau = 0u;
  if (p.top_k != 0u && p.top_k < p.n_vocab) {  // largest t with count(w >= t) >= top_k
    uint lo = 0u, hi = kAboveOne;
    while (hi - lo > 1u) {
      uint mid = lo + (hi - lo) / 2u;
      if (kept(mid, false) >= float(p.top_k)) lo = mid; else hi = mid;
    }
    tau = lo;
  }
  if (p.top_p < 1.0) {  // largest t >= tau with mass(w >= t) >= top_p * mass(w >= tau)
    float target = p.top_p * kept(tau, true);
    uint lo = tau, hi = kAboveOne;
    while (hi - lo > 1u) {
      uint mid = lo + (hi - lo) / 2u;
      if (kept(mid, true) >= target) lo = mid; else hi = mid;
    }
    tau = lo;
  }
  // The draw: largest t >= tau with mass(w >= t) > u * mass(w >= tau).
  float target = min(uniform_in[row], 0.99999994) * kept(tau, true);
  uint lo = tau, hi = kAboveOne;
  while (hi - lo > 1u) {
    uint mid = lo + (hi - lo) / 2u;
    if (kept(mid, true) > target) lo = mid; else hi = mid;
  }
  write_first_index(row, lo);  // the crossing weight
}
