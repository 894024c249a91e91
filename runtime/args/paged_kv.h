// Arguments and CPU references of the paged key/value storage ops (runtime/args: the data half
// of runtime/ops/paged_kv.h, below both runtime/ops and runtime/cpu so that the CPU backend needs
// no op header).
//
// Layout shared by every paged-KV op, one set of pools per transformer layer:
//   k_pool, v_pool: [n_blocks, kKvBlockTokens, head_dim] f16  -- rows of cached keys / values
//   pos_pool:       [n_blocks, kKvBlockTokens] i32            -- original position of each row
//   block_table:    [n_kv_heads, max_blocks] i32              -- blocks of each KV head, in order
//   lens:           [n_kv_heads] i32                          -- rows in use per KV head
// Row t of KV head h lives in slot  block_table[h][t / 32] * 32 + t % 32.  Heads are independent
// (ragged): memory in use is proportional to kept rows, rounded up to one block per head.
#pragma once

#include "runtime/args/rope.h"
#include "runtime/tensor.h"

namespace kvz {

constexpr int kKvBlockTokens = 32;  // shaders/include/kv_layout.glsl KV_BLOCK mirrors it

// Writes n_tokens new rows for every KV head: for head h and token t, k_new[t, h, :] and
// v_new[t, h, :] (f32, converted to f16) go to slot dst_slot[h, t]; pos_new[t] to pos_pool there.
// k_new, v_new: [n_tokens, n_kv_heads, head_dim] f32; pos_new: [n_tokens] i32;
// dst_slot: [n_kv_heads, n_tokens] i32.
// With rope.inv_freq defined, K is stored as rope() with x = k_new, pos = pos_new and this
// rotation would leave it, bit for bit, in the same dispatch (one dispatch and barrier fewer per
// layer); k_new itself is left unrotated.
struct KvWriteArgs {
  Tensor k_new, v_new, pos_new, dst_slot;
  Tensor k_pool, v_pool, pos_pool;
  RopeParams rope = {};
};

// Copies n rows: slot src_slot[i] of the source pools to slot dst_slot[i] of the destination pools
// (K, V and position). src and dst pools must not be the same buffers.
// src_slot, dst_slot: [n] i32.
struct KvGatherArgs {
  Tensor src_slot, dst_slot;
  Tensor k_src, v_src, pos_src;
  Tensor k_dst, v_dst, pos_dst;
};

namespace cpu {
void kv_write_ref(const KvWriteArgs& args);
void kv_gather_ref(const KvGatherArgs& args);
}  // namespace cpu

}  // namespace kvz
