// libFuzzer target for GgufReader (tests/fuzz/): any input must parse or throw kvz::Error; a
// crash, sanitizer report or other exception is a bug. Touches every tensor byte it accepts.
#include <cstddef>
#include <cstdint>

#include "model/gguf_reader.h"
#include "runtime/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const kvz::GgufReader r({data, size}, "fuzz.gguf");
    unsigned sum = 0;
    for (const kvz::GgufTensor& t : r.tensors())
      for (size_t i = 0; i < t.n_bytes; ++i) sum += t.data[i];
    for (const std::string& key : r.keys()) sum += static_cast<unsigned>(r.find(key)->array_size());
    volatile unsigned sink = sum;
    (void)sink;
  } catch (const kvz::Error&) {
  }
  return 0;
}
