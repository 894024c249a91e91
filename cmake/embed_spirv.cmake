# Compiles GLSL compute shaders to SPIR-V at build time (glslc with depfiles, then spirv-val) and
# embeds every module into the kvz_shaders library with a generated registry:
#   enum class kvz::ShaderId { kRmsNormF32, ... };  kvz::spirv(ShaderId) -> span<const uint32_t>.
# Usage (one line per kernel, in shaders/CMakeLists.txt):
#   kvz_add_shader(rms_norm)                                   -> ShaderId::kRmsNorm
#   kvz_add_shader(matmul VARIANTS f32 "W_F32" q4_0 "W_Q4_0") -> kMatmulF32, kMatmulQ40
# Each variant's string is a space-separated list of preprocessor definitions (NAME or NAME=VALUE).
# KHR (first argument) marks GL_KHR_cooperative_matrix variants: compiled with COOPMAT_KHR defined
# (and #include enabled, which glslc does by itself) by the glslangValidator that cmake/glslang_khr.cmake found (validated by its spirv-val, optimised
# by its spirv-opt); where none was found their ShaderIds still exist, with empty SPIR-V
# (kvz::spirv(id).empty(): the runtime then never picks them).
# CM2 likewise marks GL_NV_cooperative_matrix2 variants: compiled with COOPMAT_CM2 defined by
# tools/glsl_cm2.py where cmake/glslang_cm2.cmake found a compiler, else empty modules.

set_property(GLOBAL PROPERTY KVZ_SHADER_NAMES "")
set_property(GLOBAL PROPERTY KVZ_SHADER_SPVS "")
set_property(GLOBAL PROPERTY KVZ_SHADER_FAMILIES "")
set_property(GLOBAL PROPERTY KVZ_SHADER_FAMILY_ROWS "")
# Weight types in the order of kvz::DType (runtime/dtype.h; tests/runtime/shader_family_test.cpp
# checks it). A variant named after one of them ("q4_k", "f32_subgroup", "f16_khr") joins the
# family <kernel>[_<rest of the variant name>] at that type's index: kvz::shader_for(family, type).
set(KVZ_WEIGHT_TYPES f32 f16 bf16 i32 q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q5_k q6_k)

function(kvz_shader_enum_name out id)
  string(REPLACE "_" ";" parts "${id}")
  set(name "k")
  foreach(p IN LISTS parts)
    string(SUBSTRING "${p}" 0 1 first)
    string(SUBSTRING "${p}" 1 -1 rest)
    string(TOUPPER "${first}" first)
    string(APPEND name "${first}${rest}")
  endforeach()
  set(${out} "${name}" PARENT_SCOPE)
endfunction()

