// The environment switches of runtime/tuning.h (tests/runtime).
#include "runtime/tuning.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace kvz {
namespace {

constexpr const char* kVar = "KVZ_TUNING_TEST_VALUE";

TEST(Tuning, EnvPickTakesOnlyAllowedValues) {
  ::unsetenv(kVar);
  EXPECT_EQ(env_pick(kVar, {64, 128}, 7), 7u);  // unset
  ::setenv(kVar, "128", 1);
  EXPECT_EQ(env_pick(kVar, {64, 128}, 7), 128u);
  ::setenv(kVar, "0", 1);
  EXPECT_EQ(env_pick(kVar, {0, 1}, 1), 0u);  // 0 is a value, not "unset"
  EXPECT_EQ(env_pick(kVar, {64, 128}, 7), 7u);
  for (const char* bad : {"96", "64,128", "x", "", "-64"}) {
    ::setenv(kVar, bad, 1);
    EXPECT_EQ(env_pick(kVar, {64, 128}, 7), 7u) << bad;
  }
  ::unsetenv(kVar);
}

TEST(Tuning, EnvU32ListParsesCommaSeparatedValues) {
  ::setenv(kVar, "2,4,4,2", 1);
  EXPECT_EQ(env_u32_list(kVar), (std::vector<uint32_t>{2, 4, 4, 2}));
  EXPECT_EQ(env_u32(kVar), 0u);  // not a single value
  ::setenv(kVar, "2,,4", 1);
  EXPECT_TRUE(env_u32_list(kVar).empty());
  ::unsetenv(kVar);
}

}  // namespace
}  // namespace kvz
