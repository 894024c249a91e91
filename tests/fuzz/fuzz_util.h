// Shared by the library fuzzers (tests/fuzz/): the input written to a private scratch file (the
// loaders take paths, as users give them), and one CPU device for every run.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "runtime/device.h"

namespace kvz::fuzz {

// A scratch folder of this process, created once and removed at exit (never destroyed itself,
// so that the exit handler can still read its name).
inline const std::string& scratch() {
  static const std::string* dir = [] {
    std::string t = (std::filesystem::temp_directory_path() / "kvz_fuzz_XXXXXX").string();
    if (!::mkdtemp(t.data())) std::abort();
    return new std::string(t);
  }();
  static const bool cleanup = [] {
    return std::atexit([] {
             std::error_code ec;
             std::filesystem::remove_all(*dir, ec);
           }) == 0;
  }();
  (void)cleanup;
  return *dir;
}

inline std::string put(const std::string& name, const uint8_t* data, size_t size) {
  const std::string p = scratch() + "/" + name;
  std::ofstream(p, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return p;
}

inline Device& cpu() {
  static std::unique_ptr<Device> dev = open_device("cpu");
  return *dev;
}

}  // namespace kvz::fuzz
