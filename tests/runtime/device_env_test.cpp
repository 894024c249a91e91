// KVZIP_DEVICE set but empty or blank means unset (tests/runtime): it picks the default device
// instead of matching a device name containing a space or failing.
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "runtime/device.h"

namespace kvz {
namespace {

TEST(DeviceEnv, EmptyOrBlankMeansUnset) {
  const char* old = std::getenv("KVZIP_DEVICE");
  const std::optional<std::string> saved = old ? std::optional<std::string>(old) : std::nullopt;
  ::unsetenv("KVZIP_DEVICE");
  const std::string want = open_device()->caps().name;
  for (const char* v : {"", " ", " \t"}) {
    ::setenv("KVZIP_DEVICE", v, 1);
    std::string got;
    EXPECT_NO_THROW(got = open_device()->caps().name) << "'" << v << "'";
    EXPECT_EQ(got, want) << "'" << v << "'";
  }
  if (saved)
    ::setenv("KVZIP_DEVICE", saved->c_str(), 1);
  else
    ::unsetenv("KVZIP_DEVICE");
}

}  // namespace
}  // namespace kvz
