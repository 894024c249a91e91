# CI-sized test of `kvzip eval` (tests/tools): stories260K, 2 NIAH samples of 200 tokens, 2 ratios,
# KVzap with the tiny committed surrogates of tests/data/stories260K.
# Checks the JSON lines hold exactly one row per (sample, method, ratio) plus the full-cache rows,
# that ratio 1.0 reproduces the full cache's answers for every method, that a second run resumes
# without adding rows, and that the table is printed.
# Usage: cmake -DKVZIP=<kvzip binary> -DSRC=<repo root> -DWORK=<scratch dir> -P eval_harness_test.cmake
cmake_minimum_required(VERSION 3.25)
set(out "${WORK}/eval_harness.jsonl")
file(REMOVE "${out}" "${WORK}/eval_harness.png")
set(methods kvzip snapkv tova h2o streaming knorm random kvzap_linear kvzap_mlp)
list(JOIN methods "," methods_csv)
set(cmd "${KVZIP}" eval --task niah --model "${SRC}/tests/data/stories260K/stories260K.bin"
    --methods ${methods_csv} --ratios 0.3,1.0 --num 2 --length 200 --queries 2 -n 8 --chunk 64
    --kvzap-dir "${SRC}/tests/data/stories260K" --out "${out}")

function(run_eval label)
  execute_process(COMMAND ${cmd} RESULT_VARIABLE rc OUTPUT_VARIABLE so ERROR_VARIABLE se)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${label}: kvzip eval failed (${rc}):\n${so}\n${se}")
  endif()
  if(NOT so MATCHES "\\| kvzip \\|" OR NOT so MATCHES "\\| full cache \\|")
    message(FATAL_ERROR "${label}: no results table in the output:\n${so}")
  endif()
  set(stderr_text "${se}" PARENT_SCOPE)
endfunction()

function(read_rows var)
  file(STRINGS "${out}" lines)
  set(${var} "${lines}" PARENT_SCOPE)
endfunction()

run_eval("first run")
read_rows(rows)
list(LENGTH rows n)
list(LENGTH methods n_methods)
math(EXPR want "2 * (1 + ${n_methods} * 2)")
if(NOT n EQUAL want)
  message(FATAL_ERROR "expected ${want} rows, got ${n}")
endif()

# Index the rows: key "sample/method/ratio" -> predictions array and correct count.
set(keys "")
foreach(row IN LISTS rows)
  string(JSON sample GET "${row}" sample)
  string(JSON method GET "${row}" method)
  string(JSON ratio GET "${row}" ratio)
  string(JSON nq GET "${row}" n_queries)
  string(JSON preds GET "${row}" predictions)
  string(JSON correct GET "${row}" correct)
  if(NOT nq EQUAL 2)
    message(FATAL_ERROR "row ${sample}/${method}/${ratio}: ${nq} queries, expected 2")
  endif()
  # The run uses ratios 0.3 and 1.0 only (string(JSON) prints 0.3 with all its digits).
  if(ratio GREATER_EQUAL 1.0)
    set(r "1")
  elseif(ratio GREATER 0.29 AND ratio LESS 0.31)
    set(r "0.3")
  else()
    message(FATAL_ERROR "unexpected ratio ${ratio}")
  endif()
  set(key "${sample}/${method}/${r}")
  if(key IN_LIST keys)
    message(FATAL_ERROR "duplicate row ${key}")
  endif()
  list(APPEND keys "${key}")
  set(pred_${sample}_${method}_${r} "${preds}")
  set(correct_${sample}_${method}_${r} "${correct}")
endforeach()

foreach(s 0 1)
  if(NOT DEFINED pred_${s}_full_1)
    message(FATAL_ERROR "no full-cache row for sample ${s}")
  endif()
  foreach(m IN LISTS methods)
    foreach(r 0.3 1)
      if(NOT DEFINED pred_${s}_${m}_${r})
        message(FATAL_ERROR "missing row ${s}/${m}/${r}")
      endif()
    endforeach()
    string(JSON same EQUAL "${pred_${s}_${m}_1}" "${pred_${s}_full_1}")
    if(NOT same OR NOT correct_${s}_${m}_1 EQUAL correct_${s}_full_1)
      message(FATAL_ERROR "sample ${s}: ${m} at ratio 1.0 answered ${pred_${s}_${m}_1}, the full cache "
                          "${pred_${s}_full_1}")
    endif()
  endforeach()
endforeach()

run_eval("resumed run")
read_rows(rows2)
list(LENGTH rows2 n2)
if(NOT n2 EQUAL want)
  message(FATAL_ERROR "the resumed run added rows: ${n2} instead of ${want}")
endif()
if(NOT stderr_text MATCHES "${want} of ${want} runs already")
  message(FATAL_ERROR "the resumed run did not report the existing rows:\n${stderr_text}")
endif()
# KVzap with a fixed threshold: the row key is the pooled kept fraction it achieved (< 1 here).
set(zout "${WORK}/eval_harness_kvzap.jsonl")
file(REMOVE "${zout}")
execute_process(
  COMMAND "${KVZIP}" eval --task niah --model "${SRC}/tests/data/stories260K/stories260K.bin"
          --methods kvzap_mlp --kvzap-threshold -3 --kvzap-window 16 --num 1 --length 200
          --queries 1 -n 4 --kvzap-dir "${SRC}/tests/data/stories260K" --out "${zout}"
  RESULT_VARIABLE rc OUTPUT_VARIABLE so ERROR_VARIABLE se)
if(NOT rc EQUAL 0 OR NOT so MATCHES "\\| kvzap_mlp \\|")
  message(FATAL_ERROR "kvzap fixed threshold run failed (${rc}):\n${so}\n${se}")
endif()
file(STRINGS "${zout}" zrows)
list(GET zrows 1 zrow)
string(JSON zmethod GET "${zrow}" method)
string(JSON zkept GET "${zrow}" kept_fraction)
if(NOT zmethod STREQUAL "kvzap_mlp" OR NOT zkept LESS 1.0 OR NOT zkept GREATER 0.0)
  message(FATAL_ERROR "kvzap fixed threshold row: ${zrow}")
endif()

message(STATUS "eval harness: ${n} rows, ratio 1.0 == full cache for ${n_methods} methods, resume ok")