function(kvz_add_shader name)
  cmake_parse_arguments(ARG "KHR;CM2" "" "VARIANTS" ${ARGN})
  set(src "${CMAKE_CURRENT_SOURCE_DIR}/${name}.comp")
  if(NOT EXISTS "${src}")
    message(FATAL_ERROR "kvz_add_shader: ${src} does not exist")
  endif()
  set(variants ${ARG_VARIANTS})
  if(NOT variants)
    set(variants "-" "")
  endif()
  list(LENGTH variants n)
  math(EXPR last "${n} - 1")
  foreach(i RANGE 0 ${last} 2)
    math(EXPR j "${i} + 1")
    list(GET variants ${i} vname)
    if(j LESS n)
      list(GET variants ${j} vdefs)
    else()
      set(vdefs "")
    endif()
    if(vname STREQUAL "-")
      set(id "${name}")
    else()
      set(id "${name}_${vname}")
    endif()
    set(dflags "")
    separate_arguments(defs UNIX_COMMAND "${vdefs}")
    foreach(d IN LISTS defs)
      list(APPEND dflags "-D${d}")
    endforeach()
    set(spv "${CMAKE_BINARY_DIR}/spv/${id}.spv")
    if((ARG_KHR AND NOT KVZ_COOPMAT_KHR) OR (ARG_CM2 AND NOT KVZ_COOPMAT_CM2))
      set(spv "-")  # not built: an empty module
    elseif(ARG_CM2)
      add_custom_command(
        OUTPUT "${spv}"
        COMMAND ${CMAKE_COMMAND} -E make_directory "${CMAKE_BINARY_DIR}/spv"
        COMMAND ${KVZ_GLSLANG_CM2_CMD} -I${CMAKE_CURRENT_SOURCE_DIR}/include -DCOOPMAT_CM2 ${dflags}
                --depfile "${spv}.d" -o "${spv}" "${src}"
        DEPENDS "${src}" "${PROJECT_SOURCE_DIR}/tools/glsl_cm2.py"
        DEPFILE "${spv}.d"
        COMMENT "glslang (cm2) ${id}"
        VERBATIM)
    elseif(ARG_KHR)
      set(opt_cmd "")
      if(KVZ_SPIRV_OPT_KHR_BIN)
        set(opt_cmd COMMAND ${KVZ_GLSLANG_KHR_ENV} ${KVZ_SPIRV_OPT_KHR_BIN} -O "${spv}" -o "${spv}")
      endif()
      add_custom_command(
        OUTPUT "${spv}"
        COMMAND ${CMAKE_COMMAND} -E make_directory "${CMAKE_BINARY_DIR}/spv"
        COMMAND ${KVZ_GLSLANG_KHR_ENV} ${KVZ_GLSLANG_KHR_BIN} -V --target-env vulkan1.2 -S comp
                --quiet "-P#extension GL_GOOGLE_include_directive : require"
                -I${CMAKE_CURRENT_SOURCE_DIR}/include -DCOOPMAT_KHR ${dflags}
                --depfile "${spv}.d" -o "${spv}" "${src}"
        ${opt_cmd}
        COMMAND ${KVZ_GLSLANG_KHR_ENV} ${KVZ_SPIRV_VAL_KHR_BIN} --target-env vulkan1.2 "${spv}"
        DEPENDS "${src}"
        DEPFILE "${spv}.d"
        COMMENT "glslangValidator (KHR) ${id}"
        VERBATIM)
    else()
      add_custom_command(
        OUTPUT "${spv}"
        COMMAND ${CMAKE_COMMAND} -E make_directory "${CMAKE_BINARY_DIR}/spv"
        COMMAND ${KVZ_GLSLC} --target-env=vulkan1.2 -fshader-stage=compute -O -Werror
                -I${CMAKE_CURRENT_SOURCE_DIR}/include ${dflags} -MD -MF "${spv}.d" -o "${spv}" "${src}"
        COMMAND ${KVZ_SPIRV_VAL} --target-env vulkan1.2 "${spv}"
        DEPENDS "${src}"
        DEPFILE "${spv}.d"
        COMMENT "glslc ${id}"
        VERBATIM)
    endif()
    set_property(GLOBAL APPEND PROPERTY KVZ_SHADER_NAMES "${id}")
    set_property(GLOBAL APPEND PROPERTY KVZ_SHADER_SPVS "${spv}")
    set(ti 0)
    foreach(t IN LISTS KVZ_WEIGHT_TYPES)
      set(family "")
      if(vname STREQUAL "${t}")
        set(family "${name}")
      elseif(vname MATCHES "^${t}_(.+)$")
        set(family "${name}_${CMAKE_MATCH_1}")
      endif()
      if(family)
        get_property(fams GLOBAL PROPERTY KVZ_SHADER_FAMILIES)
        if(NOT family IN_LIST fams)
          set_property(GLOBAL APPEND PROPERTY KVZ_SHADER_FAMILIES "${family}")
        endif()
        set_property(GLOBAL APPEND PROPERTY KVZ_SHADER_FAMILY_ROWS "${family}:${ti}:${id}")
        break()
      endif()
      math(EXPR ti "${ti} + 1")
    endforeach()
  endforeach()
endfunction()

