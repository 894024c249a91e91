// Attention benchmarks (bench/), Llama-3-8B head shapes (32 query / 8 KV heads, head_dim 128):
// paged decode over a 128K-token cache (full and ragged 30 % kept; decode kernel and, _tiled, the
// prefill kernel) and a 32K one, ragged 30 % also with q8_0 / q4_0 K and V (docs/KVQUANT.md); 4K
// and 16K causal prefill; the KVzip phases' attention at 32K (the last 2048-token prefill chunk, a
// reconstruction chunk over the whole context); KVzip reconstruction scoring (chunk 2000). GPU time
// from timestamp queries; counters GB/s (K/V bytes read) and TFLOP/s (2 flops per multiply-add of
// QK^T and PV over visible rows).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "bench/bench_timing.h"
#include "runtime/cpu/half.h"
#include "runtime/device.h"
#include "runtime/kv_quant.h"
#include "runtime/ops/coopmat.h"
#include "runtime/ops/paged_attention.h"

namespace kvz {
namespace {

Device& bench_device() { return bench::device(); }

constexpr int kHeads = 32, kKvHeads = 8, kHeadDim = 128;

// Device tensors of one problem: every KV head owns consecutive blocks; row t sits at position t.
struct AttnProblem {
  std::vector<Buffer> keep;
  PagedAttentionArgs attn;
  AttnScoreArgs score;
  int64_t rows_read = 0;     // K/V rows summed over KV heads
  double visible_pairs = 0;  // (query head, row) pairs summed, for FLOPs
  double kv_row_bytes_ = 0;  // bytes of one stored K (or V) row

  Device& dev;

  Tensor alloc(DType dt, std::initializer_list<int64_t> shape, const void* src = nullptr) {
    Tensor probe(BufferView{0, 0, SIZE_MAX, nullptr}, dt, shape);
    keep.push_back(dev.alloc(probe.nbytes()));
    Tensor t = keep.back().tensor(dt, shape);
    if (src) dev.upload(t, src);
    return t;
  }

