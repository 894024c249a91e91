// libFuzzer target for SafetensorsReader (tests/fuzz/): any input must parse or throw
// kvz::Error; a crash, sanitizer report or other exception is a bug.
#include <cstddef>
#include <cstdint>

#include "model/safetensors_reader.h"
#include "runtime/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const kvz::SafetensorsReader r({data, size}, "fuzz.safetensors");
    unsigned sum = 0;
    for (const kvz::SafetensorsTensor& t : r.tensors())
      for (size_t i = 0; i < t.n_bytes; ++i) sum += t.data[i];
    volatile unsigned sink = sum;
    (void)sink;
  } catch (const kvz::Error&) {
  }
  return 0;
}
