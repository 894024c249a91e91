# CI-sized end-to-end run of one RULER-style `kvzip eval` task (tests/tools): stories260K, 2
# samples, ratios 0.3 and 1.0, KVzip and SnapKV (the query-aware path: the first query with its
# answer prefix as the window). Checks one row per (sample, method, ratio) plus the full-cache
# rows, ratio 1.0 == the full cache, the table; a second run into a new file must write the same
# predictions (the samples are deterministic). ruler_mq and ruler_qa use tests/data/eval_tiny
# (short words, invented paragraphs): with the bundled data their smallest sample does not fit the
# test model's 512 tokens. ruler_cwe's does not fit with any data (10 words x 6 alone are about
# 450 tokens of stories260K's tokenizer), so for it the test checks the clear "too short" error;
# its samples are checked by kvz_tools_tests.
# Usage: cmake -DKVZIP=<kvzip> -DSRC=<repo root> -DWORK=<scratch dir> -DTASK=<task>
#              -P eval_ruler_harness_test.cmake
cmake_minimum_required(VERSION 3.25)
include("${CMAKE_CURRENT_LIST_DIR}/eval_common.cmake")

set(args --length 440)  # + the system prefix: the model's 512 tokens
if(TASK STREQUAL "ruler_mq" OR TASK STREQUAL "ruler_qa" OR TASK STREQUAL "ruler_cwe")
  list(APPEND args --data "${SRC}/tests/data/eval_tiny")
endif()

if(TASK STREQUAL "ruler_cwe")
  execute_process(COMMAND "${KVZIP}" eval --task ${TASK} --model "${model}" --methods kvzip
                          --num 1 -n 8 ${args} --out "${WORK}/eval_ruler_${TASK}.jsonl"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE so ERROR_VARIABLE se)
  if(rc EQUAL 0 OR NOT se MATCHES "ruler_cwe: --length 440 is too short")
    message(FATAL_ERROR "${TASK}: expected the too-short error (${rc}):\n${so}\n${se}")
  endif()
  message(STATUS "eval ruler harness ${TASK}: too short for stories260K, reported")
  return()
endif()

set(methods kvzip snapkv)
set(out "${WORK}/eval_ruler_${TASK}.jsonl")
set(again "${WORK}/eval_ruler_${TASK}_again.jsonl")
file(REMOVE "${out}" "${again}")
run_eval("${TASK}" ${TASK} "${out}" "${methods}" ${args})
check_rows("${TASK}" "${out}" "${methods}" 1)
run_eval("${TASK} again" ${TASK} "${again}" "${methods}" ${args})
file(STRINGS "${out}" rows)
file(STRINGS "${again}" rows_again)
foreach(row IN ZIP_LISTS rows rows_again)
  string(JSON a GET "${row_0}" predictions)
  string(JSON b GET "${row_1}" predictions)
  string(JSON id_a GET "${row_0}" sample_id)
  string(JSON id_b GET "${row_1}" sample_id)
  string(JSON same EQUAL "${a}" "${b}")
  if(NOT same OR NOT id_a STREQUAL id_b)
    message(FATAL_ERROR "${TASK}: a second run answered ${id_b} ${b}, the first ${id_a} ${a}")
  endif()
endforeach()
message(STATUS "eval ruler harness ${TASK}: rows complete, ratio 1.0 == full cache, repeatable")
