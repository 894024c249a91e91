// SlotPicks (model/slot_picks.h) on the CPU backend and on Vulkan: picks from logits rows at
// offsets no binding could start at (n_vocab 37 f32) land in the slots they were recorded for and
// equal the argmax computed on the host; a sampled pick with top_k 1 is the argmax too.
#include "model/slot_picks.h"

#include <algorithm>

#include "tests/common/test_device.h"

namespace kvz::test {
namespace {

constexpr int64_t kVocab = 37, kRows = 3, kSlots = 4;

class SlotPicksTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    dev = backend_device(GetParam());
    if (!dev) GTEST_SKIP() << "no Vulkan device";
  }
  Device* dev = nullptr;
};

int32_t host_argmax(const std::vector<float>& logits, int64_t row) {
  const auto first = logits.begin() + row * kVocab;
  return static_cast<int32_t>(std::max_element(first, first + kVocab) - first);
}

TEST_P(SlotPicksTest, EachSlotGetsItsRowsPick) {
  Rng rng(22);
  const std::vector<float> host = rng.uniform_vec(kRows * kVocab, -4.0f, 4.0f);
  std::vector<Buffer> keep;
  const Tensor logits = upload_f32(*dev, keep, {kRows, kVocab}, host);
  const SlotPicks picks(*dev, kSlots, kVocab);
  Recorder rec(*dev);
  // Slot 3 from row 1, slot 0 from row 2, slot 1 from row 0 sampled with top_k 1.
  picks.record_argmax(rec, 3, logits.slice(1, 1));
  picks.record_argmax(rec, 0, logits.slice(2, 1));
  picks.record_sample(rec, 1, logits.slice(0, 1), 0.7f, 1.0f, 1, 1.0f);
  rec.finish();
  const std::vector<int32_t> got = picks.read();
  ASSERT_EQ(got.size(), static_cast<size_t>(kSlots));
  EXPECT_EQ(got[3], host_argmax(host, 1));
  EXPECT_EQ(got[0], host_argmax(host, 2));
  EXPECT_EQ(got[1], host_argmax(host, 0));
}

INSTANTIATE_TEST_SUITE_P(Backends, SlotPicksTest, ::testing::Values(false, true),
                         [](const auto& p) { return p.param ? "vulkan" : "cpu"; });

}  // namespace
}  // namespace kvz::test
