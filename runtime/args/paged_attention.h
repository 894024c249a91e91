// Arguments and CPU references of attention over the paged KV cache and of KVzip scoring
// (runtime/args: the data half of runtime/ops/paged_attention.h, below both runtime/ops and
// runtime/cpu so that the CPU backend needs no op header). Layout: runtime/args/paged_kv.h.
#pragma once

#include <cstdint>

#include "runtime/args/paged_kv.h"
#include "runtime/tensor.h"

namespace kvz {

// out[i, hq, :] = sum_j softmax_j(s_ij) v_j over the rows j of KV head h = hq /
// (n_heads/n_kv_heads) that are visible to query i, where s_ij = softcap(scale * q[i, hq, :] . k_j)
// and row j is visible iff pos_j <= q_pos[i] and (window == 0 or q_pos[i] - pos_j < window).
// softcap(s) = softcap * tanh(s / softcap) when softcap > 0. A query that sees no row gets zeros.
// q: [n_q, n_heads, head_dim] f32 (post-RoPE); q_pos: [n_q] i32; out: [n_q, n_heads, head_dim] f32.
// head_dim: any multiple of 4 in [4, 256]. Rows t >= lens[h] are ignored; lens[h] is clamped to the
// block table's capacity (max_blocks * 32).
// scratch (optional) enables split-K: several workgroups share one KV head's rows and a second
// pass combines them, which decode over long caches needs to fill the GPU. Give it at least
// paged_attention_scratch_elems(n_q, n_heads, head_dim, max_blocks * 32) f32 elements (any shape);
// when it is not defined() (or that count is 0) the op runs unsplit. The CPU backend ignores it.
struct PagedAttentionArgs {
  Tensor q, q_pos;
  Tensor k_pool, v_pool, pos_pool, block_table, lens;
  Tensor out;
  float scale = 1.0f;
  int window = 0;
  float softcap = 0.0f;
  Tensor scratch;  // optional, f32, >= paged_attention_scratch_elems(...) elements
  // The caller guarantees that positions increase along each head's rows (KvCache does): the
  // prefill kernel then stops at the first key tile past all of its queries.
  bool rows_sorted = false;
  // Optional bound on every head's row count (lens[h] <= max_rows), e.g. the longest head of a
  // KvCache layer; 0: the block table's capacity. Decode sizes its split-K shares by it, so a
  // table with spare capacity does not launch (and combine) empty shares. A bound below some
  // lens[h] drops that head's rows past it.
  int64_t max_rows = 0;
  // Optional: the rows of all KV heads together (the sum of lens); 0: max_rows x n_kv_heads.
  // Decode sizes its shares so that they fill the GPU about once (on NVIDIA, which reports its
  // SM count): a ragged cache needs fewer, larger shares than its longest head alone would ask
  // for.
  int64_t total_rows = 0;
  // Optional: out also rounded to int8 per 32 values for the Q4_K decode matvec, exactly as
  // quantize_x8(out, x8) would (runtime/ops/matmul.h; quantize_x8_fits(out, x8) must hold). Fused
  // into the split-K combine pass where one runs and head_dim % 32 == 0, else a quantize_x8 after.
  Tensor x8;
  // false: always the tiled kernel (A/B benchmarks). The environment variable
  // KVZ_NO_FAST_DECODE=1 does the same for every call.
  bool allow_decode_kernel = true;
};

// Reconstruction scoring (KVzip, ALGORITHMS.md 1.3), generic form: for every KV head h and target
// row j in [t0, t1) of the head's rows,
//   score[h, j - t0] = max over query heads g of h's group and queries i of P[g, i, j],
// where P[g, i, :] = softmax over the key set K_i = rows [0, n_sink) U [t0, t1) U [s0, s0 + i]
// of scale * q[i, g, :] . k. Rows are indexed in the head's row order (block_table), queries i
// sit at rows s0 + i (their own keys already written). No probability matrix is materialised:
// pass 1 computes each query row's log-sum-exp over K_i, pass 2 the column max.
// q: [n_q, n_heads, head_dim] f32; score: [n_kv_heads, t1 - t0] f32 (overwritten).
// Requires n_sink <= t0 <= t1 <= s0 (disjoint key blocks) and s0 + n_q rows in the block table.
// lse: [n_q, n_heads] f32 scratch for pass 1, required on Vulkan (the CPU backend ignores it).
struct AttnScoreArgs {
  Tensor q;
  Tensor k_pool, block_table;
  Tensor score;
  Tensor lse;  // scratch, [n_q, n_heads] f32
  // Scratch, n_q x n_heads x head_dim f16 (any shape): the scaled f16 queries pass 1 hands to
  // pass 2; required where attn_score runs on tensor cores (paged_attention_coopmat_supported),
  // ignored elsewhere.
  Tensor q16;
  int n_sink = 0;
  int t0 = 0, t1 = 0;
  int s0 = 0;
  float scale = 1.0f;
};

namespace cpu {
void paged_attention_ref(const PagedAttentionArgs& args);
void attn_score_ref(const AttnScoreArgs& args);
}  // namespace cpu

}  // namespace kvz
