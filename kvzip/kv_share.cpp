// Views that share a context's cache blocks (kvzip/).
#include "kvzip/kv_share.h"

#include <algorithm>

namespace kvz {
namespace {

constexpr int64_t kB = kKvBlockTokens;

// A Buffer that names `b`'s memory without owning it (a view's pools are the context's). A view
// whose pool Buffer owns memory grew pools of its own: KvCache::begin_append past what reserve()
// took. It then works on private copies and is left out of refresh and release.
Buffer alias(const Buffer& b) { return Buffer(nullptr, b.view(), 0); }

// Bytes [offset, offset + n) of a buffer as a 4-byte-element tensor (block copies of any row type).
Tensor bytes_of(const Tensor& t, size_t offset, size_t n) {
  const BufferView& v = t.mem();
  return Tensor(
      BufferView{v.handle, v.offset_bytes + offset, n, v.host ? v.host + offset : nullptr},
      DType::kI32, {static_cast<int64_t>(n / 4)});
}

}  // namespace

std::shared_ptr<SharedKv> SharedKv::make(std::unique_ptr<KvCache> base) {
  return std::shared_ptr<SharedKv>(new SharedKv(std::move(base)));
}

SharedKv::SharedKv(std::unique_ptr<KvCache> base) : base_(std::move(base)) {
  KVZ_CHECK(base_ != nullptr, "SharedKv of no cache");
  const KvCacheConfig& cfg = base_->config();
  shared_.assign(static_cast<size_t>(cfg.n_layers),
                 std::vector<int64_t>(static_cast<size_t>(cfg.n_kv_heads), 0));
  for (int il = 0; il < cfg.n_layers; ++il)
    for (int ih = 0; ih < cfg.n_kv_heads; ++ih) shared_[il][ih] = base_->rows(il, ih) / kB;
}

// Views hold a reference to their context, so none is left here.
SharedKv::~SharedKv() = default;

void SharedKv::ensure_free(int il, int64_t need) {
  KvCache::Layer& l = base_->layers_[il];
  const auto free = static_cast<int64_t>(l.free.size());
  if (need <= free) return;
  base_->grow(l, need - free);  // throws DeviceError past the binding limit, nothing changed
  refresh_views(il);
}

void SharedKv::refresh_views(int il) {
  const KvCache::Layer& b = base_->layers_[il];
  for (View* v : views_) {
    KvCache::Layer& l = v->cache_->layers_[il];
    if (l.k) continue;  // owns its pools: grew them itself (an unreserved append)
    l.k = alias(b.k);
    l.v = alias(b.v);
    l.pos = alias(b.pos);
    l.cap_blocks = b.cap_blocks;
  }
}

std::unique_ptr<SharedKv::View> SharedKv::fork(Recorder& rec) {
  const KvCacheConfig& cfg = base_->config();
  const int64_t H = cfg.n_kv_heads;
  // Each head with a partial last block gets a copy of it, so its appends never write a block
  // another view reads.
  for (int il = 0; il < cfg.n_layers; ++il) {
    int64_t partial = 0;
    for (int64_t ih = 0; ih < H; ++ih)
      partial += base_->rows(il, static_cast<int>(ih)) % kB ? 1 : 0;
    ensure_free(il, partial);
  }
  auto c = std::make_unique<KvCache>(base_->device(), cfg);
  for (int il = 0; il < cfg.n_layers; ++il) {
    KvCache::Layer& b = base_->layers_[il];
    KvCache::Layer& l = c->layers_[il];
    l.k = alias(b.k);
    l.v = alias(b.v);
    l.pos = alias(b.pos);
    l.cap_blocks = b.cap_blocks;
    l.free.clear();
    const KvCache::LayerView pools = base_->layer(il);
    const size_t k_block = pools.k_pool.nbytes() / static_cast<size_t>(b.cap_blocks),
                 v_block = pools.v_pool.nbytes() / static_cast<size_t>(b.cap_blocks),
                 p_block = pools.pos_pool.nbytes() / static_cast<size_t>(b.cap_blocks);
    for (int64_t ih = 0; ih < H; ++ih) {
      const KvCache::Head& bh = b.heads[ih];
      KvCache::Head& h = l.heads[ih];
      h.pos = bh.pos;
      const int64_t full = shared_[il][ih];
      h.blocks.assign(bh.blocks.begin(), bh.blocks.begin() + full);
      if (static_cast<int64_t>(bh.blocks.size()) == full) continue;
      const int32_t src = bh.blocks[static_cast<size_t>(full)], dst = b.free.back();
      b.free.pop_back();
      h.blocks.push_back(dst);
      const auto s = static_cast<size_t>(src), d = static_cast<size_t>(dst);
      rec.copy(bytes_of(pools.k_pool, s * k_block, k_block),
               bytes_of(pools.k_pool, d * k_block, k_block));
      rec.copy(bytes_of(pools.v_pool, s * v_block, v_block),
               bytes_of(pools.v_pool, d * v_block, v_block));
      rec.copy(bytes_of(pools.pos_pool, s * p_block, p_block),
               bytes_of(pools.pos_pool, d * p_block, p_block));
    }
  }
  rec.finish();
  for (int il = 0; il < cfg.n_layers; ++il) c->write_index(il);
  std::unique_ptr<View> v(new View(shared_from_this(), std::move(c)));
  views_.push_back(v.get());
  return v;
}

void SharedKv::reserve(View& v, int n_tokens) {
  KvCache& c = *v.cache_;
  const std::vector<int64_t> needs = c.append_needs(n_tokens);
  for (int il = 0; il < c.config().n_layers; ++il) {
    KvCache::Layer& l = c.layers_[il];
    if (l.k) continue;  // owns its pools (grows them itself)
    const int64_t short_by = needs[static_cast<size_t>(il)] - static_cast<int64_t>(l.free.size());
    if (short_by <= 0) continue;
    ensure_free(il, short_by);
    KvCache::Layer& b = base_->layers_[il];
    for (int64_t i = 0; i < short_by; ++i) {
      l.free.push_back(b.free.back());
      b.free.pop_back();
    }
  }
}

int64_t SharedKv::own_blocks(const View& v) const {
  int64_t n = 0;
  const KvCache& c = *v.cache_;
  for (int il = 0; il < c.config().n_layers; ++il) {
    const KvCache::Layer& l = c.layers_[il];
    n += static_cast<int64_t>(l.free.size());
    for (size_t ih = 0; ih < l.heads.size(); ++ih)
      n += static_cast<int64_t>(l.heads[ih].blocks.size()) - shared_[il][ih];
  }
  return n;
}

size_t SharedKv::index_bytes(const View& v) const {
  const KvCache& c = *v.cache_;
  size_t n = c.lens_.size() + c.slots_.size();
  for (const KvCache::Layer& l : c.layers_) n += l.table.size();
  return n;
}

size_t SharedKv::own_bytes(const View& v) const {
  return static_cast<size_t>(own_blocks(v)) * base_->block_bytes() + index_bytes(v);
}

void SharedKv::release(View& v) {
  views_.erase(std::find(views_.begin(), views_.end(), &v));
  KvCache& c = *v.cache_;
  for (int il = 0; il < c.config().n_layers; ++il) {
    KvCache::Layer& l = c.layers_[il];
    KvCache::Layer& b = base_->layers_[il];
    // A view grows pools of its own only when an append was not reserved: its blocks are then
    // not the context's to take back.
    if (l.k) continue;
    b.free.insert(b.free.end(), l.free.begin(), l.free.end());
    for (size_t ih = 0; ih < l.heads.size(); ++ih) {
      const auto& blocks = l.heads[ih].blocks;
      b.free.insert(b.free.end(), blocks.begin() + shared_[il][ih], blocks.end());
    }
  }
}

SharedKv::View::View(std::shared_ptr<SharedKv> owner, std::unique_ptr<KvCache> cache)
    : owner_(std::move(owner)), cache_(std::move(cache)) {}

SharedKv::View::~View() { owner_->release(*this); }

void SharedKv::View::reserve(int n_tokens) { owner_->reserve(*this, n_tokens); }

int64_t SharedKv::View::own_blocks() const { return owner_->own_blocks(*this); }

size_t SharedKv::View::own_bytes() const { return owner_->own_bytes(*this); }

size_t SharedKv::View::index_bytes() const { return owner_->index_bytes(*this); }

}  // namespace kvz
