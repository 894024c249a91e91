// Gated-MLP activations chosen by a spec constant ACT (shaders/gated_act.comp,
// shaders/matvec_gate_up.comp): 0 SiLU x / (1 + e^-x) | 1 GELU, tanh approximation (HF
// gelu_pytorch_tanh) | 2 GELU, exact erf. Declare `const uint ACT` before including.

// erf by Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7): GLSL has no erf.
float erf_as(float x) {
  float a = abs(x);
  float t = 1.0 / (1.0 + 0.3275911 * a);
  float poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  float r = 1.0 - poly * exp(-a * a);
  return x < 0.0 ? -r : r;
}

float act(float x) {
  if (ACT == 0u) return x / (1.0 + exp(-x));
  if (ACT == 1u) {
    // Clamped: tanh(15) is 1 in fp32, and some drivers' tanh turns inf/inf into NaN beyond that.
    float u = clamp(0.7978845608 * (x + 0.044715 * x * x * x), -15.0, 15.0);
    return 0.5 * x * (1.0 + tanh(u));
  }
  return 0.5 * x * (1.0 + erf_as(x * 0.7071067812));
}
