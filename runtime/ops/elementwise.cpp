// Elementwise ops: validation, variant choice and dispatch (runtime/ops).
#include "runtime/ops/elementwise.h"

namespace kvz {

void add(Recorder& rec, const AddArgs& a) {
  KVZ_CHECK(a.a.dtype() == DType::kF32 && a.b.dtype() == DType::kF32 && a.y.dtype() == DType::kF32,
            "add: f32 only");
  KVZ_CHECK(a.a.numel() == a.b.numel() && a.a.numel() == a.y.numel(), "add: {} + {} -> {}",
            a.a.shape_str(), a.b.shape_str(), a.y.shape_str());
  if (rec.is_cpu()) return cpu::add_ref(a);
  constexpr uint32_t kWg = 256;
  struct Push {
    uint32_t n_elems;
  } push{static_cast<uint32_t>(a.a.numel())};
  rec.dispatch({ShaderId::kAdd, {kWg}}, {a.a, a.b, a.y}, push, {div_up(push.n_elems, kWg)});
}

namespace cpu {
void add_ref(const AddArgs& a) {
  const float* x = a.a.host<float>();
  const float* y = a.b.host<float>();
  float* out = a.y.host<float>();
  for (int64_t i = 0; i < a.a.numel(); ++i) out[i] = x[i] + y[i];
}
}  // namespace cpu

}  // namespace kvz
