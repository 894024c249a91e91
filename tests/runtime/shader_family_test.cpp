// The generated (family, weight type) -> shader table (cmake/embed_spirv.cmake) against the DType
// enum (runtime/dtype.h): every entry is the variant named after its type, so the table and the
// enum list the types in the same order (tests/runtime).
#include <gtest/gtest.h>

#include <string>

#include "kvz_shaders.h"
#include "runtime/dtype.h"

namespace kvz {
namespace {

TEST(ShaderFamily, EntriesAreNamedAfterTheirType) {
  ASSERT_EQ(kShaderFamilyTypes, static_cast<uint32_t>(DType::kSentinel));
  int n = 0;
  for (uint32_t f = 0; f < static_cast<uint32_t>(ShaderFamily::kCount); ++f)
    for (uint32_t t = 0; t < kShaderFamilyTypes; ++t) {
      const ShaderId id = shader_for(static_cast<ShaderFamily>(f), t);
      if (id == ShaderId::kCount) continue;
      ++n;
      const std::string name(shader_name(id)), type(dtype_name(static_cast<DType>(t)));
      EXPECT_NE(name.find("_" + type), std::string::npos) << name << " at type " << type;
    }
  EXPECT_GT(n, 40);
}

TEST(ShaderFamily, EveryWeightTypeHasAMatmulMatvecAndEmbedding) {
  for (uint32_t t = 0; t < kShaderFamilyTypes; ++t) {
    if (static_cast<DType>(t) == DType::kI32) continue;
    for (ShaderFamily f : {ShaderFamily::kMatmul, ShaderFamily::kMatvec,
                           ShaderFamily::kMatvecSubgroup, ShaderFamily::kEmbedding})
      EXPECT_NE(shader_for(f, t), ShaderId::kCount)
          << "family " << static_cast<uint32_t>(f) << " type " << t;
  }
  EXPECT_EQ(shader_for(ShaderFamily::kMatmul, static_cast<uint32_t>(DType::kI32)),
            ShaderId::kCount);
  EXPECT_EQ(shader_for(ShaderFamily::kMatmulCoopmat, static_cast<uint32_t>(DType::kF32)),
            ShaderId::kCount);
}

}  // namespace
}  // namespace kvz
