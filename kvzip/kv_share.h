// SharedKv: one context's cache shared read-only by many requests (kvzip/). Each request works
// in a View: a KvCache whose heads list the context's full blocks (shared, never written)
// followed by blocks of its own taken from the context's pools: a copy of the head's partial last
// block, then the rows the request appends. The ops read one pool binding per layer, so the
// request's blocks live in the context's pools; they go back to the pools' free list when the
// view is released. A view's device memory is its own rows (rounded to blocks) plus at most one
// partial block per head and its index buffers, whatever the context's length.
//
// Threads and ordering: views are made, reserved and released on one thread, with no recorded GPU
// work in flight that reads the context or any of its views (the pools may be reallocated then).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "kvzip/kv_cache.h"

namespace kvz {

class SharedKv : public std::enable_shared_from_this<SharedKv> {
 public:
  class View;

  // Takes the context's cache; nothing may modify it afterwards except through views.
  static std::shared_ptr<SharedKv> make(std::unique_ptr<KvCache> base);
  ~SharedKv();
  SharedKv(const SharedKv&) = delete;
  SharedKv& operator=(const SharedKv&) = delete;

  const KvCache& base() const { return *base_; }
  // A new view holding the context's rows; `rec` records the partial-block copies and is
  // finished before returning.
  std::unique_ptr<View> fork(Recorder& rec);
  int views() const { return static_cast<int>(views_.size()); }

  class View {
   public:
    ~View();  // its blocks go back to the context's pools
    View(const View&) = delete;
    View& operator=(const View&) = delete;

    // The request's cache: append to it (after reserve()), attend to it. Never truncate or drop
    // rows of it below the context's length (those blocks are shared).
    KvCache& cache() { return *cache_; }
    // Takes from the context's pools the blocks the next append of n_tokens rows needs (growing
    // the pools when they are short; every view then reads the new pools), so that the append
    // itself allocates nothing.
    void reserve(int n_tokens);
    // Device bytes this view holds: its own blocks (rows and reserved spares) and its index
    // buffers (block tables, lengths, append slots).
    size_t own_bytes() const;
    // The part of own_bytes() outside the context's pools: the index buffers.
    size_t index_bytes() const;
    // Blocks of its own (all layers).
    int64_t own_blocks() const;

   private:
    friend class SharedKv;
    View(std::shared_ptr<SharedKv> owner, std::unique_ptr<KvCache> cache);
    std::shared_ptr<SharedKv> owner_;
    std::unique_ptr<KvCache> cache_;
  };

 private:
  explicit SharedKv(std::unique_ptr<KvCache> base);
  // Makes `need` free blocks available in layer il of the context's pools.
  void ensure_free(int il, int64_t need);
  // Points every view's pools at the context's (after they were reallocated).
  void refresh_views(int il);
  void release(View& v);
  void reserve(View& v, int n_tokens);
  int64_t own_blocks(const View& v) const;
  size_t own_bytes(const View& v) const;
  size_t index_bytes(const View& v) const;

  std::unique_ptr<KvCache> base_;
  std::vector<std::vector<int64_t>> shared_;  // [layer][head] full blocks every view shares
  std::vector<View*> views_;
};

}  // namespace kvz
