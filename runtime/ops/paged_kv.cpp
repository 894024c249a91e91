// Paged KV writes and gathers: validation and dispatch; CPU references (runtime/ops).
#include "runtime/ops/paged_kv.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <vector>

#include "runtime/cpu/half.h"
#include "runtime/ops/row_grid.h"

namespace kvz {
namespace {

void check_pools(const Tensor& k, const Tensor& v, const Tensor& pos, const char* what) {
  KVZ_CHECK(
      is_kv_cache_type(k.dtype()) && is_kv_cache_type(v.dtype()) && pos.dtype() == DType::kI32,
      "{}: pools must be f16/q8_0/q4_0 K/V and i32 positions, got {} {} {} {}", what,
      dtype_name(k.dtype()), dtype_name(v.dtype()), k.shape_str(), pos.shape_str());
  KVZ_CHECK(same_shape(k, v) && pos.numel() == k.rows(), "{}: K {} V {} pos {}", what,
            k.shape_str(), v.shape_str(), pos.shape_str());
  (void)kv_row_bytes(k.dtype(), k.cols());  // head_dim % 32 for quantised pools
  (void)kv_row_bytes(v.dtype(), v.cols());
}

bool overlaps(const BufferView& a, const BufferView& b) {
  if (a.size_bytes == 0 || b.size_bytes == 0) return false;
  if (a.host && b.host) return a.host < b.host + b.size_bytes && b.host < a.host + a.size_bytes;
  return a.handle == b.handle && a.offset_bytes < b.offset_bytes + b.size_bytes &&
         b.offset_bytes < a.offset_bytes + a.size_bytes;
}

struct WriteDims {
  int64_t n_tokens, n_kv_heads, head_dim, n_slots;
};

WriteDims check_write(const KvWriteArgs& a) {
  check_pools(a.k_pool, a.v_pool, a.pos_pool, "kv_write");
  KVZ_CHECK(a.k_new.dtype() == DType::kF32 && a.v_new.dtype() == DType::kF32 &&
                a.pos_new.dtype() == DType::kI32 && a.dst_slot.dtype() == DType::kI32,
            "kv_write: k_new/v_new f32, pos_new/dst_slot i32");
  WriteDims d{a.pos_new.numel(), 0, a.k_pool.cols(), a.k_pool.rows()};
  d.n_kv_heads = d.n_tokens ? a.dst_slot.numel() / d.n_tokens : 0;
  KVZ_CHECK(a.dst_slot.numel() == d.n_kv_heads * d.n_tokens && same_shape(a.k_new, a.v_new) &&
                a.k_new.numel() == d.n_tokens * d.n_kv_heads * d.head_dim,
            "kv_write: k_new {} v_new {} pos_new {} dst_slot {} k_pool {}", a.k_new.shape_str(),
            a.v_new.shape_str(), a.pos_new.shape_str(), a.dst_slot.shape_str(),
            a.k_pool.shape_str());
  return d;
}

// The rope() that kv_write applies to k_new (x = k_new, pos = pos_new), if any.
std::optional<RopeArgs> kv_rope(const KvWriteArgs& a, const WriteDims& d) {
  if (!a.rope.inv_freq.defined()) return std::nullopt;
  RopeArgs r;
  static_cast<RopeParams&>(r) = a.rope;
  r.x = a.k_new.reshape({d.n_tokens, d.n_kv_heads, d.head_dim});
  r.pos = a.pos_new;
  return r;
}

void check_gather(const KvGatherArgs& a) {
  check_pools(a.k_src, a.v_src, a.pos_src, "kv_gather src");
  check_pools(a.k_dst, a.v_dst, a.pos_dst, "kv_gather dst");
  KVZ_CHECK(a.src_slot.dtype() == DType::kI32 && a.dst_slot.dtype() == DType::kI32 &&
                a.src_slot.numel() == a.dst_slot.numel(),
            "kv_gather: slots {} -> {}", a.src_slot.shape_str(), a.dst_slot.shape_str());
  KVZ_CHECK(a.k_src.cols() == a.k_dst.cols() && a.k_src.cols() % 2 == 0 &&
                a.k_src.dtype() == a.k_dst.dtype() && a.v_src.dtype() == a.v_dst.dtype(),
            "kv_gather: head_dim {} -> {} (must match and be even), types {}/{} -> {}/{}",
            a.k_src.cols(), a.k_dst.cols(), dtype_name(a.k_src.dtype()),
            dtype_name(a.v_src.dtype()), dtype_name(a.k_dst.dtype()), dtype_name(a.v_dst.dtype()));
  for (const Tensor* s : {&a.k_src, &a.v_src, &a.pos_src})
    for (const Tensor* d : {&a.k_dst, &a.v_dst, &a.pos_dst})
      KVZ_CHECK(!overlaps(s->mem(), d->mem()), "kv_gather: source and destination pools overlap");
}

}  // namespace

void kv_write(Recorder& rec, const KvWriteArgs& a) {
  const WriteDims d = check_write(a);
  if (d.n_tokens == 0 || d.n_kv_heads == 0) return;
  const std::optional<RopeArgs> r = kv_rope(a, d);
  const int rot_dims = r ? rope_rot_dims(*r) : 0;
  if (rec.is_cpu()) return cpu::kv_write_ref(a);
  constexpr uint32_t kWg = 64;
  struct Push {
    uint32_t n_tokens, n_kv_heads, head_dim, n_slots, rows_per_y;
  } push{static_cast<uint32_t>(d.n_tokens), static_cast<uint32_t>(d.n_kv_heads),
         static_cast<uint32_t>(d.head_dim), static_cast<uint32_t>(d.n_slots), 0};
  Grid grid = row_grid(push.n_tokens * push.n_kv_heads, push.rows_per_y);
  const uint32_t ktype = kv_type_code(a.k_pool.dtype()), vtype = kv_type_code(a.v_pool.dtype());
  if (!r) {
    rec.dispatch({ShaderId::kKvWrite, {kWg, 0, ktype, vtype}},
                 {a.k_new, a.v_new, a.pos_new, a.dst_slot, a.k_pool, a.v_pool, a.pos_pool}, push,
                 grid);
    return;
  }
  struct PushRope {
    Push base;
    uint32_t rot_dims;
    float attn_factor;
  } push_rope{push, static_cast<uint32_t>(rot_dims), a.rope.attn_factor};
  const uint32_t neox = a.rope.style == RopeStyle::kNeox ? 1 : 0;
  rec.dispatch(
      {ShaderId::kKvWriteRope, {kWg, neox, ktype, vtype}},
      {a.k_new, a.v_new, a.pos_new, a.dst_slot, a.k_pool, a.v_pool, a.pos_pool, a.rope.inv_freq},
      push_rope, grid);
}

void kv_gather(Recorder& rec, const KvGatherArgs& a) {
  check_gather(a);
  if (a.src_slot.numel() == 0) return;
  if (rec.is_cpu()) return cpu::kv_gather_ref(a);
  constexpr uint32_t kWg = 64;
  struct Push {
    uint32_t n, k_halfs, v_halfs, n_src_slots, n_dst_slots, rows_per_y;
  } push{static_cast<uint32_t>(a.src_slot.numel()),
         static_cast<uint32_t>(kv_row_bytes(a.k_src.dtype(), a.k_src.cols()) / 2),
         static_cast<uint32_t>(kv_row_bytes(a.v_src.dtype(), a.v_src.cols()) / 2),
         static_cast<uint32_t>(a.k_src.rows()),
         static_cast<uint32_t>(a.k_dst.rows()),
         0};
  Grid grid = row_grid(push.n, push.rows_per_y);
  rec.dispatch({ShaderId::kKvGather, {kWg}},
               {a.src_slot, a.dst_slot, a.k_src, a.v_src, a.pos_src, a.k_dst, a.v_dst, a.pos_dst},
               push, grid);
}

namespace cpu {

void kv_write_ref(const KvWriteArgs& a) {
  const WriteDims d = check_write(a);
  const float* k = a.k_new.host<float>();
  std::vector<float> k_roped;  // with rope: k_new rotated by rope_ref, the very code rope() runs
  if (std::optional<RopeArgs> r = kv_rope(a, d)) {
    k_roped.assign(k, k + a.k_new.numel());
    r->x = Tensor(BufferView{0, 0, k_roped.size() * sizeof(float),
                             reinterpret_cast<std::byte*>(k_roped.data())},
                  DType::kF32, {d.n_tokens, d.n_kv_heads, d.head_dim});
    rope_ref(*r);
    k = k_roped.data();
  }
  const float* v = a.v_new.host<float>();
  const int32_t* pos = a.pos_new.host<int32_t>();
  const int32_t* slots = a.dst_slot.host<int32_t>();
  auto* kp = a.k_pool.host<uint8_t>();
  auto* vp = a.v_pool.host<uint8_t>();
  int32_t* pp = a.pos_pool.host<int32_t>();
  const DType kt = a.k_pool.dtype(), vt = a.v_pool.dtype();
  const size_t krb = kv_row_bytes(kt, d.head_dim), vrb = kv_row_bytes(vt, d.head_dim);
  for (int64_t h = 0; h < d.n_kv_heads; ++h) {
    for (int64_t t = 0; t < d.n_tokens; ++t) {
      const int64_t slot = slots[h * d.n_tokens + t];
      KVZ_CHECK(slot >= 0 && slot < d.n_slots, "kv_write: slot {} of {}", slot, d.n_slots);
      const int64_t src = (t * d.n_kv_heads + h) * d.head_dim;
      quantize_kv_row(kt, k + src, kp + static_cast<size_t>(slot) * krb, d.head_dim);
      quantize_kv_row(vt, v + src, vp + static_cast<size_t>(slot) * vrb, d.head_dim);
      pp[slot] = pos[t];
    }
  }
}

void kv_gather_ref(const KvGatherArgs& a) {
  check_gather(a);
  const int64_t head_dim = a.k_src.cols(), n_src = a.k_src.rows(), n_dst = a.k_dst.rows();
  const int32_t* src = a.src_slot.host<int32_t>();
  const int32_t* dst = a.dst_slot.host<int32_t>();
  const size_t krb = kv_row_bytes(a.k_src.dtype(), head_dim),
               vrb = kv_row_bytes(a.v_src.dtype(), head_dim);
  for (int64_t i = 0; i < a.src_slot.numel(); ++i) {
    const int64_t s = src[i], d = dst[i];
    KVZ_CHECK(s >= 0 && s < n_src && d >= 0 && d < n_dst, "kv_gather: slot {} -> {} of {} / {}", s,
              d, n_src, n_dst);
    std::memcpy(a.k_dst.host<uint8_t>() + d * krb, a.k_src.host<uint8_t>() + s * krb, krb);
    std::memcpy(a.v_dst.host<uint8_t>() + d * vrb, a.v_src.host<uint8_t>() + s * vrb, vrb);
    a.pos_dst.host<int32_t>()[d] = a.pos_src.host<int32_t>()[s];
  }
}

}  // namespace cpu
}  // namespace kvz
