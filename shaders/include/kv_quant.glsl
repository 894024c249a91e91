// KV pool storage types (runtime/kv_quant.h): 0 = f16, 1 = q8_0 (34-byte blocks: f16 d, int8
// q[32]; x = q d), 2 = q4_0 (18-byte blocks: f16 d, 16 bytes of nibbles, value j in the low nibble
// of byte j and value j + 16 in the high one; x = (q - 8) d), as llama.cpp lays them out. Rows
// are whole blocks; a pool is addressed in bytes through 32-bit words.
const uint KVT_F16 = 0u, KVT_Q8_0 = 1u, KVT_Q4_0 = 2u;

uint kvq_block_bytes(uint type) { return type == KVT_Q8_0 ? 34u : 18u; }
// Bytes of a row of hd values (a macro: usable in spec-constant initialisers).
#define KVQ_ROW_BYTES(type, hd) ((type) == KVT_F16 ? 2u * (hd) : (hd) / 32u * ((type) == KVT_Q8_0 ? 34u : 18u))

// Values 0..3 of 4 stored quant bytes q (q4_0: their low nibbles, or with shift 4 the high
// ones) with the block's f16 scale bits d_bits, in f32 exactly as runtime/cpu/dequant.cpp.
vec4 kvq_chunk4(uint type, uint q, uint d_bits, uint shift) {
  const float d = unpackHalf2x16(d_bits).x;
  if (type == KVT_Q8_0) {
    const int s = int(q);
    return vec4(float((s << 24) >> 24), float((s << 16) >> 24), float((s << 8) >> 24),
                float(s >> 24)) * d;
  }
  return d * (vec4((uvec4(q, q >> 8u, q >> 16u, q >> 24u) >> shift) & 0xFu) - 8.0);
}

// KVQ_DEFINE_U32(NAME, WORD): defines uint NAME_u32(uint o), the 4 bytes at even byte offset o of a
// pool whose 32-bit word w is WORD(w) (blocks are only 2-byte aligned).
#define KVQ_DEFINE_U32(NAME, WORD)                                                            \
  uint NAME##_u32(uint o) {                                                                   \
    const uint w0 = WORD(o >> 2u);                                                            \
    return (o & 2u) == 0u ? w0 : (w0 >> 16u) | (WORD((o >> 2u) + 1u) << 16u);                 \
  }

