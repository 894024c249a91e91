// Logit processing before the token pick: llama.cpp's repetition penalty and min-p filter, applied
// in place to the logits so that argmax or sample() then picks from the result (runtime/ops).
#pragma once

#include <cstdint>

#include "runtime/recorder.h"

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
// True when the arguments change nothing (penalty 1 or no history, and min_p 0): callers skip the
// dispatch.
bool logit_penalty_is_noop(const LogitPenaltyArgs& args);
void logit_penalty(Recorder& rec, const LogitPenaltyArgs& args);

namespace cpu {
void logit_penalty_ref(const LogitPenaltyArgs& args);
}  // namespace cpu

}  // namespace kvz
