// What shaders/sample.comp and shaders/sample_radix.comp share: bindings, push constants, the
// row's start (its base and maximum logit) and its end (the lowest index of the drawn weight).
// Each kernel defines reduce(v, op) (op 1 = max, 2 = min; every thread gets the result) and
// weight_bits(j) (the bits of w_j = exp((l_j - max) / T)).
layout(std430, binding = 0) readonly buffer L { float logits[]; };
layout(std430, binding = 1) readonly buffer U { float uniform_in[]; };
layout(std430, binding = 2) writeonly buffer O { int out_idx[]; };
layout(push_constant) uniform Push {
  uint n_rows;
  uint n_vocab;
  uint rows_per_y;
  uint top_k;
  float inv_temperature;
  float top_p;
} p;

uint base;       // the row's first logit
float row_max;   // the row's largest logit

float reduce(float v, uint op);
uint weight_bits(uint j);

// Sets base and row_max for `row`.
void start_row(uint row) {
  base = row * p.n_vocab;
  float m = -1.0 / 0.0;
  for (uint j = gl_LocalInvocationID.x; j < p.n_vocab; j += gl_WorkGroupSize.x)
    m = max(m, logits[base + j]);
  row_max = reduce(m, 1u);
}

// Writes the lowest index whose weight bits are exactly t (indices < 2^24 are exact floats).
void write_first_index(uint row, uint t) {
  float first = float(p.n_vocab);
  for (uint j = gl_LocalInvocationID.x; j < p.n_vocab; j += gl_WorkGroupSize.x)
    if (weight_bits(j) == t) first = min(first, float(j));
  first = reduce(first, 2u);
  if (gl_LocalInvocationID.x == 0u) out_idx[row] = int(min(first, float(p.n_vocab - 1u)));
}