# Call once after every kvz_add_shader line: writes the registry header at configure time and the
# embedded data at build time, and defines the kvz_shaders library.
function(kvz_embed_shaders)
  get_property(names GLOBAL PROPERTY KVZ_SHADER_NAMES)
  get_property(spvs GLOBAL PROPERTY KVZ_SHADER_SPVS)
  set(gen "${CMAKE_BINARY_DIR}/generated")
  set(enums "")
  set(strs "")
  foreach(id IN LISTS names)
    kvz_shader_enum_name(e "${id}")
    string(APPEND enums "  ${e},\n")
    string(APPEND strs "    \"${id}\",\n")
  endforeach()
  # The (family, weight type) -> ShaderId table, one row per family in KVZ_WEIGHT_TYPES order.
  get_property(families GLOBAL PROPERTY KVZ_SHADER_FAMILIES)
  get_property(rows GLOBAL PROPERTY KVZ_SHADER_FAMILY_ROWS)
  list(LENGTH KVZ_WEIGHT_TYPES n_types)
  set(fam_enums "")
  set(fam_table "")
  foreach(family IN LISTS families)
    kvz_shader_enum_name(fe "${family}")
    string(APPEND fam_enums "  ${fe},\n")
    set(cells "")
    foreach(t IN LISTS KVZ_WEIGHT_TYPES)
      list(APPEND cells "ShaderId::kCount")
    endforeach()
    foreach(row IN LISTS rows)
      string(REPLACE ":" ";" parts "${row}")
      list(GET parts 0 rf)
      list(GET parts 1 ri)
      list(GET parts 2 rid)
      if(rf STREQUAL family)
        kvz_shader_enum_name(re "${rid}")
        list(REMOVE_AT cells ${ri})
        list(INSERT cells ${ri} "ShaderId::${re}")
      endif()
    endforeach()
    string(REPLACE ";" ", " cells "${cells}")
    string(APPEND fam_table "    {${cells}},  // ${family}\n")
  endforeach()
  file(CONFIGURE OUTPUT "${gen}/kvz_shaders.h" CONTENT
"// Generated by cmake/embed_spirv.cmake: registry of the embedded SPIR-V compute shaders.
#pragma once
#include <cstdint>
#include <span>
#include <string_view>
namespace kvz {
enum class ShaderId : uint32_t {
${enums}  kCount,
};
// SPIR-V words of a shader compiled into this binary.
std::span<const uint32_t> spirv(ShaderId id);
// The shader's variant name, e.g. \"rms_norm\" or \"matmul_q4_k\".
std::string_view shader_name(ShaderId id);

// Kernels with one variant per weight type (cmake/embed_spirv.cmake, KVZ_WEIGHT_TYPES): the
// family is the kernel name plus what follows the type in the variant name (matvec_subgroup,
// matmul_coopmat_khr).
enum class ShaderFamily : uint32_t {
${fam_enums}  kCount,
};
inline constexpr uint32_t kShaderFamilyTypes = ${n_types};  // kvz::DType order
inline constexpr ShaderId kShaderFamilyTable[][kShaderFamilyTypes] = {
${fam_table}};
// The variant of `family` for weight type `type` (its kvz::DType value); ShaderId::kCount where
// the family has none.
constexpr ShaderId shader_for(ShaderFamily family, uint32_t type) {
  return type < kShaderFamilyTypes ? kShaderFamilyTable[static_cast<uint32_t>(family)][type]
                                   : ShaderId::kCount;
}
}  // namespace kvz
" @ONLY)
  file(CONFIGURE OUTPUT "${gen}/kvz_shader_names.inc" CONTENT "${strs}" @ONLY)
  set(built ${spvs})
  list(REMOVE_ITEM built "-")
  string(REPLACE ";" "|" spv_arg "${spvs}")
  add_custom_command(
    OUTPUT "${gen}/kvz_shaders_data.cpp"
    COMMAND ${CMAKE_COMMAND} "-DSPVS=${spv_arg}" "-DOUT=${gen}/kvz_shaders_data.cpp"
            -P "${PROJECT_SOURCE_DIR}/cmake/embed_spirv_gen.cmake"
    DEPENDS ${built} "${PROJECT_SOURCE_DIR}/cmake/embed_spirv_gen.cmake"
    COMMENT "Embedding ${CMAKE_MATCH_COUNT} SPIR-V modules"
    VERBATIM)
  add_library(kvz_shaders STATIC "${gen}/kvz_shaders_data.cpp")
  target_include_directories(kvz_shaders PUBLIC "${gen}")
endfunction()
