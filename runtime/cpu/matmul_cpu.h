// CPU backend matmul paths (runtime/cpu): the scalar reference is declared in runtime/args/matmul.h
// (cpu::matmul_ref); this is the fast fallback used to run real models without a GPU.
#pragma once

#include "runtime/args/matmul.h"

namespace kvz::cpu {

// A default-constructed Tensor (0-d) or a zero-length one means "no bias".
inline bool has_bias(const MatmulArgs& a) { return a.bias.defined() && a.bias.numel() > 0; }

// Same contract as matmul_ref, through the SIMD kernels of runtime/cpu/qdot.h on n_threads
// threads (0 = default_threads()). Block-quantised w with cpu_int8_activations(): x is rounded to
// 8 bits per 32 values (the result is matmul_ref of that x up to fp32 summation order); otherwise
// w is dequantised to f32 rows and the result differs from matmul_ref by fp32 summation order.
void matmul_fast(const MatmulArgs& args, int n_threads = 0);

}  // namespace kvz::cpu
