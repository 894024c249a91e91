# Configure-time probe for a compiler of GL_KHR_cooperative_matrix (Debian 12's glslc and glslang 12
# predate it): the KHR variants of the *_coopmat shaders (kvz_add_shader(... KHR ...)) are built
# only where it compiles and validates a small KHR cooperative-matrix shader.
#   KVZ_GLSLANG_KHR       glslangValidator to use (default: tools/fetch_glslang_khr.sh's copy in
#                         .tools/glslang-khr, else a glslangValidator on PATH that passes the test)
#   KVZ_SPIRV_VAL_KHR     spirv-val that knows SPV_KHR_cooperative_matrix (default: next to it)
#   KVZ_SPIRV_OPT_KHR     spirv-opt run with -O on the KHR modules (default: next to it; optional,
#                         glslc -O optimises the other modules the same way; "none": skip it)
# Result: KVZ_COOPMAT_KHR (ON/OFF) and, with it, KVZ_GLSLANG_KHR_ENV: the `cmake -E env` prefix
# that finds the wheel's shared libraries (its programs carry no RPATH).

set(KVZ_GLSLANG_KHR "" CACHE FILEPATH "glslangValidator that compiles GL_KHR_cooperative_matrix")
set(KVZ_SPIRV_VAL_KHR "" CACHE FILEPATH "spirv-val that validates SPV_KHR_cooperative_matrix")
set(KVZ_SPIRV_OPT_KHR "" CACHE FILEPATH "spirv-opt for the KHR cooperative-matrix modules")

function(kvz_probe_glslang_khr)
  set(glslang "${KVZ_GLSLANG_KHR}")
  if(NOT glslang)
    set(local "${PROJECT_SOURCE_DIR}/.tools/glslang-khr/bin/glslangValidator")
    if(EXISTS "${local}")
      set(glslang "${local}")
    else()
      find_program(KVZ_GLSLANG_ON_PATH glslangValidator)
      set(glslang "${KVZ_GLSLANG_ON_PATH}")
    endif()
  endif()
  set(KVZ_COOPMAT_KHR OFF PARENT_SCOPE)
  if(NOT glslang OR NOT EXISTS "${glslang}")
    message(STATUS "KHR cooperative matrix: no glslangValidator found (tools/fetch_glslang_khr.sh "
                   "or -DKVZ_GLSLANG_KHR=...): KHR coopmat shaders not built")
    return()
  endif()
  get_filename_component(bin "${glslang}" DIRECTORY)
  get_filename_component(prefix "${bin}" DIRECTORY)
  set(ld "${prefix}/lib")
  if(DEFINED ENV{LD_LIBRARY_PATH} AND NOT "$ENV{LD_LIBRARY_PATH}" STREQUAL "")
    string(APPEND ld ":$ENV{LD_LIBRARY_PATH}")
  endif()
  set(env ${CMAKE_COMMAND} -E env "LD_LIBRARY_PATH=${ld}")
  set(val "${KVZ_SPIRV_VAL_KHR}")
  if(NOT val)
    set(val "${bin}/spirv-val")
    if(NOT EXISTS "${val}")
      set(val "${KVZ_SPIRV_VAL}")
    endif()
  endif()
  set(opt "${KVZ_SPIRV_OPT_KHR}")
  if(opt STREQUAL "none")
    set(opt "")
  elseif(NOT opt AND EXISTS "${bin}/spirv-opt")
    set(opt "${bin}/spirv-opt")
  endif()

  set(dir "${CMAKE_BINARY_DIR}/glslang_khr_probe")
  file(MAKE_DIRECTORY "${dir}")
  file(WRITE "${dir}/probe.comp" "#version 450
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
layout(local_size_x = 32) in;
layout(std430, binding = 0) readonly buffer A { uvec4 a[]; };
layout(std430, binding = 1) writeonly buffer C { float c[]; };
shared uvec4 s[64];
void main() {
  s[gl_LocalInvocationID.x] = a[gl_LocalInvocationID.x];
  barrier();
  coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA> x;
  coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB> y;
  coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator> z =
      coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>(0.0);
  coopMatLoad(x, s, 0, 2, gl_CooperativeMatrixLayoutRowMajor);
  coopMatLoad(y, s, 0, 2, gl_CooperativeMatrixLayoutColumnMajor);
  z = coopMatMulAdd(x, y, z);
  coopMatStore(z, c, 0, 16, gl_CooperativeMatrixLayoutRowMajor);
}
")
  execute_process(
    COMMAND ${env} "${glslang}" -V --target-env vulkan1.2 -S comp -o "${dir}/probe.spv"
            "${dir}/probe.comp"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    string(REGEX MATCH "ERROR: [^\n]*" first "${out}")
    message(STATUS "KHR cooperative matrix: ${glslang} cannot compile GL_KHR_cooperative_matrix "
                   "(${first}): KHR coopmat shaders not built")
    return()
  endif()
  execute_process(COMMAND ${env} "${val}" --target-env vulkan1.2 "${dir}/probe.spv"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(STATUS "KHR cooperative matrix: ${val} rejects the probe (${out}): KHR coopmat "
                   "shaders not built (set KVZ_SPIRV_VAL_KHR to a spirv-val of SPIRV-Tools 2023.4+)")
    return()
  endif()
  if(opt)
    execute_process(COMMAND ${env} "${opt}" -O "${dir}/probe.spv" -o "${dir}/probe_opt.spv"
                    RESULT_VARIABLE rc_opt OUTPUT_QUIET ERROR_QUIET)
    if(rc_opt EQUAL 0)
      execute_process(COMMAND ${env} "${val}" --target-env vulkan1.2 "${dir}/probe_opt.spv"
                      RESULT_VARIABLE rc_opt OUTPUT_QUIET ERROR_QUIET)
    endif()
    if(NOT rc_opt EQUAL 0)
      set(opt "")
    endif()
  endif()
  execute_process(COMMAND ${env} "${glslang}" --version OUTPUT_VARIABLE ver ERROR_QUIET)
  string(REGEX MATCH "Glslang Version: [^\n]*" ver "${ver}")
  set(opt_msg "no spirv-opt")
  if(opt)
    set(opt_msg "spirv-opt -O")
  endif()
  message(STATUS "KHR cooperative matrix: building KHR coopmat shaders with ${glslang} (${ver}, "
                 "${opt_msg})")
  set(KVZ_COOPMAT_KHR ON PARENT_SCOPE)
  set(KVZ_GLSLANG_KHR_ENV ${env} PARENT_SCOPE)
  set(KVZ_GLSLANG_KHR_BIN "${glslang}" PARENT_SCOPE)
  set(KVZ_SPIRV_VAL_KHR_BIN "${val}" PARENT_SCOPE)
  set(KVZ_SPIRV_OPT_KHR_BIN "${opt}" PARENT_SCOPE)
endfunction()

kvz_probe_glslang_khr()
