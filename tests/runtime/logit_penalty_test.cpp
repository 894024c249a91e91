// Repetition penalty and min-p (runtime/ops/logit_penalty): a hand-computed case on the reference,
// then the GPU kernel against the reference over shapes, histories with repeats and bad ids
// (tests/runtime).
#include "runtime/ops/logit_penalty.h"

#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "tests/common/test_device.h"

namespace kvz::test {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<float> run(Device& dev, int64_t rows, int64_t vocab, const std::vector<float>& logits,
                       const std::vector<int32_t>& hist, float penalty, float min_p) {
  std::vector<Buffer> keep;
  const int64_t n_hist = static_cast<int64_t>(hist.size());
  LogitPenaltyArgs a{upload_f32(dev, keep, {rows, vocab}, logits),
                     n_hist > 0 ? upload(dev, keep, DType::kI32, {n_hist}, hist.data())
                                : alloc_tensor(dev, keep, DType::kI32, {0}),
                     penalty, min_p};
  Recorder rec(dev);
  logit_penalty(rec, a);
  rec.finish();
  return download_f32(dev, a.logits);
}

TEST(LogitPenaltyRef, HandComputed) {
  // Token 0 twice in the history (penalised once), -1 and 9 are not tokens of a 4-word vocabulary.
  const std::vector<float> logits{2.0f, -2.0f, 1.0f, 0.5f};
  const std::vector<int32_t> hist{0, 1, 0, -1, 9};
  EXPECT_EQ(run(cpu_device(), 1, 4, logits, hist, 2.0f, 0.0f),
            (std::vector<float>{1.0f, -4.0f, 1.0f, 0.5f}));
  // min-p 0.5 after the penalty: max 1, cut 1 + ln 0.5 = 0.307; -4 is dropped, 0.5 kept.
  EXPECT_EQ(run(cpu_device(), 1, 4, logits, hist, 2.0f, 0.5f),
            (std::vector<float>{1.0f, -kInf, 1.0f, 0.5f}));
  // Penalty 1 and min-p 0 change nothing.
  EXPECT_EQ(run(cpu_device(), 1, 4, logits, hist, 1.0f, 0.0f), logits);
}

// (n_rows, n_vocab, n_hist, penalty, min_p)
using Case = std::tuple<int, int, int, float, float>;
class LogitPenaltyTest : public VkTest, public ::testing::WithParamInterface<Case> {};

TEST_P(LogitPenaltyTest, MatchesReference) {
  const auto [rows, vocab, n_hist, penalty, min_p] = GetParam();
  Rng rng(static_cast<uint64_t>(rows * 131 + vocab * 7 + n_hist));
  // Values on a grid of 1/64 so that no logit lies within rounding of the min-p cut.
  std::vector<float> logits(static_cast<size_t>(rows) * vocab);
  for (float& l : logits) l = static_cast<float>(static_cast<int>(rng.next() % 1024) - 512) / 64;
  std::vector<int32_t> hist(static_cast<size_t>(n_hist));
  for (int32_t& t : hist) t = static_cast<int32_t>(rng.next() % (vocab + 4)) - 2;  // some bad ids
  if (n_hist > 3) hist[3] = hist[1];                                               // a repeat
  const auto want = run(*cpu, rows, vocab, logits, hist, penalty, min_p);
  const auto got = run(*gpu, rows, vocab, logits, hist, penalty, min_p);
  ASSERT_EQ(got.size(), want.size());
  std::vector<float> g(got.size()), w(want.size());
  size_t n_dropped = 0, n_changed = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(std::isinf(got[i]), std::isinf(want[i])) << "index " << i;
    n_dropped += std::isinf(want[i]) ? 1 : 0;
    n_changed += want[i] != logits[i] ? 1 : 0;
    g[i] = std::isinf(got[i]) ? 0.0f : got[i];
    w[i] = std::isinf(want[i]) ? 0.0f : want[i];
  }
  EXPECT_TRUE(all_close(g, w, 0.0, 1e-6));  // Vulkan's division is exact to 2.5 ulp
  if (penalty != 1.0f && n_hist > 0) {
    EXPECT_GT(n_changed, 0u);
  }
  if (min_p > 0) {
    EXPECT_GT(n_dropped, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, LogitPenaltyTest,
                         ::testing::Values(Case{1, 5, 3, 1.3f, 0.0f}, Case{1, 4099, 64, 1.1f, 0.0f},
                                           Case{2, 1000, 300, 0.8f, 0.05f},
                                           Case{1, 32000, 0, 1.0f, 0.1f},
                                           Case{3, 257, 17, 1.5f, 0.2f},
                                           Case{1, 262144, 1024, 1.2f, 0.05f}));

}  // namespace
}  // namespace kvz::test
