// KvCache: the ragged per-(layer, KV head) key/value cache in the paged layout of
// runtime/ops/paged_kv.h (kvzip/). Each head owns a list of 32-row blocks, so memory in use is
// kept rows x bytes per row plus at most one partial block per head; appends grab free blocks
// (O(1) amortised: pools grow geometrically, index entries are written incrementally),
// compaction is one GPU gather pass per layer, and rows keep their original positions forever.
//
// Synchronisation: the index tensors (block tables, lens, pending dst slots) live in device
// memory. begin_append(rec, ...) writes them in rec's stream (Recorder::upload); the other
// mutating calls (begin_append without a recorder, drop_last, truncate, compact) copy at once and
// must not run while recorded GPU work that reads them is still in flight: finish() first.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "runtime/ops/paged_kv.h"

namespace kvz {

struct KvCacheConfig {
  int n_layers = 0, n_kv_heads = 0, head_dim = 0;
  std::vector<bool> prunable;  // [n_layers]; empty = all. Sliding-window layers are not pruned.
  // Storage types of the K and V rows (runtime/kv_quant.h): f16, q8_0 or q4_0 (quantised
  // types need head_dim % 32 == 0). Rows are quantised once, when kv_write appends them.
  DType k_type = DType::kF16, v_type = DType::kF16;
  bool is_prunable(int il) const { return prunable.empty() || prunable[il]; }
};

// For every (layer, head), the sorted row indices to keep. [n_layers][n_kv_heads][n_kept].
struct KeepSet {
  std::vector<std::vector<std::vector<int32_t>>> rows;
  double kept_fraction = 1.0;  // kept / total context pairs over prunable layers
  int64_t n_kept = 0, n_total = 0;
};

// Host copy of one head's rows (cache files, tests). read_layer gives f16 rows; read_layer_raw and
// from_rows the storage rows (for q8_0 / q4_0, each row's block bytes as little-endian uint16s).
struct HeadRows {
  std::vector<int32_t> pos;    // [n] original positions, strictly increasing
  std::vector<uint16_t> k, v;  // [n, row_bytes / 2]: f16 bits or quantised blocks
};

class KvCache {
 public:
  struct LayerView {
    Tensor k_pool, v_pool;  // [n_blocks, 32, head_dim] of config().k_type / v_type
    Tensor pos_pool;        // [n_blocks, 32] i32
    Tensor block_table;     // [n_kv_heads, table_stride] i32 (entries past a head's blocks unused)
    Tensor lens;            // [n_kv_heads] i32
  };

  // reserve_tokens > 0 pre-allocates that many rows per head (no pool growth up to it).
  KvCache(Device& dev, KvCacheConfig cfg, int64_t reserve_tokens = 0);
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  const KvCacheConfig& config() const { return cfg_; }
  Device& device() const { return *dev_; }

  // Each layer's K and V pool is one storage-buffer binding of the ops, so a layer holds at most
  // max_pool_blocks() blocks of 32 rows (all heads together): maxStorageBufferRange / (32 x
  // bytes per row), e.g. 64K tokens of LLaMA-3.1-8B (8 KV heads x 128, f16) on lavapipe's 128 MiB.
  int64_t max_pool_blocks() const;
  // Throws DeviceError naming the context, the pool size and the device limit when n_context
  // tokens (+ extra working rows: a reconstruction or query chunk) on every head would not fit
  // one layer's pool. Appends past the limit throw the same error (never a validation error).
  void check_capacity(int64_t n_context, int64_t extra = 0) const;

  // Reserves n_tokens new rows at the end of every head of every layer; dst_slots(il) then says
  // where kv_write puts them. `positions` must be strictly increasing and above every position
  // already cached; the host mirror (positions()) records them, kv_write writes them to the pool.
  void begin_append(int n_tokens, std::span<const int32_t> positions);
  // The same, with the index writes recorded on `rec` in stream order (no host wait): the
  // decode path. Buffers may still be reallocated (pool growth), so finish earlier work first
  // unless append_in_place(n_tokens).
  void begin_append(Recorder& rec, int n_tokens, std::span<const int32_t> positions);
  // Whether begin_append(n_tokens, ...) keeps every device buffer (pools, block tables, the slot
  // list): it may then be recorded while earlier work that reads the cache still runs.
  bool append_in_place(int n_tokens) const;
  // [n_kv_heads, n_tokens] i32 slots of the pending append (valid until the next mutation).
  Tensor dst_slots(int il) const;
  LayerView layer(int il) const;
  // Removes the last n rows of every head of every layer (a scoring chunk, a query + answer).
  void drop_last(int64_t n);
  // Removes, from every head, the rows at positions >= end_pos (e.g. end_pos = N drops the query
  // and answer after generate, whatever each head kept of the context).
  void truncate(int32_t end_pos);

