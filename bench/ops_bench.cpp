// Kernel benchmarks (bench/): matmul (prefill, m = 512 and 4096) and matvec (decode, m = 1) on
// real-model weight shapes in f16 and q4_k; the prefill shapes also run the scalar kernel
// (`_scalar`) where the device has the tensor-core one. GPU time from timestamp queries (manual
// timing); counters TFLOP/s (2 m n k) and GB/s (weights + activations); device and driver in the
// context. KVZ_NO_COOPMAT=1 (or KVZ_COOPMAT=off) turns the tensor-core kernel off for the default
// cases too; KVZ_COOPMAT=nv|khr picks its cooperative-matrix extension.
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bench/bench_timing.h"
#include "runtime/cpu/dequant.h"
#include "runtime/device.h"
#include "runtime/ops/coopmat_peak.h"
#include "runtime/ops/matmul.h"
#include "runtime/ops/matmul_detail.h"

namespace kvz {
namespace {

Device& bench_device() { return bench::device(); }

// Random weights with moderate finite fp16 scales (as in tests/runtime/dequant_test.cpp).
std::vector<uint8_t> random_weights(DType t, int64_t n, int64_t k, uint64_t seed) {
  std::vector<uint8_t> raw(row_bytes(t, k) * size_t(n));
  uint64_t s = seed;
  auto next = [&s] {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    return s;
  };
  if (t == DType::kF16) {
    for (size_t i = 0; i < raw.size(); i += 2) {
      uint16_t h = cpu::f32_to_f16(float(int64_t(next() % 2001) - 1000) * 1e-3f);
      std::memcpy(&raw[i], &h, 2);
    }
    return raw;
  }
  for (size_t i = 0; i + 8 <= raw.size(); i += 8) {
    uint64_t v = next();
    std::memcpy(&raw[i], &v, 8);
  }
  const int bb = dtype_info(t).block_bytes;
  const uint16_t d = cpu::f32_to_f16(0.01f);
  for (size_t b = 0; b < raw.size() / bb; ++b)  // q4_k: d and dmin at bytes 0 and 2
    for (int off : {0, 2}) std::memcpy(&raw[b * bb + off], &d, 2);
  return raw;
}

struct Problem {
  std::vector<Buffer> keep;
  MatmulArgs args;
  Tensor x8;  // matvec variant 4 scratch: x rounded to int8, [matvec_x8_elems(k)] 32-bit
  Problem(Device& dev, DType t, int64_t m, int64_t n, int64_t k,
          std::vector<float>* x_out = nullptr, std::vector<uint8_t>* w_out = nullptr) {
    std::vector<float> x(size_t(m * k));
    for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(float(i) * 0.37f);
    auto w = random_weights(t, n, k, 0x9E3779B97F4A7C15ull ^ uint64_t(n * k));
    auto alloc = [&](DType dt, std::initializer_list<int64_t> shape, const void* src) {
      return kvz::bench::bench_tensor(dev, keep, dt, shape, src);
    };
    args.x = alloc(DType::kF32, {m, k}, x.data());
    args.w = alloc(t, {n, k}, w.data());
    args.y = alloc(DType::kF32, {m, n}, nullptr);
    if (m == 1) x8 = alloc(DType::kI32, {matvec_x8_elems(k)}, nullptr);
    if (x_out) *x_out = std::move(x);
    if (w_out) *w_out = std::move(w);
  }
};

// Checks the device result once against the CPU reference on a small shape of the same type and
// the same kernel choice. The tensor-core kernel rounds x and w to f16 (2 * 2^-11 relative).
bool check_once(DType t, int64_t m, const MatmulTuning& opt) {
  Device& dev = bench_device();
  const int64_t n = 96, k = 512;
  std::vector<float> x;
  std::vector<uint8_t> w;
  Problem p(dev, t, m, n, k, &x, &w);
  Recorder rec(dev);
  detail::matmul_with(rec, p.args, opt, p.x8);
  rec.finish();
  const double rel = double(k) * 1.2e-7 + (opt.allow_coopmat ? 1.0 / 1024 : 0.0);
  // Matvec variants 3, 4 round x to int8 per 32 values: each x value moves by <= amax_32 / 254.
  const bool int8_x = m == 1 && detail::matvec_variant(t, opt, p.x8.defined()) >= 3;
  std::vector<float> got(size_t(m * n)), ref(size_t(m * n)), wf(size_t(n * k));
  dev.download(p.args.y, got.data());
  cpu::dequantize_rows(t, w.data(), k, 0, n, wf.data());
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0, mag = 0, e8 = 0;
      for (int64_t c = 0; c < k; ++c) {
        s += double(x[i * k + c]) * wf[j * k + c];
        mag += std::fabs(double(x[i * k + c]) * wf[j * k + c]);
      }
      for (int64_t g = 0; int8_x && g < k; g += 32) {
        double amax = 0, sw = 0;
        for (int64_t c = g; c < g + 32; ++c)
          amax = std::max(amax, std::fabs(double(x[i * k + c]))), sw += std::fabs(wf[j * k + c]);
        e8 += 1.01 * amax / 254 * sw;
      }
      if (std::fabs(got[i * n + j] - s) > rel * mag + e8 + 1e-4) return false;
    }
  return true;
}

void run_matmul(benchmark::State& state, DType t, int64_t m, int64_t n, int64_t k,
                MatmulTuning opt) {
  // m 64 takes the same kernel as the timed m >= 32 (tensor cores where allowed and present).
  if (!check_once(t, m >= detail::kCoopmatMinTokens ? 64 : std::min<int64_t>(m, 3), opt)) {
    state.SkipWithError("result differs from the CPU reference");
    return;
  }
  Device& dev = bench_device();
  Problem p(dev, t, m, n, k);
  const double flops = 2.0 * double(m) * double(n) * double(k);
  const double bytes = double(p.args.w.nbytes() + p.args.x.nbytes() + p.args.y.nbytes());
  bench::time_gpu(
      state, dev, [&](Recorder& rec) { detail::matmul_with(rec, p.args, opt, p.x8); }, bytes,
      flops);
}

struct WeightShape {
  const char* name;
  int64_t n, k;
};
constexpr WeightShape kShapes[] = {
    {"llama3_8b_attn_4096x4096", 4096, 4096},        {"llama3_8b_ffn_up_14336x4096", 14336, 4096},
    {"llama3_8b_ffn_down_4096x14336", 4096, 14336},  {"qwen2_5_7b_ffn_up_18944x3584", 18944, 3584},
    {"qwen2_5_7b_ffn_down_3584x18944", 3584, 18944},
};
constexpr WeightShape kDecodeShapes[] = {
    {"llama3_8b_qkv_6144x4096", 6144, 4096},
    {"llama3_8b_ffn_gate_up_28672x4096", 28672, 4096},
    {"llama3_8b_lm_head_128256x4096", 128256, 4096},
};
constexpr int64_t kPrefillTokens = 512;
constexpr uint32_t kMatvecVariants = 4;  // MatmulTuning::matvec_variant 0..4 (Q4_K)

// The device's matmul tuning (its KVZ_* overrides included), for benchmarks to start from.
MatmulTuning device_matmul() { return bench_device().tuning().matmul; }

void register_matmul(const std::string& name, DType t, int64_t m, int64_t n, int64_t k,
                     const MatmulTuning& opt = device_matmul()) {
  benchmark::RegisterBenchmark(name.c_str(), run_matmul, t, m, n, k, opt)
      ->UseManualTime()
      ->Unit(benchmark::kMicrosecond);
}

// BM_matvec/<suffix>: the default matvec (KVZ_MATVEC_VARIANT applies); for Q4_K also
// BM_matvec/<suffix>_v<N>, each variant at its default workgroup size and rows, side by side.
void register_matvec_variants(const std::string& suffix, DType t, int64_t n, int64_t k) {
  register_matmul("BM_matvec/" + suffix, t, 1, n, k);
  if (t != DType::kQ4_K) return;
  for (uint32_t v = 0; v <= kMatvecVariants; ++v) {
    MatmulTuning o = device_matmul();
    o.matvec_variant = v;
    register_matmul(fmt::format("BM_matvec/{}_v{}", suffix, v), t, 1, n, k, o);
  }
}

// BM_coopmat_peak/<api>_<mode>_<sg_m>x<sg_n>x<fm>x<fn>: the tensor-core ceiling probe
// (runtime/ops/coopmat_peak.h), matmul_coopmat's inner loop with no global memory in it: 16
// workgroups per compute unit (or 2112) of `iters` 16-deep k steps. TFLOP/s is what a Vulkan kernel
// of that tile shape can reach: from registers alone, from shared memory, and with matmul's
// barrier per 32-deep tile.
void run_coopmat_peak(benchmark::State& state, CoopmatApi api, detail::CoopmatPeakArgs a) {
  Device& dev = bench_device();
  a.workgroups = 16 * (dev.caps().compute_units ? dev.caps().compute_units : 132);
  a.iters = 2048;
  std::vector<Buffer> keep;
  const int64_t rows = 16 * (a.fm * a.sg_m + a.fn * a.sg_n);
  keep.push_back(dev.alloc(size_t(rows * 32 * 2)));
  a.src = keep.back().tensor(DType::kF16, {rows, 32});
  std::vector<uint16_t> ones(size_t(rows * 32), 0x3C00);  // 1.0: sums stay finite
  dev.upload(a.src, ones.data());
  keep.push_back(dev.alloc(size_t(detail::coopmat_peak_outputs(a) * 4)));
  a.y = keep.back().tensor(DType::kF32, {detail::coopmat_peak_outputs(a)});
  bench::time_gpu(
      state, dev, [&](Recorder& rec) { detail::coopmat_peak(rec, api, a); }, 0,
      detail::coopmat_peak_flops(a));
}

void register_coopmat_peak(const DeviceCaps& caps) {
  constexpr std::pair<detail::CoopmatPeakMode, const char*> kModes[] = {
      {detail::CoopmatPeakMode::kRegisters, "registers"},
      {detail::CoopmatPeakMode::kShared, "shared"},
      {detail::CoopmatPeakMode::kSharedBarrier, "barrier"},
      {detail::CoopmatPeakMode::kSharedTwoBarriers, "two_barriers"}};
  for (CoopmatApi api : {CoopmatApi::kNv, CoopmatApi::kKhr}) {
    if (!coopmat_api_usable(caps, api)) continue;
    // matmul_coopmat's f16 tile (2 x 2 subgroups of 4 x 4 fragments) and 8 subgroups of 2 x 4;
    // c1 / c2: the shared memory of its one-stage / two-stage form.
    for (const auto [sg_m, sg_n, fm, fn] : {std::array<uint32_t, 4>{2, 2, 4, 4}, {4, 2, 2, 4}})
      for (const auto& [mode, mode_name] : kModes)
        for (const uint32_t copies : {1u, 2u}) {
          detail::CoopmatPeakArgs a;
          a.mode = mode, a.sg_m = sg_m, a.sg_n = sg_n, a.fm = fm, a.fn = fn, a.copies = copies;
          const std::string name =
              fmt::format("BM_coopmat_peak/{}_{}_c{}_{}x{}x{}x{}", coopmat_api_name(api), mode_name,
                          copies, sg_m, sg_n, fm, fn);
          benchmark::RegisterBenchmark(name.c_str(), run_coopmat_peak, api, a)
              ->UseManualTime()
              ->Unit(benchmark::kMicrosecond);
        }
  }
}

const bool kRegistered = [] {
  const DeviceCaps& caps = bench_device().caps();
  const CoopmatApi api = coopmat_api(bench_device());  // KVZ_COOPMAT=nv|khr|off picks it
  for (const WeightShape& s : kShapes)
    for (DType t : {DType::kF16, DType::kQ4_K}) {
      std::string suffix = std::string(s.name) + "_" + std::string(dtype_name(t));
      register_matmul("BM_matmul/" + suffix + "_m512", t, kPrefillTokens, s.n, s.k);
      if (detail::coopmat_matmul_supported(caps, t, api)) {
        MatmulTuning scalar = device_matmul();
        scalar.allow_coopmat = false;
        register_matmul("BM_matmul/" + suffix + "_m512_scalar", t, kPrefillTokens, s.n, s.k,
                        scalar);
        // The tile raster without grouping (n fastest), to show what grouping buys.
        MatmulTuning nfirst = device_matmul();
        nfirst.coopmat_group_m = 1;
        register_matmul("BM_matmul/" + suffix + "_m512_nfirst", t, kPrefillTokens, s.n, s.k,
                        nfirst);
      }
      register_matvec_variants(suffix, t, s.n, s.k);
      // Other shapes of the decode matvec: workgroup size, rows per workgroup, Q4_K variant
      // (wg 32 on 32-lane devices: one subgroup per workgroup owns its rows).
      for (uint32_t wg : {32u, 64u, 128u, 256u})
        for (uint32_t rows : {1u, 2u, 4u, 8u, 16u})
          for (uint32_t v = 0; v <= kMatvecVariants; ++v) {
            if (v > 0 && t != DType::kQ4_K) continue;
            if (rows == 16 && v < 2) continue;  // the wide variants share x over more rows
            if (wg % caps.subgroup_size != 0 || wg > caps.max_workgroup_invocations) continue;
            MatmulTuning o = device_matmul();
            o.matvec_wg = wg, o.matvec_rows = rows, o.matvec_variant = v;
            register_matmul(fmt::format("BM_matvec/{}_wg{}_r{}_v{}", suffix, wg, rows, v), t, 1,
                            s.n, s.k, o);
          }
    }
  // Decode-only shapes: the fused QKV and gate+up projections and the LM head.
  for (const WeightShape& s : kDecodeShapes)
    for (DType t : {DType::kF16, DType::kQ4_K})
      register_matvec_variants(std::string(s.name) + "_" + std::string(dtype_name(t)), t, s.n, s.k);
  // Square prefill GEMM, m = n = k = 4096 (LLaMA-3-8B attention projection over 4K tokens), and
  // the FFN up projection over 4K tokens.
  register_matmul("BM_matmul/llama3_8b_attn_4096x4096_f16_m4096", DType::kF16, 4096, 4096, 4096);
  register_matmul("BM_matmul/llama3_8b_ffn_up_14336x4096_f16_m4096", DType::kF16, 4096, 14336,
                  4096);
  if (detail::coopmat_matmul_supported(caps, DType::kF16, api)) {
    MatmulTuning scalar = device_matmul();
    scalar.allow_coopmat = false;
    register_matmul("BM_matmul/llama3_8b_attn_4096x4096_f16_m4096_scalar", DType::kF16, 4096, 4096,
                    4096, scalar);
  }
  register_coopmat_peak(caps);
  benchmark::AddCustomContext("kvz_device", caps.name);
  benchmark::AddCustomContext("kvz_driver", caps.driver);
  const bool coopmat = detail::coopmat_matmul_supported(caps, DType::kF16, api);
  benchmark::AddCustomContext(
      "kvz_matmul_variant",
      coopmat ? fmt::format("m >= 32: coopmat {} 16x16x16 f16->f32, one shared stage, k 32; "
                            "f16/bf16 128x128 tiles (4 subgroups), block types 256x128 (16); "
                            "64x128 below 256 tokens or where 128x128 tiles fill less than a round "
                            "(NVIDIA); grouped raster; _scalar: tiled 64x64x32 fp32",
                            coopmat_api_name(api))
              : "tiled 64x64x32, 4x4 per thread, 256 threads");
  benchmark::AddCustomContext("kvz_matvec_variant",
                              caps.subgroup_arith ? "2 rows/wg, subgroupAdd" : "2 rows/wg, shared");
  benchmark::AddCustomContext(
      "kvz_matvec_q4k_variants",
      fmt::format("_v0 contiguous lanes (default), _v1 earlier mapping, _v2 matvec_wide float "
                  "nibbles, _v3 matvec_wide int8 dot ({}), _v4 _v3 on x rounded by quantize_x8 "
                  "first; wide: 4 rows/wg; default variant {} (KVZ_MATVEC_VARIANT)",
                  caps.int8_dot ? "OpSDot" : "integer math", device_matmul().matvec_variant));
  return true;
}();

}  // namespace
}  // namespace kvz
