#version 450
// paged_decode: attention of a few query rows (decode) over the paged, ragged rows of one KV head,
// built for memory bandwidth; same contract as paged_attention.comp (runtime/ops/paged_attention.h).
// A workgroup owns GR query rows (row = i * group + g) of KV head h and one `chunk`-row share of
// the head's rows (split z): each K/V row is read once (f16: with 16-byte loads) for all GR rows.
// A key row is spread over LPK lanes of a subgroup (CPL 8-value chunks each; dot products reduce
// with subgroupShuffleXor); each lane group runs its own online softmax over KPI keys per step,
// and the lane groups merge in shared memory at the end. No barrier in the main loop.
// Bindings: 0 q           f32 [n_q, n_heads, head_dim]       read
//           1 q_pos       i32 [n_q]                          read
//           2 k_pool      KTYPE [n_slots, head_dim] (as uvec4) read
//           3 v_pool      VTYPE [n_slots, head_dim] (as uvec4) read
//           4 pos_pool    i32 [n_slots]                      read
//           5 block_table i32 [n_kv_heads, max_blocks]       read
//           6 lens        i32 [n_kv_heads]                   read
//           7 dst         f32 write: n_split == 1: out [n_q, n_heads, head_dim] (normalised); else
//                         scratch in paged_attention_combine.comp's layout (o, then m and l).
// Push: n_q, n_heads, group, max_blocks, window, n_split, scale, softcap, chunk (rows per split,
//       a multiple of WG / LPK * KPI).
// Spec: 0 = WG (workgroup size, a multiple of the subgroup size), 1 = HD (head_dim, multiple of 8,
//       <= 256), 2 = LPK (lanes per key: a power of two <= the subgroup size), 3 = GR (query rows
//       per workgroup), 4 = KPI (keys per lane group per step), 5 = PREFETCH (issue the next
//       step's loads before this step's math: twice the loads in flight, more registers),
//       6 = KTYPE, 7 = VTYPE (shaders/include/kv_quant.glsl): q8_0 / q4_0 rows are loaded in their
//       stored form (a lane's consecutive chunks of a block as one span of aligned words, its
//       scale once) and dequantised at use.
// Grid: (ceil(n_q * group / GR), n_kv_heads, n_split).
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 128;
layout(constant_id = 1) const uint HD = 128;
layout(constant_id = 2) const uint LPK = 16;
layout(constant_id = 3) const uint GR = 4;
layout(constant_id = 4) const uint KPI = 4;
layout(constant_id = 5) const bool PREFETCH = false;
layout(constant_id = 6) const uint KTYPE = 0;
layout(constant_id = 7) const uint VTYPE = 0;
const uint HD8 = HD / 8u;                 // 16-byte chunks per row
const uint CPL = (HD8 + LPK - 1u) / LPK;  // chunks per lane (lanes past HD8 hold zeros)
const uint NLG = WG / LPK;                // lane groups per workgroup
const float NEG_BIG = -1.0e30;            // masked score / empty running max
const float LOG2E = 1.4426950408889634;   // scores are kept in log2 units: exp2, no extra multiply
const int INT_MAX = 2147483647;

layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer QP { int q_pos[]; };
layout(std430, binding = 2) readonly buffer KP { uvec4 k_pool[]; };
layout(std430, binding = 3) readonly buffer VP { uvec4 v_pool[]; };
layout(std430, binding = 4) readonly buffer PP { int pos_pool[]; };
layout(std430, binding = 5) readonly buffer BT { int block_table[]; };
layout(std430, binding = 6) readonly buffer LN { int lens[]; };
layout(std430, binding = 7) writeonly buffer DST { float dst[]; };
layout(push_constant) uniform Push {
  uint n_q;
  uint n_heads;
  uint group;
  uint max_blocks;
  int window;
  uint n_split;
  float scale;
  float softcap;
  uint chunk;
} p;

shared vec4 sh_o[NLG * HD8 * 2];  // [NLG, HD] one row's partial outputs, for the merge
shared float sh_m[NLG * GR], sh_l[NLG * GR];

vec4 lo4(uvec4 b) { return vec4(unpackHalf2x16(b.x), unpackHalf2x16(b.y)); }
vec4 hi4(uvec4 b) { return vec4(unpackHalf2x16(b.z), unpackHalf2x16(b.w)); }

