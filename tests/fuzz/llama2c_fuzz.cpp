// libFuzzer target for llama2.c files (tests/fuzz/): the first byte picks the checkpoint (its
// header sizes are where the overflow was) or the tokenizer (tok512.bin layout); the rest is the
// file. Any input must load or throw kvz::Error.
#include <filesystem>

#include "model/model.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool checkpoint = data[0] & 1;
  try {
    if (checkpoint) {
      static const bool tok = [] {  // a valid tokenizer beside the checkpoint
        std::filesystem::copy_file(KVZ_FUZZ_DATA "/stories260K/tok512.bin",
                                   kvz::fuzz::scratch() + "/tok512.bin",
                                   std::filesystem::copy_options::overwrite_existing);
        return true;
      }();
      (void)tok;
      kvz::Model::load(kvz::fuzz::cpu(), kvz::fuzz::put("m.bin", data + 1, size - 1));
    } else {
      const kvz::Tokenizer t =
          kvz::Tokenizer::from_llama2c(kvz::fuzz::put("t.tok", data + 1, size - 1));
      (void)t.decode(t.encode("Once upon a time", true, false));
    }
  } catch (const kvz::Error&) {
  }
  return 0;
}
