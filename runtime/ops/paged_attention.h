// Attention of new queries over a paged, per-head ragged KV cache; serves prefill (many queries,
// causal by position) and decode (one query) alike (runtime/ops). Layout: runtime/args/paged_kv.h.
#pragma once

#include "runtime/args/paged_attention.h"
#include "runtime/ops/paged_kv.h"

namespace kvz {

// PagedAttentionArgs, AttnScoreArgs: runtime/args/paged_attention.h.
// Vulkan: few query rows per KV head (n_q * group <= 16, head_dim % 8 == 0, subgroup shuffles)
// run a bandwidth-bound decode kernel (shaders/paged_decode.comp), everything else the tiled
// flash-attention kernel (shaders/paged_attention.comp); both agree with the CPU reference.
void paged_attention(Recorder& rec, const PagedAttentionArgs& args);

// Whether paged_attention runs prefill on tensor cores (shaders/paged_attention_coopmat.comp) on
// this device for this head_dim: coopmat_api(dev) not off (runtime/ops/coopmat.h: NV or KHR
// cooperative matrices, KVZ_COOPMAT / KVZ_NO_COOPMAT), subgroups of 32, head_dim a multiple of 16
// up to 128. It then does so for calls with at least
// kAttnCoopmatMinRows query rows per KV head (n_q * group); Q and P are rounded to f16 there.
// attn_score then always runs on tensor cores (shaders/attn_score_coopmat.comp; Q in f16).
// Quantised pools (q8_0 / q4_0) take the same tensor-core kernels, which dequantise each K / V
// tile into their f16 shared tiles (values rounded to f16); the cm2 prefill kernel reads f16
// pools only, so on cm2 devices quantised prefill runs the KHR cooperative-matrix kernel.
bool paged_attention_coopmat_supported(const Device& dev, int64_t head_dim);
constexpr int64_t kAttnCoopmatMinRows = 64;

// Whether paged_attention picks the decode kernel for these arguments on `dev`.
bool paged_attention_uses_decode_kernel(const Device& dev, const PagedAttentionArgs& args);

// f32 elements of split-K scratch paged_attention uses for these sizes (0: it will not split);
// max_rows = block_table.dim(1) * kKvBlockTokens. Size the scratch for the largest call (decode
// with the largest cache); a larger buffer is fine.
int64_t paged_attention_scratch_elems(const Device& dev, int n_q, int n_heads, int head_dim,
                                      int max_rows);
// The same for prefill-sized calls: the NV cooperative-matrix-2 kernel
// splits long heads' keys in a small grid (0: it will not split here). The larger of the two
// serves both.
int64_t paged_attention_prefill_scratch_elems(const Device& dev, int n_q, int n_heads,
                                              int n_kv_heads, int head_dim, int max_rows);

namespace detail {
// The decode kernel's split-K plan: n_split shares of `chunk` rows per KV head (a multiple of 64;
// shorter heads use fewer), for n_q queries over n_kv_heads heads of at most max_rows rows,
// total_rows in all heads together (0: unknown), row_tiles workgroups per share, on a device of
// compute_units SMs or CUs (0: unknown), with the limits of `t`. bound >= n_split sizes the
// scratch (paged_attention_scratch_elems).
struct DecodeSplit {
  int64_t n_split, chunk, bound;
};
DecodeSplit decode_split(const DecodeTuning& t, int64_t n_q, int64_t max_rows, int64_t total_rows,
                         int64_t n_kv_heads, int64_t row_tiles, uint32_t compute_units);

}  // namespace detail

void attn_score(Recorder& rec, const AttnScoreArgs& args);

}  // namespace kvz