#include "kv_quant.glsl"
const uint KRB = KVQ_ROW_BYTES(KTYPE, HD), VRB = KVQ_ROW_BYTES(VTYPE, HD);
uint k_word(uint w) { return k_pool[w >> 2u][w & 3u]; }
uint v_word(uint w) { return v_pool[w >> 2u][w & 3u]; }
// Chunk c of a lane (8 values: 16 bytes of an f16 row, or the kv_quant.glsl register form of a
// quantised one). f16 rows interleave the lanes (lane + c LPK: a lane group's 16-byte loads cover
// consecutive bytes); quantised rows give each lane consecutive chunks (lane CPL + c), in runs of
// QPB = gcd(CPL, 4) chunks inside one 32-value block (runs start at multiples of QPB), each run
// loaded as one span of words with one scale. (The lowest set bit of CPL | 4: no spec-constant
// select, which the SPIR-V optimiser mishandles.)
const uint QPB = (CPL | 4u) & (0u - (CPL | 4u));
uint chunk_of(uint type, uint lane, uint c) {
  return type == KVT_F16 ? lane + c * LPK : lane * CPL + c;
}
uvec4 k_chunk(uint slot, uint ch) { return k_pool[slot * HD8 + ch]; }
uvec4 v_chunk(uint slot, uint ch) { return v_pool[slot * HD8 + ch]; }
// Chunk b's values 0..3 / 4..7 (quantised: before the scale, which k_dot and v_weight apply).
vec4 k_lo4(uvec4 b) { return KTYPE == KVT_F16 ? lo4(b) : kvq_quad(KTYPE, b, 0u); }
vec4 k_hi4(uvec4 b) { return KTYPE == KVT_F16 ? hi4(b) : kvq_quad(KTYPE, b, 1u); }
vec4 v_lo4(uvec4 b) { return VTYPE == KVT_F16 ? lo4(b) : kvq_quad(VTYPE, b, 0u); }
vec4 v_hi4(uvec4 b) { return VTYPE == KVT_F16 ? hi4(b) : kvq_quad(VTYPE, b, 1u); }
// Dot product of query quads a, b with key chunk k (the scale once per chunk, not per value).
float k_dot(vec4 a, vec4 b, uvec4 k) {
  if (KTYPE == KVT_F16) return dot(a, k_lo4(k)) + dot(b, k_hi4(k));
  return (dot(a, k_lo4(k)) + dot(b, k_hi4(k))) * kvq_scale(k);
}
// Weight pe of value chunk v (the scale folded into the weight: once per row, not per value).
float v_weight(float pe, uvec4 v) { return VTYPE == KVT_F16 ? pe : pe * kvq_scale(v); }

#include "kv_layout.glsl"

uvec4 nk[KPI * CPL], nv[KPI * CPL];
int npos[KPI];
// load_step's chunks of key u in row `slot` where a pool is quantised: whole runs (a run is within
// one block: all its chunks exist or none).
void load_quant(uint slot, bool ok, uint lane, uint u) {
  [[unroll]] for (uint c = 0; c < CPL; c += QPB) {
    const uint kc = chunk_of(KTYPE, lane, c);
    if (KTYPE == KVT_F16) {
      [[unroll]] for (uint i = 0; i < QPB; ++i) {
        const uint ch = lane + (c + i) * LPK;
        nk[u * CPL + c + i] = ok && ch < HD8 ? k_chunk(slot, ch) : uvec4(0u);
      }
    } else if (ok && kc < HD8) {
      KVQ_LOAD_RUN(k_word, KTYPE, KRB, QPB, nk, u * CPL + c, slot, kc)
    } else {
      [[unroll]] for (uint i = 0; i < QPB; ++i) nk[u * CPL + c + i] = uvec4(0u);
    }
    const uint vc = chunk_of(VTYPE, lane, c);
    if (VTYPE == KVT_F16) {
      [[unroll]] for (uint i = 0; i < QPB; ++i) {
        const uint ch = lane + (c + i) * LPK;
        nv[u * CPL + c + i] = ok && ch < HD8 ? v_chunk(slot, ch) : uvec4(0u);
      }
    } else if (ok && vc < HD8) {
      KVQ_LOAD_RUN(v_word, VTYPE, VRB, QPB, nv, u * CPL + c, slot, vc)
    } else {
      [[unroll]] for (uint i = 0; i < QPB; ++i) nv[u * CPL + c + i] = uvec4(0u);
    }
  }
}

// Loads of one step: key t0 + u * NLG + lg for u < KPI (this lane's chunks), zeros past k_end.
void load_step(uint h, uint t0, uint k_end, uint lane, uint lg) {
  [[unroll]] for (uint u = 0; u < KPI; ++u) {
    const uint t = t0 + u * NLG + lg;
    const bool ok = t < k_end;
    const uint slot = ok ? kv_slot(h, t) : 0u;
    npos[u] = ok ? pos_pool[slot] : INT_MAX;
    if (KTYPE == KVT_F16 && VTYPE == KVT_F16) {
      [[unroll]] for (uint c = 0; c < CPL; ++c) {
        const uint ch = lane + c * LPK;
        const bool cok = ok && ch < HD8;
        nk[u * CPL + c] = cok ? k_chunk(slot, ch) : uvec4(0u);  // zero bits: zero values
        nv[u * CPL + c] = cok ? v_chunk(slot, ch) : uvec4(0u);
      }
    } else {
      load_quant(slot, ok, lane, u);
    }
  }
}

