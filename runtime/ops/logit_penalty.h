// Logit processing before the token pick: llama.cpp's repetition penalty and min-p filter, applied
// in place to the logits so that argmax or sample() then picks from the result (runtime/ops).
#pragma once

#include <cstdint>

#include "runtime/args/logit_penalty.h"
#include "runtime/recorder.h"

namespace kvz {

// LogitPenaltyArgs: runtime/args/logit_penalty.h.
// True when the arguments change nothing (penalty 1 or no history, and min_p 0): callers skip the
// dispatch.
bool logit_penalty_is_noop(const LogitPenaltyArgs& args);
void logit_penalty(Recorder& rec, const LogitPenaltyArgs& args);

}  // namespace kvz
