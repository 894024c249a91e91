// Matmul / matvec / embedding: validation, variant choice (in one place: pick_* below) and
// dispatch (runtime/ops). CPU paths live in runtime/cpu/matmul_cpu.cpp.
#include "runtime/ops/matmul.h"

#include <algorithm>
#include <array>
#include <bit>
#include <vector>

#include "runtime/cpu/matmul_cpu.h"
#include "runtime/ops/binding_chunks.h"
#include "runtime/ops/matmul_detail.h"

namespace kvz {
namespace {

// Shader variants per weight DType come from the generated registry (shaders/CMakeLists.txt:
// one variant per type, cmake/embed_spirv.cmake's families); f32 weights have no tensor-core
// variant: rounding them to f16 would drop the precision they were stored with.
constexpr ShaderId kNone = ShaderId::kCount;
static_assert(kShaderFamilyTypes == static_cast<uint32_t>(DType::kSentinel),
              "cmake/embed_spirv.cmake KVZ_WEIGHT_TYPES must list every DType in order");

bool is_weight_type(DType t) { return t < DType::kSentinel && t != DType::kI32; }

ShaderId variant(ShaderFamily family, DType t) {
  return shader_for(family, static_cast<uint32_t>(t));
}

void check_gpu_weight(const Recorder& rec, DType t, const char* op) {
  if (t != DType::kF32 && !rec.caps().storage16)
    throw DeviceError(fmt::format("{}: {} weights need storageBuffer16BitAccess, which {} lacks",
                                  op, dtype_name(t), rec.caps().name));
}

// n: rows of the bound weight chunk; col0: its first row in the whole weight (= first y column
// written); ldy: y row stride (the whole weight's rows).
struct MatmulPush {
  uint32_t m, n, k, has_bias, col0, ldy;
};
static_assert(sizeof(MatmulPush) == 24);

// Tiled GEMM for m > 1: 64x64 output tile per workgroup of 256 threads (4x4 per thread).
Kernel pick_matmul(const Recorder&, DType t) {
  constexpr uint32_t kBm = 64, kBn = 64;
  return {variant(ShaderFamily::kMatmul, t), {(kBm / 4) * (kBn / 4), kBm, kBn}};
}
// Tensor-core GEMM (shaders/matmul_coopmat.comp): SG_M x SG_N subgroups per workgroup, each owning
// FM x FN fragments of 16x16 (f16 x f16 -> f32), STAGES shared k tiles of BK.
struct CoopmatTile {
  uint32_t sg_m, sg_n, fm, fn, stages, bk;
  uint32_t bm() const { return 16 * fm * sg_m; }
  uint32_t bn() const { return 16 * fn * sg_n; }
};
// Defaults from a tile sweep (bench/RESULTS.md, `bench/gpu_run.sh tiles`): one shared stage (half
// the shared memory, more workgroups per compute unit); f16/bf16 as 4 subgroups of 64 x 64
// (128 x 128 tiles), block types as 16 subgroups of 64 x 32 (256 x 128 tiles: each dequantised w
// tile serves twice the rows). Fewer than 256 tokens get 64 x 128 tiles so that more workgroups
// share the GPU.
constexpr CoopmatTile kCoopmatPlain = {2, 2, 4, 4, 1, 32}, kCoopmatBlocks = {4, 4, 4, 2, 1, 32},
                      kCoopmatSmall = {2, 2, 2, 4, 1, 32};
constexpr int64_t kCoopmatLargeMinTokens = 256;
// Where 128 x 128 tiles would not fill one round of resident workgroups (`slots`: occupancy units
// x MatmulTuning::coopmat_plain_per_unit, 0 where unknown), 64 x 128 tiles, twice as many, run
// faster; a full round keeps the large tile (bench/RESULTS.md, "Occupancy rules"). The caller
// passes 0 inside a Recorder::Concurrent group, whose dispatches fill the GPU together.
CoopmatTile default_coopmat_tile(DType t, int64_t m, int64_t n, uint32_t slots) {
  if (m < kCoopmatLargeMinTokens) return kCoopmatSmall;
  if (t != DType::kF16 && t != DType::kBF16) return kCoopmatBlocks;
  const int64_t tiles =
      div_up(m, int64_t(kCoopmatPlain.bm())) * div_up(n, int64_t(kCoopmatPlain.bn()));
  return slots > 0 && tiles < int64_t(slots) ? kCoopmatSmall : kCoopmatPlain;
}
uint32_t coopmat_shared_bytes(CoopmatTile t) {
  const uint32_t row_bytes = (t.bk + 8) * 2;  // bk staged halves + 16 bytes of padding
  return t.stages * (t.bm() + t.bn()) * row_bytes + t.sg_m * t.sg_n * 16 * 16 * 4;
}
bool coopmat_tile_fits(const DeviceCaps& caps, uint32_t sg, CoopmatTile t) {
  return sg * t.sg_m * t.sg_n <= caps.max_workgroup_invocations &&
         coopmat_shared_bytes(t) <= caps.shared_memory_bytes;
}
// The tile for m rows by n: opt.coopmat_tile (KVZ_MATMUL_TILE) where set, else the default for
// `slots` (default_coopmat_tile); an override the device cannot run (workgroup size, shared
// memory) is refused.
CoopmatTile pick_coopmat_tile(const DeviceCaps& caps, uint32_t sg, DType wt, int64_t m, int64_t n,
                              uint32_t slots, const MatmulTuning& opt) {
  const std::array<uint32_t, 6>& o = opt.coopmat_tile;
  if (o[0] == 0) return default_coopmat_tile(wt, m, n, slots);
  const CoopmatTile t{o[0], o[1], o[2], o[3], o[4], o[5]};
  // A tuning override is user input: a clear error, not an abort.
  if (!std::all_of(o.begin(), o.begin() + 5, [](uint32_t v) { return v >= 1 && v <= 8; }) ||
      t.stages > 2 || (t.bk != 32 && t.bk != 64) || !coopmat_tile_fits(caps, sg, t))
    throw DeviceError(
        fmt::format("matmul_coopmat: tile {}x{} subgroups of {}x{} fragments, {} stages of k {} "
                    "(KVZ_MATMUL_TILE or MatmulTuning) does not fit {} ({} bytes of shared "
                    "memory, {} invocations)",
                    t.sg_m, t.sg_n, t.fm, t.fn, t.stages, t.bk, caps.name, caps.shared_memory_bytes,
                    caps.max_workgroup_invocations));
  return t;
}
Kernel pick_matmul_coopmat(const Recorder& rec, CoopmatApi api, DType t, int64_t m, int64_t n,
                           const MatmulTuning& opt, uint32_t& bm, uint32_t& bn) {
  const uint32_t sg = coopmat_subgroup_size(rec.caps(), api);
  const uint32_t slots =
      rec.in_concurrent() ? 0 : rec.tuning().occupancy_units * opt.coopmat_plain_per_unit;
  const CoopmatTile tile = pick_coopmat_tile(rec.caps(), sg, t, m, n, slots, opt);
  bm = tile.bm();
  bn = tile.bn();
  return {variant(uses_khr_modules(api) ? ShaderFamily::kMatmulCoopmatKhr
                                        : ShaderFamily::kMatmulCoopmat,
                  t),
          {sg * tile.sg_m * tile.sg_n, tile.sg_m, tile.sg_n, tile.fm, tile.fn, opt.coopmat_group_m,
           tile.stages, tile.bk},
          coopmat_required_subgroup_size(rec.caps(), api)};
}
// VK_NV_cooperative_matrix2 GEMM (shaders/matmul_cm2.comp) for f16 weights: one BM x BN
// workgroup-scope accumulator per workgroup of kCm2Workgroup invocations, k tiles of BK.
// Opt-in (MatmulTuning::cm2_matmul): with f32 activations it ran slower than the KHR kernel
// (bench/RESULTS.md), so by default the cm2 api multiplies with the KHR one. A tile override
// (MatmulTuning::cm2_tile) must be multiples of the device's granularities and at most its largest
// dimension.
struct Cm2Tile {
  uint32_t bm, bn, bk;
};
constexpr Cm2Tile kCm2Large = {128, 256, 32}, kCm2Small = {64, 128, 32};
bool cm2_tile_fits(const DeviceCaps& caps, Cm2Tile t) {
  const CoopMat2Shape* s = coopmat2_f16_shape(caps, kCm2Workgroup);
  const uint32_t most = caps.coopmat2_max_dimension;
  return s && s->m_gran && s->n_gran && s->k_gran && t.bm % s->m_gran == 0 &&
         t.bn % s->n_gran == 0 && t.bk % s->k_gran == 0 &&
         (!most || std::max({t.bm, t.bn, t.bk}) <= most);
}
Kernel pick_matmul_cm2(const Recorder& rec, const MatmulTuning& opt, int64_t m, uint32_t& bm,
                       uint32_t& bn) {
  Cm2Tile t = m >= kCoopmatLargeMinTokens ? kCm2Large : kCm2Small;
  if (opt.cm2_tile[0] != 0) {
    t = {opt.cm2_tile[0], opt.cm2_tile[1], opt.cm2_tile[2]};
    if (!cm2_tile_fits(rec.caps(), t))  // a tuning override is user input
      throw DeviceError(fmt::format("matmul_cm2: tile {}x{}x{} (KVZ_CM2_TILE) does not fit {}",
                                    t.bm, t.bn, t.bk, rec.caps().name));
  }
  bm = t.bm;
  bn = t.bn;
  return {ShaderId::kMatmulCm2, {kCm2Workgroup, t.bm, t.bn, t.bk, opt.coopmat_group_m}};
}

constexpr uint32_t kMatvecMaxVariant = 4;
constexpr uint32_t kMatvecWideRows = 4;  // matvec_wide: x prepared once per unit serves more rows

// Decode matvec: NR rows per workgroup; subgroupAdd reduction where the device has it. Q4_K
// variants 2, 3 and 4 are shaders/matvec_wide.comp (int8 dot with OpSDot where available).
Kernel pick_matvec(const Recorder& rec, DType t, const MatmulTuning& opt, bool has_x8,
                   uint32_t& rows_per_wg) {
  const DeviceCaps& caps = rec.caps();
  const uint32_t v = detail::matvec_variant(t, opt, has_x8);
  KVZ_CHECK(v <= kMatvecMaxVariant, "matvec: variant {} (0..{})", v, kMatvecMaxVariant);
  const bool wide = t == DType::kQ4_K && v >= 2;
  rows_per_wg = opt.matvec_rows ? opt.matvec_rows : wide ? kMatvecWideRows : 2;
  const bool sub = opt.allow_subgroup && caps.subgroup_arith && caps.subgroup_size >= 4 &&
                   caps.subgroup_size <= 128;
  uint32_t wg = sub ? std::max<uint32_t>(caps.subgroup_size, 64) : 64;
  if (opt.matvec_wg) {
    wg = opt.matvec_wg;
    KVZ_CHECK(std::has_single_bit(wg) && wg <= 1024 && wg <= caps.max_workgroup_invocations &&
                  (!sub || (wg % caps.subgroup_size == 0 && wg / caps.subgroup_size <= 32)),
              "matvec: workgroup size {}", wg);
  }
  // Shared partial sums of matvec.comp / matvec_wide.comp: NR x 32 (subgroups) or NR x 1024.
  const uint64_t shared_bytes = 4ull * rows_per_wg * (sub ? 32 : 1024);
  KVZ_CHECK(
      rows_per_wg >= 1 && (!caps.shared_memory_bytes || shared_bytes <= caps.shared_memory_bytes),
      "matvec: {} rows per workgroup need {} bytes of shared memory", rows_per_wg, shared_bytes);
  if (wide) {
    const bool idot = v >= 3 && opt.allow_int_dot && caps.int8_dot;
    const ShaderId id =
        sub ? (idot ? ShaderId::kMatvecWideQ4KSubgroupIdot : ShaderId::kMatvecWideQ4KSubgroup)
            : (idot ? ShaderId::kMatvecWideQ4KIdot : ShaderId::kMatvecWideQ4K);
    return {id, {wg, rows_per_wg, v}};
  }
  return {variant(sub ? ShaderFamily::kMatvecSubgroup : ShaderFamily::kMatvec, t),
          {wg, rows_per_wg, v}};
}

// Whether the tensor-core matmul of an [n, k] chunk of block weights first dequantises it into
// a.w_scratch (MatmulArgs): from kMatmulDequantMinTokens rows on, where the pass (n k (2 + bits /
// 8) bytes of traffic) costs less than dequantising every w tile once per tile of rows.
// dequant_pass_applies holds the conditions on the weight and the rows alone (matmul_scratch_elems
// sizes the scratch by them); uses_dequant_pass adds the scratch given.
constexpr uint32_t kDequantWg = 256;
bool dequant_pass_applies(const DeviceCaps& caps, DType wt, int64_t m, int64_t n, int64_t k) {
  return m >= kMatmulDequantMinTokens && variant(ShaderFamily::kDequantF16, wt) != kNone &&
         uint64_t(n * k) * 2 <= caps.max_storage_buffer_range;
}
bool uses_dequant_pass(const DeviceCaps& caps, const MatmulArgs& a, DType wt, int64_t m, int64_t n,
                       int64_t k) {
  return dequant_pass_applies(caps, wt, m, n, k) && a.w_scratch.defined() &&
         a.w_scratch.dtype() == DType::kF16 && a.w_scratch.numel() >= n * k;
}

// One dispatch of y[:, col0 .. col0 + n_c) = x . w_c^T (+ bias) for the row chunk w_c of the
// weight starting at row col0 (the whole weight when it fits one binding).
void matmul_chunk(Recorder& rec, const MatmulArgs& a, const RowChunk& c, const MatmulTuning& opt,
                  const Tensor& x8) {
  const DType wt = a.w.dtype();
  const int64_t m = a.x.rows(), k = a.x.cols(), n = c.t.dim(0);
  MatmulPush push{uint32_t(m),      uint32_t(n),         uint32_t(k), cpu::has_bias(a) ? 1u : 0u,
                  uint32_t(c.row0), uint32_t(a.y.cols())};
  const Tensor& bias = cpu::has_bias(a) ? a.bias : a.x;  // bound but unread without bias
  if (m == 1) {
    uint32_t nr = 0;
    Kernel kern = pick_matvec(rec, wt, opt, x8.defined(), nr);
    const uint32_t groups = div_up(n, nr), gx = std::min<uint32_t>(groups, 32768);
    const Tensor& x = detail::matvec_variant(wt, opt, x8.defined()) == 4 ? x8 : a.x;
    rec.dispatch(kern, {x, c.t, bias, a.y}, push, {gx, div_up(groups, gx)});
    return;
  }
  const CoopmatApi api = coopmat_api(rec.caps(), rec.tuning());
  const bool coopmat = opt.allow_coopmat && k % 8 == 0 &&
                       detail::coopmat_matmul_supported(rec.caps(), wt, api) &&
                       (opt.force_coopmat || m >= detail::kCoopmatMinTokens);
  if (coopmat) {
    // Many tokens and block weights: dequantise the chunk once into the f16 scratch (a barrier
    // orders the two dispatches), then multiply as f16.
    Tensor w = c.t;
    if (opt.allow_dequant_pass && uses_dequant_pass(rec.caps(), a, wt, m, n, k)) {
      BufferView view = a.w_scratch.mem();
      view.size_bytes = size_t(n * k) * 2;
      w = Tensor(view, DType::kF16, {n, k});
      detail::dequantize_f16(rec, c.t, w);
    }
    uint32_t bm = 0, bn = 0;
    const bool cm2 = api == CoopmatApi::kCm2 && opt.cm2_matmul && w.dtype() == DType::kF16 &&
                     opt.coopmat_tile[0] == 0 && cm2_tile_fits(rec.caps(), kCm2Large) &&
                     cm2_tile_fits(rec.caps(), kCm2Small);
    Kernel kern = cm2 ? pick_matmul_cm2(rec, opt, m, bm, bn)
                      : pick_matmul_coopmat(rec, api, w.dtype(), m, n, opt, bm, bn);
    const uint32_t tiles = div_up(n, bn) * div_up(m, bm), gx = std::min<uint32_t>(tiles, 32768);
    rec.dispatch(kern, {a.x, w, bias, a.y}, push, {gx, div_up(tiles, gx)});
    return;
  }
  Kernel kern = pick_matmul(rec, wt);
  rec.dispatch(kern, {a.x, c.t, bias, a.y}, push,
               {div_up(n, kern.spec[2]), div_up(m, kern.spec[1])});
}

}  // namespace

std::pair<uint32_t, uint32_t> detail::coopmat_default_tile(DType t, int64_t m, int64_t n,
                                                           uint32_t slots) {
  const CoopmatTile tile = default_coopmat_tile(t, m, n, slots);
  return {tile.bm(), tile.bn()};
}

bool detail::coopmat_matmul_supported(const DeviceCaps& caps, DType t, CoopmatApi api) {
  if (api == CoopmatApi::kOff || !is_weight_type(t) ||
      variant(ShaderFamily::kMatmulCoopmat, t) == kNone)
    return false;
  const uint32_t sg = coopmat_subgroup_size(caps, api);
  return coopmat_api_usable(caps, api) && sg >= 8 && sg <= 64 &&
         coopmat_tile_fits(caps, sg, default_coopmat_tile(t, kCoopmatLargeMinTokens, 0, 0)) &&
         coopmat_tile_fits(caps, sg, kCoopmatSmall);
}

void detail::dequantize_f16(Recorder& rec, const Tensor& w, const Tensor& y) {
  const DType wt = w.dtype();
  const int64_t n = w.rows(), k = w.cols();
  KVZ_CHECK(variant(ShaderFamily::kDequantF16, wt) != kNone && y.dtype() == DType::kF16 &&
                y.rows() == n && y.cols() == k && k % dtype_info(wt).block_elems == 0,
            "dequantize_f16: w {} -> y {}", w.shape_str(), y.shape_str());
  KVZ_CHECK(!rec.is_cpu(), "dequantize_f16: a GPU pre-pass");
  const uint32_t groups = div_up(div_up(n * k, 8), kDequantWg),
                 gx = std::min<uint32_t>(groups, 32768);
  struct Push {
    uint32_t n, k;
  };
  rec.dispatch(Kernel{variant(ShaderFamily::kDequantF16, wt), {kDequantWg}}, {w, y},
               Push{uint32_t(n), uint32_t(k)}, {gx, div_up(groups, gx)});
}

int64_t matmul_scratch_elems(const Device& dev, const Tensor& w, int64_t max_m) {
  const DeviceCaps& caps = dev.caps();
  const DType t = w.dtype();
  const int64_t n = w.rows(), k = w.cols();
  const bool used = is_weight_type(t) && dequant_pass_applies(caps, t, max_m, n, k) && k % 8 == 0 &&
                    detail::coopmat_matmul_supported(caps, DType::kF16, coopmat_api(dev));
  return used ? n * k : 0;
}

uint32_t detail::matvec_variant(DType, const MatmulTuning& opt, bool has_x8) {
  return opt.matvec_variant == 4 && !has_x8 ? 3 : opt.matvec_variant;
}

void matmul(Recorder& rec, const MatmulArgs& a) {
  detail::matmul_with(rec, a, rec.tuning().matmul);
}

void detail::matmul_with(Recorder& rec, const MatmulArgs& a, const MatmulTuning& opt,
                         const Tensor& x8_scratch) {
  const DType wt = a.w.dtype();
  KVZ_CHECK(is_weight_type(wt), "matmul: weights of type {}", dtype_name(wt));
  KVZ_CHECK(a.x.dtype() == DType::kF32 && a.y.dtype() == DType::kF32, "matmul: x {} y {} (f32)",
            a.x.shape_str(), a.y.shape_str());
  const int64_t m = a.x.rows(), k = a.x.cols(), n = a.w.numel() / std::max<int64_t>(1, k);
  KVZ_CHECK(a.w.ndim() == 2 && a.w.cols() == k && a.y.rows() == m && a.y.cols() == n,
            "matmul: x {} . w {}^T -> y {}", a.x.shape_str(), a.w.shape_str(), a.y.shape_str());
  KVZ_CHECK(k % dtype_info(wt).block_elems == 0, "matmul: k {} not a multiple of the {} block", k,
            dtype_name(wt));
  KVZ_CHECK(!cpu::has_bias(a) || (a.bias.dtype() == DType::kF32 && a.bias.numel() == n),
            "matmul: bias {} for n {}", a.bias.shape_str(), n);
  if (m == 0 || n == 0) return;
  if (rec.is_cpu()) return cpu::matmul_fast(a);
  check_gpu_weight(rec, wt, "matmul");
  // x rounded by the caller (MatmulArgs::x8): variant 4 on it, unless the tuning picks another
  // variant for a measurement.
  const bool given_x8 = m == 1 && a.x8.defined() && wt == DType::kQ4_K && opt.matvec_variant == 0;
  MatmulTuning o = opt;
  Tensor x8 = x8_scratch;
  if (given_x8) {
    KVZ_CHECK(a.x8.nbytes() >= 4 * uint64_t(matvec_x8_elems(k)), "matvec: x8 {} for k {}",
              a.x8.shape_str(), k);
    o.matvec_variant = 4, x8 = a.x8;
  } else if (m == 1 && detail::matvec_variant(wt, opt, x8.defined()) == 4) {
    quantize_x8(rec, a.x, x8);  // rounded once for every chunk
  }
  // A weight above maxStorageBufferRange is bound as row chunks; each writes its y columns.
  for (const RowChunk& c : binding_chunks(a.w, rec.caps())) matmul_chunk(rec, a, c, o, x8);
}

bool quantize_x8_fits(const Tensor& x, const Tensor& x8) {
  const int64_t k = x.numel();
  return x.dtype() == DType::kF32 && k % 256 == 0 &&
         x8.nbytes() >= 4 * uint64_t(matvec_x8_elems(k));
}

void quantize_x8(Recorder& rec, const Tensor& x, const Tensor& x8) {
  const int64_t k = x.numel();
  KVZ_CHECK(quantize_x8_fits(x, x8), "quantize_x8: x {} -> x8 {} (f32, k % 256 == 0)",
            x.shape_str(), x8.shape_str());
  if (rec.is_cpu()) return cpu::quantize_x8_ref(x, x8);
  const uint32_t push = uint32_t(k);
  constexpr uint32_t kWg = 64;
  rec.dispatch({ShaderId::kQuantizeX8, {kWg}}, {x, x8}, push, {div_up(k / 32, kWg)});
}

bool matvec_uses_x8(const Device& dev, DType t) {
  return t == DType::kQ4_K && dev.kind() != BackendKind::kCpu;
}

void embedding(Recorder& rec, const EmbeddingArgs& a) {
  const DType wt = a.table.dtype();
  KVZ_CHECK(is_weight_type(wt), "embedding: table of type {}", dtype_name(wt));
  KVZ_CHECK(a.ids.dtype() == DType::kI32 && a.y.dtype() == DType::kF32,
            "embedding: ids {} (i32) y {} (f32)", a.ids.shape_str(), a.y.shape_str());
  const int64_t n = a.ids.numel(), d = a.table.cols();
  KVZ_CHECK(a.table.ndim() == 2 && a.y.rows() == n && a.y.cols() == d,
            "embedding: table {} ids {} -> y {}", a.table.shape_str(), a.ids.shape_str(),
            a.y.shape_str());
  if (n == 0) return;
  if (rec.is_cpu()) return cpu::embedding_ref(a);
  check_gpu_weight(rec, wt, "embedding");
  constexpr uint32_t kWg = 64;
  struct Push {
    uint32_t n_tokens, d;
    float scale;
    uint32_t row0, n_rows;
  };
  // A table above maxStorageBufferRange is bound as row chunks, one dispatch each; a dispatch
  // writes only the tokens whose id lies in its chunk, so the chunks write disjoint rows of y.
  const std::vector<RowChunk> chunks = binding_chunks(a.table, rec.caps());
  std::optional<Recorder::Concurrent> group;
  if (chunks.size() > 1) group.emplace(rec);
  for (const RowChunk& c : chunks) {
    const Push push{uint32_t(n), uint32_t(d), a.scale, uint32_t(c.row0), uint32_t(c.t.dim(0))};
    rec.dispatch({variant(ShaderFamily::kEmbedding, wt), {kWg}}, {a.ids, c.t, a.y}, push,
                 {uint32_t(n), div_up(d, 4 * kWg)});
  }
}

}  // namespace kvz
