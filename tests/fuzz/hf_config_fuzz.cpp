// libFuzzer target for config.json + tokenizer.json (tests/fuzz/): the input is split at the first
// NUL byte into the two files of a Hugging Face model folder; the load must parse both or throw
// kvz::Error (the folder has no weights, so a good pair ends in a missing-safetensors error).
#include <algorithm>

#include "model/model.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const uint8_t* split = std::find(data, data + size, uint8_t{0});
  const size_t n_config = static_cast<size_t>(split - data);
  kvz::fuzz::put("config.json", data, n_config);
  const size_t rest = n_config < size ? size - n_config - 1 : 0;
  kvz::fuzz::put("tokenizer.json", data + size - rest, rest);
  try {
    kvz::Model::load(kvz::fuzz::cpu(), kvz::fuzz::scratch());
  } catch (const kvz::Error&) {
  }
  return 0;
}
