# CI-sized test of `kvzip eval` (tests/tools): stories260K, 2 samples per task, 2 ratios.
# NIAH runs every method (kvzip_head with head scores from the first sample, saved and then
# reloaded by a `--level head --head-scores FILE` run that must reproduce its rows); the RULER-style tasks (ruler_mk, ruler_vt) and GSM8K run KVzip and the
# two methods that need extra observations (pyramidkv: the query window, expected_attention: the
# prefill queries). For each run: exactly one row per (sample, method, ratio) plus the full-cache
# rows, ratio 1.0 reproduces the full cache's answers and scores for every method, and the table
# is printed. The NIAH run is repeated to check that a second run resumes without adding rows.
# Usage: cmake -DKVZIP=<kvzip binary> -DSRC=<repo root> -DWORK=<scratch dir> -P eval_harness_test.cmake
cmake_minimum_required(VERSION 3.25)
include("${CMAKE_CURRENT_LIST_DIR}/eval_common.cmake")

# NIAH with every method, then a resumed run.
set(all_methods kvzip kvzip_head snapkv pyramidkv tova h2o streaming knorm random
                expected_attention adakv_snapkv adakv_expected_attention
                expected_attention_e2)
set(out "${WORK}/eval_harness.jsonl")
set(heads "${WORK}/eval_harness_heads.json")
file(REMOVE "${out}" "${WORK}/eval_harness.png" "${heads}")
run_eval("niah" niah "${out}" "${all_methods}" --length 200 --queries 2 --save-head-scores "${heads}")
check_rows("niah" "${out}" "${all_methods}" 2)
set(want ${n_rows})
if(NOT stderr_text MATCHES "head scores computed once from sample 0" OR NOT EXISTS "${heads}")
  message(FATAL_ERROR "kvzip_head did not report/save its head scores:\n${stderr_text}")
endif()
# --level head runs `kvzip` as kvzip_head; with the saved head scores it repeats the rows above.
set(hout "${WORK}/eval_harness_level_head.jsonl")
file(REMOVE "${hout}")
run_eval("level head" niah "${hout}" kvzip --length 200 --queries 2 --level head
         --head-scores "${heads}")
check_rows("level head" "${hout}" kvzip_head 2)
file(STRINGS "${out}" all_rows)
file(STRINGS "${hout}" head_rows)
foreach(row IN LISTS head_rows)
  string(JSON method GET "${row}" method)
  if(method STREQUAL "full")
    continue()
  endif()
  string(JSON sample GET "${row}" sample)
  string(JSON ratio GET "${row}" ratio)
  string(JSON preds GET "${row}" predictions)
  set(found FALSE)
  foreach(ref IN LISTS all_rows)
    string(JSON rm GET "${ref}" method)
    string(JSON rs GET "${ref}" sample)
    string(JSON rr GET "${ref}" ratio)
    if(rm STREQUAL "kvzip_head" AND rs EQUAL sample AND rr EQUAL ratio)
      string(JSON rp GET "${ref}" predictions)
      string(JSON same EQUAL "${preds}" "${rp}")
      if(NOT same)
        message(FATAL_ERROR "--level head with the saved head scores: sample ${sample} ratio "
                            "${ratio} answered ${preds}, kvzip_head ${rp}")
      endif()
      set(found TRUE)
    endif()
  endforeach()
  if(NOT found)
    message(FATAL_ERROR "--level head row ${sample}/${ratio} has no kvzip_head counterpart")
  endif()
endforeach()
run_eval("niah resumed" niah "${out}" "${all_methods}" --length 200 --queries 2)
check_rows("niah resumed" "${out}" "${all_methods}" 2)
if(NOT stderr_text MATCHES "${want} of ${want} runs already")
  message(FATAL_ERROR "the resumed run did not report the existing rows:\n${stderr_text}")
endif()
# Debug options: --dump-kept writes one line per (sample, method, ratio) with the context tokens
# around the first query's gold answer and how many (layer, KV head) pairs keep each; at ratio 1
# every pair keeps every token. --oracle-window puts the gold answer into the query-aware
# methods' window (the dump shows it) and leaves the full cache's rows as they are.
set(dout "${WORK}/eval_harness_dump.jsonl")
set(dump "${WORK}/eval_harness_dump_kept.jsonl")
file(REMOVE "${dout}" "${dump}")
run_eval("dump kept" niah "${dout}" "snapkv;kvzip" --length 200 --queries 2 --oracle-window
         --dump-kept "${dump}")