// Index of query row `row` of KV head h in [n_q * n_heads] (query i, head h * group + g).
uint q_index(uint h, uint row) {
  return (row / p.group) * p.n_heads + h * p.group + row % p.group;
}

void main() {
  // Lanes of one lane group are consecutive invocations of one subgroup.
  const uint tid = gl_SubgroupID * gl_SubgroupSize + gl_SubgroupInvocationID;
  const uint lane = tid % LPK, lg = tid / LPK;
  const uint h = gl_WorkGroupID.y, split = gl_WorkGroupID.z;
  const uint n_rows = p.n_q * p.group, row0 = gl_WorkGroupID.x * GR, n_all = p.n_q * p.n_heads;
  const uint len = uint(clamp(lens[h], 0, int(p.max_blocks * 32u)));
  const uint k_begin = min(len, split * p.chunk), k_end = min(len, k_begin + p.chunk);
  const uint ml0 = p.n_split * n_all * HD;  // scratch: m and l after the partial outputs
  if (k_begin == k_end && p.n_split > 1u) {  // empty share (short head): an empty partial
    if (tid < GR && row0 + tid < n_rows) {
      const uint b = ml0 + (split * n_all + q_index(h, row0 + tid)) * 2u;
      dst[b] = NEG_BIG;
      dst[b + 1u] = 0.0;
    }
    return;
  }
  vec4 qv[GR * CPL * 2];  // this lane's chunks of the GR query rows, times scale * log2(e)
  const float qscale = p.scale * LOG2E;
  int qp[GR];
  [[unroll]] for (uint r = 0; r < GR; ++r) {
    const bool ok = row0 + r < n_rows;
    qp[r] = ok ? q_pos[(row0 + r) / p.group] : -INT_MAX - 1;
    const uint qb = ok ? q_index(h, row0 + r) * HD : 0u;
    [[unroll]] for (uint c = 0; c < CPL; ++c) {
      const uint ch = chunk_of(KTYPE, lane, c);
      vec4 a = vec4(0.0), b = vec4(0.0);
      if (ok && ch < HD8) {  // the values of K's chunk ch
        const uint e = qb + kvq_quad_col(KTYPE, ch, 0u), f = qb + kvq_quad_col(KTYPE, ch, 1u);
        a = vec4(q[e], q[e + 1u], q[e + 2u], q[e + 3u]) * qscale;
        b = vec4(q[f], q[f + 1u], q[f + 2u], q[f + 3u]) * qscale;
      }
      qv[(r * CPL + c) * 2u] = a;
      qv[(r * CPL + c) * 2u + 1u] = b;
    }
  }
  // Row r sees key position kp iff 0 <= qp[r] - kp < window (positions are in [0, 2^31); a
  // missing key has kp = INT_MAX; padding rows wrap around but are never stored).
  const uint wlim = p.window > 0 ? uint(p.window) : 0x80000000u;
  const float cap = p.softcap * LOG2E, inv_cap = p.softcap > 0.0 ? 1.0 / cap : 0.0;
  float m[GR], l[GR];
  vec4 o[GR * CPL * 2];
  [[unroll]] for (uint r = 0; r < GR; ++r) m[r] = NEG_BIG, l[r] = 0.0;
  [[unroll]] for (uint i = 0; i < GR * CPL * 2; ++i) o[i] = vec4(0.0);

  if (PREFETCH && k_begin < k_end) load_step(h, k_begin, k_end, lane, lg);
  for (uint t0 = k_begin; t0 < k_end; t0 += NLG * KPI) {
    // This step's keys (all KPI keys' K and V in flight); with PREFETCH they were loaded during
    // the previous step and the next step's loads are issued now.
    if (!PREFETCH) load_step(h, t0, k_end, lane, lg);
    uvec4 kb[KPI * CPL], vb[KPI * CPL];
    int kp[KPI];
    [[unroll]] for (uint i = 0; i < KPI * CPL; ++i) kb[i] = nk[i], vb[i] = nv[i];
    [[unroll]] for (uint u = 0; u < KPI; ++u) kp[u] = npos[u];
    if (PREFETCH && t0 + NLG * KPI < k_end) load_step(h, t0 + NLG * KPI, k_end, lane, lg);
    // Scores: partial dots, then a butterfly over the lane group (every lane gets the sum).
    float s[KPI * GR];
    [[unroll]] for (uint u = 0; u < KPI; ++u) {
      [[unroll]] for (uint r = 0; r < GR; ++r) {
        float acc = 0.0;
        [[unroll]] for (uint c = 0; c < CPL; ++c) {
          const uvec4 k = kb[u * CPL + c];
          acc += k_dot(qv[(r * CPL + c) * 2u], qv[(r * CPL + c) * 2u + 1u], k);
        }
        s[u * GR + r] = acc;
      }
    }
    [[unroll]] for (uint x = LPK / 2u; x > 0u; x >>= 1) {
      [[unroll]] for (uint i = 0; i < KPI * GR; ++i) s[i] += subgroupShuffleXor(s[i], x);
    }
    // Soft-cap in log2 units: log2(e) c tanh(s / c) = C tanh(s2 / C) with C = c log2(e).
    if (p.softcap > 0.0) {
      [[unroll]] for (uint i = 0; i < KPI * GR; ++i) s[i] = cap * tanh(s[i] * inv_cap);
    }
    // Online softmax per row over the KPI keys: mask, rescale, accumulate P V.
    [[unroll]] for (uint r = 0; r < GR; ++r) {
      float mx = m[r];
      [[unroll]] for (uint u = 0; u < KPI; ++u) {
        float sv = s[u * GR + r];
        const bool vis = uint(qp[r] - kp[u]) < wlim;
        sv = vis ? sv : NEG_BIG;
        s[u * GR + r] = sv;
        mx = max(mx, sv);
      }
      const float alpha = exp2(m[r] - mx);
      m[r] = mx;
      float psum = 0.0;
      [[unroll]] for (uint u = 0; u < KPI; ++u) {
        const float sv = s[u * GR + r];
        const float pe = sv > 0.5 * NEG_BIG ? exp2(sv - mx) : 0.0;
        s[u * GR + r] = pe;
        psum += pe;
      }
      l[r] = l[r] * alpha + psum;
      [[unroll]] for (uint c = 0; c < CPL; ++c) {
        vec4 a = o[(r * CPL + c) * 2u] * alpha, b = o[(r * CPL + c) * 2u + 1u] * alpha;
        [[unroll]] for (uint u = 0; u < KPI; ++u) {
          const float pe = s[u * GR + r];
          const float pv = v_weight(pe, vb[u * CPL + c]);
          a += pv * v_lo4(vb[u * CPL + c]);
          b += pv * v_hi4(vb[u * CPL + c]);
        }
        o[(r * CPL + c) * 2u] = a;
        o[(r * CPL + c) * 2u + 1u] = b;
      }
    }
  }

  // Merge the lane groups: M = max m_g, L = sum e^(m_g - M) l_g, O = sum e^(m_g - M) o_g.
  if (lane == 0u) {
    [[unroll]] for (uint r = 0; r < GR; ++r) sh_m[lg * GR + r] = m[r], sh_l[lg * GR + r] = l[r];
  }
  barrier();
  [[unroll]] for (uint r = 0; r < GR; ++r) {
    float mx = NEG_BIG, sum_l = 0.0;
    for (uint g = 0; g < NLG; ++g) mx = max(mx, sh_m[g * GR + r]);
    for (uint g = 0; g < NLG; ++g) {
      const float mg = sh_m[g * GR + r];
      sum_l += mg > 0.5 * NEG_BIG ? exp2(mg - mx) * sh_l[g * GR + r] : 0.0;
    }
    const float w = m[r] > 0.5 * NEG_BIG ? exp2(m[r] - mx) : 0.0;
    [[unroll]] for (uint c = 0; c < CPL; ++c) {
      const uint ch = chunk_of(VTYPE, lane, c);
      if (ch < HD8) {  // the values of V's chunk ch, as quads of the row
        sh_o[lg * 2u * HD8 + kvq_quad_col(VTYPE, ch, 0u) / 4u] = o[(r * CPL + c) * 2u] * w;
        sh_o[lg * 2u * HD8 + kvq_quad_col(VTYPE, ch, 1u) / 4u] = o[(r * CPL + c) * 2u + 1u] * w;
      }
    }
    barrier();
    const uint row = row0 + r;
    if (row < n_rows) {
      const uint qi = q_index(h, row);
      for (uint d4 = tid; d4 < 2u * HD8; d4 += WG) {
        vec4 acc = vec4(0.0);
        for (uint g = 0; g < NLG; ++g) acc += sh_o[g * 2u * HD8 + d4];
        if (p.n_split == 1u) acc = sum_l > 0.0 ? acc / sum_l : vec4(0.0);
        const uint b = (p.n_split == 1u ? qi : split * n_all + qi) * HD + 4u * d4;
        dst[b] = acc.x, dst[b + 1u] = acc.y, dst[b + 2u] = acc.z, dst[b + 3u] = acc.w;
      }
      if (p.n_split > 1u && tid == 0u) {
        const uint b = ml0 + (split * n_all + qi) * 2u;
        dst[b] = mx > 0.5 * NEG_BIG ? mx / LOG2E : NEG_BIG;  // natural units for the combine
        dst[b + 1u] = sum_l;
      }
    }
    barrier();
  }
}
