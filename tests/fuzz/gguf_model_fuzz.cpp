// libFuzzer target for the whole GGUF model load (tests/fuzz/): header, metadata, config,
// tokenizer, tensor shapes, weights upload to the CPU backend and the identity hash. Any input
// must load or throw kvz::Error; a crash, sanitizer report, abort or other exception is a bug.
#include "model/model.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string p = kvz::fuzz::put("m.gguf", data, size);
  try {
    auto m = kvz::Model::load(kvz::fuzz::cpu(), p);
    (void)m->tokenizer().encode("Hello, world", true, true);
  } catch (const kvz::Error&) {
  }
  return 0;
}