  // Rows (tokens) held by head ih of layer il.
  int64_t rows(int il, int ih) const {
    return static_cast<int64_t>(layers_[il].heads[ih].pos.size());
  }
  // Rows of the longest head of layer il.
  int64_t max_rows(int il) const;
  // Rows of all heads of layer il together.
  int64_t layer_rows(int il) const;
  // Original positions of the rows of head ih of layer il, in row order (host mirror).
  const std::vector<int32_t>& positions(int il, int ih) const { return layers_[il].heads[ih].pos; }
  int64_t total_rows() const;
  // Bytes of the rows in use (K + V in their storage types, position i32) rounded to whole
  // blocks, plus the index entries in use (one block-table entry per block, one length per head).
  size_t bytes_in_use() const;
  // Bytes one dense cache of this cache's types would need for the same token count on every
  // head; f16 = true: of an f16 cache (the baseline quantisation and eviction are measured
  // against).
  size_t full_bytes(int64_t n_tokens, bool f16 = false) const;
  // Device memory actually allocated (pools with spare blocks, index buffers).
  size_t bytes_allocated() const;

  // Keeps keep.rows[il][ih] (sorted, indices < rows(il, ih)) of every head: one gather pass per
  // layer into right-sized pools. Finishes `rec` before returning.
  void compact(Recorder& rec, const KeepSet& keep);
  // A deep copy (GPU copies; finishes `rec`).
  std::unique_ptr<KvCache> clone(Recorder& rec) const;

  // Host copies of every head's rows of layer il: as f16 (dequantised; scorers that read K), or
  // as stored (cache files). from_rows builds a cache from stored rows of cfg's types.
  std::vector<HeadRows> read_layer(int il) const;
  std::vector<HeadRows> read_layer_raw(int il) const;
  static std::unique_ptr<KvCache> from_rows(Device& dev, KvCacheConfig cfg,
                                            const std::vector<std::vector<HeadRows>>& rows);

 private:
  friend class SharedKv;  // kvzip/kv_share.h: views that share this cache's blocks
  struct Head {
    std::vector<int32_t> blocks;  // block ids, in row order
    std::vector<int32_t> pos;     // [rows] host mirror of the positions
  };
  struct Layer {
    Buffer k, v, pos;  // pools: [cap_blocks, 32, head_dim] f16 x2, [cap_blocks, 32] i32
    int64_t cap_blocks = 0;
    std::vector<int32_t> free;  // free block ids (stack)
    std::vector<Head> heads;
    Buffer table;  // [H, table_stride] i32
    int64_t table_stride = 0;
  };
  void alloc_pools(Layer& l, int64_t blocks);
  int64_t tokens_per_head(int64_t blocks) const;
  void grow(Layer& l, int64_t need_free);
  void take_blocks(Layer& l, Head& h, int64_t rows);
  void release_rows(Layer& l, Head& h, int64_t n);
  // Writes the block-table entries [from, blocks) of head ih; reallocates (and rewrites) the
  // table when a head outgrows table_stride.
  void write_table(int il, int ih, int64_t from);
  void write_index(int il);  // whole table + lens
  void write_lens(int il);
  void write_all_lens();  // every layer's lens in one upload
  // Offset of layer il's part of lens_ / slots_ (each part aligned for binding on its own).
  size_t part_offset(int il, size_t part_bytes) const;
  size_t lens_offset(int il) const;
  size_t slots_offset(int il) const;
  // New blocks each layer needs for n_tokens more rows on every head.
  std::vector<int64_t> append_needs(int n_tokens) const;
  void fill_lens(int il, int32_t* out) const;  // the [H] row lengths of layer il
  // Host bytes into an index buffer: through rec_ when set (begin_append(rec, ...)), else at once.
  void upload(const BufferView& dst, const void* src, size_t bytes);
  Recorder* rec_ = nullptr;
  size_t block_bytes() const;
  size_t k_row_bytes() const;
  size_t v_row_bytes() const;

  Device* dev_;
  KvCacheConfig cfg_;
  std::vector<Layer> layers_;
  // One buffer for the lengths of every layer ([H] i32 each) and one for the pending append's
  // slots ([H, pending] i32 each): a decode step writes both with one upload each.
  Buffer lens_, slots_;
  int pending_ = 0;  // tokens of the current append
};

}  // namespace kvz
