// GPU-vs-reference tests for argmax and top-k / top-p sampling (tests/runtime).
#include "runtime/ops/sampling.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <numeric>
#include <tuple>
#include <vector>

#include "tests/common/test_device.h"

namespace kvz::test {
namespace {

// Logits without ties: a random permutation of an evenly spaced grid over [-span/2, span/2].
std::vector<float> distinct_logits(Rng& rng, int64_t n_rows, int64_t n_vocab, float span) {
  std::vector<float> out(n_rows * n_vocab);
  std::vector<int64_t> perm(n_vocab);
  for (int64_t r = 0; r < n_rows; ++r) {
    for (int64_t j = 0; j < n_vocab; ++j) perm[j] = j;
    for (int64_t j = n_vocab - 1; j > 0; --j) std::swap(perm[j], perm[rng.next() % (j + 1)]);
    for (int64_t j = 0; j < n_vocab; ++j)
      out[r * n_vocab + j] = span * (float(perm[j]) / float(n_vocab) - 0.5f);
  }
  return out;
}

// (n_rows, n_vocab)
using Shape = std::tuple<int, int>;
class ArgmaxTest : public VkTest, public ::testing::WithParamInterface<Shape> {};

TEST_P(ArgmaxTest, MatchesReferenceWithTiesToLowestIndex) {
  const auto [rows, vocab] = GetParam();
  const int64_t r = rows, v = vocab;
  Rng rng(rows * 31 + vocab);
  auto logits = rng.uniform_vec(r * v, -10, 10);
  for (int64_t i = 0; i < r; ++i) {  // ties: the max appears twice (or more) in most rows
    const int64_t a = rng.next() % v, b = rng.next() % v;
    logits[i * v + a] = logits[i * v + b] = 50.0f + float(i % 2);
    if (i == 1 && v > 2) logits[i * v + v - 1] = std::numeric_limits<float>::quiet_NaN();
  }
  std::vector<int32_t> got[2];
  Device* devs[2] = {gpu, cpu};
  for (int i = 0; i < 2; ++i) {
    std::vector<Buffer> keep;
    ArgmaxArgs a{upload_f32(*devs[i], keep, {r, v}, logits),
                 alloc_tensor(*devs[i], keep, DType::kI32, {r})};
    Recorder rec(*devs[i]);
    argmax(rec, a);
    rec.finish();
    got[i] = download_as<int32_t>(*devs[i], a.out);
  }
  EXPECT_EQ(got[0], got[1]);
  for (int64_t i = 0; i < r; ++i) {  // the reference itself: first index of the maximum
    const float* row = logits.data() + i * v;
    int64_t want = 0;
    for (int64_t j = 1; j < v; ++j)
      if (row[j] > row[want]) want = j;
    EXPECT_EQ(got[1][i], want) << "row " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, ArgmaxTest,
                         ::testing::Values(Shape{1, 1}, Shape{3, 7}, Shape{4, 257}, Shape{2, 4099},
                                           Shape{3, 4096}, Shape{1, 262144}));

// Whether `pick` is the draw of cpu::sample_ref's order (weights desc, index asc; top-k, top-p) for
// a target within 1e-5 of the kept mass of u * kept mass, in double: the boundary the f32 sums of
// a kernel may cross.
bool draw_within_rounding(const float* row, int64_t v, float temperature, int top_k, float top_p,
                          float u, int32_t pick) {
  const double m = *std::max_element(row, row + v);
  std::vector<double> w(v);
  for (int64_t j = 0; j < v; ++j) w[j] = std::exp((row[j] - m) / temperature);
  std::vector<int32_t> order(v);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t x, int32_t y) { return w[x] > w[y]; });
  int64_t keep = top_k > 0 ? std::min<int64_t>(top_k, v) : v;
  double total = 0;
  for (int64_t i = 0; i < keep; ++i) total += w[order[i]];
  if (top_p < 1) {
    double cum = 0;
    for (int64_t i = 0; i < keep; ++i)
      if ((cum += w[order[i]]) >= top_p * total) {
        keep = i + 1;
        break;
      }
    total = 0;
    for (int64_t i = 0; i < keep; ++i) total += w[order[i]];
  }
  const double target = std::min(double(u), 1.0) * total, tol = 1e-5 * total;
  double before = 0;
  for (int64_t i = 0; i < v; ++i) {
    if (order[i] == pick) return before <= target + tol && before + w[pick] >= target - tol;
    before += w[order[i]];
  }
  return false;
}

// (n_vocab, temperature, top_k, top_p)
using SampleParam = std::tuple<int, float, int, float>;
class SampleTest : public VkTest, public ::testing::WithParamInterface<SampleParam> {};

TEST_P(SampleTest, PicksTheSameTokenAsReference) {
  const auto [vocab, temperature, top_k, top_p] = GetParam();
  const int64_t r = 48, v = vocab;
  Rng rng(vocab * 3 + top_k);
  // Peaked rows (span 16) so that top-p cuts matter, flatter ones (span 4) for the long tail.
  auto logits = distinct_logits(rng, r, v, 16.0f);
  const auto flat = distinct_logits(rng, r / 2, v, 4.0f);
  std::copy(flat.begin(), flat.end(), logits.begin());
  std::vector<float> u = rng.uniform_vec(r, 0.0f, 1.0f);
  u[0] = 0.0f;
  u[1] = 0.99999994f;
  // The device's kernel (radix select where it has subgroup arithmetic), the bisection kernel
  // (KVZ_SAMPLE_BISECT=1), the reference.
  std::vector<int32_t> got[3];
  Device* devs[3] = {gpu, gpu, cpu};
  for (int i = 0; i < 3; ++i) {
    if (i == 1) ::setenv("KVZ_SAMPLE_BISECT", "1", 1);
    std::vector<Buffer> keep;
    SampleArgs a;
    a.logits = upload_f32(*devs[i], keep, {r, v}, logits);
    a.uniform = upload_f32(*devs[i], keep, {r}, u);
    a.out = alloc_tensor(*devs[i], keep, DType::kI32, {r});
    a.temperature = temperature;
    a.top_k = top_k;
    a.top_p = top_p;
    Recorder rec(*devs[i]);
    sample(rec, a);
    rec.finish();
    got[i] = download_as<int32_t>(*devs[i], a.out);
    ::unsetenv("KVZ_SAMPLE_BISECT");
  }
  // The kernels sum weights in f32 in their own order, the reference in double: a draw whose
  // target lies within rounding of a token boundary may land on the neighbour. Each row must match,
  // or its pick must be that neighbour (draw_within_rounding), in at most 2 rows of the 48.
  for (int k = 0; k < 2; ++k) {
    const char* what = k == 0 ? "the device's sampling kernel" : "the bisection kernel";
    int off = 0;
    for (int64_t i = 0; i < r; ++i) {
      if (got[k][i] == got[2][i]) continue;
      ++off;
      EXPECT_TRUE(draw_within_rounding(logits.data() + i * v, v, temperature, top_k, top_p, u[i],
                                       got[k][i]))
          << what << ", row " << i << ": picked " << got[k][i] << ", reference " << got[2][i];
    }
    EXPECT_LE(off, 2) << what << ": rows off the reference";
  }
  for (int64_t i = 0; i < r; ++i) {  // the reference respects top-k: the pick ranks below k
    const float* row = logits.data() + i * v;
    const int64_t rank = std::count_if(row, row + v, [&](float x) { return x > row[got[2][i]]; });
    if (top_k > 0) {
      EXPECT_LT(rank, top_k) << "row " << i;
    }
    if (temperature <= 0 || top_k == 1) {
      EXPECT_EQ(rank, 0) << "row " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Configs, SampleTest,
    ::testing::Values(SampleParam{7, 1.0f, 0, 1.0f}, SampleParam{257, 1.0f, 0, 1.0f},
                      SampleParam{1000, 0.7f, 40, 1.0f}, SampleParam{1000, 1.3f, 0, 0.9f},
                      SampleParam{4099, 0.8f, 50, 0.8f}, SampleParam{4099, 1.0f, 0, 0.5f},
                      SampleParam{257, 1.0f, 1, 1.0f}, SampleParam{257, 0.0f, 0, 1.0f},
                      SampleParam{300, 1.0f, 500, 0.95f}, SampleParam{300, 2.0f, 3, 0.01f},
                      SampleParam{128256, 1.0f, 0, 1.0f}, SampleParam{128256, 0.8f, 40, 0.9f}));

// The reference's semantics on a hand-made case: p = [0.1, 0.4, 0.2, 0.3] (logits log p).
TEST(SampleRef, DefinesTopKTopPAndInverseCdf) {
  Device& dev = cpu_device();
  const std::vector<float> logits = {std::log(0.1f), std::log(0.4f), std::log(0.2f),
                                     std::log(0.3f)};
  auto pick = [&](int top_k, float top_p, float u) {
    std::vector<Buffer> keep;
    SampleArgs a;
    a.logits = upload_f32(dev, keep, {1, 4}, logits);
    a.uniform = upload_f32(dev, keep, {1}, {u});
    a.out = alloc_tensor(dev, keep, DType::kI32, {1});
    a.top_k = top_k;
    a.top_p = top_p;
    Recorder rec(dev);
    sample(rec, a);
    return download_as<int32_t>(dev, a.out)[0];
  };
  // Sorted order: 1 (0.4), 3 (0.3), 2 (0.2), 0 (0.1); cumulative 0.4, 0.7, 0.9, 1.0.
  EXPECT_EQ(pick(0, 1.0f, 0.0f), 1);
  EXPECT_EQ(pick(0, 1.0f, 0.5f), 3);
  EXPECT_EQ(pick(0, 1.0f, 0.85f), 2);
  EXPECT_EQ(pick(0, 1.0f, 0.95f), 0);
  EXPECT_EQ(pick(2, 1.0f, 0.95f), 3);   // top-2 = {1, 3}; 0.95 * 0.7 = 0.665 < 0.7
  EXPECT_EQ(pick(2, 1.0f, 0.5f), 1);    // 0.5 * 0.7 = 0.35 < 0.4
  EXPECT_EQ(pick(0, 0.6f, 0.95f), 3);   // top-p 0.6: smallest prefix with mass >= 0.6 is {1, 3}
  EXPECT_EQ(pick(0, 0.75f, 0.95f), 2);  // needs {1, 3, 2} (0.9 >= 0.75)
  EXPECT_EQ(pick(0, 0.3f, 0.95f), 1);   // the first token alone reaches 0.3
}

}  // namespace
}  // namespace kvz::test
