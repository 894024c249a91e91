# Configure-time probe for a compiler of GL_NV_cooperative_matrix2 (no Debian 12 or cmeel glslang
# knows it): the *_cm2 shader variants (kvz_add_shader(... CM2 ...)) are built only where
# tools/glsl_cm2.py, driving libslang-glslang (tools/fetch_glslang_cm2.sh), compiles and validates
# a small workgroup-scope tensor-load shader.
#   KVZ_GLSLANG_CM2_LIB  the library (default: .tools/glslang-cm2/libslang-glslang-*.so)
# Result: KVZ_COOPMAT_CM2 (ON/OFF) and, with it, KVZ_GLSLANG_CM2_CMD: the command before the
# script's own arguments.

set(KVZ_GLSLANG_CM2_LIB "" CACHE FILEPATH "libslang-glslang with GL_NV_cooperative_matrix2")

function(kvz_probe_glslang_cm2)
  set(KVZ_COOPMAT_CM2 OFF PARENT_SCOPE)
  set(lib "${KVZ_GLSLANG_CM2_LIB}")
  if(NOT lib)
    file(GLOB libs "${PROJECT_SOURCE_DIR}/.tools/glslang-cm2/libslang-glslang-*.so")
    list(SORT libs)
    list(POP_BACK libs lib)
  endif()
  if(NOT lib OR NOT EXISTS "${lib}")
    message(STATUS "NV cooperative matrix 2: no libslang-glslang (tools/fetch_glslang_cm2.sh or "
                   "-DKVZ_GLSLANG_CM2_LIB=...): cm2 shaders not built")
    return()
  endif()
  find_package(Python3 COMPONENTS Interpreter QUIET)
  if(NOT Python3_Interpreter_FOUND)
    message(STATUS "NV cooperative matrix 2: no python3 to drive ${lib}: cm2 shaders not built")
    return()
  endif()
  set(cmd "${Python3_EXECUTABLE}" "${PROJECT_SOURCE_DIR}/tools/glsl_cm2.py" --lib "${lib}")
  set(dir "${CMAKE_BINARY_DIR}/glslang_cm2_probe")
  file(MAKE_DIRECTORY "${dir}")
  file(WRITE "${dir}/probe.comp" "#version 450
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_NV_cooperative_matrix2 : require
layout(local_size_x = 128) in;
layout(std430, binding = 0) readonly buffer W { float16_t w[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
void main() {
  tensorLayoutNV<2> t = createTensorLayoutNV(2);
  t = setTensorLayoutDimensionNV(t, 64, 64);
  tensorViewNV<2, false, 1, 0> tr = createTensorViewNV(2, false, 1, 0);
  coopmat<float16_t, gl_ScopeWorkgroup, 64, 16, gl_MatrixUseA> a;
  coopmat<float16_t, gl_ScopeWorkgroup, 16, 64, gl_MatrixUseB> b;
  coopmat<float, gl_ScopeWorkgroup, 64, 64, gl_MatrixUseAccumulator> c =
      coopmat<float, gl_ScopeWorkgroup, 64, 64, gl_MatrixUseAccumulator>(0.0);
  coopMatLoadTensorNV(a, x, 0, sliceTensorLayoutNV(t, 0, 64, 0, 16));
  coopMatLoadTensorNV(b, w, 0, sliceTensorLayoutNV(t, 0, 64, 0, 16), tr);
  c = coopMatMulAdd(a, b, c);
  coopMatStoreTensorNV(c, y, 0, sliceTensorLayoutNV(t, 0, 64, 0, 64));
}
")
  execute_process(COMMAND ${cmd} -o "${dir}/probe.spv" "${dir}/probe.comp"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    string(REGEX MATCH "[^\n]*" first "${out}")
    message(STATUS "NV cooperative matrix 2: ${lib} cannot compile the probe (${first}): cm2 "
                   "shaders not built")
    return()
  endif()
  message(STATUS "NV cooperative matrix 2: building cm2 shaders with ${lib}")
  set(KVZ_COOPMAT_CM2 ON PARENT_SCOPE)
  set(KVZ_GLSLANG_CM2_CMD ${cmd} PARENT_SCOPE)
endfunction()

kvz_probe_glslang_cm2()
