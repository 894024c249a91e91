// Shape validation shared by the attention ops and their CPU references (runtime/cpu, internal to
// kvz_runtime; public API in runtime/ops/paged_attention.h, arguments in
// runtime/args/paged_attention.h).
#pragma once

#include <cstdint>

#include "runtime/args/paged_attention.h"

namespace kvz::cpu {

struct AttnDims {
  int64_t n_q, n_heads, n_kv_heads, head_dim, group, max_blocks, n_slots;
};

// KVZ_CHECKs dtypes and shapes; returns the sizes.
AttnDims check_paged_attention(const PagedAttentionArgs& a);
AttnDims check_attn_score(const AttnScoreArgs& a);

}  // namespace kvz::cpu