// KVQ_DEFINE_LOAD4(NAME, WORD): defines vec4 NAME(uint type, uint row_bytes, uint slot, uint col),
// values col..col + 3 (col % 4 == 0) of quantised row `slot`, dequantised in f32 (kvq_chunk4).
// WORD(w) must return 32-bit word w of the pool.
#define KVQ_DEFINE_LOAD4(NAME, WORD)                                                          \
  KVQ_DEFINE_U32(NAME, WORD)                                                                  \
  vec4 NAME(uint type, uint row_bytes, uint slot, uint col) {                                 \
    const uint base = slot * row_bytes + (col / 32u) * kvq_block_bytes(type), j = col % 32u;  \
    const uint d = (WORD(base >> 2u) >> ((base & 2u) * 8u)) & 0xFFFFu;                        \
    if (type == KVT_Q8_0) return kvq_chunk4(type, NAME##_u32(base + 2u + j), d, 0u);          \
    return kvq_chunk4(type, NAME##_u32(base + 2u + j % 16u), d, j >= 16u ? 4u : 0u);          \
  }

// Quantises the 32 values x[0..31] into the block at uint16 index b of `pool` (declared by the
// includer as uint16_t[]); same arithmetic as runtime/kv_quant.cpp (llama.cpp's reference).
#define KVQ_DEFINE_STORE_BLOCK(NAME, POOL, SRC)                                               \
  void NAME(uint type, uint b, uint src) {                                                    \
    if (type == KVT_Q8_0) {                                                                   \
      float amax = 0.0;                                                                       \
      for (uint j = 0u; j < 32u; ++j) amax = max(amax, abs(SRC[src + j]));                    \
      const float d = amax / 127.0, id = d != 0.0 ? 1.0 / d : 0.0;                            \
      POOL[b] = uint16_t(f32_to_f16_bits(d));                                                 \
      for (uint j = 0u; j < 32u; j += 2u) {                                                   \
        const float a = SRC[src + j] * id, c = SRC[src + j + 1u] * id;                        \
        const int qa = int(sign(a) * floor(abs(a) + 0.5)), qc = int(sign(c) * floor(abs(c) + 0.5)); \
        POOL[b + 1u + j / 2u] = uint16_t(uint(qa & 0xFF) | (uint(qc & 0xFF) << 8u));          \
      }                                                                                       \
    } else {                                                                                  \
      float amax = 0.0, mx = 0.0;                                                             \
      for (uint j = 0u; j < 32u; ++j) {                                                       \
        const float v = SRC[src + j];                                                         \
        if (amax < abs(v)) amax = abs(v), mx = v;                                             \
      }                                                                                       \
      const float d = mx / -8.0, id = d != 0.0 ? 1.0 / d : 0.0;                               \
      POOL[b] = uint16_t(f32_to_f16_bits(d));                                                 \
      for (uint j = 0u; j < 16u; j += 2u) {                                                   \
        uint pair = 0u;                                                                       \
        for (uint e = 0u; e < 2u; ++e) {                                                      \
          const uint lo = min(15u, uint(int(SRC[src + j + e] * id + 8.5)));                   \
          const uint hi = min(15u, uint(int(SRC[src + 16u + j + e] * id + 8.5)));             \
          pair |= (lo | (hi << 4u)) << (8u * e);                                              \
        }                                                                                     \
        POOL[b + 1u + j / 2u] = uint16_t(pair);                                               \
      }                                                                                       \
    }                                                                                         \
  }

// Quantised rows held in registers as loaded, per 8-value chunk (kernels that dequantise at use):
// uvec4(x, y, scale bits, 0). q8_0: x, y = the chunk's 8 bytes (values 0..3, 4..7). q4_0: x = 4
// quant bytes of a block, whose low nibbles are the chunk's values 0..3 and high nibbles its values
// 4..7 (16 apart in the block: chunk c of a block holds block values 4c.. and 16 + 4c..).
// A value is kvq_quad(type, b, h)[i] * kvq_scale(b) (as runtime/cpu/dequant.cpp), for the chunk's
// values 0..3 (h = 0) or 4..7 (h = 1): the scale apart, so that kernels can apply it once per dot
// product or per weight. Zero bits give a zero scale.
// Bytes become floats through their bits: 0x4B000000 | b is 2^23 + b exactly, so subtracting 2^23
// (+ the zero point) is exact and needs no int-to-float conversion (a slow instruction on GPUs).
vec4 kvq_magic4(uint w) {
  return uintBitsToFloat((uvec4(w, w >> 8u, w >> 16u, w >> 24u) & 0xFFu) | 0x4B000000u);
}
vec4 kvq_quad(uint type, uvec4 b, uint h) {
  if (type == KVT_Q8_0)  // signed bytes: flip the sign bits (b + 128), then subtract 2^23 + 128
    return kvq_magic4((h == 0u ? b.x : b.y) ^ 0x80808080u) - 8388736.0;
  return kvq_magic4((b.x >> (4u * h)) & 0x0F0F0F0Fu) - 8388616.0;
}
float kvq_scale(uvec4 b) { return unpackHalf2x16(b.z).x; }
// Chunk ch's first value of half h (see above) in a row of `type`.
uint kvq_quad_col(uint type, uint ch, uint h) {
  return type == KVT_Q4_0 ? (ch & ~3u) * 8u + 16u * h + 4u * (ch & 3u) : 8u * ch + 4u * h;
}
// KVQ_LOAD_RUN(WORD, TYPE, RB, RUN, DST, I0, SLOT, CH0) (a statement): chunks CH0 .. CH0 + RUN - 1
// of quantised row SLOT (RB bytes a row), in one block (RUN divides 4 and CH0 % RUN == 0, or
// RUN == 4), into DST[I0 ..] in the form above. Blocks are only 2-byte aligned: the run's bytes
// come as aligned 32-bit words, shifted into place; the scale is loaded once for the run, and a
// whole block's run starts at its scale (one span of words, no separate scale load). Only words
// holding wanted bytes are read.
#define KVQ_LOAD_RUN(WORD, TYPE, RB, RUN, DST, I0, SLOT, CH0)                                      \
  {                                                                                                \
    const uint kvq_w = TYPE == KVT_Q8_0 ? 2u : 1u, kvq_n = kvq_w * (RUN); /* quant words */        \
    const uint kvq_b = (SLOT) * (RB) + ((CH0) / 4u) * kvq_block_bytes(TYPE);                       \
    uint kvq_r[2u * (RUN)], kvq_d;                                                                 \
    if ((RUN) == 4u) {                                                                             \
      const uint kvq_a = kvq_b >> 2u;                                                              \
      const bool kvq_hi = (kvq_b & 2u) != 0u; /* scale: high half; quants aligned */               \
      uint kvq_cur = WORD(kvq_a);                                                                  \
      kvq_d = kvq_hi ? kvq_cur >> 16u : kvq_cur & 0xFFFFu;                                         \
      [[unroll]] for (uint kvq_i = 0u; kvq_i < kvq_n; ++kvq_i) {                                   \
        const uint kvq_nxt = WORD(kvq_a + kvq_i + 1u);                                             \
        kvq_r[kvq_i] = kvq_hi ? kvq_nxt : (kvq_cur >> 16u) | (kvq_nxt << 16u);                     \
        kvq_cur = kvq_nxt;                                                                         \
      }                                                                                            \
    } else {                                                                                       \
      kvq_d = (WORD(kvq_b >> 2u) >> ((kvq_b & 2u) * 8u)) & 0xFFFFu;                                \
      const uint kvq_o = kvq_b + 2u + 4u * kvq_w * ((CH0) % 4u);                                   \
      const uint kvq_a = kvq_o >> 2u;                                                              \
      const bool kvq_odd = (kvq_o & 2u) != 0u;                                                     \
      uint kvq_cur = WORD(kvq_a);                                                                  \
      [[unroll]] for (uint kvq_i = 0u; kvq_i < kvq_n; ++kvq_i) {                                   \
        const uint kvq_nxt =                                                                       \
            kvq_i + 1u < kvq_n || kvq_odd ? WORD(kvq_a + kvq_i + 1u) : 0u;                         \
        kvq_r[kvq_i] = kvq_odd ? (kvq_cur >> 16u) | (kvq_nxt << 16u) : kvq_cur;                    \
        kvq_cur = kvq_nxt;                                                                         \
      }                                                                                            \
    }                                                                                              \
    [[unroll]] for (uint kvq_c = 0u; kvq_c < (RUN); ++kvq_c)                                       \
      DST[(I0) + kvq_c] =                                                                          \
          uvec4(kvq_r[kvq_c * kvq_w], kvq_w == 2u ? kvq_r[kvq_c * kvq_w + 1u] : 0u, kvq_d, 0u);    \
  }

// KVQ_DEFINE_CHUNK(NAME, POOL, TYPE, HD): for a pool bound as `uvec4 POOL[]` holding rows of HD
// values in storage type TYPE (a spec constant), defines uvec4 NAME(uint slot, uint ch): the
// contiguous values 8 ch .. 8 ch + 7 of row `slot` as stored, for kernels that load a tile early
// and convert it when they write it to shared memory (kvq_f16x8): f16 rows as their 16 bytes;
// quantised rows as uvec4(the 8 bytes that hold the values, the block's f16 scale bits, the
// nibble shift: q4_0 0 for block values 0..15, 4 for 16..31).
#define KVQ_DEFINE_CHUNK(NAME, POOL, TYPE, HD)                                                 \
  uint NAME##_word(uint w) { return POOL[w >> 2u][w & 3u]; }                                  \
  KVQ_DEFINE_U32(NAME, NAME##_word)                                                           \
  uvec4 NAME(uint slot, uint ch) {                                                            \
    if (TYPE == KVT_F16) return POOL[slot * ((HD) / 8u) + ch];                                \
    const uint base = slot * KVQ_ROW_BYTES(TYPE, HD) + (ch / 4u) * kvq_block_bytes(TYPE);     \
    const uint j = (8u * ch) % 32u;                                                           \
    const uint d = (NAME##_word(base >> 2u) >> ((base & 2u) * 8u)) & 0xFFFFu;                 \
    const uint o = base + 2u + (TYPE == KVT_Q8_0 ? j : j % 16u);                              \
    return uvec4(NAME##_u32(o), NAME##_u32(o + 4u), d, TYPE == KVT_Q4_0 && j >= 16u ? 4u : 0u); \
  }

// A chunk of NAME(slot, ch) above as 8 f16 values (uvec4 of half pairs): f16 bits unchanged;
// quantised values dequantised in f32 (kvq_chunk4), then rounded to f16 once, for the tensor-core
// kernels' f16 tiles.
uvec4 kvq_f16x8(uint type, uvec4 raw) {
  if (type == KVT_F16) return raw;
  const vec4 a = kvq_chunk4(type, raw.x, raw.z, raw.w), b = kvq_chunk4(type, raw.y, raw.z, raw.w);
  return uvec4(packHalf2x16(a.xy), packHalf2x16(a.zw), packHalf2x16(b.xy), packHalf2x16(b.zw));
}
