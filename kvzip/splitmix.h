// splitmix64: a small seeded generator giving the same stream on every standard library (std
// distributions are not portable), for reproducible shuffles, synthetic data and initialisations
// (kvzip/; tools and tests use it too).
#pragma once

#include <cstdint>

namespace kvz {

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return next() % n; }
  // [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1p-53; }

 private:
  uint64_t s_;
};

}  // namespace kvz
