# The CLI's output files and hostile inputs end to end on stories260K (tests/tools/): every output
# goes through the atomic writer (a link planted at the old NAME.tmp is not followed), and bad
# inputs end with one `kvzip: error:` line and exit 1 instead of an abort or a hang.
include(${CMAKE_CURRENT_LIST_DIR}/cli_common.cmake)
set(dir ${WORK}/hostile_cli_$ENV{KVZIP_DEVICE})
file(REMOVE_RECURSE ${dir})
file(MAKE_DIRECTORY ${dir})
set(ctx ${SRC}/tests/data/stories260K/context.txt)
file(WRITE ${dir}/victim "precious")

# Runs `kvzip ARGN` and requires exit 1 with a one-line `kvzip: error:` naming `needle`.
function(kvzip_fails needle)
  execute_process(COMMAND ${KVZIP} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE err TIMEOUT 60)
  if(NOT rc EQUAL 1 OR NOT err MATCHES "kvzip: error: [^\n]*${needle}")
    message(FATAL_ERROR "kvzip ${ARGN}: expected exit 1 and an error naming '${needle}', got "
                        "'${rc}':\n${err}")
  endif()
endfunction()

# Outputs never follow a link at the old fixed temporary name.
foreach(out cache.kvz bench.json heads.json)
  file(CREATE_LINK ${dir}/victim ${dir}/${out}.tmp SYMBOLIC)
endforeach()
kvzip_ok(out compress -m ${model} --context ${ctx} --chunk 32 --ratio 0.3 -o ${dir}/cache.kvz
         --save-head-scores ${dir}/heads.json)
kvzip_ok(out bench -m ${model} -p 16 -n 8 -d 0 --kvzip-depth 0 -r 1 --json ${dir}/bench.json)
file(READ ${dir}/victim victim)
if(NOT victim STREQUAL "precious")
  message(FATAL_ERROR "a link at NAME.tmp was followed: the victim now holds '${victim}'")
endif()
file(READ ${dir}/bench.json doc)
string(JSON n LENGTH "${doc}")
file(READ ${dir}/heads.json doc)
string(JSON fmt GET "${doc}" format)

# Hostile inputs.
# KV cache types (docs/KVQUANT.md): unknown names, and q8_0 on stories260K's head_dim of 8.
kvzip_fails("unknown KV cache type 'q5_0'" run -m ${model} --context ${ctx} --cache-type-k q5_0
            -q "Who?" -n 4)
kvzip_fails("multiple of 32" run -m ${model} --context ${ctx} --cache-type-v q8_0 -q "Who?" -n 4)
kvzip_fails("regular file" run -m ${model} --load-cache ${dir} -q "Who?" -n 4)
execute_process(COMMAND mkfifo ${dir}/pipe.gguf)
kvzip_fails("regular" run -m ${dir}/pipe.gguf --context ${ctx} -q "Who?" -n 4)
kvzip_fails("not supported" run -m synthetic:llama3.1-8b:nope -q "Who?" -n 4)
string(REPEAT "x" 300 long)
kvzip_fails("model" run -m ${dir}/${long}.gguf --context ${ctx} -q "Who?" -n 4)
kvzip_fails("version 1|head-score" run -m ${model} --context ${ctx} --level head
            --head-scores ${SRC}/tests/data/stories260K/stories260K.kvzap.json -q "Who?" -n 4)
# KVZIP_DEVICE= (empty) picks the device an unset KVZIP_DEVICE picks.
set(saved $ENV{KVZIP_DEVICE})
foreach(value unset empty)
  if(value STREQUAL "unset")
    unset(ENV{KVZIP_DEVICE})
  else()
    set(ENV{KVZIP_DEVICE} "")
  endif()
  execute_process(COMMAND ${KVZIP} run -m ${model} --context ${ctx} -q "Who?" -n 2 --chunk 32
                  RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err TIMEOUT 120)
  string(REGEX MATCH "device: [^\n]*" device_${value} "${err}")
endforeach()
set(ENV{KVZIP_DEVICE} ${saved})
if(NOT device_unset STREQUAL device_empty OR device_unset STREQUAL "")
  message(FATAL_ERROR "KVZIP_DEVICE= chose '${device_empty}', unset chose '${device_unset}'")
endif()
message(STATUS "outputs atomic, links not followed; hostile inputs refused in one line")
