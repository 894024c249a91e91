# `kvzip bench` end to end on stories260K (tests/tools/): the table's rows (pp/tg at two depths,
# the KVzip phases at two ratios), its JSON (one object per row, positive means, fewer KV bytes
# at r 0.3 than at r 1), a sampled decode row, and bad input refused with its cause. Run by ctest
# with KVZIP (the binary), SRC (the repo root) and WORK (a scratch folder); KVZIP_DEVICE picks
# the backend.
include(${CMAKE_CURRENT_LIST_DIR}/cli_common.cmake)
set(json ${WORK}/bench_cli_$ENV{KVZIP_DEVICE}.json)
file(REMOVE ${json})

kvzip_ok(out bench -m ${model} -p 16 -n 8 -d 0,32 --kvzip-depth 96 --chunk 32 --ratios 1,0.3
         -r 2 --json ${json})
set(rows "weights \\| 0" "pp16 \\| 0" "tg8 \\| 0" "pp16 \\| 32" "tg8 \\| 32" "kvzip prefill \\| 96"
         "kvzip scoring \\| 96" "kvzip prune r=1 \\| 96" "kvzip KV r=1 \\| 96" "kvzip tg8 r=1 \\| 96"
         "kvzip prune r=0.3 \\| 96" "kvzip KV r=0.3 \\| 96" "kvzip tg8 r=0.3 \\| 96")
foreach(want IN LISTS rows)
  if(NOT out MATCHES "\\| ${want} \\| [0-9.]+ ± [0-9.]+ \\| (MiB|tok/s|ms) \\|")
    message(FATAL_ERROR "kvzip bench output lacks the row '${want}':\n${out}")
  endif()
endforeach()

file(READ ${json} doc)
string(JSON n LENGTH "${doc}")
list(LENGTH rows n_rows)
if(NOT n EQUAL n_rows)
  message(FATAL_ERROR "kvzip bench --json holds ${n} rows, the table ${n_rows}:\n${doc}")
endif()
math(EXPR last "${n} - 1")
foreach(i RANGE ${last})
  string(JSON test GET "${doc}" ${i} test)
  string(JSON mean GET "${doc}" ${i} mean)
  string(JSON n_samples LENGTH "${doc}" ${i} samples)
  if(NOT mean GREATER 0)
    message(FATAL_ERROR "kvzip bench row '${test}' has mean ${mean}")
  endif()
  if(test STREQUAL "kvzip KV r=1")
    set(kv_full ${mean})
  elseif(test STREQUAL "kvzip KV r=0.3")
    set(kv_pruned ${mean})
  elseif(NOT test STREQUAL "weights" AND NOT n_samples EQUAL 2)
    message(FATAL_ERROR "kvzip bench row '${test}' has ${n_samples} samples for -r 2")
  endif()
endforeach()
if(NOT kv_pruned LESS kv_full)
  message(FATAL_ERROR "KV bytes at r 0.3 (${kv_pruned} MiB) not below r 1 (${kv_full} MiB)")
endif()

# Sampled decode: its row names the sampling.
kvzip_ok(out bench -m ${model} -p 16 -n 8 -d 0 --kvzip-depth 0 -r 1 --temp 0.8 --top-k 40)
if(NOT out MATCHES "\\| tg8 t=0.8 k=40 p=1 \\| 0 \\| [0-9.]+ ± ")
  message(FATAL_ERROR "kvzip bench --temp output lacks its sampled decode row:\n${out}")
endif()

# Bad input: a missing model file (exit status 1, one line naming it); a ratio out of range.
execute_process(COMMAND ${KVZIP} bench -m ${WORK}/no_such_model.gguf -p 16 -n 8 -d 0
                        --kvzip-depth 0 -r 1
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 1 OR NOT err MATCHES "kvzip: error: -m .*no_such_model.gguf: no such file")
  message(FATAL_ERROR "a missing model was not refused cleanly (${rc}):\n${out}\n${err}")
endif()
execute_process(COMMAND ${KVZIP} bench -m ${model} --ratios 1.5
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "--ratios: Value 1.5 not in range")
  message(FATAL_ERROR "--ratios 1.5 was not refused (${rc}):\n${out}\n${err}")
endif()
message(STATUS "kvzip bench table, JSON and sampled row OK; bad input refused")
