// Shared pieces of the attention kernels (shaders/include): tile sizes as spec constants, shared
// tiles of scaled queries and f16 keys, paged-row addressing and the tile dot products.
// The including kernel declares the block_table binding and a push block `p` with max_blocks.
// Spec: 0 = HD (head_dim, multiple of 4), 1 = QT (query rows per tile), 2 = KT (keys per tile).
// Workgroup size is fixed at WG = 128 threads; KT must divide it.
#define WG 128u
layout(local_size_x = 128) in;
layout(constant_id = 0) const uint HD = 64;
layout(constant_id = 1) const uint QT = 16;
layout(constant_id = 2) const uint KT = 32;
const uint HD2 = HD / 2;    // f16 pairs per row
const uint HD4 = HD / 4;    // vec4 / uvec2 per row
const uint KS = HD2 + 1;    // padded shared row stride of keys (odd: conflict-free column reads)
const float NEG_BIG = -1.0e30;  // masked score / empty running max (finite: no inf arithmetic)

shared vec4 qs[QT * HD4];  // [QT, HD] f32 queries, pre-multiplied by scale
shared uint ks[KT * KS];   // [KT, HD] f16 pairs, padded rows

#include "kv_layout.glsl"

// Stores key uvec2 chunk c (4 halves) of tile row j.
void store_key(uint j, uint c, uvec2 bits) {
  ks[j * KS + 2u * c] = bits.x;
  ks[j * KS + 2u * c + 1u] = bits.y;
}

// Scores of this thread's (row, key) pairs, pair k = tid + k * WG of the QT x KT tile: since
// WG % KT == 0 they share key j = tid % KT and take rows tid / KT + k * (WG / KT).
const uint NPAIR = (QT * KT + WG - 1u) / WG;
float pair_s[NPAIR];

// pair_s[k] = dot of query tile row tid / KT + k * (WG / KT) with key tile row tid % KT, f32,
// summed in head-dimension order. Each key chunk is read from shared memory and widened once for
// all NPAIR rows (the query reads hit one address across a subgroup: broadcasts). Pairs past the
// tile (k * WG + tid >= QT * KT) get a dot of the last row; callers ignore them.
void tile_dot_rows(uint tid) {
  const uint kb = (tid % KT) * KS, r0 = tid / KT;
  [[unroll]] for (uint k = 0; k < NPAIR; ++k) pair_s[k] = 0.0;
  for (uint c = 0; c < HD4; ++c) {
    const vec4 kv = vec4(unpackHalf2x16(ks[kb + 2u * c]), unpackHalf2x16(ks[kb + 2u * c + 1u]));
    [[unroll]] for (uint k = 0; k < NPAIR; ++k) {
      const uint r = min(r0 + k * (WG / KT), QT - 1u);
      pair_s[k] += dot(qs[r * HD4 + c], kv);
    }
  }
}

// Loads query tile rows [row0, row0 + QT) of KV head h (row = i * group + g, query head
// h * group + g) times `scale`; rows at or past n_rows are zero. Needs binding `q` and p.n_heads,
// p.group.
void load_q_tile(uint h, uint row0, uint n_rows, float scale) {
  for (uint e = gl_LocalInvocationID.x; e < QT * HD4; e += WG) {
    const uint r = e / HD4, c = e % HD4, row = row0 + r;
    vec4 v = vec4(0.0);
    if (row < n_rows) {
      const uint i = row / p.group, hq = h * p.group + row % p.group;
      const uint b = (i * p.n_heads + hq) * HD + 4u * c;
      v = vec4(q[b], q[b + 1u], q[b + 2u], q[b + 3u]) * scale;
    }
    qs[e] = v;
  }
}
