// Arguments and CPU references of the logit processing op (runtime/args: the data half of
// runtime/ops/logit_penalty.h, below both runtime/ops and runtime/cpu so that the CPU backend needs
// no op header).
#pragma once

#include "runtime/tensor.h"

namespace kvz {

// For each row r, in place:
// 1. repetition penalty: every distinct id t in `history` with 0 <= t < n_vocab (others, e.g. -1
//    for an empty slot, are skipped) gets l_t / penalty where l_t > 0, else l_t * penalty
//    (llama.cpp's rule; a token repeated in the history is penalised once);
// 2. min-p: with min_p > 0, every logit below max_j l_j + ln(min_p) becomes -inf (a probability
//    below min_p times the most likely token's, before temperature, as llama.cpp).
// logits: [n_rows, n_vocab] f32 (read and written); history: [n_hist] i32, shared by the rows.
struct LogitPenaltyArgs {
  Tensor logits, history;
  float penalty = 1.0f;  // 1 = off; > 0
  float min_p = 0.0f;    // 0 = off; < 1
};

namespace cpu {
void logit_penalty_ref(const LogitPenaltyArgs& args);
}  // namespace cpu

}  // namespace kvz
