#version 450
// coopmat_peak: the tensor-core ceiling a Vulkan kernel can reach on this device (a probe for
// bench/, not used by the model). Each workgroup holds COPIES tile pairs shaped like
// matmul_coopmat's shared tiles (x rows [BM][LD8], w rows [BN][LD8] of uvec4, k 32) and runs
// `iters` 16-deep k steps of matmul_coopmat's inner loop on them: every subgroup multiplies FM A
// fragments by FN B fragments into FM x FN f32 accumulators (include/coopmat.glsl). Nothing is read
// from global memory inside the loop, so the time is the tensor-core work and, by MODE, what feeds
// it:
//   MODE 0: the fragments are loaded once; the loop is multiply-adds on registers alone.
//   MODE 1: every step loads its fragments from shared memory, as matmul_coopmat does (step s
//           reads k half s % 2 of copy (s / 2) & copy_mask; the mask is a push constant, so the
//           compiler cannot hoist the loads out of the loop).
//   MODE 2: MODE 1 plus one workgroup barrier per 32-deep tile (every second step), as
//           matmul_coopmat pays with two shared stages;
//   MODE 3: two barriers per tile, as it pays with one stage (its default).
// One copy takes matmul_coopmat's one-stage shared memory, so the same number of workgroups fits
// an SM where shared memory is what limits them.
// Result: y = the accumulators. MODE 0: iters * A[:, 0:16] . B[0:16, :]; the others (iters even):
// iters / 2 * A . B over the tile's k 32; A = src rows 0..BM-1, B[k][n] = src row BM + n.
// Bindings: 0 src f16 [BM + BN][32] as uvec4 (4 per row) read | 1 y f32 write:
//           [workgroups][SG_M SG_N][FM FN][16][16] (fragment (i, j) of subgroup s of workgroup g).
// Push: iters, copy_mask (COPIES - 1). Spec: 0 = workgroup size (subgroup size * SG_M * SG_N),
//       1 = SG_M, 2 = SG_N, 3 = FM, 4 = FN (as matmul_coopmat), 5 = MODE, 6 = COPIES (1 or 2).
#include "common.glsl"
#include "coopmat.glsl"
#extension GL_KHR_shader_subgroup_basic : require

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 128;
layout(constant_id = 1) const uint SG_M = 2;
layout(constant_id = 2) const uint SG_N = 2;
layout(constant_id = 3) const uint FM = 4;
layout(constant_id = 4) const uint FN = 4;
layout(constant_id = 5) const uint MODE = 0;
layout(constant_id = 6) const uint COPIES = 2;
const uint TM = 16, TN = 16, TK = 16;
const uint BM = TM * FM * SG_M, BN = TN * FN * SG_N;
const uint BK8 = 4, LD8 = BK8 + 1;  // k 32 per tile row, matmul_coopmat's skewed stride

layout(std430, binding = 0) readonly buffer Src { uvec4 src[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Push {
  uint iters;
  uint copy_mask;
} p;

shared uvec4 xs[COPIES * BM * LD8];
shared uvec4 ws[COPIES * BN * LD8];

void main() {
  const uint tid = gl_LocalInvocationID.x;
  for (uint e = tid; e < (BM + BN) * BK8; e += WG) {
    const uint r = e / BK8, c = e % BK8;
    const uvec4 v = src[e];
    for (uint copy = 0; copy < COPIES; ++copy) {
      if (r < BM)
        xs[(copy * BM + r) * LD8 + c] = v;
      else
        ws[(copy * BN + r - BM) * LD8 + c] = v;
    }
  }
  barrier();

  const uint sg_m = gl_SubgroupID % SG_M, sg_n = gl_SubgroupID / SG_M;
  CM_ACC acc[FM * FN];
  [[unroll]] for (uint i = 0; i < FM * FN; ++i) acc[i] = CM_ACC(0.0);
  CM_A a[FM];
  CM_B b[FN];
  if (MODE == 0u) {
    [[unroll]] for (uint i = 0; i < FM; ++i)
      CM_LOAD_ROW(a[i], xs, (sg_m * FM + i) * TM * LD8, LD8);
    [[unroll]] for (uint j = 0; j < FN; ++j)
      CM_LOAD_COL(b[j], ws, (sg_n * FN + j) * TN * LD8, LD8);
  }
  for (uint s = 0; s < p.iters; ++s) {
    if (MODE != 0u) {
      const uint buf = (s >> 1) & p.copy_mask, k8 = (s & 1u) * (TK / 8u);
      [[unroll]] for (uint i = 0; i < FM; ++i)
        CM_LOAD_ROW(a[i], xs, (buf * BM + (sg_m * FM + i) * TM) * LD8 + k8, LD8);
      [[unroll]] for (uint j = 0; j < FN; ++j)
        CM_LOAD_COL(b[j], ws, (buf * BN + (sg_n * FN + j) * TN) * LD8 + k8, LD8);
    }
    [[unroll]] for (uint i = 0; i < FM; ++i)
      [[unroll]] for (uint j = 0; j < FN; ++j)
        acc[i * FN + j] = CM_MUL_ADD(a[i], b[j], acc[i * FN + j]);
    if (MODE >= 2u && (s & 1u) == 1u) barrier();
    if (MODE == 3u && (s & 1u) == 1u) barrier();
  }

  const uint sg = gl_WorkGroupID.x * (SG_M * SG_N) + gl_SubgroupID;
  [[unroll]] for (uint i = 0; i < FM * FN; ++i)
    CM_STORE_ROW(acc[i], y, (sg * FM * FN + i) * TM * TN, TN);
}
