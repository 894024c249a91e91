// Split-K merge fused into shaders/paged_decode.comp (FUSE): the last share of a (row tile, KV
// head) to finish merges every share's partial result of its GR rows, as
// shaders/paged_attention_combine.comp does: out = sum_s e^(m_s - M) o_s / sum_s e^(m_s - M) l_s,
// M = max_s m_s; shares with m_s == NEG_BIG saw no visible key and are skipped (o_s not read);
// rows that saw no key get zeros. Uses the kernel's bindings, push constants, sh_o and sh_m.
// Over more than MG live shares the merge is two-level, so that no workgroup reads more than
// max(MG, n_live / MG) partials alone: the last share of each group of MG merges the group into
// the group's first slot (a partial again: o, M_g, L_g), and the last group merges the groups.
// Counters per (row tile, KV head): [0] the groups (or shares), [1 + g] group g's shares.
// Memory model: the partials go to the coherent scratch and are made available at device scope
// (memoryBarrierBuffer) before the workgroup barrier that precedes its one atomicAdd; the
// workgroup that takes the count to its target (all increments, hence all partials, before it)
// makes them visible (memoryBarrierBuffer after the atomic) and reads them coherent.

const uint HD4 = HD / 4u;
const uint MP = GR * HD4;                       // (row, vec4 column) pairs
const uint MS = WG / MP > 0u ? WG / MP : 1u;    // share slices per pair (threads per pair)
const uint MPT = (MP + WG - 1u) / WG;           // pairs per thread
const uint MSB = 64u;                           // shares per block of weights
const uint MG = 16u;                            // shares per first-level group (kDecodeMergeGroup)
shared float sh_w[GR * MSB];                    // e^(m_s - M_r) of one block, 0: skip the share
shared float sh_ml[2u * GR];                    // M_r and L_r of the GR rows
shared uint sh_last;

// Counts this workgroup in counter c and returns (to every invocation) whether it was the last
// of n; the last one resets the counter to 0 for the next call.
bool last_of(uint c, uint n, uint tid) {
  memoryBarrierBuffer();
  barrier();
  if (tid == 0u) {
    const bool last = atomicAdd(ctr[c], 1u) == n - 1u;
    if (last) atomicExchange(ctr[c], 0u);
    memoryBarrierBuffer();
    sh_last = last ? 1u : 0u;
  }
  barrier();
  return sh_last != 0u;
}

// Workgroup max (is_max) or sum of one value per row r: red_put in every invocation for every
// row between barriers, then red_get combines the subgroups in order (the same bits everywhere).
void red_put(float v, uint r, bool is_max) {
  for (uint x = gl_SubgroupSize / 2u; x > 0u; x >>= 1) {
    const float o = subgroupShuffleXor(v, x);
    v = is_max ? max(v, o) : v + o;
  }
  if (gl_SubgroupInvocationID == 0u) sh_m[gl_SubgroupID * GR + r] = v;
}
float red_get(uint r, bool is_max) {
  float t = is_max ? NEG_BIG : 0.0;
  for (uint i = 0u; i < gl_NumSubgroups; ++i) {
    const float v = sh_m[i * GR + r];
    t = is_max ? max(t, v) : t + v;
  }
  return t;
}

// Weighted sum of partials j0 + j, j in [sl, nb) step MS (share first + (j0 + j) * step), of pair
// pr's outputs (vec4 column c of row r, vec4 index ob in share 0); 8 loads in flight, skipped
// shares not read.
vec4 sum_block(uint first, uint step, uint j0, uint nb, uint sl, uint r, uint ob, uint stride4) {
  vec4 acc = vec4(0.0);
  uint j = sl;
  for (; j + 7u * MS < nb; j += 8u * MS) {
    float w[8];
    vec4 v[8];
    [[unroll]] for (uint u = 0; u < 8u; ++u) {
      w[u] = sh_w[r * MSB + j + u * MS];
      v[u] = w[u] > 0.0 ? dst4[(first + (j0 + j + u * MS) * step) * stride4 + ob] : vec4(0.0);
    }
    [[unroll]] for (uint u = 0; u < 8u; ++u) acc += w[u] > 0.0 ? w[u] * v[u] : vec4(0.0);
  }
  for (; j < nb; j += MS) {
    const float w = sh_w[r * MSB + j];
    if (w > 0.0) acc += w * dst4[(first + (j0 + j) * step) * stride4 + ob];
  }
  return acc;
}