  // lens: rows per KV head; n_q queries at positions q_pos0 + i; K and V stored as kv_type.
  AttnProblem(Device& device, const std::vector<int>& lens, int n_q, int q_pos0,
              DType kv_type = DType::kF16)
      : dev(device) {
    const int max_len = *std::max_element(lens.begin(), lens.end());
    const int max_blocks = (max_len + kKvBlockTokens - 1) / kKvBlockTokens;
    const int64_t n_blocks = int64_t(kKvHeads) * max_blocks;
    std::vector<int32_t> table(n_blocks), pos(n_blocks * kKvBlockTokens);
    for (int64_t b = 0; b < n_blocks; ++b) table[b] = int32_t(b);
    for (size_t s = 0; s < pos.size(); ++s) pos[s] = int32_t(s % (size_t(max_blocks) * 32));
    const size_t n_rows = size_t(n_blocks) * kKvBlockTokens, rb = kv_row_bytes(kv_type, kHeadDim);
    std::vector<uint8_t> kv(n_rows * rb);
    std::vector<float> row(kHeadDim);
    for (size_t r = 0; r < n_rows; ++r) {
      for (int c = 0; c < kHeadDim; ++c) row[c] = std::sin(float(r * kHeadDim + c) * 0.37f);
      cpu::quantize_kv_row(kv_type, row.data(), kv.data() + r * rb, kHeadDim);
    }
    kv_row_bytes_ = double(rb);
    std::vector<float> q(size_t(n_q) * kHeads * kHeadDim);
    for (size_t i = 0; i < q.size(); ++i) q[i] = std::cos(float(i) * 0.11f);
    std::vector<int32_t> q_pos(n_q);
    for (int i = 0; i < n_q; ++i) q_pos[i] = q_pos0 + i;
    PagedAttentionArgs& a = attn;
    a.q = alloc(DType::kF32, {n_q, kHeads, kHeadDim}, q.data());
    a.q_pos = alloc(DType::kI32, {n_q}, q_pos.data());
    a.k_pool = alloc(kv_type, {n_blocks, kKvBlockTokens, kHeadDim}, kv.data());
    a.v_pool = alloc(kv_type, {n_blocks, kKvBlockTokens, kHeadDim}, kv.data());
    a.pos_pool = alloc(DType::kI32, {n_blocks, kKvBlockTokens}, pos.data());
    a.block_table = alloc(DType::kI32, {kKvHeads, max_blocks}, table.data());
    a.lens = alloc(DType::kI32, {kKvHeads}, lens.data());
    a.out = alloc(DType::kF32, {n_q, kHeads, kHeadDim});
    a.scale = 1.0f / std::sqrt(float(kHeadDim));
    a.rows_sorted = true;  // row t of every head holds position t, as a KvCache would
    a.total_rows = std::accumulate(lens.begin(), lens.end(), int64_t(0));  // as the forward does
    const int64_t scratch = std::max(
        paged_attention_scratch_elems(dev, n_q, kHeads, kHeadDim, max_blocks * kKvBlockTokens),
        paged_attention_prefill_scratch_elems(dev, n_q, kHeads, kKvHeads, kHeadDim,
                                              max_blocks * kKvBlockTokens));
    if (scratch > 0) a.scratch = alloc(DType::kF32, {scratch});
    for (int h = 0; h < kKvHeads; ++h) {
      rows_read += lens[h];
      for (int i = 0; i < n_q; ++i)  // causal: query i sees rows with position <= q_pos0 + i
        visible_pairs += double(kHeads / kKvHeads) * std::min(lens[h], q_pos0 + i + 1);
    }
  }
};

// Runs `record` once for warm-up, then times it per iteration; sets the counters.
void time_it(benchmark::State& state, const std::function<void(Recorder&)>& record, double bytes,
             double flops) {
  bench::time_gpu(state, bench_device(), record, bytes, flops);
}

// Check of the device (both Vulkan kernels) against the CPU reference on a small decode with
// split-K, once per KV type (the same stored bytes on both sides).
bool check_decode_once(DType kv_type = DType::kF16) {
  static std::map<DType, bool> done;
  if (auto it = done.find(kv_type); it != done.end()) return it->second;
  const bool ok = [kv_type] {
    const std::vector<int> lens = {3000, 1000, 2900, 40, 2048, 700, 1500, 2999};
    static std::unique_ptr<Device> cpu_dev = open_device("cpu");
    std::vector<float> out[3];
    Device* devs[3] = {cpu_dev.get(), &bench_device(), &bench_device()};
    for (int i = 0; i < 3; ++i) {
      AttnProblem p(*devs[i], lens, 1, 2999, kv_type);
      p.attn.allow_decode_kernel = i != 2;
      Recorder rec(*devs[i]);
      paged_attention(rec, p.attn);
      rec.finish();
      out[i].resize(size_t(p.attn.out.numel()));
      devs[i]->download(p.attn.out, out[i].data());
    }
    for (int k = 1; k < 3; ++k)
      for (size_t i = 0; i < out[0].size(); ++i)
        if (!(std::fabs(out[k][i] - out[0][i]) < 1e-4)) return false;
    return true;
  }();
  done[kv_type] = ok;
  return ok;
}

// allow_decode_kernel false: the tiled (prefill) kernel, for comparison.
// kv_type: the K and V storage type (bytes counted as stored).
void bm_decode(benchmark::State& state, std::vector<int> lens, bool allow_decode_kernel,
               DType kv_type) {
  if (!check_decode_once(kv_type)) return state.SkipWithError("differs from the CPU reference");
  AttnProblem p(bench_device(), lens, 1, 1 << 30, kv_type);
  p.attn.allow_decode_kernel = allow_decode_kernel;
  state.SetLabel(paged_attention_uses_decode_kernel(bench_device(), p.attn) ? "decode" : "tiled");
  const double bytes = double(p.rows_read) * p.kv_row_bytes_ * 2;
  time_it(
      state, [&](Recorder& rec) { paged_attention(rec, p.attn); }, bytes,
      4.0 * kHeadDim * p.visible_pairs);
}

// n_q queries appended at positions cached.. after `cached` rows (0: a causal prefill from empty),
// K and V stored as kv_type.
void bm_prefill(benchmark::State& state, int n_q, int cached, DType kv_type) {
  if (!check_decode_once(kv_type)) return state.SkipWithError("differs from the CPU reference");
  AttnProblem p(bench_device(), std::vector<int>(kKvHeads, cached + n_q), n_q, cached, kv_type);
  const double bytes = double(p.rows_read) * p.kv_row_bytes_ * 2;
  time_it(
      state, [&](Recorder& rec) { paged_attention(rec, p.attn); }, bytes,
      4.0 * kHeadDim * p.visible_pairs);
}

// KVzip scoring of one 2000-token chunk: 30 sink rows, chunk rows [1000, 3000), a 2030-row
// reconstruction input at rows [8000, 10030) of every KV head; keys stored as kv_type.
void bm_attn_score(benchmark::State& state, DType kv_type) {
  if (!check_decode_once(kv_type)) return state.SkipWithError("differs from the CPU reference");
  const int n_q = 2030, n_sink = 30, t0 = 1000, t1 = 3000, s0 = 8000;
  AttnProblem p(bench_device(), std::vector<int>(kKvHeads, s0 + n_q), n_q, s0, kv_type);
  AttnScoreArgs& a = p.score;
  a.q = p.attn.q, a.k_pool = p.attn.k_pool, a.block_table = p.attn.block_table;
  a.score = p.alloc(DType::kF32, {kKvHeads, t1 - t0});
  a.lse = p.alloc(DType::kF32, {n_q, kHeads});
  a.q16 = p.alloc(DType::kF16, {n_q, kHeads, kHeadDim});
  a.n_sink = n_sink, a.t0 = t0, a.t1 = t1, a.s0 = s0, a.scale = p.attn.scale;
  const double pass1 = double(n_q) * (n_sink + (t1 - t0)) + double(n_q) * (n_q + 1) / 2;
  const double pass2 = double(n_q) * (t1 - t0);
  time_it(
      state, [&](Recorder& rec) { attn_score(rec, a); }, 0.0,
      2.0 * kHeadDim * kHeads * (pass1 + pass2));
}

// Ragged 30 % kept, uneven across heads (10 % .. 50 %), as after KVzip head-level eviction.
std::vector<int> ragged_lens(int full) {
  std::vector<int> lens;
  for (int h = 0; h < kKvHeads; ++h) lens.push_back(int(full * (0.1 + 0.4 * h / (kKvHeads - 1))));
  return lens;
}

const bool kRegistered = [] {
  constexpr int k128K = 128 * 1024;
  auto reg = [](const std::string& name, auto fn, auto... args) {
    benchmark::RegisterBenchmark(name.c_str(), fn, args...)
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  };
  // _tiled: the same decode on the prefill (tiled) kernel, the one used before paged_decode.comp.
  for (const bool fast : {true, false}) {
    const std::string sfx = fast ? "" : "_tiled";
    const DType f16 = DType::kF16;
    reg("BM_paged_attention/llama3_8b_decode_128k" + sfx, bm_decode,
        std::vector<int>(kKvHeads, k128K), fast, f16);
    reg("BM_paged_attention/llama3_8b_decode_128k_ragged30" + sfx, bm_decode, ragged_lens(k128K),
        fast, f16);
    reg("BM_paged_attention/llama3_8b_decode_32k" + sfx, bm_decode,
        std::vector<int>(kKvHeads, 32 * 1024), fast, f16);
    reg("BM_paged_attention/llama3_8b_decode_4k" + sfx, bm_decode,
        std::vector<int>(kKvHeads, 4 * 1024), fast, f16);
  }
  // Quantised K/V (docs/KVQUANT.md) against the f16 rows above: 30 % kept at 32K and 128K.
  for (const DType t : {DType::kF16, DType::kQ8_0, DType::kQ4_0})
    for (const int n : {32 * 1024, k128K})
      reg("BM_paged_attention/llama3_8b_decode_" + std::to_string(n / 1024) + "k_ragged30_kv_" +
              std::string(dtype_name(t)),
          bm_decode, ragged_lens(n), true, t);
  const DType f16 = DType::kF16;
  reg("BM_paged_attention/llama3_8b_prefill_4k_causal", bm_prefill, 4096, 0, f16);
  reg("BM_paged_attention/llama3_8b_prefill_16k_causal", bm_prefill, 16384, 0, f16);
  // The KVzip phases' shapes at 32K: the last 2048-token prefill chunk, and a reconstruction
  // chunk (2000 context tokens + prompt) over the whole 32K context.
  reg("BM_paged_attention/llama3_8b_prefill_chunk2048_after_30k", bm_prefill, 2048, 30720, f16);
  reg("BM_paged_attention/llama3_8b_reconstruct_2256_after_32k", bm_prefill, 2256, 32768, f16);
  reg("BM_attn_score/llama3_8b_chunk2000", bm_attn_score, f16);
  // The same over quantised K/V, against the f16 rows just above.
  for (const DType t : {DType::kQ8_0, DType::kQ4_0}) {
    const std::string sfx = "_kv_" + std::string(dtype_name(t));
    reg("BM_paged_attention/llama3_8b_prefill_chunk2048_after_30k" + sfx, bm_prefill, 2048, 30720,
        t);
    reg("BM_paged_attention/llama3_8b_reconstruct_2256_after_32k" + sfx, bm_prefill, 2256, 32768,
        t);
    reg("BM_attn_score/llama3_8b_chunk2000" + sfx, bm_attn_score, t);
  }
  benchmark::AddCustomContext(
      "kvz_attention_variant",
      "decode: paged_decode (key rows over subgroup lanes, 16-byte loads, split-K up to 128 "
      "shares/head + combine; label says which kernel ran); prefill and _tiled: flash tiles "
      "QTx32 keys, 128 threads, split-K up to 64 + combine");
  // Tensor-core prefill and scoring: which cooperative-matrix build ran (KVZ_COOPMAT=nv|khr|off).
  benchmark::AddCustomContext("kvz_coopmat",
                              std::string(coopmat_api_name(coopmat_api(bench_device()))));
  return true;
}();

}  // namespace
}  // namespace kvz
