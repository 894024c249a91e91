#version 450
// kv_write: stores new K/V rows and their positions into the paged pools: for KV head h, token t:
// row (t, h) goes to slot dst_slot[h, t] (runtime/ops/paged_kv.h). Each pool's type (spec 2 =
// KTYPE, 3 = VTYPE; shaders/include/kv_quant.glsl): f16 (round-to-nearest-even), or q8_0 / q4_0
// blocks (the row is staged in shared memory, then one thread quantises each 32-value block).
// Bindings: 0 k_new    f32 [n_tokens, n_kv_heads, head_dim] read
//           1 v_new    f32 [n_tokens, n_kv_heads, head_dim] read
//           2 pos_new  i32 [n_tokens]                        read
//           3 dst_slot i32 [n_kv_heads, n_tokens]            read
//           4 k_pool   KTYPE [n_slots, head_dim]             write (as uint16_t)
//           5 v_pool   VTYPE [n_slots, head_dim]             write
//           6 pos_pool i32 [n_slots]                         write
// Push: n_tokens, n_kv_heads, head_dim, n_slots, rows_per_y (= grid x). Spec: 0 = workgroup size.
// Grid: one workgroup per (t, h) row, row = y * rows_per_y + x, x <= 65535; threads loop over head_dim.
// Slots outside [0, n_slots) are skipped (the CPU reference aborts on them).
// Variant rope (WITH_ROPE): k_new is stored rotated as rope.comp would rotate it in place at
// positions pos_new (shaders/include/rope.glsl, the same code, so the same bits); k_new is not
// modified. Binding 7 inv_freq f32 [rot_dims / 2] read; push also rot_dims, attn_factor; spec
// 1 = NEOX (bool as uint).
#include "common.glsl"
#include "half.glsl"
#include "kv_quant.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 2) const uint KTYPE = 0;
layout(constant_id = 3) const uint VTYPE = 0;
#ifdef WITH_ROPE
#include "rope.glsl"
layout(constant_id = 1) const uint NEOX = 1;
layout(std430, binding = 7) readonly buffer F { float inv_freq[]; };
#endif
layout(std430, binding = 0) readonly buffer KN { float k_new[]; };
layout(std430, binding = 1) readonly buffer VN { float v_new[]; };
layout(std430, binding = 2) readonly buffer PN { int pos_new[]; };
layout(std430, binding = 3) readonly buffer DS { int dst_slot[]; };
layout(std430, binding = 4) writeonly buffer KP { uint16_t k_pool[]; };
layout(std430, binding = 5) writeonly buffer VP { uint16_t v_pool[]; };
layout(std430, binding = 6) writeonly buffer PP { int pos_pool[]; };
layout(push_constant) uniform Push {
  uint n_tokens;
  uint n_kv_heads;
  uint head_dim;
  uint n_slots;
  uint rows_per_y;
#ifdef WITH_ROPE
  uint rot_dims;
  float attn_factor;
#endif
} p;

shared float k_row[256], v_row[256];  // the row staged for block quantisation (head_dim <= 256)
KVQ_DEFINE_STORE_BLOCK(store_k_block, k_pool, k_row)
KVQ_DEFINE_STORE_BLOCK(store_v_block, v_pool, v_row)

// Value d of the K / V row: straight to an f16 pool, or staged for quantisation.
void put_k(uint dst, uint d, float x) {
  if (KTYPE == KVT_F16) k_pool[dst + d] = uint16_t(f32_to_f16_bits(x));
  else k_row[d] = x;
}
void put_v(uint dst, uint d, float x) {
  if (VTYPE == KVT_F16) v_pool[dst + d] = uint16_t(f32_to_f16_bits(x));
  else v_row[d] = x;
}

void main() {
  uint row = gl_WorkGroupID.y * p.rows_per_y + gl_WorkGroupID.x;  // = t * n_kv_heads + h
  if (row >= p.n_tokens * p.n_kv_heads) return;
  uint t = row / p.n_kv_heads;
  uint h = row % p.n_kv_heads;
  int slot = dst_slot[h * p.n_tokens + t];
  if (slot < 0 || uint(slot) >= p.n_slots) return;
  uint src = row * p.head_dim;
  uint dst = uint(slot) * p.head_dim;  // f16 pools: uint16 index of the row
#ifdef WITH_ROPE
  const float t_pos = float(pos_new[t]);
  const uint half_dims = p.rot_dims / 2;
  for (uint i = gl_LocalInvocationID.x; i < half_dims; i += gl_WorkGroupSize.x) {
    const vec2 cs = rope_cos_sin(t_pos, inv_freq[i], p.attn_factor);
    const uvec2 d = rope_pair(i, half_dims, NEOX != 0);
    const vec2 y = rope_rotate(k_new[src + d.x], k_new[src + d.y], cs);
    put_k(dst, d.x, y.x);
    put_k(dst, d.y, y.y);
  }
  for (uint d = p.rot_dims + gl_LocalInvocationID.x; d < p.head_dim; d += gl_WorkGroupSize.x)
    put_k(dst, d, k_new[src + d]);
  for (uint d = gl_LocalInvocationID.x; d < p.head_dim; d += gl_WorkGroupSize.x)
    put_v(dst, d, v_new[src + d]);
#else
  for (uint d = gl_LocalInvocationID.x; d < p.head_dim; d += gl_WorkGroupSize.x) {
    put_k(dst, d, k_new[src + d]);
    put_v(dst, d, v_new[src + d]);
  }
#endif
  if (KTYPE != KVT_F16 || VTYPE != KVT_F16) {
    barrier();  // the staged row is complete (slot is uniform: every invocation gets here)
    const uint nb = p.head_dim / 32u, b = gl_LocalInvocationID.x;
    if (KTYPE != KVT_F16 && b < nb)
      store_k_block(KTYPE, (uint(slot) * KVQ_ROW_BYTES(KTYPE, p.head_dim) + b * kvq_block_bytes(KTYPE)) / 2u, b * 32u);
    if (VTYPE != KVT_F16 && b < nb)
      store_v_block(VTYPE, (uint(slot) * KVQ_ROW_BYTES(VTYPE, p.head_dim) + b * kvq_block_bytes(VTYPE)) / 2u, b * 32u);
  }
  if (gl_LocalInvocationID.x == 0) pos_pool[slot] = pos_new[t];
}
