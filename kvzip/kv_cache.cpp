// Ragged paged KV cache: block bookkeeping on the host, pools and gathers on the device (kvzip/).
#include "kvzip/kv_cache.h"

#include <algorithm>
#include <numeric>

namespace kvz {
namespace {

constexpr int64_t kB = kKvBlockTokens;
int64_t blocks_for(int64_t rows) { return (rows + kB - 1) / kB; }

}  // namespace

KvCache::KvCache(Device& dev, KvCacheConfig cfg) : dev_(&dev), cfg_(std::move(cfg)) {
  KVZ_CHECK(cfg_.n_layers > 0 && cfg_.n_kv_heads > 0 && cfg_.head_dim > 0 && cfg_.head_dim % 2 == 0,
            "KvCache config L={} H={} d={}", cfg_.n_layers, cfg_.n_kv_heads, cfg_.head_dim);
  layers_.resize(static_cast<size_t>(cfg_.n_layers));
  for (int il = 0; il < cfg_.n_layers; ++il) {
    Layer& l = layers_[il];
    l.heads.resize(static_cast<size_t>(cfg_.n_kv_heads));
    alloc_pools(l, 4 * cfg_.n_kv_heads);
    sync_index(il);
  }
}

KvCache::~KvCache() = default;

size_t KvCache::block_bytes() const {
  return static_cast<size_t>(kB) * (2u * 2u * static_cast<size_t>(cfg_.head_dim) + 4u);
}

void KvCache::alloc_pools(Layer& l, int64_t blocks) {
  const size_t rows = static_cast<size_t>(blocks * kB), hd = static_cast<size_t>(cfg_.head_dim);
  l.k = dev_->alloc(rows * hd * 2);
  l.v = dev_->alloc(rows * hd * 2);
  l.pos = dev_->alloc(rows * 4);
  l.cap_blocks = blocks;
  l.free.clear();
  for (int64_t b = blocks - 1; b >= 0; --b) l.free.push_back(static_cast<int32_t>(b));
}

void KvCache::grow(Layer& l, int64_t need_free) {
  const int64_t old_cap = l.cap_blocks;
  const int64_t new_cap = std::max(old_cap + need_free, old_cap + old_cap / 2 + 4);
  Layer fresh;
  alloc_pools(fresh, new_cap);
  const int64_t hd = cfg_.head_dim;
  Recorder rec(*dev_);
  auto pool = [&](const Buffer& b, DType t, int64_t cap, bool rows_only) {
    return rows_only ? b.tensor(t, {cap, kB}) : b.tensor(t, {cap, kB, hd});
  };
  rec.copy(pool(l.k, DType::kF16, old_cap, false), pool(fresh.k, DType::kF16, new_cap, false).slice(0, old_cap));
  rec.copy(pool(l.v, DType::kF16, old_cap, false), pool(fresh.v, DType::kF16, new_cap, false).slice(0, old_cap));
  rec.copy(pool(l.pos, DType::kI32, old_cap, true), pool(fresh.pos, DType::kI32, new_cap, true).slice(0, old_cap));
  rec.finish();  // the old pools are freed below
  l.k = std::move(fresh.k);
  l.v = std::move(fresh.v);
  l.pos = std::move(fresh.pos);
  for (int64_t b = new_cap - 1; b >= old_cap; --b) l.free.push_back(static_cast<int32_t>(b));
  l.cap_blocks = new_cap;
}

void KvCache::sync_index(int il) {
  Layer& l = layers_[il];
  const int64_t H = cfg_.n_kv_heads;
  l.max_blocks = 1;
  for (const Head& h : l.heads) l.max_blocks = std::max<int64_t>(l.max_blocks, static_cast<int64_t>(h.blocks.size()));
  if (H * l.max_blocks > l.table_cap) {
    l.table_cap = std::max(H * l.max_blocks, 2 * l.table_cap);
    l.table = dev_->alloc(static_cast<size_t>(l.table_cap) * 4, MemoryKind::kUpload);
  }
  if (!l.lens) l.lens = dev_->alloc(static_cast<size_t>(H) * 4, MemoryKind::kUpload);
  std::vector<int32_t> table(static_cast<size_t>(H * l.max_blocks), 0), lens(static_cast<size_t>(H));
  for (int64_t h = 0; h < H; ++h) {
    const Head& hd = l.heads[h];
    std::copy(hd.blocks.begin(), hd.blocks.end(), table.begin() + h * l.max_blocks);
    lens[h] = static_cast<int32_t>(hd.len);
  }
  dev_->upload(l.table.view(), table.data(), table.size() * 4);
  dev_->upload(l.lens.view(), lens.data(), lens.size() * 4);
}

void KvCache::begin_append(int n_tokens, std::span<const int32_t> positions) {
  KVZ_CHECK(n_tokens > 0 && positions.size() == static_cast<size_t>(n_tokens));
  const int64_t H = cfg_.n_kv_heads;
  pending_ = n_tokens;
  for (int il = 0; il < cfg_.n_layers; ++il) {
    Layer& l = layers_[il];
    int64_t need = 0;
    for (const Head& h : l.heads)
      need += blocks_for(h.len + n_tokens) - static_cast<int64_t>(h.blocks.size());
    if (need > static_cast<int64_t>(l.free.size())) grow(l, need - static_cast<int64_t>(l.free.size()));
    std::vector<int32_t> slots(static_cast<size_t>(H * n_tokens));
    for (int64_t ih = 0; ih < H; ++ih) {
      Head& h = l.heads[ih];
      while (static_cast<int64_t>(h.blocks.size()) < blocks_for(h.len + n_tokens)) {
        h.blocks.push_back(l.free.back());
        l.free.pop_back();
      }
      for (int64_t t = 0; t < n_tokens; ++t) {
        int64_t row = h.len + t;
        slots[ih * n_tokens + t] = static_cast<int32_t>(h.blocks[row / kB] * kB + row % kB);
      }
      h.len += n_tokens;
    }
    if (H * n_tokens > l.slots_cap) {
      l.slots_cap = std::max(H * n_tokens, 2 * l.slots_cap);
      l.slots = dev_->alloc(static_cast<size_t>(l.slots_cap) * 4, MemoryKind::kUpload);
    }
    dev_->upload(l.slots.view(), slots.data(), slots.size() * 4);
    sync_index(il);
  }
}

Tensor KvCache::dst_slots(int il) const {
  KVZ_CHECK(pending_ > 0, "dst_slots() without begin_append()");
  return layers_[il].slots.tensor(DType::kI32, {cfg_.n_kv_heads, pending_});
}

KvCache::LayerView KvCache::layer(int il) const {
  const Layer& l = layers_[il];
  const int64_t hd = cfg_.head_dim;
  return {l.k.tensor(DType::kF16, {l.cap_blocks, kB, hd}), l.v.tensor(DType::kF16, {l.cap_blocks, kB, hd}),
          l.pos.tensor(DType::kI32, {l.cap_blocks, kB}),
          l.table.tensor(DType::kI32, {cfg_.n_kv_heads, l.max_blocks}),
          l.lens.tensor(DType::kI32, {cfg_.n_kv_heads})};
}

void KvCache::drop_last(int64_t n) {
  if (n <= 0) return;
  for (int il = 0; il < cfg_.n_layers; ++il) {
    Layer& l = layers_[il];
    for (Head& h : l.heads) {
      KVZ_CHECK(h.len >= n, "drop_last({}) of a head with {} rows", n, h.len);
      h.len -= n;
      while (static_cast<int64_t>(h.blocks.size()) > blocks_for(h.len)) {
        l.free.push_back(h.blocks.back());
        h.blocks.pop_back();
      }
    }
    sync_index(il);
  }
  pending_ = 0;
}

int64_t KvCache::total_rows() const {
  int64_t n = 0;
  for (const Layer& l : layers_)
    for (const Head& h : l.heads) n += h.len;
  return n;
}

size_t KvCache::bytes_in_use() const {
  size_t b = 0;
  for (const Layer& l : layers_) {
    for (const Head& h : l.heads) b += h.blocks.size() * block_bytes();
    b += static_cast<size_t>(cfg_.n_kv_heads * (l.max_blocks + 1)) * 4;
  }
  return b;
}

size_t KvCache::full_bytes(int64_t n_tokens) const {
  return static_cast<size_t>(cfg_.n_layers * cfg_.n_kv_heads * blocks_for(n_tokens)) * block_bytes();
}

size_t KvCache::bytes_allocated() const {
  size_t b = 0;
  for (const Layer& l : layers_)
    b += l.k.size() + l.v.size() + l.pos.size() + l.table.size() + l.lens.size() + l.slots.size();
  return b;
}

void KvCache::compact(Recorder& rec, const KeepSet& keep) {
  KVZ_CHECK(static_cast<int>(keep.rows.size()) == cfg_.n_layers, "KeepSet has {} layers", keep.rows.size());
  const int64_t H = cfg_.n_kv_heads;
  std::vector<Layer> fresh(layers_.size());
  std::vector<Buffer> temps;
  for (int il = 0; il < cfg_.n_layers; ++il) {
    const Layer& old = layers_[il];
    const auto& kl = keep.rows[il];
    KVZ_CHECK(static_cast<int64_t>(kl.size()) == H, "KeepSet layer {} has {} heads", il, kl.size());
    int64_t blocks = 0;
    for (const auto& r : kl) blocks += blocks_for(static_cast<int64_t>(r.size()));
    Layer& nl = fresh[il];
    nl.heads.resize(static_cast<size_t>(H));
    alloc_pools(nl, blocks + 2 * H);  // spare blocks for the next query without growing
    std::vector<int32_t> src, dst;
    for (int64_t ih = 0; ih < H; ++ih) {
      const auto& rows = kl[ih];
      const Head& oh = old.heads[ih];
      Head& nh = nl.heads[ih];
      for (int64_t b = 0; b < blocks_for(static_cast<int64_t>(rows.size())); ++b) {
        nh.blocks.push_back(nl.free.back());
        nl.free.pop_back();
      }
      for (size_t i = 0; i < rows.size(); ++i) {
        int32_t r = rows[i];
        KVZ_CHECK(r >= 0 && r < oh.len && (i == 0 || rows[i - 1] < r),
                  "KeepSet layer {} head {}: row {} invalid or unsorted (head has {} rows)", il, ih, r, oh.len);
        src.push_back(static_cast<int32_t>(oh.blocks[r / kB] * kB + r % kB));
        dst.push_back(static_cast<int32_t>(nh.blocks[i / kB] * kB + static_cast<int64_t>(i) % kB));
      }
      nh.len = static_cast<int64_t>(rows.size());
    }
    if (src.empty()) continue;
    const auto n = static_cast<int64_t>(src.size());
    temps.push_back(dev_->alloc_upload(src.data(), src.size() * 4));
    Tensor ts = temps.back().tensor(DType::kI32, {n});
    temps.push_back(dev_->alloc_upload(dst.data(), dst.size() * 4));
    Tensor td = temps.back().tensor(DType::kI32, {n});
    LayerView ov = layer(il);
    const int64_t hd = cfg_.head_dim;
    kv_gather(rec, {ts, td, ov.k_pool, ov.v_pool, ov.pos_pool,
                    nl.k.tensor(DType::kF16, {nl.cap_blocks, kB, hd}),
                    nl.v.tensor(DType::kF16, {nl.cap_blocks, kB, hd}),
                    nl.pos.tensor(DType::kI32, {nl.cap_blocks, kB})});
  }
  rec.finish();  // old pools and temporaries are released below
  for (int il = 0; il < cfg_.n_layers; ++il) {
    Layer& l = layers_[il];
    Layer& nl = fresh[il];
    l.k = std::move(nl.k);
    l.v = std::move(nl.v);
    l.pos = std::move(nl.pos);
    l.cap_blocks = nl.cap_blocks;
    l.free = std::move(nl.free);
    l.heads = std::move(nl.heads);
    sync_index(il);
  }
  pending_ = 0;
}

std::unique_ptr<KvCache> KvCache::clone(Recorder& rec) const {
  auto c = std::make_unique<KvCache>(*dev_, cfg_);
  const int64_t hd = cfg_.head_dim;
  for (int il = 0; il < cfg_.n_layers; ++il) {
    const Layer& l = layers_[il];
    Layer& nl = c->layers_[il];
    c->alloc_pools(nl, l.cap_blocks);
    rec.copy(l.k.tensor(DType::kF16, {l.cap_blocks, kB, hd}), nl.k.tensor(DType::kF16, {l.cap_blocks, kB, hd}));
    rec.copy(l.v.tensor(DType::kF16, {l.cap_blocks, kB, hd}), nl.v.tensor(DType::kF16, {l.cap_blocks, kB, hd}));
    rec.copy(l.pos.tensor(DType::kI32, {l.cap_blocks, kB}), nl.pos.tensor(DType::kI32, {l.cap_blocks, kB}));
    nl.free = l.free;
    nl.heads = l.heads;
  }
  rec.finish();
  for (int il = 0; il < cfg_.n_layers; ++il) c->sync_index(il);
  return c;
}

std::vector<HeadRows> KvCache::read_layer(int il) const {
  const Layer& l = layers_[il];
  const size_t hd = static_cast<size_t>(cfg_.head_dim), rows = static_cast<size_t>(l.cap_blocks * kB);
  std::vector<uint16_t> k(rows * hd), v(rows * hd);
  std::vector<int32_t> pos(rows);
  dev_->download(l.k.view(), k.data(), k.size() * 2);
  dev_->download(l.v.view(), v.data(), v.size() * 2);
  dev_->download(l.pos.view(), pos.data(), pos.size() * 4);
  std::vector<HeadRows> out(l.heads.size());
  for (size_t ih = 0; ih < l.heads.size(); ++ih) {
    const Head& h = l.heads[ih];
    HeadRows& r = out[ih];
    for (int64_t t = 0; t < h.len; ++t) {
      size_t slot = static_cast<size_t>(h.blocks[t / kB] * kB + t % kB);
      r.pos.push_back(pos[slot]);
      r.k.insert(r.k.end(), k.begin() + slot * hd, k.begin() + (slot + 1) * hd);
      r.v.insert(r.v.end(), v.begin() + slot * hd, v.begin() + (slot + 1) * hd);
    }
  }
  return out;
}

std::unique_ptr<KvCache> KvCache::from_rows(Device& dev, KvCacheConfig cfg,
                                            const std::vector<std::vector<HeadRows>>& rows) {
  auto c = std::make_unique<KvCache>(dev, cfg);
  const size_t hd = static_cast<size_t>(cfg.head_dim);
  KVZ_CHECK(static_cast<int>(rows.size()) == cfg.n_layers);
  for (int il = 0; il < cfg.n_layers; ++il) {
    Layer& l = c->layers_[il];
    int64_t blocks = 0;
    for (const HeadRows& r : rows[il]) blocks += blocks_for(static_cast<int64_t>(r.pos.size()));
    c->alloc_pools(l, blocks + 2 * cfg.n_kv_heads);
    const size_t cap_rows = static_cast<size_t>(l.cap_blocks * kB);
    std::vector<uint16_t> k(cap_rows * hd), v(cap_rows * hd);
    std::vector<int32_t> pos(cap_rows);
    for (size_t ih = 0; ih < rows[il].size(); ++ih) {
      const HeadRows& r = rows[il][ih];
      Head& h = l.heads[ih];
      h.len = static_cast<int64_t>(r.pos.size());
      KVZ_CHECK(r.k.size() == r.pos.size() * hd && r.v.size() == r.k.size());
      for (int64_t b = 0; b < blocks_for(h.len); ++b) {
        h.blocks.push_back(l.free.back());
        l.free.pop_back();
      }
      for (int64_t t = 0; t < h.len; ++t) {
        size_t slot = static_cast<size_t>(h.blocks[t / kB] * kB + t % kB);
        pos[slot] = r.pos[t];
        std::copy_n(r.k.begin() + t * hd, hd, k.begin() + slot * hd);
        std::copy_n(r.v.begin() + t * hd, hd, v.begin() + slot * hd);
      }
    }
    dev.upload(l.k.view(), k.data(), k.size() * 2);
    dev.upload(l.v.view(), v.data(), v.size() * 2);
    dev.upload(l.pos.view(), pos.data(), pos.size() * 4);
    c->sync_index(il);
  }
  return c;
}

}  // namespace kvz
