// ContextStore: the compressed contexts of `kvzip serve` (server/). Each context is a KV cache
// built once (prefill + scoring + pruning) and never modified afterwards; with a cache folder it
// is also a cache file (kvzip/cache_file.h) plus a small JSON sidecar, reloaded at start.
// Resident caches are evicted least-recently-used under a memory budget and reloaded on demand.
//
// Threads: the metadata (list, get, erase) may be read from any thread; resident caches are
// created, loaded, evicted and read only on the engine thread (the one that owns the device).
// Requests read a context through views that share its blocks (kvzip/kv_share.h); an evicted or
// deleted context's memory is freed when its last view ends, and counted until then (bytes()).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "kvzip/kv_share.h"
#include "model/model.h"

namespace kvz::server {

struct ContextInfo {
  std::string id, method;
  double ratio = 1.0, kept_fraction = 1.0;
  int64_t n_prefix = 0, n_context = 0;  // tokens
  int32_t next_pos = 0;                 // position of the first query token
  int64_t created = 0;                  // unix seconds
  size_t bytes = 0, full_bytes = 0;     // KV bytes in use: compressed, and before compression
  std::string cache_type_k = "f16", cache_type_v = "f16";  // storage types of its K and V rows
  bool resident = false;
  nlohmann::json to_json() const;
};

class ContextStore {
 public:
  // cache_dir empty: contexts live in memory only (never evicted). budget_bytes 0: no budget.
  ContextStore(const Model& model, std::string cache_dir, size_t budget_bytes);

  // Loads the sidecars of cache_dir and as many caches as the budget holds (engine thread).
  // Files that fail to load are reported through `warn` and skipped.
  void load_all(const std::function<void(const std::string&)>& warn);

  // Where the cache file of `id` goes (the builder writes it before add()); empty without a
  // cache folder.
  std::string cache_path(const std::string& id) const;
  // Adds a built context (engine thread): writes its sidecar when there is a cache folder, then
  // makes room under the budget. Throws ApiError(503) when it cannot fit without a cache folder.
  ContextInfo add(ContextInfo info, std::unique_ptr<KvCache> cache);
  // The resident cache of `id`, loaded from its file if evicted, marked most recently used
  // (engine thread); requests take views of it (SharedKv::fork). Throws ApiError(404) for an
  // unknown id.
  std::shared_ptr<SharedKv> acquire(const std::string& id);

  std::vector<ContextInfo> list() const;
  std::optional<ContextInfo> get(const std::string& id) const;
  // Removes the context and its files; false if unknown. The cache itself is freed on the engine
  // thread: at its next step (release_erased), or when the last request viewing it ends.
  bool erase(const std::string& id);
  // Engine thread, between steps: drops the store's references to evicted and deleted caches
  // (those no request reads are freed) and recounts bytes().
  void release_erased();

  // Device bytes of the context caches (their pools, with the blocks their requests took), as
  // the engine thread counted them at its last add(), acquire() or release_erased(): resident
  // ones, and evicted or deleted ones still in memory (until released, and while requests read
  // them).
  struct Bytes {
    size_t resident = 0, pending = 0;
    int n_pending = 0;
  };
  Bytes bytes() const;
  int resident_count() const;
  std::string new_id() const;

 private:
  struct Entry {
    ContextInfo info;
    std::shared_ptr<SharedKv> cache;  // null when evicted (requests may still view it)
    uint64_t last_use = 0;
  };
  std::string meta_path(const std::string& id) const;
  // Evicts least-recently-used caches other than `keep` until the resident bytes fit the budget.
  void make_room(const std::string& keep);
  void write_meta(const ContextInfo& info) const;
  size_t resident_bytes_locked() const;
  // Sets bytes_ (engine thread, mu_ held).
  void recount_locked();

  const Model& model_;
  std::string dir_;
  size_t budget_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;
  std::vector<std::shared_ptr<SharedKv>> erased_;  // released on the engine thread
  // Evicted or deleted caches the store no longer holds; alive while requests view them (engine
  // thread only: the last reference must be dropped there).
  std::vector<std::weak_ptr<SharedKv>> pending_;
  Bytes bytes_;  // under mu_, written by release_erased()
  uint64_t clock_ = 0;
};

}  // namespace kvz::server
