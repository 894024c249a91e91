// SlotPicks: the next token of several sequences decoded together, one slot each
// (Session::generate_batch, the server's Engine; model/). A pick copies the sequence's logits row
// to its slot and records argmax or sampling into the slot's id, so one download after the step
// reads every slot's token. Each slot's id, uniform draw and logits row start at an offset aligned
// for binding: a row of Forward::logits() need not be.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/device.h"
#include "runtime/recorder.h"

namespace kvz {

class SlotPicks {
 public:
  SlotPicks(Device& dev, int64_t n_slots, int64_t n_vocab);

  // Records the greedy pick of `slot` (lowest id on ties) from logits_row [1, n_vocab] f32.
  void record_argmax(Recorder& rec, int64_t slot, const Tensor& logits_row) const;
  // Records the sampled pick of `slot` from logits_row [1, n_vocab] f32 with the uniform draw
  // u in [0, 1) (SampleArgs, runtime/args/sampling.h).
  void record_sample(Recorder& rec, int64_t slot, const Tensor& logits_row, float u,
                     float temperature, int top_k, float top_p) const;
  // After the recorded picks ran: every slot's id, [n_slots] (a slot not picked holds junk).
  std::vector<int32_t> read() const;

  int64_t n_slots() const { return n_slots_; }

 private:
  // Records the copy of logits_row to slot's row; returns that row, [1, n_vocab] f32.
  Tensor copy_row(Recorder& rec, int64_t slot, const Tensor& logits_row) const;
  Tensor slot_elem(const Buffer& b, DType t, int64_t slot) const;

  Device& dev_;
  int64_t n_slots_, n_vocab_;
  int64_t stride_;      // elements between two slots' ids (and uniform draws)
  int64_t row_stride_;  // elements between two slots' logits rows (n_vocab rounded up)
  Buffer ids_;          // [n_slots * stride_] i32, readback
  Buffer uniform_;      // [n_slots * stride_] f32
  Buffer rows_;         // [n_slots * row_stride_] f32
};

}  // namespace kvz
