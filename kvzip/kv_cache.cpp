// Ragged paged KV cache: block bookkeeping on the host, pools and gathers on the device (kvzip/).
#include "kvzip/kv_cache.h"

#include <algorithm>
#include <numeric>

#include "runtime/cpu/half.h"
#include "runtime/kv_quant.h"

namespace kvz {
namespace {

constexpr int64_t kB = kKvBlockTokens;
int64_t blocks_for(int64_t rows) { return (rows + kB - 1) / kB; }

// Bytes [offset, offset + n) of a buffer, as a view for Device::upload.
BufferView sub_view(const BufferView& v, size_t offset, size_t n) {
  KVZ_CHECK(offset + n <= v.size_bytes, "sub-view [{}, +{}) of a {}-byte buffer", offset, n,
            v.size_bytes);
  return {v.handle, v.offset_bytes + offset, n, v.host ? v.host + offset : nullptr};
}

}  // namespace

KvCache::KvCache(Device& dev, KvCacheConfig cfg, int64_t reserve_tokens)
    : dev_(&dev), cfg_(std::move(cfg)) {
  KVZ_CHECK(cfg_.n_layers > 0 && cfg_.n_kv_heads > 0 && cfg_.head_dim > 0 && cfg_.head_dim % 2 == 0,
            "KvCache config L={} H={} d={}", cfg_.n_layers, cfg_.n_kv_heads, cfg_.head_dim);
  KVZ_CHECK(cfg_.prunable.empty() || static_cast<int>(cfg_.prunable.size()) == cfg_.n_layers,
            "prunable has {} entries for {} layers", cfg_.prunable.size(), cfg_.n_layers);
  KVZ_CHECK(reserve_tokens >= 0);
  for (DType t : {cfg_.k_type, cfg_.v_type}) {
    if (!is_kv_cache_type(t))
      throw InputError(fmt::format("KV cache type {} (use f16, q8_0 or q4_0)", dtype_name(t)));
    if (t != DType::kF16 && cfg_.head_dim % 32 != 0)
      throw InputError(
          fmt::format("KV cache type {} needs a head_dim that is a multiple of 32 "
                      "(blocks of 32 values), this model's is {}",
                      dtype_name(t), cfg_.head_dim));
  }
  layers_.resize(static_cast<size_t>(cfg_.n_layers));
  lens_ = dev_->alloc(lens_offset(cfg_.n_layers));
  const int64_t per_head = std::max<int64_t>(blocks_for(reserve_tokens), 4);
  for (int il = 0; il < cfg_.n_layers; ++il) {
    Layer& l = layers_[il];
    l.heads.resize(static_cast<size_t>(cfg_.n_kv_heads));
    alloc_pools(l, per_head * cfg_.n_kv_heads);
    l.table_stride = per_head;  // the block table needs no reallocation up to reserve_tokens
    write_index(il);
  }
}

KvCache::~KvCache() = default;

size_t KvCache::k_row_bytes() const { return kv_row_bytes(cfg_.k_type, cfg_.head_dim); }
size_t KvCache::v_row_bytes() const { return kv_row_bytes(cfg_.v_type, cfg_.head_dim); }

size_t KvCache::block_bytes() const {
  return static_cast<size_t>(kB) * (k_row_bytes() + v_row_bytes() + 4u);
}

// Tokens per head that `blocks` pool blocks amount to (rounded up, so that check_capacity() of
// it needs at least that many blocks).
int64_t KvCache::tokens_per_head(int64_t blocks) const {
  return (blocks * kB + cfg_.n_kv_heads - 1) / cfg_.n_kv_heads;
}

int64_t KvCache::max_pool_blocks() const {
  const uint64_t range = dev_->caps().max_storage_buffer_range;
  const uint64_t per_block =
      static_cast<uint64_t>(kB) * std::max<uint64_t>({k_row_bytes(), v_row_bytes(), 4u});
  return static_cast<int64_t>(std::min<uint64_t>(range / per_block, INT32_MAX));
}

void KvCache::check_capacity(int64_t n_context, int64_t extra) const {
  const int64_t blocks = cfg_.n_kv_heads * blocks_for(n_context + extra);
  if (blocks <= max_pool_blocks()) return;
  const uint64_t bytes =
      static_cast<uint64_t>(blocks * kB) * std::max(k_row_bytes(), v_row_bytes());
  throw DeviceError(
      fmt::format("context {}{} needs a {}-byte KV buffer per layer ({} KV heads x {} x {}), over "
                  "maxStorageBufferRange {} of {}; use a shorter context",
                  n_context, extra ? fmt::format(" (+{} working tokens)", extra) : std::string(),
                  bytes, cfg_.n_kv_heads, cfg_.head_dim,
                  dtype_name(k_row_bytes() >= v_row_bytes() ? cfg_.k_type : cfg_.v_type),
                  dev_->caps().max_storage_buffer_range, dev_->caps().name));
}

void KvCache::alloc_pools(Layer& l, int64_t blocks) {
  if (blocks > max_pool_blocks()) check_capacity(tokens_per_head(blocks));
  const size_t rows = static_cast<size_t>(blocks * kB);
  l.k = dev_->alloc(rows * k_row_bytes());
  l.v = dev_->alloc(rows * v_row_bytes());
  l.pos = dev_->alloc(rows * 4);
  l.cap_blocks = blocks;
  l.free.clear();
  for (int64_t b = blocks - 1; b >= 0; --b) l.free.push_back(static_cast<int32_t>(b));
}

// Geometric growth (x1.5): each row is copied O(1) times on average over any append sequence.
void KvCache::grow(Layer& l, int64_t need_free) {
  const int64_t old_cap = l.cap_blocks;
  const int64_t max_cap = max_pool_blocks();
  if (old_cap + need_free > max_cap) check_capacity(tokens_per_head(old_cap + need_free));
  const int64_t new_cap =
      std::min(std::max(old_cap + need_free, old_cap + old_cap / 2 + 4), max_cap);
  const int64_t hd = cfg_.head_dim;
  const DType kt = cfg_.k_type, vt = cfg_.v_type;
  Buffer k = dev_->alloc(static_cast<size_t>(new_cap * kB) * k_row_bytes());
  Buffer v = dev_->alloc(static_cast<size_t>(new_cap * kB) * v_row_bytes());
  Buffer pos = dev_->alloc(static_cast<size_t>(new_cap * kB) * 4);
  Recorder rec(*dev_);
  rec.copy(l.k.tensor(kt, {old_cap, kB, hd}), k.tensor(kt, {old_cap, kB, hd}));
  rec.copy(l.v.tensor(vt, {old_cap, kB, hd}), v.tensor(vt, {old_cap, kB, hd}));
  rec.copy(l.pos.tensor(DType::kI32, {old_cap, kB}), pos.tensor(DType::kI32, {old_cap, kB}));
  rec.finish();  // the old pools are freed below
  l.k = std::move(k);
  l.v = std::move(v);
  l.pos = std::move(pos);
  for (int64_t b = new_cap - 1; b >= old_cap; --b) l.free.push_back(static_cast<int32_t>(b));
  l.cap_blocks = new_cap;
}

void KvCache::take_blocks(Layer& l, Head& h, int64_t rows) {
  while (static_cast<int64_t>(h.blocks.size()) < blocks_for(rows)) {
    KVZ_CHECK(!l.free.empty(), "no free block");
    h.blocks.push_back(l.free.back());
    l.free.pop_back();
  }
}

void KvCache::release_rows(Layer& l, Head& h, int64_t n) {
  KVZ_CHECK(n >= 0 && n <= static_cast<int64_t>(h.pos.size()), "dropping {} of {} rows", n,
            h.pos.size());
  h.pos.resize(h.pos.size() - static_cast<size_t>(n));
  while (static_cast<int64_t>(h.blocks.size()) > blocks_for(static_cast<int64_t>(h.pos.size()))) {
    l.free.push_back(h.blocks.back());
    h.blocks.pop_back();
  }
}

void KvCache::write_table(int il, int ih, int64_t from) {
  Layer& l = layers_[il];
  const Head& h = l.heads[ih];
  const auto nb = static_cast<int64_t>(h.blocks.size());
  if (nb > l.table_stride) {
    write_index(il);
    return;
  }
  if (from >= nb) return;
  upload(sub_view(l.table.view(), static_cast<size_t>(ih * l.table_stride + from) * 4,
                  static_cast<size_t>(nb - from) * 4),
         h.blocks.data() + from, static_cast<size_t>(nb - from) * 4);
}

void KvCache::write_index(int il) {
  Layer& l = layers_[il];
  const int64_t H = cfg_.n_kv_heads;
  int64_t need = 1;
  for (const Head& h : l.heads)
    need = std::max<int64_t>(need, static_cast<int64_t>(h.blocks.size()));
  if (need > l.table_stride || !l.table) {
    l.table_stride = std::max(need, 2 * l.table_stride);
    l.table = dev_->alloc(static_cast<size_t>(H * l.table_stride) * 4);
  }
  std::vector<int32_t> table(static_cast<size_t>(H * l.table_stride), 0);
  for (int64_t ih = 0; ih < H; ++ih)
    std::copy(l.heads[ih].blocks.begin(), l.heads[ih].blocks.end(),
              table.begin() + ih * l.table_stride);
  upload(l.table.view(), table.data(), table.size() * 4);
  write_lens(il);
}

size_t KvCache::part_offset(int il, size_t part_bytes) const {
  const size_t a = std::max<size_t>(dev_->caps().storage_offset_alignment, 4);
  return static_cast<size_t>(il) * ((part_bytes + a - 1) / a * a);
}

size_t KvCache::lens_offset(int il) const {
  return part_offset(il, static_cast<size_t>(cfg_.n_kv_heads) * 4);
}

size_t KvCache::slots_offset(int il) const {
  return part_offset(il, static_cast<size_t>(cfg_.n_kv_heads) * static_cast<size_t>(pending_) * 4);
}

void KvCache::fill_lens(int il, int32_t* out) const {
  for (const Head& h : layers_[il].heads) *out++ = static_cast<int32_t>(h.pos.size());
}

void KvCache::write_lens(int il) {
  std::vector<int32_t> lens(static_cast<size_t>(cfg_.n_kv_heads));
  fill_lens(il, lens.data());
  upload(sub_view(lens_.view(), lens_offset(il), lens.size() * 4), lens.data(), lens.size() * 4);
}

void KvCache::write_all_lens() {
  std::vector<int32_t> lens(lens_offset(cfg_.n_layers) / 4, 0);
  for (int il = 0; il < cfg_.n_layers; ++il) fill_lens(il, lens.data() + lens_offset(il) / 4);
  upload(lens_.view(), lens.data(), lens.size() * 4);
}

void KvCache::upload(const BufferView& dst, const void* src, size_t bytes) {
  if (rec_)
    rec_->upload(dst, src, bytes);
  else
    dev_->upload(dst, src, bytes);
}

void KvCache::begin_append(Recorder& rec, int n_tokens, std::span<const int32_t> positions) {
  struct Guard {
    Recorder*& slot;
    ~Guard() { slot = nullptr; }
  } guard{rec_};
  rec_ = &rec;
  begin_append(n_tokens, positions);
}

void KvCache::begin_append(int n_tokens, std::span<const int32_t> positions) {
  KVZ_CHECK(n_tokens > 0 && positions.size() == static_cast<size_t>(n_tokens),
            "append of {} tokens, {} positions", n_tokens, positions.size());
  for (size_t i = 1; i < positions.size(); ++i)
    KVZ_CHECK(positions[i] > positions[i - 1], "append positions not increasing at {}", i);
  const int64_t H = cfg_.n_kv_heads;
  // New blocks per layer; checked against the binding limit before any layer changes.
  const std::vector<int64_t> needs = append_needs(n_tokens);
  for (int il = 0; il < cfg_.n_layers; ++il) {
    const Layer& l = layers_[il];
    for (const Head& h : l.heads)
      KVZ_CHECK(h.pos.empty() || h.pos.back() < positions[0],
                "append at position {} after position {}", positions[0], h.pos.back());
    const int64_t in_use = l.cap_blocks - static_cast<int64_t>(l.free.size());
    const int64_t need = needs[static_cast<size_t>(il)];
    if (in_use + need > max_pool_blocks()) check_capacity(tokens_per_head(in_use + need));
  }
  pending_ = n_tokens;
  std::vector<int32_t> slots(slots_offset(cfg_.n_layers) / 4, 0);
  for (int il = 0; il < cfg_.n_layers; ++il) {
    Layer& l = layers_[il];
    const int64_t need = needs[static_cast<size_t>(il)];
    if (need > static_cast<int64_t>(l.free.size()))
      grow(l, need - static_cast<int64_t>(l.free.size()));
    int32_t* layer_slots = slots.data() + slots_offset(il) / 4;
    for (int64_t ih = 0; ih < H; ++ih) {
      Head& h = l.heads[ih];
      const auto len = static_cast<int64_t>(h.pos.size());
      const auto old_blocks = static_cast<int64_t>(h.blocks.size());
      take_blocks(l, h, len + n_tokens);
      for (int64_t t = 0; t < n_tokens; ++t) {
        int64_t row = len + t;
        layer_slots[ih * n_tokens + t] = static_cast<int32_t>(h.blocks[row / kB] * kB + row % kB);
      }
      h.pos.insert(h.pos.end(), positions.begin(), positions.end());
      write_table(il, static_cast<int>(ih), old_blocks);
    }
  }
  if (slots.size() * 4 > slots_.size())
    slots_ = dev_->alloc(std::max(slots.size() * 4, 2 * slots_.size()));
  upload(sub_view(slots_.view(), 0, slots.size() * 4), slots.data(), slots.size() * 4);
  write_all_lens();
}

std::vector<int64_t> KvCache::append_needs(int n_tokens) const {
  std::vector<int64_t> needs(static_cast<size_t>(cfg_.n_layers), 0);
  for (int il = 0; il < cfg_.n_layers; ++il)
    for (const Head& h : layers_[il].heads)
      needs[static_cast<size_t>(il)] += blocks_for(static_cast<int64_t>(h.pos.size()) + n_tokens) -
                                        static_cast<int64_t>(h.blocks.size());
  return needs;
}

bool KvCache::append_in_place(int n_tokens) const {
  // The slot list of begin_append (slots_offset(n_layers) with n_tokens pending).
  const size_t slot_bytes =
      part_offset(cfg_.n_layers, static_cast<size_t>(cfg_.n_kv_heads) * n_tokens * 4);
  if (slot_bytes > slots_.size()) return false;
  const std::vector<int64_t> needs = append_needs(n_tokens);
  for (int il = 0; il < cfg_.n_layers; ++il) {
    const Layer& l = layers_[il];
    if (needs[static_cast<size_t>(il)] > static_cast<int64_t>(l.free.size()) || !l.table)
      return false;  // the pools grow, or the table is new
    for (const Head& h : l.heads)
      if (blocks_for(static_cast<int64_t>(h.pos.size()) + n_tokens) > l.table_stride)
        return false;  // a wider block table
  }
  return true;
}

Tensor KvCache::dst_slots(int il) const {
  KVZ_CHECK(pending_ > 0, "dst_slots() without begin_append()");
  const size_t bytes = static_cast<size_t>(cfg_.n_kv_heads) * static_cast<size_t>(pending_) * 4;
  return Tensor(sub_view(slots_.view(), slots_offset(il), bytes), DType::kI32,
                {cfg_.n_kv_heads, pending_});
}

int64_t KvCache::max_rows(int il) const {
  int64_t m = 0;
  for (const Head& h : layers_[il].heads)
    m = std::max<int64_t>(m, static_cast<int64_t>(h.pos.size()));
  return m;
}

KvCache::LayerView KvCache::layer(int il) const {
  const Layer& l = layers_[il];
  const int64_t hd = cfg_.head_dim;
  return {l.k.tensor(cfg_.k_type, {l.cap_blocks, kB, hd}),
          l.v.tensor(cfg_.v_type, {l.cap_blocks, kB, hd}),
          l.pos.tensor(DType::kI32, {l.cap_blocks, kB}),
          l.table.tensor(DType::kI32, {cfg_.n_kv_heads, l.table_stride}),
          Tensor(sub_view(lens_.view(), lens_offset(il), static_cast<size_t>(cfg_.n_kv_heads) * 4),
                 DType::kI32, {cfg_.n_kv_heads})};
}

void KvCache::drop_last(int64_t n) {
  if (n <= 0) return;
  for (int il = 0; il < cfg_.n_layers; ++il) {
    Layer& l = layers_[il];
    for (Head& h : l.heads) {
      KVZ_CHECK(static_cast<int64_t>(h.pos.size()) >= n, "drop_last({}) of a head with {} rows", n,
                h.pos.size());
      release_rows(l, h, n);
    }
  }
  write_all_lens();  // table entries of the remaining blocks are unchanged
  pending_ = 0;
}

void KvCache::truncate(int32_t end_pos) {
  for (int il = 0; il < cfg_.n_layers; ++il) {
    Layer& l = layers_[il];
    for (Head& h : l.heads) {
      auto keep = std::lower_bound(h.pos.begin(), h.pos.end(), end_pos) - h.pos.begin();
      release_rows(l, h, static_cast<int64_t>(h.pos.size()) - keep);
    }
  }
  write_all_lens();
  pending_ = 0;
}

int64_t KvCache::layer_rows(int il) const {
  int64_t n = 0;
  for (const Head& h : layers_[il].heads) n += static_cast<int64_t>(h.pos.size());
  return n;
}

int64_t KvCache::total_rows() const {
  int64_t n = 0;
  for (int il = 0; il < static_cast<int>(layers_.size()); ++il) n += layer_rows(il);
  return n;
}

size_t KvCache::bytes_in_use() const {
  size_t b = 0;
  for (const Layer& l : layers_) {
    for (const Head& h : l.heads) b += h.blocks.size() * (block_bytes() + 4);  // + table entry
    b += static_cast<size_t>(cfg_.n_kv_heads) * 4;                             // lens
  }
  return b;
}

size_t KvCache::full_bytes(int64_t n_tokens, bool f16) const {
  const size_t per_block =
      f16 ? static_cast<size_t>(kB) * (4u * static_cast<size_t>(cfg_.head_dim) + 4u)
          : block_bytes();
  return static_cast<size_t>(cfg_.n_layers * cfg_.n_kv_heads * blocks_for(n_tokens)) * per_block;
}

size_t KvCache::bytes_allocated() const {
  size_t b = 0;
  for (const Layer& l : layers_) b += l.k.size() + l.v.size() + l.pos.size() + l.table.size();
  return b + lens_.size() + slots_.size();
}

void KvCache::compact(Recorder& rec, const KeepSet& keep) {
  KVZ_CHECK(static_cast<int>(keep.rows.size()) == cfg_.n_layers, "KeepSet has {} layers",
            keep.rows.size());
  const int64_t H = cfg_.n_kv_heads, hd = cfg_.head_dim;
  std::vector<Layer> fresh(layers_.size());
  std::vector<Buffer> temps;  // slot lists, alive until rec finishes
  for (int il = 0; il < cfg_.n_layers; ++il) {
    const Layer& old = layers_[il];
    const auto& kl = keep.rows[il];
    KVZ_CHECK(static_cast<int64_t>(kl.size()) == H, "KeepSet layer {} has {} heads", il, kl.size());
    int64_t blocks = 0;
    for (const auto& r : kl) blocks += blocks_for(static_cast<int64_t>(r.size()));
    Layer& nl = fresh[il];
    nl.heads.resize(static_cast<size_t>(H));
    // Spare blocks for the next query without growing, where the binding limit leaves room.
    alloc_pools(nl, std::max(blocks, std::min(blocks + 2 * H, max_pool_blocks())));
    std::vector<int32_t> src, dst;
    for (int64_t ih = 0; ih < H; ++ih) {
      const auto& rows = kl[ih];
      const Head& oh = old.heads[ih];
      Head& nh = nl.heads[ih];
      take_blocks(nl, nh, static_cast<int64_t>(rows.size()));
      nh.pos.reserve(rows.size());
      for (size_t i = 0; i < rows.size(); ++i) {
        const int32_t r = rows[i];
        KVZ_CHECK(r >= 0 && r < static_cast<int64_t>(oh.pos.size()) && (i == 0 || rows[i - 1] < r),
                  "KeepSet layer {} head {}: row {} invalid or unsorted (head has {} rows)", il, ih,
                  r, oh.pos.size());
        src.push_back(static_cast<int32_t>(oh.blocks[r / kB] * kB + r % kB));
        dst.push_back(static_cast<int32_t>(nh.blocks[i / kB] * kB + static_cast<int64_t>(i) % kB));
        nh.pos.push_back(oh.pos[r]);
      }
    }
    if (src.empty()) continue;
    const auto n = static_cast<int64_t>(src.size());
    temps.push_back(dev_->alloc_upload(src.data(), src.size() * 4));
    Tensor ts = temps.back().tensor(DType::kI32, {n});
    temps.push_back(dev_->alloc_upload(dst.data(), dst.size() * 4));
    Tensor td = temps.back().tensor(DType::kI32, {n});
    LayerView ov = layer(il);
    kv_gather(rec, {ts, td, ov.k_pool, ov.v_pool, ov.pos_pool,
                    nl.k.tensor(cfg_.k_type, {nl.cap_blocks, kB, hd}),
                    nl.v.tensor(cfg_.v_type, {nl.cap_blocks, kB, hd}),
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
    write_index(il);
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
    rec.copy(l.k.tensor(cfg_.k_type, {l.cap_blocks, kB, hd}),
             nl.k.tensor(cfg_.k_type, {l.cap_blocks, kB, hd}));
    rec.copy(l.v.tensor(cfg_.v_type, {l.cap_blocks, kB, hd}),
             nl.v.tensor(cfg_.v_type, {l.cap_blocks, kB, hd}));
    rec.copy(l.pos.tensor(DType::kI32, {l.cap_blocks, kB}),
             nl.pos.tensor(DType::kI32, {l.cap_blocks, kB}));
    nl.free = l.free;
    nl.heads = l.heads;
  }
  rec.finish();
  for (int il = 0; il < cfg_.n_layers; ++il) c->write_index(il);
  return c;
}

std::vector<HeadRows> KvCache::read_layer_raw(int il) const {
  const Layer& l = layers_[il];
  const size_t rows = static_cast<size_t>(l.cap_blocks * kB), kh = k_row_bytes() / 2,
               vh = v_row_bytes() / 2;
  std::vector<uint16_t> k(rows * kh), v(rows * vh);
  std::vector<int32_t> pos(rows);
  dev_->download(l.k.view(), k.data(), k.size() * 2);
  dev_->download(l.v.view(), v.data(), v.size() * 2);
  dev_->download(l.pos.view(), pos.data(), pos.size() * 4);
  std::vector<HeadRows> out(l.heads.size());
  for (size_t ih = 0; ih < l.heads.size(); ++ih) {
    const Head& h = l.heads[ih];
    HeadRows& r = out[ih];
    const auto n = static_cast<int64_t>(h.pos.size());
    r.pos.reserve(static_cast<size_t>(n));
    r.k.reserve(static_cast<size_t>(n) * kh);
    r.v.reserve(static_cast<size_t>(n) * vh);
    for (int64_t t = 0; t < n; ++t) {
      const auto slot = static_cast<size_t>(h.blocks[t / kB] * kB + t % kB);
      r.pos.push_back(pos[slot]);
      r.k.insert(r.k.end(), k.begin() + static_cast<int64_t>(slot * kh),
                 k.begin() + static_cast<int64_t>((slot + 1) * kh));
      r.v.insert(r.v.end(), v.begin() + static_cast<int64_t>(slot * vh),
                 v.begin() + static_cast<int64_t>((slot + 1) * vh));
    }
  }
  return out;
}

namespace {
// Stored rows of type t (n rows of row_halfs uint16s) as f16 bits.
std::vector<uint16_t> rows_to_f16(DType t, const std::vector<uint16_t>& rows, size_t row_halfs,
                                  int64_t hd) {
  if (t == DType::kF16) return rows;
  const size_t n = row_halfs ? rows.size() / row_halfs : 0;
  std::vector<uint16_t> out(n * static_cast<size_t>(hd));
  std::vector<float> f(static_cast<size_t>(hd));
  for (size_t r = 0; r < n; ++r) {
    cpu::dequantize_kv_row(t, rows.data() + r * row_halfs, f.data(), hd);
    for (int64_t c = 0; c < hd; ++c) out[r * static_cast<size_t>(hd) + c] = cpu::f32_to_f16(f[c]);
  }
  return out;
}
}  // namespace

std::vector<HeadRows> KvCache::read_layer(int il) const {
  std::vector<HeadRows> out = read_layer_raw(il);
  for (HeadRows& r : out) {
    r.k = rows_to_f16(cfg_.k_type, r.k, k_row_bytes() / 2, cfg_.head_dim);
    r.v = rows_to_f16(cfg_.v_type, r.v, v_row_bytes() / 2, cfg_.head_dim);
  }
  return out;
}

std::unique_ptr<KvCache> KvCache::from_rows(Device& dev, KvCacheConfig cfg,
                                            const std::vector<std::vector<HeadRows>>& rows) {
  auto c = std::make_unique<KvCache>(dev, cfg);
  const size_t kh = c->k_row_bytes() / 2, vh = c->v_row_bytes() / 2;
  KVZ_CHECK(static_cast<int>(rows.size()) == cfg.n_layers, "{} layers of rows for {} layers",
            rows.size(), cfg.n_layers);
  for (int il = 0; il < cfg.n_layers; ++il) {
    KVZ_CHECK(static_cast<int>(rows[il].size()) == cfg.n_kv_heads,
              "layer {}: {} heads of rows for {}", il, rows[il].size(), cfg.n_kv_heads);
    Layer& l = c->layers_[il];
    int64_t blocks = 0;
    for (const HeadRows& r : rows[il]) blocks += blocks_for(static_cast<int64_t>(r.pos.size()));
    c->alloc_pools(l,
                   std::max(blocks, std::min(blocks + 2 * cfg.n_kv_heads, c->max_pool_blocks())));
    const size_t cap_rows = static_cast<size_t>(l.cap_blocks * kB);
    std::vector<uint16_t> k(cap_rows * kh), v(cap_rows * vh);
    std::vector<int32_t> pos(cap_rows);
    for (size_t ih = 0; ih < rows[il].size(); ++ih) {
      const HeadRows& r = rows[il][ih];
      Head& h = l.heads[ih];
      KVZ_CHECK(r.k.size() == r.pos.size() * kh && r.v.size() == r.pos.size() * vh,
                "layer {} head {}: row sizes", il, ih);
      for (size_t t = 1; t < r.pos.size(); ++t)
        KVZ_CHECK(r.pos[t] > r.pos[t - 1], "layer {} head {}: positions not increasing at row {}",
                  il, ih, t);
      const auto n = static_cast<int64_t>(r.pos.size());
      c->take_blocks(l, h, n);
      h.pos = r.pos;
      for (int64_t t = 0; t < n; ++t) {
        const auto slot = static_cast<size_t>(h.blocks[t / kB] * kB + t % kB);
        const auto ts = static_cast<size_t>(t);
        pos[slot] = r.pos[ts];
        std::copy_n(r.k.begin() + static_cast<int64_t>(ts * kh), kh,
                    k.begin() + static_cast<int64_t>(slot * kh));
        std::copy_n(r.v.begin() + static_cast<int64_t>(ts * vh), vh,
                    v.begin() + static_cast<int64_t>(slot * vh));
      }
    }
    dev.upload(l.k.view(), k.data(), k.size() * 2);
    dev.upload(l.v.view(), v.data(), v.size() * 2);
    dev.upload(l.pos.view(), pos.data(), pos.size() * 4);
    c->write_index(il);
  }
  return c;
}

}  // namespace kvz
