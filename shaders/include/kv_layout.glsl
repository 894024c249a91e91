// The paged KV layout every kernel that reads the pools shares (runtime/ops/paged_kv.h,
// kvzip/kv_cache.h): the rows of each KV head live in blocks of KV_BLOCK rows, and
// block_table[h, b] is the pool block that holds rows [b * KV_BLOCK, (b + 1) * KV_BLOCK) of head
// h. The includer declares, before including: the binding `block_table` (i32 [n_kv_heads,
// max_blocks]) and a push block `p` with max_blocks.
const uint KV_BLOCK = 32u;  // kKvBlockTokens

// Pool slot of row t of KV head h.
uint kv_slot(uint h, uint t) {
  return uint(block_table[h * p.max_blocks + t / KV_BLOCK]) * KV_BLOCK + t % KV_BLOCK;
}
