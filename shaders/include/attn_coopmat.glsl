// Shared pieces of the tensor-core attention kernels (paged_attention_coopmat.comp,
// attn_score_coopmat.comp): f16 rows staged in shared memory as uvec4 (8 halves), the paged row
// addressing and the scaled-query staging. The includer declares, before including: the bindings
// `q` (f32 [n_q, n_heads, HD]) and `block_table`, a push block `p` with n_heads, group,
// max_blocks and scale, the spec constant HD (multiple of 16), and `shared uvec4 kv[]` of at
// least rr * LD elements for stage_q.
const uint HD8 = HD / 8u;  // uvec4 (8 halves) per row
const uint LD = HD8 + 1u;  // shared row stride in uvec4: 16-byte rows, skewed banks
const float NEG_BIG = -1.0e30;

#include "kv_layout.glsl"

// Query row `row` (= i * group + g, query head h * group + g) of KV head h, as its q element base.
uint q_base(uint h, uint row) {
  return ((row / p.group) * p.n_heads + h * p.group + row % p.group) * HD;
}

// kv[r * LD + c] = f16(scale * q) for rows row0 + r0 + r, r < rr (zeros past n_rows).
void stage_q(uint h, uint row0, uint n_rows, uint r0, uint rr) {
  for (uint e = gl_LocalInvocationID.x; e < rr * HD8; e += gl_WorkGroupSize.x) {
    const uint r = e / HD8, c = e % HD8, row = row0 + r0 + r;
    vec4 a = vec4(0.0), b = vec4(0.0);
    if (row < n_rows) {
      const uint base = q_base(h, row) + 8u * c;
      a = vec4(q[base], q[base + 1u], q[base + 2u], q[base + 3u]) * p.scale;
      b = vec4(q[base + 4u], q[base + 5u], q[base + 6u], q[base + 7u]) * p.scale;
    }
    kv[r * LD + c] = uvec4(packHalf2x16(a.xy), packHalf2x16(a.zw), packHalf2x16(b.xy),
                           packHalf2x16(b.zw));
  }
}
