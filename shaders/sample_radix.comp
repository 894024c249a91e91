#version 450
// sample_radix: shaders/sample.comp's draw (same semantics, cpu::sample_ref) with far fewer passes
// over the row: each cut is a radix select over the weight bits, 4 bits per pass (16 bins of count
// and mass, reduced with subgroup arithmetic), instead of a bisection of one bit per pass.
// Weights w_j = exp((l_j - max) / T) lie in [0, 1], so their bit patterns order like their values.
// A cut finds the largest bit pattern t among the kept tokens (bits >= lo) for which the tokens
// with bits >= t pass a test (count >= top_k; mass >= top_p of the kept mass; mass > u of the kept
// mass): from the highest digit down, each pass bins the tokens that share the digits chosen so
// far and keeps the highest digit at which the running total (tokens above, then this bin) passes.
// The chosen bin is never empty, so t is some token's weight. 8 passes per cut: with top-k and
// top-p 26 passes over the row (the bisection: about 93), without them 10 (about 33).
// Ties at a cut keep every tied token; the draw picks the lowest index among equal weights.
// Bindings: 0 logits f32 [n_rows, n_vocab] read | 1 uniform f32 [n_rows] read | 2 out i32 [n_rows] write
// Push: n_rows, n_vocab, rows_per_y, top_k (0 = all), inv_temperature, top_p.
// Spec: 0 = workgroup size (at most 128 subgroups).
// Grid: one workgroup per row, row = y * rows_per_y + x (x <= 65535).
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "common.glsl"
layout(local_size_x_id = 0) in;
#include "sample_row.glsl"

const uint kMaxSubgroups = 128u;
const uint kOne = 0x3f800000u;  // bits of 1.0, the largest weight
shared float part[kMaxSubgroups * 32u];  // per subgroup: 16 bin counts, then 16 bin masses
shared float tot[32];                    // the workgroup's bins

uint weight_bits(uint j) {
  const uint b = floatBitsToUint(exp((logits[base + j] - row_max) * p.inv_temperature));
  return b <= kOne ? b : 0u;  // NaN weighs nothing
}

// Workgroup reduction of one value per thread: op 1 = max, 2 = min.
float reduce(float v, uint op) {
  v = op == 1u ? subgroupMax(v) : subgroupMin(v);
  if (subgroupElect()) part[gl_SubgroupID] = v;
  barrier();
  float r = part[0];
  for (uint g = 1u; g < gl_NumSubgroups; ++g) r = op == 1u ? max(r, part[g]) : min(r, part[g]);
  barrier();
  return r;
}

// tot[d] = count and tot[16 + d] = mass of the tokens with bits >= lo whose bits agree with
// `prefix` above bit shift + 4 and have digit d = (bits >> shift) & 15.
void bin_pass(uint lo, uint prefix, uint shift) {
  float c[16], m[16];
  [[unroll]] for (uint i = 0u; i < 16u; ++i) c[i] = 0.0, m[i] = 0.0;
  for (uint j = gl_LocalInvocationID.x; j < p.n_vocab; j += gl_WorkGroupSize.x) {
    const uint b = weight_bits(j);
    if (b < lo || (shift < 28u && (b >> (shift + 4u)) != prefix)) continue;
    const uint d = (b >> shift) & 15u;
    const float w = uintBitsToFloat(b);
    [[unroll]] for (uint i = 0u; i < 16u; ++i) {
      c[i] += d == i ? 1.0 : 0.0;
      m[i] += d == i ? w : 0.0;
    }
  }
  [[unroll]] for (uint i = 0u; i < 16u; ++i) {
    const float sc = subgroupAdd(c[i]), sm = subgroupAdd(m[i]);
    if (subgroupElect()) {
      part[gl_SubgroupID * 32u + i] = sc;
      part[gl_SubgroupID * 32u + 16u + i] = sm;
    }
  }
  barrier();
  if (gl_LocalInvocationID.x < 32u) {
    float s = 0.0;
    for (uint g = 0u; g < gl_NumSubgroups; ++g) s += part[g * 32u + gl_LocalInvocationID.x];
    tot[gl_LocalInvocationID.x] = s;
  }
  barrier();  // also: every thread has read the previous pass's tot and part
}

// The cut above: mode 0 tests count >= goal, mode 1 mass >= goal * (mass of bits >= lo), mode 2
// mass > goal * (that mass). Every thread computes the same digits from tot.
uint cut(uint lo, uint mode, float goal) {
  uint prefix = 0u;
  float above = 0.0, target = goal;
  const uint off = mode == 0u ? 0u : 16u;
  for (int shift = 28; shift >= 0; shift -= 4) {
    bin_pass(lo, prefix, uint(shift));
    if (shift == 28 && mode != 0u) {
      float total = 0.0;
      for (uint i = 16u; i < 32u; ++i) total += tot[i];
      target = goal * total;
    }
    // The highest digit whose running total passes; rounding aside, one always does. Else the
    // lowest non-empty digit (the last tokens in this order).
    int digit = -1, lowest = -1;
    float cum = above, before = above, cum_lowest = above;
    for (int d = 15; d >= 0; --d) {
      if (tot[d] == 0.0) continue;
      const float next = cum + tot[off + uint(d)];
      if (mode == 2u ? next > target : next >= target) {
        digit = d, before = cum;
        break;
      }
      lowest = d, cum_lowest = cum;
      cum = next;
    }
    if (digit < 0) digit = max(lowest, 0), before = cum_lowest;
    above = before;
    prefix = (prefix << 4) | uint(digit);
  }
  return prefix;
}

void main() {
  const uint row = gl_WorkGroupID.y * p.rows_per_y + gl_WorkGroupID.x;
  if (row >= p.n_rows) return;  // uniform per workgroup
  start_row(row);

  uint tau = 0u;
  if (p.top_k != 0u && p.top_k < p.n_vocab) tau = cut(0u, 0u, float(p.top_k));
  if (p.top_p < 1.0) tau = cut(tau, 1u, p.top_p);
  write_first_index(row, cut(tau, 2u, min(uniform_in[row], 0.99999994)));
}
