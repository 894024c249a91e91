// Tests of paged attention (tests/runtime): Vulkan and the fast CPU path vs the CPU reference on
// ragged paged caches, and the CPU reference vs a dense formula written here. Scoring:
// attn_score_test.cpp; the shared cache builders: paged_cache_util.h.
#include "runtime/ops/paged_attention.h"
#include "runtime/ops/matmul.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <string>
#include <tuple>

#include "runtime/cpu/attention_fast.h"
#include "runtime/cpu/half.h"
#include "runtime/cpu/qdot.h"
#include "runtime/kv_quant.h"
#include "runtime/ops/coopmat.h"
#include "tests/common/test_device.h"
#include "tests/runtime/paged_cache_util.h"

namespace kvz::test {
namespace {

struct Case {
  std::string name;
  int head_dim, n_heads, n_kv_heads, n_q, cached;  // cached: mean rows per head before the queries
  int window = 0;
  float softcap = 0;
  bool split = false;          // pass split-K scratch
  bool shuffle_pos = false;    // positions not monotonic in row order
  bool empty_head = false;     // the last KV head holds no rows at all
  int spare_blocks = 1;        // block-table capacity per head past the longest head
  bool max_rows_hint = false;  // pass PagedAttentionArgs::max_rows = the longest head
  bool block_runs = false;     // make_cache(runs): blocks mostly adjacent in the pool
  DType k_type = DType::kF16,
        v_type = DType::kF16;  // pool types (rows quantised from the f16 ones)
};

// tc with K / V stored as kt / vt, named after them.
Case with_kv(Case tc, DType kt, DType vt) {
  tc.k_type = kt, tc.v_type = vt;
  tc.name += "_k" + std::string(dtype_name(kt)) + "_v" + std::string(dtype_name(vt));
  return tc;
}

// Builds a prefill/decode problem: head h holds cached_h old rows (positions < base, with gaps;
// ragged across heads) followed by the n_q new rows at positions base + i; query i sits at base +
// i.
struct Problem {
  HostCache cache;
  std::vector<float> q;
  std::vector<int32_t> q_pos;
  float scale;
};

Problem make_problem(const Case& tc, uint64_t seed) {
  Rng rng(seed);
  std::vector<int> lens(tc.n_kv_heads);
  for (int h = 0; h < tc.n_kv_heads; ++h)
    lens[h] = tc.n_q + int(rng.next() % (2 * tc.cached + 1)) + (h == 0 ? 1 : 0);
  if (tc.empty_head) lens.back() = 0;
  Problem p{
      make_cache(rng, tc.n_kv_heads, tc.head_dim, lens, tc.spare_blocks, tc.block_runs), {}, {}, 0};
  const int32_t base = 3 * (tc.cached + 2);
  for (int h = 0; h < tc.n_kv_heads; ++h) {
    const int old = lens[h] - tc.n_q;
    std::vector<int32_t> ps;
    for (int t = 0; t < old; ++t) ps.push_back(int32_t(rng.next() % base));
    std::sort(ps.begin(), ps.end());
    for (int i = 0; i < tc.n_q; ++i) ps.push_back(base + i);
    if (tc.shuffle_pos) shuffle(rng, ps);
    for (int t = 0; t < lens[h]; ++t) p.cache.pos[p.cache.slot(h, t)] = ps[t];
  }
  p.q = rng.uniform_vec(size_t(tc.n_q) * tc.n_heads * tc.head_dim, -2, 2);
  for (int i = 0; i < tc.n_q; ++i) p.q_pos.push_back(base + i);
  p.scale = 1.0f / std::sqrt(float(tc.head_dim));
  return p;
}

// used_decode (optional): set to whether the op picked the decode kernel. x8 (optional, kOp only):
// also ask the op for the int8-rounded output (PagedAttentionArgs::x8) and return it there.
std::vector<float> run_attention(Device& dev, const Case& tc, const Problem& p,
                                 Path path = Path::kOp, bool* used_decode = nullptr,
                                 std::vector<int32_t>* x8 = nullptr) {
  std::vector<Buffer> keep;
  const DevCache c = upload_cache(dev, keep, p.cache, tc.k_type, tc.v_type);
  const int64_t nq = tc.n_q, nh = tc.n_heads, hd = tc.head_dim;
  PagedAttentionArgs a;
  a.q = upload_f32(dev, keep, {nq, nh, hd}, p.q);
  a.q_pos = upload(dev, keep, DType::kI32, {nq}, p.q_pos.data());
  a.k_pool = c.k, a.v_pool = c.v, a.pos_pool = c.pos, a.block_table = c.table, a.lens = c.lens;
  a.out = alloc_tensor(dev, keep, DType::kF32, {nq, nh, hd});
  a.scale = p.scale, a.window = tc.window, a.softcap = tc.softcap;
  a.rows_sorted = !tc.shuffle_pos;  // make_problem sorts each head's positions unless shuffled
  if (tc.max_rows_hint) a.max_rows = *std::max_element(p.cache.lens.begin(), p.cache.lens.end());
  if (tc.split) {
    const int max_rows = p.cache.max_blocks * kKvBlockTokens;
    const int64_t n =
        std::max(paged_attention_scratch_elems(dev, tc.n_q, tc.n_heads, tc.head_dim, max_rows),
                 paged_attention_prefill_scratch_elems(dev, tc.n_q, tc.n_heads, tc.n_kv_heads,
                                                       tc.head_dim, max_rows));
    EXPECT_GT(n, 0) << "case meant to split does not";
    if (n > 0) a.scratch = alloc_tensor(dev, keep, DType::kF32, {n});
  }
  if (path == Path::kRef) cpu::paged_attention_ref(a);
  if (path == Path::kFast1 || path == Path::kFast3)
    cpu::paged_attention_fast(a, path == Path::kFast1 ? 1 : 3);
  if (x8) a.x8 = alloc_tensor(dev, keep, DType::kI32, {matvec_x8_elems(nq * nh * hd)});
  if (path == Path::kOp || path == Path::kOpTiled) {
    a.allow_decode_kernel = path == Path::kOp;
    if (used_decode) *used_decode = paged_attention_uses_decode_kernel(dev, a);
    Recorder rec(dev);
    paged_attention(rec, a);
    rec.finish();
  }
  if (x8) *x8 = download_as<int32_t>(dev, a.x8);
  return download_f32(dev, a.out);
}

// Dense formula, independent of the reference's code path: gather each head's rows into dense
// K, V and position arrays, build the full mask, softmax in long double.
std::vector<float> dense_attention(const Case& tc, const Problem& p) {
  const HostCache& c = p.cache;
  const int hd = tc.head_dim, group = tc.n_heads / tc.n_kv_heads;
  std::vector<float> out(p.q.size());
  for (int h = 0; h < tc.n_kv_heads; ++h) {
    const int n = c.lens[h];
    std::vector<float> K(size_t(n) * hd), V(size_t(n) * hd);
    std::vector<int32_t> P(n);
    for (int t = 0; t < n; ++t) {
      P[t] = c.pos[c.slot(h, t)];
      for (int d = 0; d < hd; ++d) {
        K[size_t(t) * hd + d] = cpu::f16_to_f32(c.k[size_t(c.slot(h, t)) * hd + d]);
        V[size_t(t) * hd + d] = cpu::f16_to_f32(c.v[size_t(c.slot(h, t)) * hd + d]);
      }
    }
    for (int i = 0; i < tc.n_q; ++i)
      for (int g = 0; g < group; ++g) {
        const size_t qo = (size_t(i) * tc.n_heads + h * group + g) * hd;
        std::vector<long double> w(n, 0.0L);
        long double mx = -1e300L, sum = 0;
        for (int t = 0; t < n; ++t) {
          const bool vis = P[t] <= p.q_pos[i] && (tc.window == 0 || p.q_pos[i] - P[t] < tc.window);
          if (!vis) continue;
          long double s = 0;
          for (int d = 0; d < hd; ++d) s += (long double)p.q[qo + d] * K[size_t(t) * hd + d];
          s *= p.scale;
          if (tc.softcap > 0) s = tc.softcap * std::tanh(s / tc.softcap);
          w[t] = s, mx = std::max(mx, s);
        }
        for (int t = 0; t < n; ++t) {
          const bool vis = P[t] <= p.q_pos[i] && (tc.window == 0 || p.q_pos[i] - P[t] < tc.window);
          w[t] = vis ? std::exp(w[t] - mx) : 0.0L;
          sum += w[t];
        }
        for (int d = 0; d < hd; ++d) {
          long double acc = 0;
          for (int t = 0; t < n; ++t) acc += w[t] * V[size_t(t) * hd + d];
          out[qo + d] = sum > 0 ? float(acc / sum) : 0.0f;
        }
      }
  }
  return out;
}

// Outputs are convex combinations of |v| <= 1: f32 rounding grows with the rows summed and with
// the logit error (head_dim-long dots of |q| <= 2, |k| <= 1), which enters through exp().
double attention_tol(const Case& tc, int max_len) {
  const double eps = 1.2e-7;
  return 1e-6 + 4 * eps * (std::sqrt(double(max_len)) * 8 + 2.0 * tc.head_dim);
}

// The tensor-core prefill kernel rounds the scaled queries and the probabilities to f16 (relative
// 2^-11 each): logits move by up to 2^-11 * sum |q k| * scale <= 2^-11 * 2 head_dim * scale, and
// the weights of a convex combination of |v| <= 1 by 2^-11 more.
double coopmat_attention_tol(const Case& tc) {
  const double u = 1.0 / 2048, scale = 1.0 / std::sqrt(double(tc.head_dim));
  return 1e-5 + u * (2.0 * tc.head_dim * scale + 4);
}
// Quantised K / V: the kernels that keep tiles in f16 (tiled, tensor-core) round the dequantised
// values (|x| <= 1) to f16 too: the K term of the logits as above, and 2^-11 of the output for V.
double kv_round_tol(const Case& tc) {
  const double u = 1.0 / 2048, scale = 1.0 / std::sqrt(double(tc.head_dim));
  return (tc.k_type != DType::kF16 ? u * 2.0 * tc.head_dim * scale : 0.0) +
         (tc.v_type != DType::kF16 ? u : 0.0);
}
// Whether the op runs this case on the tensor-core kernel on `dev`.
bool runs_coopmat(const Device& dev, const Case& tc) {
  return dev.kind() != BackendKind::kCpu &&
         int64_t(tc.n_q) * (tc.n_heads / tc.n_kv_heads) >= kAttnCoopmatMinRows &&
         paged_attention_coopmat_supported(dev, tc.head_dim);
}

class PagedAttentionTest : public VkTest, public ::testing::WithParamInterface<Case> {};
// CPU-only checks of the reference itself (run without a Vulkan device too).
class PagedAttentionRefTest : public ::testing::TestWithParam<Case> {};

// Both Vulkan kernels where the decode kernel applies: the decode kernel (the op's choice) and
// the tiled one. The decode kernel must be the choice wherever the device allows it.
TEST_P(PagedAttentionTest, MatchesReference) {
  const Case& tc = GetParam();
  const Problem p = make_problem(tc, std::hash<std::string>{}(tc.name) & 0xffff);
  bool decode = false;
  const auto got = run_attention(*gpu, tc, p, Path::kOp, &decode);
  const auto ref = run_attention(*cpu, tc, p, Path::kRef);
  const int max_len = *std::max_element(p.cache.lens.begin(), p.cache.lens.end());
  const bool cm = runs_coopmat(*gpu, tc);
  EXPECT_TRUE(all_close(
      got, ref, (cm ? coopmat_attention_tol(tc) : attention_tol(tc, max_len)) + kv_round_tol(tc)))
      << (cm       ? "tensor-core prefill kernel"
          : decode ? "decode kernel"
                   : "tiled kernel");
  const DeviceCaps& caps = gpu->caps();
  const bool decode_shape = tc.n_q * (tc.n_heads / tc.n_kv_heads) <= 16 && tc.head_dim % 8 == 0;
  const bool tuned = std::getenv("KVZ_NO_FAST_DECODE") || std::getenv("KVZ_DECODE_WG") ||
                     std::getenv("KVZ_DECODE_LPK");  // may not fit shared memory: tiled kernel
  if (decode_shape && caps.subgroup_shuffle && caps.vendor_id != 0x8086 && !tuned) {
    EXPECT_TRUE(decode) << "decode kernel not chosen";
  }
  if (decode) {
    EXPECT_TRUE(all_close(run_attention(*gpu, tc, p, Path::kOpTiled), ref,
                          attention_tol(tc, max_len) + kv_round_tol(tc)))
        << "tiled kernel";
  }
}

// The decode kernel over q8_0 / q4_0 pools (and f16 K or V beside a quantised one) against the
// reference on the same stored rows, for each lane layout it may take: lanes per key from 2 up
// (a lane's run of chunks within a block of 1, 2 or 4 chunks, or several whole blocks; head_dim
// 96 gives runs that are not whole blocks), keys per step 1 and the rule's, prefetch on and off.
TEST_F(VkTest, PagedDecodeOverQuantisedPoolsMatchesReference) {
  const DType q8 = DType::kQ8_0, q4 = DType::kQ4_0, f16 = DType::kF16;
  // sweep: also run lanes per key 2, 4 and 8 (where the subgroup has them) for q8_0 and q4_0.
  struct Shape {
    Case c;
    bool sweep;
  };
  const Shape shapes[] = {
      {Case{"hd128_gqa4_nq1_split", 128, 16, 4, 1, 700, 0, 0, true}, true},
      {Case{"hd96_gqa4_nq1_split", 96, 8, 2, 1, 500, 0, 0, true}, true},
      {Case{"hd64_gqa1_nq3_window_softcap", 64, 4, 4, 3, 400, 100, 30.0f}, true},
      {Case{"hd256_gqa8_nq2", 256, 16, 2, 2, 300}, false},
      {Case{"hd32_gqa2_nq2_empty_head", 32, 4, 2, 2, 150, 0, 0, false, false, true}, false},
      {Case{"hd128_gqa4_nq4_unsorted", 128, 8, 2, 4, 200, 0, 0, false, true}, false}};
  const std::pair<DType, DType> types[] = {{q8, q8}, {q4, q4}, {q4, q8}, {f16, q8}, {q8, f16}};
  const uint32_t sg = gpu->caps().subgroup_size;
  int runs = 0;
  for (const Shape& shape : shapes) {
    for (auto [kt, vt] : types) {
      std::vector<uint32_t> lanes{0};  // the rule
      if (shape.sweep && kt == vt)
        for (uint32_t l = 2; l <= std::min<uint32_t>(8, sg); l *= 2) lanes.push_back(l);
      for (size_t li = 0; li < lanes.size(); ++li) {
        Case tc = shape.c;
        tc.k_type = kt, tc.v_type = vt;
        const uint32_t kpi = li % 2 ? 1 : 0;
        const bool prefetch = li % 3 != 1;
        SCOPED_TRACE(::testing::Message() << tc.name << " " << dtype_name(kt) << "/"
                                          << dtype_name(vt) << " lanes " << lanes[li] << " kpi "
                                          << kpi << " prefetch " << prefetch << " subgroup " << sg);
        const ScopedTuning scope(*gpu, [&](Tuning& tn) {
          tn.decode.lanes_per_key = lanes[li];
          tn.decode.keys_per_iter = kpi;
          tn.decode.prefetch = prefetch;
        });
        const Problem p = make_problem(tc, std::hash<std::string>{}(tc.name) & 0xffff);
        bool decode = false;
        const auto got = run_attention(*gpu, tc, p, Path::kOp, &decode);
        if (!decode) continue;  // no decode kernel for this layout (shared memory) or device
        const auto ref = run_attention(*cpu, tc, p, Path::kRef);
        const int max_len = *std::max_element(p.cache.lens.begin(), p.cache.lens.end());
        ASSERT_TRUE(all_close(got, ref, attention_tol(tc, max_len)));
        ++runs;
      }
    }
  }
  const bool has_decode =
      sg >= 4 && gpu->caps().subgroup_shuffle && gpu->caps().vendor_id != 0x8086;
  if (has_decode) {
    EXPECT_GT(runs, 30);
  }
}

TEST_P(PagedAttentionRefTest, MatchesDenseFormula) {
  const Case& tc = GetParam();
  if (tc.n_q * tc.cached * tc.n_heads > 400000) GTEST_SKIP() << "dense check too slow";
  const Problem p = make_problem(tc, std::hash<std::string>{}(tc.name) & 0xffff);
  Case cpu_case = tc;
  cpu_case.split = false;
  EXPECT_TRUE(all_close(run_attention(cpu_device(), cpu_case, p, Path::kRef),
                        dense_attention(tc, p), 1e-6));
}

const Case kCases[] = {
    Case{"stories_hd8_gqa2", 8, 8, 4, 37, 20}, Case{"hd12_gqa1", 12, 3, 3, 5, 40},
    Case{"hd64_gqa1_prefill", 64, 4, 4, 45, 70},
    Case{"hd128_gqa4_prefill_offset", 128, 8, 2, 33, 100},
    Case{"hd256_gqa8_window_softcap", 256, 16, 2, 19, 60, 16, 30.0f},
    Case{"hd64_unsorted_positions_window", 64, 4, 2, 21, 50, 24, 0, false, true},
    Case{"hd128_prefill_split_scratch", 128, 8, 2, 40, 2000, 0, 0, true},
    Case{"hd128_gqa4_decode_split", 128, 8, 2, 1, 5000, 0, 0, true},
    Case{"hd64_gqa8_decode_split_window_softcap", 64, 16, 2, 1, 4000, 1500, 50.0f, true},
    Case{"hd256_gqa1_decode_split", 256, 2, 2, 1, 3000, 0, 0, true},
    Case{"hd8_decode_split_unsorted", 8, 4, 2, 1, 2500, 0, 0, true, true},
    // Decode kernel shapes: n_q 1..4, group 1/2/4/8, head_dim 40/64/96/128/256 (and 12, %4 only:
    // the tiled kernel), window, soft-cap, an empty head, unsplit and split-K.
    Case{"dec_hd128_gqa4_nq1_split", 128, 16, 4, 1, 3000, 0, 0, true},
    Case{"dec_hd128_gqa4_nq4_split", 128, 8, 2, 4, 2000, 0, 0, true},
    Case{"dec_hd128_gqa4_nq3_unsplit", 128, 8, 2, 3, 700},
    Case{"dec_hd64_gqa1_nq3_window_softcap", 64, 4, 4, 3, 1500, 200, 30.0f, true},
    Case{"dec_hd256_gqa8_nq2_split", 256, 16, 2, 2, 1200, 0, 0, true},
    Case{"dec_hd96_gqa4_nq1_split", 96, 8, 2, 1, 900, 0, 0, true},
    Case{"dec_hd40_gqa2_nq2_unsplit", 40, 4, 2, 2, 300},
    Case{"dec_hd12_gqa2_nq1_split", 12, 4, 2, 1, 500, 0, 0, true},
    Case{"dec_hd128_gqa8_empty_head_split", 128, 16, 2, 1, 700, 0, 0, true, false, true},
    Case{"dec_hd64_gqa8_nq2_window_unsorted", 64, 16, 2, 2, 1000, 100, 0, true, true},
    Case{"dec_hd128_gqa1_nq1_short", 128, 2, 2, 1, 20},
    // A block table with much spare capacity (a cache that grew, or was pruned): split-K shares
    // sized by the capacity, and by the longest head (max_rows).
    Case{"dec_hd128_gqa4_spare_capacity", 128, 8, 2, 1, 600, 0, 0, true, false, false, 100},
    Case{"dec_hd128_gqa4_spare_max_rows", 128, 8, 2, 1, 600, 0, 0, true, false, false, 100, true},
    Case{"dec_hd64_gqa8_nq2_max_rows_window", 64, 16, 2, 2, 3000, 300, 0, true, false, false, 7,
         true},
    Case{"dec_hd128_gqa4_empty_head_max_rows", 128, 8, 2, 1, 400, 0, 0, true, false, true, 50,
         true}};
std::string case_name(const ::testing::TestParamInfo<Case>& param_info) {
  return param_info.param.name;
}
INSTANTIATE_TEST_SUITE_P(Shapes, PagedAttentionTest, ::testing::ValuesIn(kCases), case_name);
INSTANTIATE_TEST_SUITE_P(Shapes, PagedAttentionRefTest, ::testing::ValuesIn(kCases), case_name);

// Prefill shapes for the tensor-core kernel (>= kAttnCoopmatMinRows rows per KV head, head_dim a
// multiple of 16): ragged heads with an existing cache, GQA 1/3/4/8, a window with soft-cap,
// unsorted positions, rows not a multiple of the 64-row tile; blocks adjacent in the pool. Where
// the device has no such kernel they run on the scalar one.
const Case kPrefillCases[] = {
    Case{"smollm_hd64_gqa3_prefill_empty", 64, 9, 3, 150, 0},
    Case{"hd128_gqa4_prefill_after_cache", 128, 8, 2, 200, 300},
    Case{"hd128_gqa8_window_softcap", 128, 16, 2, 100, 150, 64, 30.0f},
    Case{"hd64_gqa1_unsorted_window", 64, 2, 2, 80, 90, 50, 0, false, true},
    Case{"hd80_gqa2_prefill", 80, 4, 2, 70, 40},
    Case{"hd96_gqa4_prefill_long", 96, 4, 1, 300, 700},
    Case{"hd128_gqa4_prefill_block_runs", 128, 8, 2, 200, 300, 0, 0, false, false, false, 1, false,
         true},
    Case{"hd64_gqa3_window_softcap_block_runs", 64, 9, 3, 150, 260, 100, 20.0f, false, false, false,
         1, false, true}};
INSTANTIATE_TEST_SUITE_P(Prefill, PagedAttentionTest, ::testing::ValuesIn(kPrefillCases),
                         case_name);
// Quantised K / V (head_dim a multiple of 32): the tensor-core kernels dequantise each tile into
// their f16 shared tiles; mixed types, a window with soft-cap, unsorted positions, a decode row.
const Case kQuantCases[] = {with_kv(kPrefillCases[1], DType::kQ8_0, DType::kQ8_0),
                            with_kv(kPrefillCases[1], DType::kQ4_0, DType::kQ4_0),
                            with_kv(kPrefillCases[0], DType::kQ4_0, DType::kQ8_0),
                            with_kv(kPrefillCases[2], DType::kQ8_0, DType::kQ4_0),
                            with_kv(kPrefillCases[3], DType::kQ4_0, DType::kQ4_0),
                            with_kv(kPrefillCases[5], DType::kQ8_0, DType::kF16),
                            with_kv(kPrefillCases[6], DType::kQ8_0, DType::kQ8_0)};
const Case kQuantDecode =
    with_kv(Case{"hd128_gqa4_decode", 128, 8, 2, 1, 300}, DType::kQ4_0, DType::kQ8_0);
INSTANTIATE_TEST_SUITE_P(Quant, PagedAttentionTest, ::testing::ValuesIn(kQuantCases), case_name);
INSTANTIATE_TEST_SUITE_P(QuantDecode, PagedAttentionTest, ::testing::Values(kQuantDecode),
                         case_name);

class PagedAttentionCoopmatTest
    : public VkTest,
      public ::testing::WithParamInterface<std::tuple<Case, CoopmatApi>> {};

TEST_P(PagedAttentionCoopmatTest, MatchesReference) {
  const auto& [tc, api] = GetParam();
  const ScopedTuning scope(*gpu, [&](Tuning& tn) { tn.coopmat = api; });
  if (!runs_coopmat(*gpu, tc))
    GTEST_SKIP() << gpu->caps().name << ": no " << coopmat_api_name(api)
                 << " tensor-core prefill for head_dim " << tc.head_dim;
  const Problem p = make_problem(tc, std::hash<std::string>{}(tc.name) & 0xffff);
  EXPECT_TRUE(all_close(run_attention(*gpu, tc, p, Path::kOp),
                        run_attention(*cpu, tc, p, Path::kRef),
                        coopmat_attention_tol(tc) + kv_round_tol(tc)))
      << coopmat_api_name(api) << " tensor-core prefill kernel";
}
INSTANTIATE_TEST_SUITE_P(Prefill, PagedAttentionCoopmatTest,
                         ::testing::Combine(::testing::ValuesIn(kPrefillCases),
                                            ::testing::ValuesIn(kCoopmatApis)),
                         api_case_name<Case>);
INSTANTIATE_TEST_SUITE_P(Quant, PagedAttentionCoopmatTest,
                         ::testing::Combine(::testing::ValuesIn(kQuantCases),
                                            ::testing::ValuesIn(kCoopmatApis)),
                         api_case_name<Case>);

// The cm2 prefill kernel with each head's keys split in 3 shares and the combine pass (its rule
// splits only heads of 16K rows and more), on the same cases.
class PagedAttentionCm2SplitTest : public VkTest, public ::testing::WithParamInterface<Case> {};

TEST_P(PagedAttentionCm2SplitTest, MatchesReference) {
  const Case& tc = GetParam();
  Case split = tc;  // the device run gets the scratch, the reference none
  split.split = true;
  const ScopedTuning scope(*gpu, [](Tuning& tn) {
    tn.coopmat = CoopmatApi::kCm2;
    tn.attention.cm2_splits = 3;
  });
  if (!runs_coopmat(*gpu, tc) ||
      paged_attention_prefill_scratch_elems(*gpu, tc.n_q, tc.n_heads, tc.n_kv_heads, tc.head_dim,
                                            1 << 20) == 0)
    GTEST_SKIP() << gpu->caps().name << ": no cm2 tensor-core prefill for head_dim " << tc.head_dim;
  const Problem p = make_problem(tc, std::hash<std::string>{}(tc.name) & 0xffff);
  EXPECT_TRUE(all_close(run_attention(*gpu, split, p, Path::kOp),
                        run_attention(*cpu, tc, p, Path::kRef), coopmat_attention_tol(tc)))
      << "cm2 prefill kernel, keys split in 3";
}
INSTANTIATE_TEST_SUITE_P(Prefill, PagedAttentionCm2SplitTest, ::testing::ValuesIn(kPrefillCases),
                         case_name);

// Shapes that stress the fast CPU path's tiling: more query rows than one work item, a group of
// 3 (SmolLM2), prefill from an empty cache, long decode, a window shorter than the chunk.
const Case kFastCases[] = {
    Case{"smollm_hd64_gqa3_prefill", 64, 9, 3, 150, 0},
    Case{"hd64_gqa3_chunked_prefill", 64, 9, 3, 70, 300},
    Case{"hd64_gqa3_window_prefill", 64, 9, 3, 100, 200, 64},
    Case{"hd8_gqa8_prefill", 8, 8, 1, 90, 40},
    Case{"hd16_gqa16_softcap", 16, 16, 1, 9, 80, 0, 20.0f},
    Case{"hd128_gqa4_decode_long", 128, 8, 2, 1, 3000},
    Case{"hd256_gqa1_unsorted_window", 256, 2, 2, 40, 90, 50, 0, false, true}};

class PagedAttentionFastTest : public ::testing::TestWithParam<Case> {};

// f32 accumulation like the GPU kernels: the same derived tolerance, on every SIMD level this CPU
// runs. Items are written by one thread each, so the thread count cannot change a bit.
TEST_P(PagedAttentionFastTest, MatchesReference) {
  Case tc = GetParam();
  tc.split = false;
  const Problem p = make_problem(tc, std::hash<std::string>{}(tc.name) & 0xffff);
  Device& dev = cpu_device();
  const int max_len = *std::max_element(p.cache.lens.begin(), p.cache.lens.end());
  const auto ref = run_attention(dev, tc, p, Path::kRef);
  EXPECT_TRUE(
      all_close(run_attention(dev, tc, p, Path::kOp), run_attention(dev, tc, p, Path::kFast3), 0.0))
      << "op on the CPU";
  for (int64_t target : cpu::simd_targets()) {
    cpu::simd_force_target(target);
    const auto fast = run_attention(dev, tc, p, Path::kFast3);
    EXPECT_TRUE(all_close(fast, ref, attention_tol(tc, max_len))) << cpu::simd_name(target);
    EXPECT_TRUE(all_close(run_attention(dev, tc, p, Path::kFast1), fast, 0.0))
        << cpu::simd_name(target);
  }
  cpu::simd_force_target(0);
}
INSTANTIATE_TEST_SUITE_P(Shapes, PagedAttentionFastTest, ::testing::ValuesIn(kCases), case_name);
INSTANTIATE_TEST_SUITE_P(Tiling, PagedAttentionFastTest, ::testing::ValuesIn(kFastCases),
                         case_name);

// A query that sees no row (every cached position is later; or its head is empty) gets zeros.
void check_no_visible_rows(Device& dev) {
  Rng rng(7);
  const int hd = 64, n_q = 3, n_heads = 4, n_kv = 2;
  HostCache c = make_cache(rng, n_kv, hd, {40, 0});
  for (int t = 0; t < 40; ++t) c.pos[c.slot(0, t)] = 100 + t;
  const std::vector<float> qv = rng.uniform_vec(size_t(n_q) * n_heads * hd);
  const std::vector<int32_t> qp = {5, 99, 100};
  std::vector<Buffer> keep;
  const DevCache dc = upload_cache(dev, keep, c);
  PagedAttentionArgs a;
  a.q = upload_f32(dev, keep, {n_q, n_heads, hd}, qv);
  a.q_pos = upload(dev, keep, DType::kI32, {n_q}, qp.data());
  a.k_pool = dc.k, a.v_pool = dc.v, a.pos_pool = dc.pos, a.block_table = dc.table;
  a.lens = dc.lens;
  const std::vector<float> nan(qv.size(), std::nanf(""));
  a.out = upload_f32(dev, keep, {n_q, n_heads, hd}, nan);
  Recorder rec(dev);
  paged_attention(rec, a);
  rec.finish();
  const auto out = download_f32(dev, a.out);
  for (int i = 0; i < n_q; ++i)
    for (int hq = 0; hq < n_heads; ++hq) {
      const bool sees = i == 2 && hq < 2;  // q_pos 100 sees row 0 of head 0 only
      const float* o = &out[(size_t(i) * n_heads + hq) * hd];
      for (int d = 0; d < hd; ++d)
        if (sees)
          ASSERT_NEAR(o[d], cpu::f16_to_f32(c.v[size_t(c.slot(0, 0)) * hd + d]), 1e-6);
        else
          ASSERT_EQ(o[d], 0.0f) << "query " << i << " head " << hq;
    }
}
// PagedAttentionArgs::x8 (the o matvec's int8 input in decode): the same bits as quantize_x8 on
// the output, whether the split-K combine rounds it (split) or a quantize_x8 runs after (short,
// unsplit, prefill).
void check_x8_output(Device& dev) {
  for (const char* name :
       {"dec_hd128_gqa4_nq1_split", "dec_hd128_gqa1_nq1_short", "dec_hd128_gqa4_spare_max_rows",
        "dec_hd64_gqa8_nq2_max_rows_window", "hd128_gqa4_prefill_offset"}) {
    const auto it = std::find_if(std::begin(kCases), std::end(kCases),
                                 [&](const Case& c) { return c.name == name; });
    ASSERT_NE(it, std::end(kCases)) << name;
    const Case& tc = *it;
    const Problem p = make_problem(tc, 23);
    std::vector<int32_t> fused;
    const std::vector<float> out = run_attention(dev, tc, p, Path::kOp, nullptr, &fused);
    const int64_t n = int64_t(tc.n_q) * tc.n_heads * tc.head_dim;
    ASSERT_EQ(n % 256, 0) << name;
    std::vector<Buffer> keep;
    const Tensor x = upload_f32(dev, keep, {1, n}, out);
    const Tensor want = alloc_tensor(dev, keep, DType::kI32, {matvec_x8_elems(n)});
    Recorder rec(dev);
    quantize_x8(rec, x, want);
    rec.finish();
    EXPECT_EQ(fused, download_as<int32_t>(dev, want)) << name;
  }
}
TEST_F(VkTest, PagedAttentionX8IsQuantizeOfOutput) { check_x8_output(*gpu); }
TEST(PagedAttentionFast, X8IsQuantizeOfOutput) { check_x8_output(cpu_device()); }

TEST_F(VkTest, PagedAttentionNoVisibleRowsGivesZeros) { check_no_visible_rows(*gpu); }
TEST(PagedAttentionFast, NoVisibleRowsGivesZeros) { check_no_visible_rows(cpu_device()); }

// The scratch sized for a cache's capacity must serve every shorter max_rows: the decode split
// count (shares grow with the head, runtime/ops/paged_attention.cpp) never needs more for fewer
// rows. Checked over 1 .. 300K rows for the decode shapes (1-4 queries, GQA 32/8, head_dim 128).
TEST(PagedAttentionScratch, NeverShrinksAsRowsGrow) {
  for (int n_q : {1, 2, 4}) {
    int64_t prev = 0;
    for (int rows = 1; rows <= 300000; rows += rows < 4096 ? 1 : 61) {
      const int64_t n = paged_attention_scratch_elems(cpu_device(), n_q, 32, 128, rows);
      ASSERT_GE(n, prev) << "n_q " << n_q << ", " << rows << " rows";
      prev = n;
    }
  }
}

// Where the device says how many compute units it has, decode shares grow until all heads'
// shares fit one round of resident workgroups (NVIDIA's rule: 3 per unit): never more shares than
// the scratch bound, whole 64-row shares that cover the longest head, never smaller shares than
// without the unit count, and where the shares did grow, at most one round of workgroups, at least
// 60% full (each head's partial last share counted: runtime/ops/paged_attention.cpp).
TEST(PagedAttentionDecodeSplit, FillsOneRoundWhereUnitsAreKnown) {
  std::vector<int64_t> ragged;  // 30% kept, 10% .. 50% per head, as bench/attention_bench.cpp
  for (int h = 0; h < 8; ++h) ragged.push_back(int64_t(131072 * (0.1 + 0.4 * h / 7)));
  const std::vector<std::vector<int64_t>> caches = {std::vector<int64_t>(8, 131072),
                                                    std::vector<int64_t>(8, 32768),
                                                    ragged,
                                                    std::vector<int64_t>(8, 4096),
                                                    std::vector<int64_t>(8, 39001),
                                                    std::vector<int64_t>(8, 8192),
                                                    std::vector<int64_t>(8, 300000),
                                                    {65536, 0, 0, 0, 0, 0, 0, 0},
                                                    std::vector<int64_t>(8, 1000)};
  DeviceCaps nv_caps;
  nv_caps.vendor_id = 0x10DE, nv_caps.compute_units = 132;
  const DecodeTuning nv = default_tuning(nv_caps).decode;
  ASSERT_EQ(nv.workgroups_per_unit, 3u);
  int grew = 0;
  for (const uint32_t units : {132u, 108u, 60u, 28u, 16u}) {
    for (const auto& lens : caches) {
      const int64_t max_rows = *std::max_element(lens.begin(), lens.end());
      const int64_t total = std::accumulate(lens.begin(), lens.end(), int64_t(0));
      const auto plain = detail::decode_split(nv, 1, max_rows, total, 8, 1, 0);
      const auto s = detail::decode_split(nv, 1, max_rows, total, 8, 1, units);
      SCOPED_TRACE(fmt::format("{} units, longest head {}, {} rows", units, max_rows, total));
      EXPECT_EQ(s.bound, plain.bound);
      EXPECT_LE(s.n_split, s.bound);
      EXPECT_EQ(s.chunk % 64, 0);
      EXPECT_GE(s.n_split * s.chunk, max_rows);
      EXPECT_GE(s.chunk, plain.chunk);
      if (s.chunk == plain.chunk) continue;
      ++grew;
      int64_t workgroups = 0;
      for (const int64_t len : lens) workgroups += (len + s.chunk - 1) / s.chunk;
      EXPECT_LE(workgroups, 3 * int64_t(units));
      EXPECT_GE(workgroups, 0.6 * 3 * units);
    }
  }
  EXPECT_GE(grew, 30);  // the rule did apply to most of these caches
  // Unknown units: the rule alone.
  const auto none = detail::decode_split(nv, 1, 131072, 8 * 131072, 8, 1, 0);
  EXPECT_EQ(none.chunk, 512);
}

}  // namespace
}  // namespace kvz::test
