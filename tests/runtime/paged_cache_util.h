// Shared by the paged attention and scoring tests (tests/runtime): ragged paged caches built on
// the host (f16 rows, optionally stored quantised), which implementation a test runs, and the
// cooperative-matrix apis the tensor-core tests go through.
#pragma once

#include <algorithm>
#include <numeric>
#include <string>
#include <tuple>
#include <vector>

#include "runtime/cpu/half.h"
#include "runtime/kv_quant.h"
#include "runtime/ops/coopmat.h"
#include "runtime/ops/paged_kv.h"
#include "tests/common/test_device.h"

namespace kvz::test {

template <class T>
void shuffle(Rng& rng, std::vector<T>& v) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.next() % i]);
}

// A paged cache on the host: head h holds lens[h] rows in its shuffled blocks, K/V in [-1, 1].
struct HostCache {
  int n_kv_heads = 0, head_dim = 0, n_blocks = 0, max_blocks = 0;
  std::vector<int32_t> table, lens, pos;  // [n_kv_heads, max_blocks], [n_kv_heads], [slots]
  std::vector<uint16_t> k, v;             // [slots, head_dim]
  int32_t slot(int h, int t) const {
    return table[size_t(h) * max_blocks + t / kKvBlockTokens] * kKvBlockTokens + t % kKvBlockTokens;
  }
};

// spare: block-table entries per head past the longest head (rows there are garbage).
// Blocks are shuffled over the pool; with `runs`, each head's blocks are consecutive in the pool
// except blocks 2..4, reversed (kernels that read two adjacent blocks at once see both cases).
inline HostCache make_cache(Rng& rng, int n_kv_heads, int head_dim, const std::vector<int>& lens,
                            int spare = 1, bool runs = false) {
  HostCache c;
  c.n_kv_heads = n_kv_heads, c.head_dim = head_dim;
  c.lens.assign(lens.begin(), lens.end());
  for (int l : lens)
    c.max_blocks = std::max(c.max_blocks, (l + kKvBlockTokens - 1) / kKvBlockTokens);
  c.max_blocks += spare;  // spare capacity: rows past lens[h] hold garbage that must be ignored
  c.n_blocks = n_kv_heads * c.max_blocks + 2;
  std::vector<int32_t> blocks(c.n_blocks);
  std::iota(blocks.begin(), blocks.end(), 0);
  if (!runs) shuffle(rng, blocks);
  c.table.assign(blocks.begin(), blocks.begin() + size_t(n_kv_heads) * c.max_blocks);
  if (runs && c.max_blocks >= 5)
    for (int h = 0; h < n_kv_heads; ++h)
      std::reverse(c.table.begin() + h * c.max_blocks + 2, c.table.begin() + h * c.max_blocks + 5);
  const size_t slots = size_t(c.n_blocks) * kKvBlockTokens;
  c.pos.resize(slots);
  for (auto& p : c.pos) p = static_cast<int32_t>(rng.next() % 100000);  // garbage by default
  c.k.resize(slots * head_dim), c.v.resize(slots * head_dim);
  for (auto& x : c.k) x = cpu::f32_to_f16(rng.uniform());
  for (auto& x : c.v) x = cpu::f32_to_f16(rng.uniform());
  return c;
}

struct DevCache {
  Tensor k, v, pos, table, lens;
};

// The f16 rows of `rows` as a pool of type t (quantised per row, as kv_write stores them).
inline Tensor upload_pool(Device& dev, std::vector<Buffer>& keep, const HostCache& c, DType t,
                          const std::vector<uint16_t>& rows) {
  const int64_t nb = c.n_blocks, hd = c.head_dim;
  if (t == DType::kF16) return upload(dev, keep, t, {nb, kKvBlockTokens, hd}, rows.data());
  const size_t n_rows = size_t(nb) * kKvBlockTokens, rb = kv_row_bytes(t, hd);
  std::vector<uint8_t> bytes(n_rows * rb);
  std::vector<float> x(hd);
  for (size_t r = 0; r < n_rows; ++r) {
    for (int64_t d = 0; d < hd; ++d) x[d] = cpu::f16_to_f32(rows[r * hd + d]);
    cpu::quantize_kv_row(t, x.data(), bytes.data() + r * rb, hd);
  }
  return upload(dev, keep, t, {nb, kKvBlockTokens, hd}, bytes.data());
}

inline DevCache upload_cache(Device& dev, std::vector<Buffer>& keep, const HostCache& c,
                             DType k_type = DType::kF16, DType v_type = DType::kF16) {
  const int64_t nb = c.n_blocks;
  return {upload_pool(dev, keep, c, k_type, c.k), upload_pool(dev, keep, c, v_type, c.v),
          upload(dev, keep, DType::kI32, {nb, kKvBlockTokens}, c.pos.data()),
          upload(dev, keep, DType::kI32, {c.n_kv_heads, c.max_blocks}, c.table.data()),
          upload(dev, keep, DType::kI32, {c.n_kv_heads}, c.lens.data())};
}

// Which implementation runs: the op (its device's path: Vulkan, or the CPU backend's fast path;
// kOpTiled: never the decode kernel), or on the CPU device directly the scalar reference or the
// fast path with a thread count.
enum class Path { kOp, kOpTiled, kRef, kFast1, kFast3 };

// The tensor-core kernels through each cooperative-matrix extension (NV and KHR builds of the same
// sources, and the cm2 prefill kernel) whatever the op would pick by itself; skipped where the
// device or build lacks one.
inline const CoopmatApi kCoopmatApis[] = {CoopmatApi::kNv, CoopmatApi::kKhr, CoopmatApi::kCm2};
template <class C>
std::string api_case_name(const ::testing::TestParamInfo<std::tuple<C, CoopmatApi>>& info) {
  return std::get<0>(info.param).name + std::string("_") +
         std::string(coopmat_api_name(std::get<1>(info.param)));
}

}  // namespace kvz::test