// Merges the n partials at shares first + j * step (j < n) of the GR rows: final, into out (and
// x8) normalised; else into share first's slot, as a partial (o unnormalised, M_r, L_r).
void merge_shares(uint h, uint row0, uint first, uint step, uint n, bool final, uint tid) {
  memoryBarrierBuffer();
  const uint n_rows = p.n_q * p.group, n_all = p.n_q * p.n_heads, ml0 = p.n_split * n_all * HD;
  // M_r and L_r = sum_s e^(m_s - M_r) l_s, threads over shares.
  float mx[GR], ls[GR];
  [[unroll]] for (uint r = 0; r < GR; ++r) mx[r] = NEG_BIG, ls[r] = 0.0;
  for (uint j = tid; j < n; j += WG) {
    [[unroll]] for (uint r = 0; r < GR; ++r) {
      const uint b = ml0 + ((first + j * step) * n_all + q_index(h, row0 + r)) * 2u;
      if (row0 + r < n_rows) mx[r] = max(mx[r], dst[b]);
    }
  }
  [[unroll]] for (uint r = 0; r < GR; ++r) red_put(mx[r], r, true);
  barrier();
  [[unroll]] for (uint r = 0; r < GR; ++r) mx[r] = red_get(r, true);
  for (uint j = tid; j < n; j += WG) {
    [[unroll]] for (uint r = 0; r < GR; ++r) {
      const uint b = ml0 + ((first + j * step) * n_all + q_index(h, row0 + r)) * 2u;
      const float ms = row0 + r < n_rows ? dst[b] : NEG_BIG;
      if (ms > 0.5 * NEG_BIG) ls[r] += exp(ms - mx[r]) * dst[b + 1u];
    }
  }
  barrier();  // sh_m read by red_get
  [[unroll]] for (uint r = 0; r < GR; ++r) red_put(ls[r], r, false);
  barrier();
  [[unroll]] for (uint r = 0; r < GR; ++r) ls[r] = red_get(r, false);
  if (tid == 0u) {
    [[unroll]] for (uint r = 0; r < GR; ++r) sh_ml[r] = mx[r], sh_ml[GR + r] = ls[r];
  }
  // O_r = sum_s e^(m_s - M_r) o_s: pairs (row, vec4 column) x MS slices of the shares, the
  // weights of MSB shares at a time in shared memory.
  const uint sl = tid / MP;
  vec4 acc[MPT];
  [[unroll]] for (uint k = 0; k < MPT; ++k) acc[k] = vec4(0.0);
  for (uint j0 = 0u; j0 < n; j0 += MSB) {
    barrier();  // the previous block's weights are read
    [[unroll]] for (uint r = 0; r < GR; ++r) {
      for (uint j = tid; j < MSB; j += WG) {
        float w = 0.0;
        if (j0 + j < n && row0 + r < n_rows) {
          const uint s = first + (j0 + j) * step;
          const float ms = dst[ml0 + (s * n_all + q_index(h, row0 + r)) * 2u];
          w = ms > 0.5 * NEG_BIG ? exp(ms - mx[r]) : 0.0;
        }
        sh_w[r * MSB + j] = w;
      }
    }
    barrier();
    const uint nb = min(MSB, n - j0);
    [[unroll]] for (uint k = 0; k < MPT; ++k) {
      const uint pr = MS > 1u ? tid % MP : tid + k * WG, r = pr / HD4;
      if (sl < MS && pr < MP && row0 + r < n_rows)
        acc[k] += sum_block(first, step, j0, nb, sl, r, q_index(h, row0 + r) * HD4 + pr % HD4,
                            n_all * HD4);
    }
  }
  // Slices summed in order, then written: final normalised (and kept in sh_o[pr] for the x8
  // rounding: the slice sums sit at sh_o[MP..), slice 0's are never stored), else as a partial
  // into share first's slot (its reads are done: barriers above).
  barrier();
  if (MS > 1u && sl < MS) sh_o[tid] = acc[0];
  barrier();
  [[unroll]] for (uint k = 0; k < MPT; ++k) {
    const uint pr = MS > 1u ? tid % MP : tid + k * WG, r = pr / HD4;
    if (sl == 0u && pr < MP && row0 + r < n_rows) {
      vec4 a = acc[k];
      for (uint t = 1u; t < MS; ++t) a += sh_o[t * MP + pr];
      const uint qi = q_index(h, row0 + r);
      if (final) {
        const float l = sh_ml[GR + r];
        a = l > 0.0 ? a / l : vec4(0.0);
        const uint b = qi * HD + 4u * (pr % HD4);
        out_[b] = a.x, out_[b + 1u] = a.y, out_[b + 2u] = a.z, out_[b + 3u] = a.w;
        sh_o[pr] = a;
      } else {
        dst4[(first * n_all + qi) * HD4 + pr % HD4] = a;
        if (pr % HD4 == 0u) {
          const uint b = ml0 + (first * n_all + qi) * 2u;
          dst[b] = sh_ml[r], dst[b + 1u] = sh_ml[GR + r];
        }
      }
    }
  }
#ifdef WITH_X8
  if (final) {
    // Groups of 32 values (8 vec4) of the merged rows, as quantize_x8 rounds out.
    barrier();
    const uint n32 = HD / 32u;
    for (uint i = tid; i < GR * n32; i += WG) {
      const uint r = i / n32, g = i % n32;
      if (row0 + r >= n_rows) continue;
      vec4 xv[8];
      [[unroll]] for (uint u = 0; u < 8u; ++u) xv[u] = sh_o[r * HD4 + 8u * g + u];
      uint q8[8];
      float dx, s;
      x8_round_32(xv, q8, dx, s);
      x8_store(q_index(h, row0 + r) * n32 + g, n_all * HD, q8, dx, s);
    }
  }
#endif
}

// After this share's partial is written: count it in; the last share of its group merges the
// group, the last group (or, up to MG shares, the last share) merges into out.
void merge_if_last(uint h, uint row0, uint split, uint n_live, uint tid) {
  const uint ng = (n_live + MG - 1u) / MG;
  const uint tile = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  const uint c0 = p.ctr0 + tile * (1u + (p.n_split + MG - 1u) / MG);
  if (ng > 1u) {
    const uint g = split / MG, first = g * MG;
    if (!last_of(c0 + 1u + g, min(MG, n_live - first), tid)) return;
    merge_shares(h, row0, first, 1u, min(MG, n_live - first), false, tid);
  }
  if (!last_of(c0, ng > 1u ? ng : n_live, tid)) return;
  merge_shares(h, row0, 0u, ng > 1u ? MG : 1u, ng > 1u ? ng : n_live, true, tid);
}
