// SlotPicks (slot_picks.h): aligned per-slot logits rows and picked ids.
#include "model/slot_picks.h"

#include <algorithm>

#include "runtime/ops/sampling.h"

namespace kvz {

SlotPicks::SlotPicks(Device& dev, int64_t n_slots, int64_t n_vocab)
    : dev_(dev),
      n_slots_(n_slots),
      n_vocab_(n_vocab),
      stride_(static_cast<int64_t>(std::max<size_t>(dev.caps().storage_offset_alignment, 4) / 4)),
      row_stride_((n_vocab + stride_ - 1) / stride_ * stride_),
      ids_(dev.alloc(static_cast<size_t>(n_slots * stride_) * 4, MemoryKind::kReadback)),
      uniform_(dev.alloc(static_cast<size_t>(n_slots * stride_) * 4)),
      rows_(dev.alloc(static_cast<size_t>(n_slots * row_stride_) * 4)) {}

Tensor SlotPicks::slot_elem(const Buffer& b, DType t, int64_t slot) const {
  KVZ_CHECK(slot >= 0 && slot < n_slots_, "SlotPicks: slot {} of {}", slot, n_slots_);
  return b.tensor(t, {n_slots_ * stride_}).slice(slot * stride_, 1);
}

Tensor SlotPicks::copy_row(Recorder& rec, int64_t slot, const Tensor& logits_row) const {
  KVZ_CHECK(slot >= 0 && slot < n_slots_, "SlotPicks: slot {} of {}", slot, n_slots_);
  const Tensor row = rows_.tensor(DType::kF32, {n_slots_ * row_stride_})
                         .slice(slot * row_stride_, n_vocab_)
                         .reshape({1, n_vocab_});
  rec.copy(logits_row, row);
  return row;
}

void SlotPicks::record_argmax(Recorder& rec, int64_t slot, const Tensor& logits_row) const {
  argmax(rec, {copy_row(rec, slot, logits_row), slot_elem(ids_, DType::kI32, slot)});
}

void SlotPicks::record_sample(Recorder& rec, int64_t slot, const Tensor& logits_row, float u,
                              float temperature, int top_k, float top_p) const {
  const Tensor row = copy_row(rec, slot, logits_row);
  const Tensor uni = slot_elem(uniform_, DType::kF32, slot);
  rec.upload(uni.mem(), &u, sizeof u);
  sample(rec, {row, uni, slot_elem(ids_, DType::kI32, slot), temperature, top_k, top_p});
}

std::vector<int32_t> SlotPicks::read() const {
  std::vector<int32_t> all(static_cast<size_t>(n_slots_ * stride_));
  dev_.download(ids_.tensor(DType::kI32, {n_slots_ * stride_}), all.data());
  std::vector<int32_t> out(static_cast<size_t>(n_slots_));
  for (size_t i = 0; i < out.size(); ++i) out[i] = all[i * static_cast<size_t>(stride_)];
  return out;
}

}  // namespace kvz
