// Paged attention (prefill and decode, split-K for long caches) and KVzip reconstruction scoring:
// tile choice, validation and dispatch (runtime/ops). CPU backend: runtime/cpu/attention_fast.cpp;
// references: runtime/cpu/paged_attention_ref.cpp.
#include "runtime/ops/paged_attention.h"

#include <algorithm>

#include "runtime/cpu/attention_dims.h"
#include "runtime/cpu/attention_fast.h"
#include "runtime/ops/matmul_detail.h"
#include "runtime/ops/row_grid.h"

namespace kvz {
namespace {

constexpr uint32_t kWg = 128;  // fixed in shaders/include/attn_tile.glsl
constexpr int kMaxSplits = 64;
constexpr int kMinRowsPerSplit = 512;

// Tile sizes (spec constants of attn_tile.glsl): the shared query, key and value tiles stay
// near 8 KiB each for every head_dim, about 25 KiB of shared memory in all.
struct Tiles {
  uint32_t hd, qt, kt;
};

Tiles pick_tiles(const DeviceCaps& caps, int64_t head_dim, int64_t rows_per_head) {
  Tiles t{static_cast<uint32_t>(head_dim),
          head_dim <= 64    ? 32u
          : head_dim <= 128 ? 16u
                            : 8u,
          head_dim <= 128 ? 32u : 16u};
  // Decode and small prefill: no more query rows per tile than the KV head has.
  while (t.qt > 1 && t.qt / 2 >= rows_per_head) t.qt /= 2;
  const uint64_t shared_bytes =
      4ull * (t.qt * t.hd + 2ull * t.kt * (t.hd / 2 + 1) + t.qt * t.kt + 2 * t.kt + 4 * t.qt + 8);
  KVZ_CHECK(caps.shared_memory_bytes == 0 || shared_bytes <= caps.shared_memory_bytes,
            "attention: tiles need {} B of shared memory, device has {}", shared_bytes,
            caps.shared_memory_bytes);
  return t;
}

// Key-range splits per KV head: enough workgroups for a large GPU (~512) when few query tiles
// exist, each split at least kMinRowsPerSplit rows. Depends only on the arguments so that the
// scratch size can be computed ahead.
int pick_splits(int64_t n_q, int64_t n_heads, int64_t max_rows) {
  const int64_t tiles = std::max<int64_t>(1, (n_q * n_heads + 15) / 16);
  const int64_t by_gpu = 512 / tiles, by_rows = max_rows / kMinRowsPerSplit;
  return static_cast<int>(std::clamp<int64_t>(std::min(by_gpu, by_rows), 1, kMaxSplits));
}

// Push constants of paged_attention.comp and paged_attention_coopmat.comp.
struct AttnPush {
  uint32_t n_q, n_heads, group, max_blocks;
  int32_t window;
  uint32_t n_split;
  float scale, softcap;
};
AttnPush attn_push(const cpu::AttnDims& d, const PagedAttentionArgs& a, uint32_t n_split) {
  return {uint32_t(d.n_q),   uint32_t(d.n_heads),
          uint32_t(d.group), uint32_t(d.max_blocks),
          a.window,          n_split,
          a.scale,           a.softcap};
}

}  // namespace

int64_t paged_attention_scratch_elems(int n_q, int n_heads, int head_dim, int max_rows) {
  const int n_split = pick_splits(n_q, n_heads, max_rows);
  return n_split > 1 ? int64_t(n_split) * n_q * n_heads * (head_dim + 2) : 0;
}

// Tensor-core prefill (shaders/paged_attention_coopmat.comp): 8 subgroups of 32, 16 query rows
// each, key tiles of one paged block.
constexpr uint32_t kAttnCoopmatSubgroups = 8;

bool paged_attention_coopmat_supported(const DeviceCaps& caps, int64_t head_dim) {
  constexpr uint64_t kt = kKvBlockTokens, sg = kAttnCoopmatSubgroups;
  const uint64_t shared_bytes = 2 * kt * (head_dim / 8 + 1) * 16  // K and V tiles
                                + sg * 16 * kt * (4 + 2)          // S (f32) and P (f16)
                                + sg * 16 * 8 + kt * 4 + 64;      // row and key bookkeeping
  return detail::nv_coopmat_f16(caps) && caps.subgroup_size == 32 && head_dim % 16 == 0 &&
         head_dim <= 128 && shared_bytes <= caps.shared_memory_bytes &&
         32 * sg <= caps.max_workgroup_invocations && !detail::coopmat_disabled_by_env();
}

void paged_attention(Recorder& rec, const PagedAttentionArgs& a) {
  const cpu::AttnDims d = cpu::check_paged_attention(a);
  if (d.n_q == 0) return;
  if (rec.is_cpu()) return cpu::paged_attention_fast(a);
  if (d.n_q * d.group >= kAttnCoopmatMinRows &&
      paged_attention_coopmat_supported(rec.caps(), d.head_dim)) {
    constexpr uint32_t kRows = 16 * kAttnCoopmatSubgroups;
    const AttnPush push = attn_push(d, a, 1);
    const uint32_t tiles = div_up(d.n_q * d.group, kRows);
    KVZ_CHECK(tiles <= 65535 && d.n_kv_heads <= 65535, "paged_attention: grid {} x {}", tiles,
              d.n_kv_heads);
    rec.dispatch({ShaderId::kPagedAttentionCoopmat,
                  {32 * kAttnCoopmatSubgroups, uint32_t(d.head_dim), kAttnCoopmatSubgroups}},
                 {a.q, a.q_pos, a.k_pool, a.v_pool, a.pos_pool, a.block_table, a.lens, a.out}, push,
                 {tiles, uint32_t(d.n_kv_heads)});
    return;
  }
  const int64_t max_rows = d.max_blocks * kKvBlockTokens;
  const Tiles t = pick_tiles(rec.caps(), d.head_dim, d.n_q * d.group);
  int n_split = pick_splits(d.n_q, d.n_heads, max_rows);
  const int64_t need =
      paged_attention_scratch_elems(int(d.n_q), int(d.n_heads), int(d.head_dim), int(max_rows));
  if (!a.scratch.defined()) n_split = 1;
  KVZ_CHECK(n_split == 1 || (a.scratch.dtype() == DType::kF32 && a.scratch.numel() >= need),
            "paged_attention: scratch {} < {} f32 elements", a.scratch.shape_str(), need);
  const AttnPush push = attn_push(d, a, uint32_t(n_split));
  const uint32_t tiles = div_up(d.n_q * d.group, t.qt);
  KVZ_CHECK(tiles <= 65535 && d.n_kv_heads <= 65535, "paged_attention: grid {} x {}", tiles,
            d.n_kv_heads);
  const Tensor& dst = n_split > 1 ? a.scratch : a.out;
  rec.dispatch({ShaderId::kPagedAttention, {t.hd, t.qt, t.kt}},
               {a.q, a.q_pos, a.k_pool, a.v_pool, a.pos_pool, a.block_table, a.lens, dst}, push,
               {tiles, uint32_t(d.n_kv_heads), uint32_t(n_split)});
  if (n_split == 1) return;
  struct CombinePush {
    uint32_t n_rows, head_dim, n_split, rows_per_y;
  } cp{uint32_t(d.n_q * d.n_heads), uint32_t(d.head_dim), uint32_t(n_split), 0};
  const Grid grid = row_grid(cp.n_rows, cp.rows_per_y);
  rec.dispatch({ShaderId::kPagedAttentionCombine, {64}}, {a.scratch, a.out}, cp, grid);
}

void attn_score(Recorder& rec, const AttnScoreArgs& a) {
  const cpu::AttnDims d = cpu::check_attn_score(a);
  if (d.n_q == 0 || a.t1 == a.t0) return;
  if (rec.is_cpu()) return cpu::attn_score_fast(a);
  KVZ_CHECK(a.lse.defined() && a.lse.dtype() == DType::kF32 && a.lse.numel() >= d.n_q * d.n_heads,
            "attn_score: lse scratch {} must hold [n_q {}, n_heads {}] f32", a.lse.shape_str(),
            d.n_q, d.n_heads);
  struct Push {
    uint32_t n_q, n_heads, group, max_blocks, n_sink, t0, t1, s0;
    float scale;
  } push{uint32_t(d.n_q),        uint32_t(d.n_heads), uint32_t(d.group),
         uint32_t(d.max_blocks), uint32_t(a.n_sink),  uint32_t(a.t0),
         uint32_t(a.t1),         uint32_t(a.s0),      a.scale};
  if (paged_attention_coopmat_supported(rec.caps(), d.head_dim)) {
    // Tensor cores (shaders/attn_score_coopmat.comp): 8 subgroups x 16 query rows for the
    // log-sum-exp pass, 4 subgroups x 16 chunk rows for the column maxima.
    constexpr uint32_t kLseSubgroups = 8, kMaxSubgroups = 4;
    const uint32_t hd = uint32_t(d.head_dim);
    const uint32_t q_tiles = div_up(d.n_q * d.group, 16 * kLseSubgroups),
                   k_tiles = div_up(a.t1 - a.t0, 16 * kMaxSubgroups);
    KVZ_CHECK(q_tiles <= 65535 && k_tiles <= 65535, "attn_score: grid {} / {}", q_tiles, k_tiles);
    rec.dispatch({ShaderId::kAttnScoreCoopmatLse, {32 * kLseSubgroups, hd, kLseSubgroups}},
                 {a.q, a.k_pool, a.block_table, a.lse}, push, {q_tiles, uint32_t(d.n_kv_heads)});
    rec.dispatch({ShaderId::kAttnScoreCoopmatMax, {32 * kMaxSubgroups, hd, kMaxSubgroups}},
                 {a.q, a.k_pool, a.block_table, a.lse, a.score}, push,
                 {k_tiles, uint32_t(d.n_kv_heads)});
    return;
  }
  const Tiles t = pick_tiles(rec.caps(), d.head_dim, d.n_q * d.group);
  const uint32_t q_tiles = div_up(d.n_q * d.group, t.qt), k_tiles = div_up(a.t1 - a.t0, t.kt);
  KVZ_CHECK(q_tiles <= 65535 && k_tiles <= 65535, "attn_score: grid {} / {}", q_tiles, k_tiles);
  const Kernel lse{ShaderId::kAttnScoreLse, {t.hd, t.qt, t.kt}};
  rec.dispatch(lse, {a.q, a.k_pool, a.block_table, a.lse}, push, {q_tiles, uint32_t(d.n_kv_heads)});
  const Kernel colmax{ShaderId::kAttnScoreMax, {t.hd, t.qt, t.kt}};
  rec.dispatch(colmax, {a.q, a.k_pool, a.block_table, a.lse, a.score}, push,
               {k_tiles, uint32_t(d.n_kv_heads)});
}

}  // namespace kvz
