// DType table (runtime/). Block sizes follow ggml's type traits.
#include "runtime/dtype.h"

#include <array>
#include <cctype>
#include <string>

#include "runtime/error.h"

namespace kvz {
namespace {

constexpr std::array<DTypeInfo, static_cast<size_t>(DType::kSentinel)> kInfo = {{
    {"f32", 1, 4},
    {"f16", 1, 2},
    {"bf16", 1, 2},
    {"i32", 1, 4},
    {"q8_0", 32, 34},
    {"q4_0", 32, 18},
    {"q4_1", 32, 20},
    {"q5_0", 32, 22},
    {"q5_1", 32, 24},
    {"q4_k", 256, 144},
    {"q5_k", 256, 176},
    {"q6_k", 256, 210},
}};

}  // namespace

const DTypeInfo& dtype_info(DType t) {
  KVZ_CHECK(t < DType::kSentinel, "invalid dtype {}", static_cast<int>(t));
  return kInfo[static_cast<size_t>(t)];
}

size_t row_bytes(DType t, int64_t n_elems) {
  const DTypeInfo& info = dtype_info(t);
  KVZ_CHECK(n_elems % info.block_elems == 0, "{} elements is not a multiple of the {} block ({})",
            n_elems, info.name, info.block_elems);
  return static_cast<size_t>(n_elems / info.block_elems) * static_cast<size_t>(info.block_bytes);
}

DType dtype_from_name(std::string_view name) {
  std::string lower(name);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (size_t i = 0; i < kInfo.size(); ++i)
    if (kInfo[i].name == lower) return static_cast<DType>(i);
  return DType::kSentinel;
}

}  // namespace kvz
