// Paged attention (tiled kernel for prefill, decode kernel for few query rows, split-K for long
// caches) and KVzip reconstruction scoring: kernel choice, validation and dispatch (runtime/ops).
// CPU backend: runtime/cpu/attention_fast.cpp; references: runtime/cpu/paged_attention_ref.cpp.
#include "runtime/ops/paged_attention.h"

#include <algorithm>
#include <bit>
#include <optional>

#include "runtime/cpu/attention_dims.h"
#include "runtime/cpu/attention_fast.h"
#include "runtime/ops/coopmat.h"
#include "runtime/ops/matmul.h"
#include "runtime/ops/row_grid.h"

namespace kvz {
namespace {

constexpr uint32_t kWg = 128;  // fixed in shaders/include/attn_tile.glsl
constexpr int kMaxSplits = 64;
constexpr int kMinRowsPerSplit = 512;

// Whether K and V are f16. The cm2 prefill kernel reads f16 pools only (it loads K and V tiles
// straight into cooperative matrices); quantised pools take the cooperative-matrix kernels of the
// same api instead, which dequantise each tile into their f16 shared tiles (like the scalar
// kernels as they load). The decode kernel lays quantised rows out per lane (paged_decode.comp).
bool f16_pools(const Tensor& k, const Tensor& v) {
  return k.dtype() == DType::kF16 && v.dtype() == DType::kF16;
}

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

// Push constants of paged_attention.comp and paged_attention_coopmat.comp (paged_decode.comp:
// the same, then its share size).
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

// ---- decode kernel (shaders/paged_decode.comp) ----------------------------------------------
// Few query rows per KV head (n_q * group <= kDecodeMaxRows): one pass over K/V per row tile, a
// key row spread over the lanes of a subgroup, many split-K workgroups per head.
constexpr int64_t kDecodeMaxRows = 16;   // n_q * group served by the decode kernel
constexpr int64_t kDecodeRowsPerWg = 8;  // query rows per workgroup (registers: 2 x 8 per row)
// Split-K shares per KV head: shares of DecodeTuning::min_rows_per_split rows up to
// kDecodeSharesPerHead shares, then that many shares up to kDecodeMaxRowsPerSplit rows each, then
// shares of that size. A share is one workgroup with a fixed start cost (its first loads' latency,
// the merge, its partial result), so long heads want long shares and short ones many shares to
// fill the GPU (the sweep behind these sizes: bench/RESULTS.md). With n_q queries at most
// DecodeTuning::max_splits / n_q shares (<= 512, the combine pass's limit), which also bounds the
// scratch to that many x n_heads x (head_dim + 2) per query.
constexpr int64_t kDecodeMaxRowsPerSplit = 512;
constexpr int64_t kDecodeSharesPerHead = 128;
constexpr int64_t kDecodeChunkAlign = 64;  // rows per share: whole 32-row blocks, whole steps

}  // namespace

// Rows per split-K share, the same for every KV head: a short (ragged) head simply has fewer
// non-empty shares, so every busy workgroup does about the same work. The rule above depends
// only on max_rows, so that the scratch size can be computed ahead: `bound` (>= n_split) never
// decreases with max_rows, so the scratch for the largest max_rows serves every smaller one.
// Where the resident workgroups are known (compute units x DecodeTuning::workgroups_per_unit),
// shares then grow (never shrink: n_split stays within the bound) until all heads' shares make
// about one round of them: every further round pays the shares' start cost again, while one round
// already keeps every compute unit busy (bench/RESULTS.md, "Occupancy rules").
detail::DecodeSplit detail::decode_split(const DecodeTuning& t, int64_t n_q, int64_t max_rows,
                                         int64_t total_rows, int64_t n_kv_heads, int64_t row_tiles,
                                         uint32_t compute_units) {
  const int64_t rows = std::max<int64_t>(max_rows, 1);
  const int64_t max_splits =
      std::max<int64_t>(1, int64_t(t.max_splits) / std::max<int64_t>(n_q, 1));
  const int64_t n = std::clamp<int64_t>(
      std::max(std::min(rows / int64_t(t.min_rows_per_split), kDecodeSharesPerHead),
               rows / kDecodeMaxRowsPerSplit),
      1, max_splits);
  int64_t chunk = div_up(div_up(rows, n), kDecodeChunkAlign) * kDecodeChunkAlign;
  // Each head's last share is partial: with shares of `chunk` rows the heads take at most
  // total / chunk + n_kv_heads workgroups (times row_tiles), which must fit the round.
  const int64_t round = int64_t(compute_units) * t.workgroups_per_unit;
  const int64_t tiles = std::max<int64_t>(row_tiles, 1), heads = std::max<int64_t>(n_kv_heads, 1);
  if (t.fill_one_round && total_rows > 0 && round > 2 * heads * tiles) {
    const int64_t fill = div_up(total_rows, round / tiles - heads);
    chunk = std::max(chunk, div_up(fill, kDecodeChunkAlign) * kDecodeChunkAlign);
  }
  return {div_up(rows, chunk), chunk, n};
}

namespace {

struct DecodePlan {
  uint32_t wg, hd, lpk, gr, kpi, prefetch;  // spec constants of paged_decode.comp
  uint32_t row_tiles;
};

// The decode kernel's configuration, or nothing where it does not apply (then the tiled kernel
// runs): head_dim % 8 (16-byte rows), subgroup shuffles with a known, fixed subgroup size.
std::optional<DecodePlan> pick_decode(const DeviceCaps& caps, const DecodeTuning& t,
                                      const cpu::AttnDims& d, bool allowed, bool quantized) {
  const int64_t rows = d.n_q * d.group;
  const uint32_t sg = caps.subgroup_size;
  if (!allowed || !t.fast_kernel || rows > kDecodeMaxRows || d.head_dim % 8 != 0 ||
      d.head_dim > 256 || !caps.subgroup_shuffle || sg == 0 || sg > 128 || !std::has_single_bit(sg))
    return std::nullopt;
  // Intel compiles SIMD8/16/32 per shader whatever subgroupSize says: lane groups would straddle.
  if (caps.vendor_id == 0x8086) return std::nullopt;
  // Lanes per key row: fewer lanes, fewer shuffles and less redundant softmax work per key, more
  // registers. Keys per step: loads in flight.
  DecodePlan pl{};
  pl.wg = std::max<uint32_t>(t.workgroup, sg);
  pl.hd = uint32_t(d.head_dim);
  pl.lpk = std::min<uint32_t>(std::bit_ceil(uint32_t(d.head_dim / 8)), sg);
  if (t.lanes_per_key) pl.lpk = std::min(pl.lpk, t.lanes_per_key);
  pl.row_tiles = uint32_t(div_up(rows, kDecodeRowsPerWg));
  pl.gr = uint32_t(div_up(rows, int64_t(pl.row_tiles)));
  pl.kpi = t.keys_per_iter ? t.keys_per_iter : pl.gr <= 4 ? 4 : 2;
  // Quantised pools where the rows' q and o leave room: two lanes per 32-value block, so that a
  // lane's 16 values are one run of bytes with one scale; half the keys per step keeps the
  // registers of the loads in flight.
  if (quantized && !t.lanes_per_key && pl.gr <= 4 && pl.lpk > 1 && pl.lpk * 16 > pl.hd) {
    pl.lpk /= 2;
    if (!t.keys_per_iter) pl.kpi = std::max<uint32_t>(1, pl.kpi / 2);
  }
  // Prefetch costs KPI x CPL x 8 registers per lane: on where the rows' q and o leave room.
  pl.prefetch = t.prefetch.value_or(pl.gr <= 4) ? 1 : 0;
  const uint64_t nlg = pl.wg / pl.lpk, shared_bytes = 4 * nlg * (pl.hd + 2 * pl.gr);
  if ((caps.shared_memory_bytes && shared_bytes > caps.shared_memory_bytes) ||
      (caps.max_workgroup_invocations && pl.wg > caps.max_workgroup_invocations))
    return std::nullopt;
  return pl;
}

// f32 elements of paged_attention_combine.comp's scratch for n_split shares (O, then m and l, per
// share and query row), as every split-K kernel writes it; 0 unsplit.
int64_t combine_scratch_elems(int64_t n_split, int64_t n_q, int64_t n_heads, int64_t head_dim) {
  return n_split > 1 ? n_split * n_q * n_heads * (head_dim + 2) : 0;
}

// Records the merge of n_split partial results in scratch into out (and into a.x8 where the
// combine can round it: returns whether it did).
bool record_combine(Recorder& rec, const PagedAttentionArgs& a, const cpu::AttnDims& d,
                    int64_t n_split) {
  struct CombinePush {
    uint32_t n_rows, head_dim, n_split, rows_per_y;
  } cp{uint32_t(d.n_q * d.n_heads), uint32_t(d.head_dim), uint32_t(n_split), 0};
  constexpr uint32_t kCombineWg = 256;  // n_split <= 2 * kCombineWg, head_dim / 4 <= kCombineWg
  KVZ_CHECK(n_split <= 2 * kCombineWg, "paged_attention: {} splits", n_split);
  const Grid grid = row_grid(cp.n_rows, cp.rows_per_y);
  if (a.x8.defined() && d.head_dim % 32 == 0) {
    rec.dispatch({ShaderId::kPagedAttentionCombineX8, {kCombineWg}}, {a.scratch, a.out, a.x8}, cp,
                 grid);
    return true;
  }
  rec.dispatch({ShaderId::kPagedAttentionCombine, {kCombineWg}}, {a.scratch, a.out}, cp, grid);
  return false;
}

// The longest head's rows the kernels may assume: the caller's max_rows hint, capped by the block
// table (the table's capacity without a hint).
int64_t max_rows_of(const PagedAttentionArgs& a, const cpu::AttnDims& d) {
  const int64_t cap = d.max_blocks * kKvBlockTokens;
  return a.max_rows > 0 ? std::min(a.max_rows, cap) : cap;
}

// Returns whether a.x8 was written (by the combine pass).
bool record_decode(Recorder& rec, const PagedAttentionArgs& a, const cpu::AttnDims& d,
                   const DecodePlan& pl) {
  const int64_t rows = max_rows_of(a, d);
  const int64_t total =
      a.total_rows > 0 ? std::min(a.total_rows, rows * d.n_kv_heads) : rows * d.n_kv_heads;
  // Vendors without a measured round (runtime/tuning.cpp, kVendorRules) keep the rule alone.
  const Tuning& tn = rec.tuning();
  detail::DecodeSplit sp = detail::decode_split(tn.decode, d.n_q, rows, total, d.n_kv_heads,
                                                pl.row_tiles, tn.occupancy_units);
  if (!a.scratch.defined()) sp = {1, std::max<int64_t>(1, rows), 1};
  const int64_t need = combine_scratch_elems(sp.n_split, d.n_q, d.n_heads, d.head_dim);
  KVZ_CHECK(sp.n_split == 1 || (a.scratch.dtype() == DType::kF32 && a.scratch.numel() >= need),
            "paged_attention: scratch {} < {} f32 elements", a.scratch.shape_str(), need);
  struct DecodePush {
    AttnPush attn;
    uint32_t chunk;
  } push{attn_push(d, a, uint32_t(sp.n_split)), uint32_t(sp.chunk)};
  KVZ_CHECK(d.n_kv_heads <= 65535 && sp.n_split <= 65535, "paged_attention: grid {} x {}",
            d.n_kv_heads, sp.n_split);
  const Tensor& dst = sp.n_split > 1 ? a.scratch : a.out;
  rec.dispatch({ShaderId::kPagedDecode,
                {pl.wg, pl.hd, pl.lpk, pl.gr, pl.kpi, pl.prefetch, kv_type_code(a.k_pool.dtype()),
                 kv_type_code(a.v_pool.dtype())}},
               {a.q, a.q_pos, a.k_pool, a.v_pool, a.pos_pool, a.block_table, a.lens, dst}, push,
               {pl.row_tiles, uint32_t(d.n_kv_heads), uint32_t(sp.n_split)});
  return sp.n_split > 1 && record_combine(rec, a, d, sp.n_split);
}

}  // namespace

int64_t paged_attention_scratch_elems(const Device& dev, int n_q, int n_heads, int head_dim,
                                      int max_rows) {
  // The tiled kernel's need, and the decode kernel's where n_q is small enough for it (its
  // choice also depends on the group and the device, unknown here: size for the larger).
  int64_t n_split = pick_splits(n_q, n_heads, max_rows);
  if (n_q <= kDecodeMaxRows)
    n_split = std::max(n_split,
                       detail::decode_split(dev.tuning().decode, n_q, max_rows, 0, 1, 1, 0).bound);
  return combine_scratch_elems(n_split, n_q, n_heads, head_dim);
}

bool paged_attention_uses_decode_kernel(const Device& dev, const PagedAttentionArgs& a) {
  return pick_decode(dev.caps(), dev.tuning().decode, cpu::check_paged_attention(a),
                     a.allow_decode_kernel, !f16_pools(a.k_pool, a.v_pool))
      .has_value();
}

// Tensor-core prefill (shaders/paged_attention_coopmat.comp): AttentionTuning::coopmat_subgroups
// subgroups of 32 (8; 4 halves the rows per workgroup), 16 query rows each, key tiles of one
// paged block. Shared memory is sized for 8.
constexpr uint32_t kAttnCoopmatSubgroups = 8;

namespace {
// Whether the tensor-core attention kernels run through `api` for this head_dim (subgroups of 32).
bool attn_coopmat_fits(const DeviceCaps& caps, const Tuning& t, CoopmatApi api, int64_t head_dim) {
  const uint64_t kt = kKvBlockTokens,
                 sg = std::max(t.attention.coopmat_subgroups, kAttnCoopmatSubgroups);
  const uint64_t shared_bytes = 2 * kt * (head_dim / 8 + 1) * 16  // K and V tiles
                                + sg * 16 * kt * (4 + 2)          // S (f32) and P (f16)
                                + sg * 16 * 8 + kt * 4 + 64;      // row and key bookkeeping
  return api != CoopmatApi::kOff && coopmat_subgroup_size(caps, api) == 32 && head_dim % 16 == 0 &&
         head_dim <= 128 && shared_bytes <= caps.shared_memory_bytes &&
         32 * sg <= caps.max_workgroup_invocations;
}
// VK_NV_cooperative_matrix2 prefill (shaders/paged_attention_cm2.comp): AttentionTuning::cm2_rows
// query rows per workgroup of cm2_workgroup invocations (128 on 256: the larger tile ran faster);
// cm2_hoist loads V with K, which pays off for chunks after a long prefix (bench/RESULTS.md).
bool attn_cm2_fits(const DeviceCaps& caps, const Tuning& t, CoopmatApi api, int64_t head_dim) {
  if (api != CoopmatApi::kCm2 || head_dim % 16 != 0 || head_dim > 128) return false;
  const uint32_t br = t.attention.cm2_rows, wg = t.attention.cm2_workgroup, hd = uint32_t(head_dim),
                 bc = uint32_t(kKvBlockTokens);
  const CoopMat2Shape* s = coopmat2_f16_shape(caps, wg);
  const uint64_t shared_bytes = uint64_t(br) * (hd / 8 + 1) * 16;  // the staged queries
  return s && s->m_gran && s->n_gran && s->k_gran && br % s->m_gran == 0 && hd % s->n_gran == 0 &&
         hd % s->k_gran == 0 && bc % s->n_gran == 0 && bc % s->k_gran == 0 &&
         shared_bytes <= caps.shared_memory_bytes && wg <= caps.max_workgroup_invocations &&
         !spirv(ShaderId::kPagedAttentionCm2).empty();
}
// Split-K of the cm2 prefill kernel: heads of at least kCm2SplitMinRows rows get their key range
// cut in kCm2Splits shares (then the combine pass) when the grid is small (under
// kCm2SplitMaxWorkgroups workgroups: a few waves on a large GPU, where whole rounds of long
// workgroups leave compute units idle at the end). AttentionTuning::cm2_splits forces a count.
constexpr int64_t kCm2SplitMinRows = 16384, kCm2Splits = 2, kCm2SplitMaxWorkgroups = 2048;
int64_t cm2_splits(const Tuning& t, int64_t n_rows, int64_t n_kv_heads, int64_t max_rows) {
  if (t.attention.cm2_splits > 0) return t.attention.cm2_splits;
  const int64_t workgroups = div_up(n_rows, int64_t(t.attention.cm2_rows)) * n_kv_heads;
  return max_rows >= kCm2SplitMinRows && workgroups < kCm2SplitMaxWorkgroups ? kCm2Splits : 1;
}

// The NV or KHR build of a tensor-core attention kernel, with the subgroup size it requests.
Kernel attn_coopmat_kernel(const DeviceCaps& caps, CoopmatApi api, ShaderId nv, ShaderId khr,
                           std::vector<uint32_t> spec) {
  return {uses_khr_modules(api) ? khr : nv, std::move(spec),
          coopmat_required_subgroup_size(caps, api)};
}
}  // namespace

int64_t paged_attention_prefill_scratch_elems(const Device& dev, int n_q, int n_heads,
                                              int n_kv_heads, int head_dim, int max_rows) {
  const Tuning& t = dev.tuning();
  if (n_kv_heads <= 0 || n_heads % n_kv_heads != 0 ||
      int64_t(n_q) * (n_heads / n_kv_heads) < kAttnCoopmatMinRows ||
      !attn_cm2_fits(dev.caps(), t, coopmat_api(dev), head_dim))
    return 0;
  return combine_scratch_elems(
      cm2_splits(t, int64_t(n_q) * (n_heads / n_kv_heads), n_kv_heads, max_rows), n_q, n_heads,
      head_dim);
}

bool paged_attention_coopmat_supported(const Device& dev, int64_t head_dim) {
  const CoopmatApi api = coopmat_api(dev);
  return attn_cm2_fits(dev.caps(), dev.tuning(), api, head_dim) ||
         attn_coopmat_fits(dev.caps(), dev.tuning(), api, head_dim);
}

namespace {

// paged_attention without its x8 output unless the split-K combine wrote it (the return value).
bool record_paged_attention(Recorder& rec, const PagedAttentionArgs& a, const cpu::AttnDims& d) {
  if (rec.is_cpu()) {
    cpu::paged_attention_fast(a);
    return false;
  }
  const Tuning& tn = rec.tuning();
  const CoopmatApi api = coopmat_api(rec.caps(), tn);
  if (d.n_q * d.group >= kAttnCoopmatMinRows && f16_pools(a.k_pool, a.v_pool) &&
      attn_cm2_fits(rec.caps(), tn, api, d.head_dim)) {
    const uint32_t br = tn.attention.cm2_rows;
    const uint32_t tiles = div_up(d.n_q * d.group, br);
    KVZ_CHECK(tiles <= 65535 && d.n_kv_heads <= 65535, "paged_attention: grid {} x {}", tiles,
              d.n_kv_heads);
    const int64_t max_rows = max_rows_of(a, d);
    const int64_t blocks = std::max<int64_t>(1, div_up(max_rows, kKvBlockTokens));
    int64_t n_split = std::min(cm2_splits(tn, d.n_q * d.group, d.n_kv_heads, max_rows), blocks);
    if (n_split > 1 &&
        (!a.scratch.defined() || a.scratch.dtype() != DType::kF32 ||
         a.scratch.numel() < combine_scratch_elems(n_split, d.n_q, d.n_heads, d.head_dim)))
      n_split = 1;  // no (large enough) scratch: one share per head
    struct Cm2Push {
      AttnPush attn;
      uint32_t split_tiles;
    } push{attn_push(d, a, uint32_t(n_split)), uint32_t(div_up(blocks, n_split))};
    rec.dispatch({ShaderId::kPagedAttentionCm2,
                  {tn.attention.cm2_workgroup, uint32_t(d.head_dim), br, a.rows_sorted ? 1u : 0u,
                   tn.attention.cm2_hoist ? 1u : 0u}},
                 {a.q, a.q_pos, a.k_pool, a.v_pool, a.pos_pool, a.block_table, a.lens,
                  n_split > 1 ? a.scratch : a.out},
                 push, {tiles, uint32_t(d.n_kv_heads), uint32_t(n_split)});
    return n_split > 1 && record_combine(rec, a, d, n_split);
  }
  if (d.n_q * d.group >= kAttnCoopmatMinRows &&
      attn_coopmat_fits(rec.caps(), tn, api, d.head_dim)) {
    const uint32_t nsg = tn.attention.coopmat_subgroups;
    const AttnPush push = attn_push(d, a, 1);
    const uint32_t tiles = div_up(d.n_q * d.group, 16 * nsg);
    KVZ_CHECK(tiles <= 65535 && d.n_kv_heads <= 65535, "paged_attention: grid {} x {}", tiles,
              d.n_kv_heads);
    rec.dispatch(
        attn_coopmat_kernel(rec.caps(), api, ShaderId::kPagedAttentionCoopmat,
                            ShaderId::kPagedAttentionCoopmatKhr,
                            {32 * nsg, uint32_t(d.head_dim), nsg, tn.attention.bench_skip_phases,
                             a.rows_sorted ? 1u : 0u, kv_type_code(a.k_pool.dtype()),
                             kv_type_code(a.v_pool.dtype())}),
        {a.q, a.q_pos, a.k_pool, a.v_pool, a.pos_pool, a.block_table, a.lens, a.out}, push,
        {tiles, uint32_t(d.n_kv_heads)});
    return false;
  }
  if (const auto plan = pick_decode(rec.caps(), tn.decode, d, a.allow_decode_kernel,
                                    !f16_pools(a.k_pool, a.v_pool)))
    return record_decode(rec, a, d, *plan);
  const int64_t max_rows = d.max_blocks * kKvBlockTokens;
  const Tiles t = pick_tiles(rec.caps(), d.head_dim, d.n_q * d.group);
  int n_split = pick_splits(d.n_q, d.n_heads, max_rows);
  const int64_t need = paged_attention_scratch_elems(rec.device(), int(d.n_q), int(d.n_heads),
                                                     int(d.head_dim), int(max_rows));
  if (!a.scratch.defined()) n_split = 1;
  KVZ_CHECK(n_split == 1 || (a.scratch.dtype() == DType::kF32 && a.scratch.numel() >= need),
            "paged_attention: scratch {} < {} f32 elements", a.scratch.shape_str(), need);
  const AttnPush push = attn_push(d, a, uint32_t(n_split));
  const uint32_t tiles = div_up(d.n_q * d.group, t.qt);
  KVZ_CHECK(tiles <= 65535 && d.n_kv_heads <= 65535, "paged_attention: grid {} x {}", tiles,
            d.n_kv_heads);
  const Tensor& dst = n_split > 1 ? a.scratch : a.out;
  rec.dispatch({ShaderId::kPagedAttention,
                {t.hd, t.qt, t.kt, kv_type_code(a.k_pool.dtype()), kv_type_code(a.v_pool.dtype())}},
               {a.q, a.q_pos, a.k_pool, a.v_pool, a.pos_pool, a.block_table, a.lens, dst}, push,
               {tiles, uint32_t(d.n_kv_heads), uint32_t(n_split)});
  return n_split > 1 && record_combine(rec, a, d, n_split);
}

}  // namespace

void paged_attention(Recorder& rec, const PagedAttentionArgs& a) {
  const cpu::AttnDims d = cpu::check_paged_attention(a);
  KVZ_CHECK(!a.x8.defined() || quantize_x8_fits(a.out, a.x8), "paged_attention: x8 {} for out {}",
            a.x8.shape_str(), a.out.shape_str());
  if (d.n_q == 0) return;
  if (!record_paged_attention(rec, a, d) && a.x8.defined()) quantize_x8(rec, a.out, a.x8);
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
  const CoopmatApi api = coopmat_api(rec.caps(), rec.tuning());
  const uint32_t ktype = kv_type_code(a.k_pool.dtype());
  if (attn_coopmat_fits(rec.caps(), rec.tuning(), api, d.head_dim)) {
    // Tensor cores (shaders/attn_score_coopmat.comp): 8 subgroups x 16 query rows for the
    // log-sum-exp pass, 4 subgroups x 16 chunk rows for the column maxima.
    constexpr uint32_t kLseSubgroups = 8, kMaxSubgroups = 4;
    KVZ_CHECK(a.q16.defined() && a.q16.dtype() == DType::kF16 &&
                  a.q16.numel() >= d.n_q * d.n_heads * d.head_dim,
              "attn_score: q16 scratch {} must hold [n_q {}, n_heads {}, head_dim {}] f16",
              a.q16.shape_str(), d.n_q, d.n_heads, d.head_dim);
    const uint32_t hd = uint32_t(d.head_dim);
    const uint32_t q_tiles = div_up(d.n_q * d.group, 16 * kLseSubgroups),
                   k_tiles = div_up(a.t1 - a.t0, 16 * kMaxSubgroups);
    KVZ_CHECK(q_tiles <= 65535 && k_tiles <= 65535, "attn_score: grid {} / {}", q_tiles, k_tiles);
    rec.dispatch(attn_coopmat_kernel(rec.caps(), api, ShaderId::kAttnScoreCoopmatLse,
                                     ShaderId::kAttnScoreCoopmatLseKhr,
                                     {32 * kLseSubgroups, hd, kLseSubgroups, ktype}),
                 {a.q, a.k_pool, a.block_table, a.lse, a.q16}, push,
                 {q_tiles, uint32_t(d.n_kv_heads)});
    rec.dispatch(attn_coopmat_kernel(rec.caps(), api, ShaderId::kAttnScoreCoopmatMax,
                                     ShaderId::kAttnScoreCoopmatMaxKhr,
                                     {32 * kMaxSubgroups, hd, kMaxSubgroups, ktype}),
                 {a.q, a.k_pool, a.block_table, a.lse, a.score, a.q16}, push,
                 {k_tiles, uint32_t(d.n_kv_heads)});
    return;
  }
  const Tiles t = pick_tiles(rec.caps(), d.head_dim, d.n_q * d.group);
  // Both passes take 16 KiB query tiles (the tiled kernels' 8 KiB x 2): per thread twice the
  // (row, key) pairs per shared key read and barrier, half the key reloads (pass 1) and query
  // reloads (pass 2).
  // At most 8 pairs per thread (registers; unrolled code that software drivers compile slowly).
  uint32_t qt = std::max<uint32_t>(t.qt, std::min<uint32_t>(8 * kWg / t.kt, 4096 / t.hd));
  while (qt > t.qt && qt / 2 >= d.n_q * d.group) qt /= 2;
  const uint64_t shared_bytes = 4ull * (qt * t.hd + t.kt * (t.hd / 2 + 1) + qt + 3 * kWg);
  if (rec.caps().shared_memory_bytes && shared_bytes > rec.caps().shared_memory_bytes) qt = t.qt;
  const uint32_t q_tiles = div_up(d.n_q * d.group, qt), k_tiles = div_up(a.t1 - a.t0, t.kt);
  KVZ_CHECK(q_tiles <= 65535 && k_tiles <= 65535, "attn_score: grid {} / {}", q_tiles, k_tiles);
  const Kernel lse{ShaderId::kAttnScoreLse, {t.hd, qt, t.kt, ktype}};
  rec.dispatch(lse, {a.q, a.k_pool, a.block_table, a.lse}, push, {q_tiles, uint32_t(d.n_kv_heads)});
  const Kernel colmax{ShaderId::kAttnScoreMax, {t.hd, qt, t.kt, ktype}};
  rec.dispatch(colmax, {a.q, a.k_pool, a.block_table, a.lse, a.score}, push,
               {k_tiles, uint32_t(d.n_kv_heads)});
}

}  // namespace kvz
