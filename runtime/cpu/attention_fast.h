// Fast CPU paths for paged attention and KVzip reconstruction scoring (runtime/cpu): f32
// accumulation, K/V converted per 32-row tile, online softmax, threads over work items. The
// scalar references in runtime/cpu/paged_attention_ref.cpp stay the tests' ground truth.
#pragma once

#include "runtime/args/paged_attention.h"

namespace kvz::cpu {

// Same contract as paged_attention_ref (runtime/args/paged_attention.h); results differ from it by
// f32 rounding only. n_threads <= 0: hardware concurrency.
void paged_attention_fast(const PagedAttentionArgs& args, int n_threads = 0);

// Same contract as attn_score_ref; args.lse is ignored (pass 1 keeps its own buffer).
void attn_score_fast(const AttnScoreArgs& args, int n_threads = 0);

}  // namespace kvz::cpu
