// One cooperative-matrix vocabulary for the *_coopmat kernels, so that each source compiles for
// VK_NV_cooperative_matrix (glslc, the default) and, with COOPMAT_KHR defined, for
// VK_KHR_cooperative_matrix (glslangValidator 13+, cmake/glslang_khr.cmake). Every matrix is one
// 16x16 fragment of a subgroup: CM_A / CM_B f16 operands, CM_ACC the f32 accumulator.
// Loads and stores take offset and stride in elements of `buf`'s array type in both extensions
// (uvec4 rows of 8 halves for the staged f16 tiles, floats for f32 fragments).
//   CM_LOAD_ROW(m, buf, off, stride)   rows of m start at buf[off + row * stride]
//   CM_LOAD_COL(m, buf, off, stride)   columns of m start at buf[off + col * stride]
//   CM_STORE_ROW(m, buf, off, stride)  the row-major store
//   CM_MUL_ADD(a, b, c)                a * b + c
// The NV extension has no matrix use; KHR has one per type (A, B, accumulator), which the names
// above carry.
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require

#if defined(COOPMAT_KHR)
#extension GL_KHR_cooperative_matrix : require
#define CM_A coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA>
#define CM_B coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB>
#define CM_ACC coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>
#define CM_LOAD_ROW(m, buf, off, stride) \
  coopMatLoad(m, buf, off, stride, gl_CooperativeMatrixLayoutRowMajor)
#define CM_LOAD_COL(m, buf, off, stride) \
  coopMatLoad(m, buf, off, stride, gl_CooperativeMatrixLayoutColumnMajor)
#define CM_STORE_ROW(m, buf, off, stride) \
  coopMatStore(m, buf, off, stride, gl_CooperativeMatrixLayoutRowMajor)
#define CM_MUL_ADD(a, b, c) coopMatMulAdd(a, b, c)
#else
#extension GL_NV_cooperative_matrix : require
#define CM_A fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>
#define CM_B fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>
#define CM_ACC fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>
#define CM_LOAD_ROW(m, buf, off, stride) coopMatLoadNV(m, buf, off, stride, false)
#define CM_LOAD_COL(m, buf, off, stride) coopMatLoadNV(m, buf, off, stride, true)
#define CM_STORE_ROW(m, buf, off, stride) coopMatStoreNV(m, buf, off, stride, false)
#define CM_MUL_ADD(a, b, c) coopMatMulAddNV(a, b, c)
#endif
