// libFuzzer target for the kvzip/ file formats (tests/fuzz/): the first byte picks a cache file
// (KVZCACHE), KVzap weights or a head-score file, and (bit 2) whether the trailing FNV-1a checksum
// of a binary format is recomputed, so that mutations reach the checks behind it; the rest is the
// file. Any input must load or throw kvz::Error.
#include <cstring>
#include <vector>

#include "kvzip/cache_file.h"
#include "kvzip/checksum.h"
#include "kvzip/kvzap.h"
#include "kvzip/scores.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::vector<uint8_t> file(data + 1, data + size);
  if ((data[0] & 4) && file.size() >= 8) {
    const uint64_t sum = kvz::fnv1a64(file.data(), file.size() - 8);
    std::memcpy(file.data() + file.size() - 8, &sum, 8);
  }
  const std::string p = kvz::fuzz::put("f", file.data(), file.size());
  try {
    switch (data[0] & 3) {
      case 0:
        kvz::load_cache_file(p, kvz::fuzz::cpu(), "");
        break;
      case 1:
        kvz::KvzapModel::load(p);
        break;
      default:
        kvz::HeadScores::load(p);
    }
  } catch (const kvz::Error&) {
  }
  return 0;
}