check_rows("dump kept" "${dout}" "snapkv;kvzip" 2)
file(STRINGS "${dump}" dump_rows)
list(LENGTH dump_rows n_dump)
if(NOT n_dump EQUAL 8)
  message(FATAL_ERROR "--dump-kept: expected 8 lines (2 samples x 2 methods x 2 ratios), got ${n_dump}")
endif()
foreach(row IN LISTS dump_rows)
  string(JSON method GET "${row}" method)
  string(JSON ratio GET "${row}" ratio)
  string(JSON answer GET "${row}" answer)
  string(JSON pairs GET "${row}" pairs)
  string(JSON n_tok LENGTH "${row}" tokens)
  string(JSON a0 GET "${row}" answer_tokens 0)
  string(JSON a1 GET "${row}" answer_tokens 1)
  string(JSON first GET "${row}" first)
  set(text "")
  math(EXPR last "${n_tok} - 1")
  foreach(i RANGE ${last})
    string(JSON t GET "${row}" tokens ${i})
    string(APPEND text "${t}")
  endforeach()
  if(NOT a1 GREATER a0 OR a0 LESS first OR pairs LESS 1)
    message(FATAL_ERROR "--dump-kept: bad answer span ${a0}..${a1} (first ${first}): ${row}")
  endif()
  string(FIND "${text}" "${answer}" at)
  if(at LESS 0)
    message(FATAL_ERROR "--dump-kept: the dumped tokens do not spell the answer ${answer}: ${text}")
  endif()
  if(method STREQUAL "snapkv")
    string(JSON window GET "${row}" window)
    string(FIND "${window}" "\"${answer}\"" at)
    if(at LESS 0)
      message(FATAL_ERROR "--oracle-window: the window lacks the answer: ${window}")
    endif()
  endif()
  if(ratio GREATER_EQUAL 1.0)
    foreach(i RANGE ${last})
      string(JSON k GET "${row}" kept_pairs ${i})
      if(NOT k EQUAL pairs)
        message(FATAL_ERROR "--dump-kept: ratio 1 keeps token ${i} in ${k} of ${pairs} pairs")
      endif()
    endforeach()
  endif()
endforeach()

# KVzap with the tiny committed surrogates, per ratio and with a fixed threshold (the row key
# is then the pooled kept fraction it achieved, < 1 here).
set(kvzap_methods kvzap_linear kvzap_mlp)
set(kout "${WORK}/eval_harness_kvzap_ratios.jsonl")
file(REMOVE "${kout}")
run_eval("kvzap" niah "${kout}" "${kvzap_methods}" --length 200 --queries 2
         --kvzap-dir "${SRC}/tests/data/stories260K")
check_rows("kvzap" "${kout}" "${kvzap_methods}" 2)

# KVzap with a fixed threshold: the row key is the pooled kept fraction it achieved (< 1 here).
set(zout "${WORK}/eval_harness_kvzap.jsonl")
file(REMOVE "${zout}")
execute_process(
  COMMAND "${KVZIP}" eval --task niah --model "${model}"
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
string(JSON ztau GET "${zrow}" threshold)
if(NOT zmethod STREQUAL "kvzap_mlp" OR NOT zkept LESS 1.0 OR NOT zkept GREATER 0.0 OR
   NOT ztau MATCHES "^-3(\\.0*)?$")
  message(FATAL_ERROR "kvzap fixed threshold row: ${zrow}")
endif()


# The new tasks with the methods that need their own observations.
set(methods kvzip pyramidkv expected_attention)
foreach(task ruler_mk ruler_vt gsm8k)
  set(out "${WORK}/eval_harness_${task}.jsonl")
  file(REMOVE "${out}" "${WORK}/eval_harness_${task}.png")
  # stories260K holds 512 tokens (system prefix included) and its tokenizer is verbose: 440
  # tokens (context + query + the 8 new tokens the fitting reserves) fit 4 needles, 1 chain.
  if(task STREQUAL "gsm8k")
    run_eval("${task}" ${task} "${out}" "${methods}")
    check_rows("${task}" "${out}" "${methods}" 1)
  elseif(task STREQUAL "ruler_vt")
    run_eval("${task}" ${task} "${out}" "${methods}" --length 440 --queries 1)
    check_rows("${task}" "${out}" "${methods}" 1)
  else()
    run_eval("${task}" ${task} "${out}" "${methods}" --length 440 --queries 2)
    check_rows("${task}" "${out}" "${methods}" 2)
  endif()
endforeach()
message(STATUS "eval harness: niah x ${all_methods}, ruler_mk / ruler_vt / gsm8k x ${methods}: "
               "rows complete, ratio 1.0 == full cache, resume ok")
