// Compressed-cache files (kvzip/): a versioned, checksummed container for a (compressed) KV cache
// and what is needed to answer queries from it later. Written through the atomic writer
// (runtime/atomic_file.h), so an interrupted or failed write never leaves a file that loads.
//
// Layout (little-endian): "KVZCACHE" | u32 version | u64 header bytes | JSON header |
//   per layer, per KV head: u32 n_rows | i32 pos[n] | K[n] rows | V[n] rows |
//   u8 has_scores | f32 scores[L][H][n_ctx] | u64 FNV-1a 64 of every byte before it.
// K and V rows are stored in the cache's types (header "k_type" / "v_type", version 3): f16 [d],
// or d / 32 q8_0 (34-byte) / q4_0 (18-byte) blocks as llama.cpp lays them out. Version 2 files
// (f16 rows, no type keys) load as f16 caches.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kvzip/kv_cache.h"
#include "kvzip/scores.h"

namespace kvz {

struct CacheFileMeta {
  std::string model_identity;
  std::vector<int32_t> tokens;  // system prefix + context token ids [n_prefix + n_context]
  int64_t n_prefix = 0, n_context = 0;
  int32_t next_pos = 0;  // position of the next token after the context
  double kept_fraction = 1.0;
  std::vector<bool> prunable;
};

void save_cache_file(const std::string& path, const KvCache& cache, const CacheFileMeta& meta,
                     const Scores* scores = nullptr);

struct LoadedCache {
  CacheFileMeta meta;
  std::unique_ptr<KvCache> cache;
  Scores scores;  // empty if the file has none
};
// Throws FormatError naming the cause (bad magic or version, truncation, checksum mismatch,
// inconsistent header, or a model identity other than `expected_identity` when that is non-empty)
// and InputError when the file cannot be opened. Only a completely written file loads.
LoadedCache load_cache_file(const std::string& path, Device& dev,
                            const std::string& expected_identity);

}  // namespace kvz
