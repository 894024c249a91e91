// runtime/tuning.h: vendor defaults, the KVZ_* overrides (parsed once, bad values rejected with
// the variable's name) and the values a device opens with (tests/runtime).
#include "runtime/tuning.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "runtime/device.h"
#include "runtime/error.h"

namespace kvz {
namespace {

// Sets `name` to `value` while alive, then restores the previous state.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) saved_ = old, had_ = true;
    ::setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (had_)
      ::setenv(name_, saved_.c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::string saved_;
  bool had_ = false;
};

DeviceCaps caps_of(uint32_t vendor, uint32_t units) {
  DeviceCaps c;
  c.vendor_id = vendor, c.compute_units = units;
  return c;
}

TEST(Tuning, VendorRuleAppliesOnlyToItsVendor) {
  const Tuning nv = default_tuning(caps_of(0x10DE, 132));
  EXPECT_EQ(nv.occupancy_units, 132u);
  EXPECT_EQ(nv.decode.workgroups_per_unit, 3u);
  EXPECT_EQ(nv.matmul.coopmat_plain_per_unit, 2u);
  for (const DeviceCaps& c : {caps_of(0x1002, 96), caps_of(0x8086, 0), caps_of(0x10DE, 0)}) {
    const Tuning t = default_tuning(c);
    EXPECT_EQ(t.occupancy_units, 0u) << c.vendor_id;
    EXPECT_EQ(t.decode.workgroups_per_unit, 0u) << c.vendor_id;
    EXPECT_EQ(t.matmul.coopmat_plain_per_unit, 0u) << c.vendor_id;
  }
}

TEST(Tuning, EnvironmentOverridesDefaults) {
  const ScopedEnv splits("KVZ_DECODE_SPLITS", "256");
  const ScopedEnv tile("KVZ_MATMUL_TILE", "2,4,4,2,1,64");
  const ScopedEnv api("KVZ_COOPMAT", "khr");
  const ScopedEnv prefetch("KVZ_DECODE_PREFETCH", "0");
  const Tuning t = resolve_tuning(caps_of(0x10DE, 132), read_tuning_env());
  EXPECT_EQ(t.decode.max_splits, 256u);
  EXPECT_EQ(t.matmul.coopmat_tile, (std::array<uint32_t, 6>{2, 4, 4, 2, 1, 64}));
  EXPECT_EQ(t.coopmat, CoopmatApi::kKhr);
  EXPECT_EQ(t.decode.prefetch, false);
  EXPECT_EQ(t.decode.workgroups_per_unit, 3u);  // the vendor rule stays
  // KVZ_NO_COOPMAT wins over KVZ_COOPMAT.
  const ScopedEnv no("KVZ_NO_COOPMAT", "1");
  EXPECT_EQ(resolve_tuning({}, read_tuning_env()).coopmat, CoopmatApi::kOff);
}

TEST(Tuning, BadValuesAreErrorsNamingTheVariable) {
  const std::pair<const char*, const char*> cases[] = {
      {"KVZ_DECODE_SPLITS", "0"},
      {"KVZ_DECODE_SPLITS", "513"},
      {"KVZ_DECODE_SPLITS", "x"},
      {"KVZ_DECODE_MIN_ROWS", "100"},
      {"KVZ_DECODE_WG", "96"},
      {"KVZ_ATTN_CM2_BR", "96"},
      {"KVZ_ATTN_NSG", "2"},
      {"KVZ_MATMUL_TILE", "2,4,4,2"},
      {"KVZ_MATMUL_TILE", "2,,4,2,1,32"},
      {"KVZ_MATMUL_TILE", "2,4,4,2,3,32"},
      {"KVZ_COOPMAT", "tensor"},
      {"KVZ_PROFILE", "yes"},
      {"KVZ_MATVEC_VARIANT", "-1"},
      {"KVZ_MAX_STORAGE_BUFFER_RANGE", "0"},
      {"KVZ_ATTN_SKIP", "1"},  // renamed: KVZ_BENCH_ATTN_SKIP
  };
  for (const auto& [name, value] : cases) {
    const ScopedEnv e(name, value);
    try {
      (void)read_tuning_env();
      ADD_FAILURE() << name << "=" << value << " was accepted";
    } catch (const InputError& err) {
      EXPECT_NE(std::string(err.what()).find(name), std::string::npos) << err.what();
    }
  }
}

TEST(Tuning, EmptyValueMeansUnset) {
  const ScopedEnv e("KVZ_DECODE_SPLITS", "");
  EXPECT_EQ(resolve_tuning({}, read_tuning_env()).decode.max_splits, Tuning{}.decode.max_splits);
}

TEST(Tuning, DescribeListsEveryVariableOnce) {
  const std::vector<std::string> lines = describe_tuning(Tuning{});
  for (const char* name : {"KVZ_DECODE_SPLITS", "KVZ_MATMUL_TILE", "KVZ_COOPMAT",
                           "KVZ_BENCH_ATTN_SKIP", "KVZ_NO_DECODE_AHEAD", "KVZ_VALIDATION"}) {
    int n = 0;
    for (const std::string& l : lines) n += l.rfind(std::string(name) + "=", 0) == 0;
    EXPECT_EQ(n, 1) << name;
  }
}

// open_device applies the environment to the device it opens; a bad value stops it.
TEST(Tuning, OpenDeviceHoldsTheTuning) {
  {
    const ScopedEnv e("KVZ_SAMPLE_BISECT", "1");
    EXPECT_FALSE(open_device("cpu")->tuning().sampling.radix);
  }
  EXPECT_TRUE(open_device("cpu")->tuning().sampling.radix);
  const ScopedEnv bad("KVZ_DECODE_KPI", "17");
  EXPECT_THROW(open_device("cpu"), InputError);
}

}  // namespace
}  // namespace kvz
