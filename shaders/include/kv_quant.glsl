// KV pool storage types (runtime/kv_quant.h): 0 = f16, 1 = q8_0 (34-byte blocks: f16 d, int8
// q[32]; x = q d), 2 = q4_0 (18-byte blocks: f16 d, 16 bytes of nibbles, value j in the low nibble
// of byte j and value j + 16 in the high one; x = (q - 8) d), as llama.cpp lays them out. Rows
// are whole blocks; a pool is addressed in bytes through 32-bit words.
const uint KVT_F16 = 0u, KVT_Q8_0 = 1u, KVT_Q4_0 = 2u;

uint kvq_block_bytes(uint type) { return type == KVT_Q8_0 ? 34u : 18u; }
// Bytes of a row of hd values (a macro: usable in spec-constant initialisers).
#define KVQ_ROW_BYTES(type, hd) ((type) == KVT_F16 ? 2u * (hd) : (hd) / 32u * ((type) == KVT_Q8_0 ? 34u : 18u))

// KVQ_DEFINE_LOAD4(NAME, WORD): defines vec4 NAME(uint type, uint row_bytes, uint slot, uint col),
// values col..col + 3 (col % 4 == 0) of quantised row `slot`, dequantised in f32 exactly as
// runtime/cpu/dequant.cpp does. WORD(w) must return 32-bit word w of the pool.
#define KVQ_DEFINE_LOAD4(NAME, WORD)                                                          \
  uint NAME##_u32(uint o) { /* 4 bytes at even byte offset o */                              \
    const uint w0 = WORD(o >> 2u);                                                            \
    return (o & 2u) == 0u ? w0 : (w0 >> 16u) | (WORD((o >> 2u) + 1u) << 16u);                 \
  }                                                                                           \
  vec4 NAME(uint type, uint row_bytes, uint slot, uint col) {                                 \
    const uint base = slot * row_bytes + (col / 32u) * kvq_block_bytes(type), j = col % 32u;  \
    const float d = unpackHalf2x16(WORD(base >> 2u) >> ((base & 2u) * 8u)).x;                 \
    if (type == KVT_Q8_0) {                                                                   \
      const int q = int(NAME##_u32(base + 2u + j));                                           \
      return vec4(float((q << 24) >> 24), float((q << 16) >> 24), float((q << 8) >> 24),      \
                  float(q >> 24)) * d;                                                        \
    }                                                                                         \
    const uint q = NAME##_u32(base + 2u + j % 16u) >> (j >= 16u ? 4u : 0u);                   \
    return d * (vec4(uvec4(q, q >> 8u, q >> 16u, q >> 24u) & 0xFu) - 8.0);                    \
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

// KVQ_DEFINE_RAW8(NAME, WORD): defines uvec4 NAME(uint type, uint row_bytes, uint slot, uint col),
// the stored form of values col..col + 7 (col % 8 == 0) of quantised row `slot`, for kernels that
// keep a row chunk in registers and dequantise at use (kvq_lo4 / kvq_hi4): x = the 8 bytes that
// hold them, z = the block's f16 scale bits, w = the nibble shift (q4_0: 0 low, 4 high).
#define KVQ_DEFINE_RAW8(NAME, WORD)                                                           \
  uint NAME##_u32(uint o) {                                                                   \
    const uint w0 = WORD(o >> 2u);                                                            \
    return (o & 2u) == 0u ? w0 : (w0 >> 16u) | (WORD((o >> 2u) + 1u) << 16u);                 \
  }                                                                                           \
  uvec4 NAME(uint type, uint row_bytes, uint slot, uint col) {                                \
    const uint base = slot * row_bytes + (col / 32u) * kvq_block_bytes(type), j = col % 32u;  \
    const uint d = (WORD(base >> 2u) >> ((base & 2u) * 8u)) & 0xFFFFu;                        \
    const uint o = base + 2u + (type == KVT_Q8_0 ? j : j % 16u);                              \
    return uvec4(NAME##_u32(o), NAME##_u32(o + 4u), d, type == KVT_Q4_0 && j >= 16u ? 4u : 0u); \
  }

// Values 0..3 (kvq_lo4) or 4..7 (kvq_hi4) of a KVQ_DEFINE_RAW8 chunk, in f32.
vec4 kvq_word4(uint type, uint q, uint d_bits, uint shift) {
  const float d = unpackHalf2x16(d_bits).x;
  if (type == KVT_Q8_0) {
    const int s = int(q);
    return vec4(float((s << 24) >> 24), float((s << 16) >> 24), float((s << 8) >> 24),
                float(s >> 24)) * d;
  }
  return d * (vec4((uvec4(q, q >> 8u, q >> 16u, q >> 24u) >> shift) & 0xFu) - 8.0);
}
vec4 kvq_lo4(uint type, uvec4 raw) { return kvq_word4(type, raw.x, raw.z, raw.w); }
vec4 kvq_hi4(uint type, uvec4 raw) { return kvq_word4(type, raw.y, raw.z, raw.w); }

// KVQ_DEFINE_CHUNK(NAME, POOL, TYPE, HD): for a pool bound as `uvec4 POOL[]` holding rows of HD
// values in storage type TYPE (a spec constant), defines uvec4 NAME(uint slot, uint ch): chunk ch
// (values 8 ch .. 8 ch + 7) of row `slot` as stored: its f16 bits for f16, else KVQ_DEFINE_RAW8's
// form. Kernels load chunks early and convert them at use (kvq_lo4 / kvq_hi4 / kvq_f16x8).
#define KVQ_DEFINE_CHUNK(NAME, POOL, TYPE, HD)                                                 \
  uint NAME##_word(uint w) { return POOL[w >> 2u][w & 3u]; }                                  \
  KVQ_DEFINE_RAW8(NAME##_raw8, NAME##_word)                                                   \
  uvec4 NAME(uint slot, uint ch) {                                                            \
    return TYPE == KVT_F16 ? POOL[slot * ((HD) / 8u) + ch]                                    \
                           : NAME##_raw8(TYPE, KVQ_ROW_BYTES(TYPE, HD), slot, 8u * ch);       \
  }

// A chunk of NAME(slot, ch) above as 8 f16 values (uvec4 of half pairs): the f16 bits unchanged,
// quantised values dequantised in f32 and rounded to f16 once, for the tensor-core kernels'
// f16 tiles.
uvec4 kvq_f16x8(uint type, uvec4 raw) {
  if (type == KVT_F16) return raw;
  const vec4 a = kvq_lo4(type, raw), b = kvq_hi4(type, raw);
  return uvec4(packHalf2x16(a.xy), packHalf2x16(a.zw), packHalf2x16(b.xy), packHalf2x16(b.zw));
}
