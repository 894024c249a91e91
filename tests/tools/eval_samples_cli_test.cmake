# `kvzip eval --samples FILE` and `kvzip run --method M` end to end on stories260K (tests/tools/):
# the user's samples give one row per (sample, method, ratio) plus the full cache's, each query
# scored by "a normalised answer is contained" (checked here against the predictions for one-word
# lowercase answers, where normalising changes nothing), ratio 1.0 repeats the full cache; a bad
# line is refused with one error line naming it. `run --method` answers with each baseline, keeps
# the full cache's answer at ratio 1.0, and refuses a combination it cannot apply. Run by ctest
# with KVZIP, SRC and WORK; KVZIP_DEVICE picks the backend.
cmake_minimum_required(VERSION 3.25)
include(${CMAKE_CURRENT_LIST_DIR}/cli_common.cmake)
file(READ ${SRC}/tests/data/stories260K/context.txt ctx)
string(REPLACE "\"" "\\\"" ctx_json "${ctx}")
string(REPLACE "\n" "\\n" ctx_json "${ctx_json}")
set(samples ${WORK}/eval_samples_$ENV{KVZIP_DEVICE}.jsonl)
set(out ${WORK}/eval_samples_$ENV{KVZIP_DEVICE}.out.jsonl)
file(REMOVE ${out})
file(WRITE ${samples}
  "{\"id\": \"lily\", \"context\": \"${ctx_json}\", \"queries\": [\"Who was lost?\", \"What color was the door?\"], \"answers\": [[\"dog\", \"max\"], \"blue\"]}\n"
  "\n"
  "{\"id\": \"park\", \"context\": \"${ctx_json}\", \"queries\": [\"Where did Lily play?\"], \"answers\": [\"park\"]}\n")

kvzip_ok(so eval --samples ${samples} -m ${model} --methods kvzip,snapkv --ratios 0.3,1.0 -n 8
         --chunk 32 --out ${out})
if(NOT so MATCHES "\\| kvzip \\|" OR NOT so MATCHES "\\| full cache \\|")
  message(FATAL_ERROR "eval --samples printed no table:\n${so}")
endif()
file(STRINGS ${out} rows)
list(LENGTH rows n)
if(NOT n EQUAL 10)  # 2 samples x (full + 2 methods x 2 ratios)
  message(FATAL_ERROR "eval --samples: expected 10 rows, got ${n}")
endif()
set(want_ids "lily;park")
set(want_nq "2;1")
set(answers_0 "dog|max;blue")
set(answers_1 "park")
foreach(row IN LISTS rows)
  string(JSON task GET "${row}" task)
  string(JSON sample GET "${row}" sample)
  string(JSON id GET "${row}" sample_id)
  string(JSON method GET "${row}" method)
  string(JSON ratio GET "${row}" ratio)
  string(JSON nq GET "${row}" n_queries)
  list(GET want_ids ${sample} want_id)
  list(GET want_nq ${sample} want_n)
  if(NOT task STREQUAL "samples" OR NOT id STREQUAL want_id OR NOT nq EQUAL want_n)
    message(FATAL_ERROR "row ${sample}/${method}/${ratio}: task ${task}, id ${id}, ${nq} queries")
  endif()
  math(EXPR last "${nq} - 1")
  foreach(q RANGE ${last})
    string(JSON pred GET "${row}" predictions ${q})
    string(JSON ok GET "${row}" ok ${q})
    string(TOLOWER "${pred}" pred)
    list(GET answers_${sample} ${q} golds)
    string(REPLACE "|" ";" golds "${golds}")
    set(expect 0)
    foreach(g IN LISTS golds)
      string(FIND "${pred}" "${g}" at)
      if(NOT at EQUAL -1)
        set(expect 1)
      endif()
    endforeach()
    if(NOT ok EQUAL expect)
      message(FATAL_ERROR "row ${sample}/${method}/${ratio} query ${q}: ok ${ok}, expected ${expect} "
                          "for '${pred}' against '${golds}'")
    endif()
    if(ratio GREATER_EQUAL 1.0)
      set(full_${sample}_${method}_${q} "${pred}")
    endif()
  endforeach()
endforeach()
foreach(s 0 1)
  foreach(m kvzip snapkv)
    if(NOT full_${s}_${m}_0 STREQUAL full_${s}_full_0)
      message(FATAL_ERROR "sample ${s}: ${m} at 1.0 answered '${full_${s}_${m}_0}', the full cache "
                          "'${full_${s}_full_0}'")
    endif()
  endforeach()
endforeach()

# A line whose answers do not match its queries: one error line naming the file and line, status 1.
file(APPEND ${samples} "{\"id\": \"bad\", \"context\": \"x\", \"queries\": [\"a\", \"b\"], \"answers\": [\"a\"]}\n")
execute_process(COMMAND ${KVZIP} eval --samples ${samples} -m ${model} --methods kvzip
                        --ratios 0.3 --out ${WORK}/eval_samples_bad.jsonl
                RESULT_VARIABLE rc OUTPUT_VARIABLE so ERROR_VARIABLE err)
if(NOT rc EQUAL 1 OR NOT err MATCHES "(^|\n)kvzip: error: [^\n]*eval_samples_[^\n]*:4: \"answers\" must be a list of 2")
  message(FATAL_ERROR "a bad samples line: rc ${rc}, stderr:\n${err}")
endif()

# `kvzip run --method`: each baseline answers; at ratio 1.0 it answers as the full cache does.
set(ctx_file ${SRC}/tests/data/stories260K/context.txt)
foreach(m snapkv tova h2o pyramidkv expected_attention streaming adakv_snapkv)
  kvzip_ok(so run -m ${model} --context ${ctx_file} --method ${m} --ratio 0.3 -q "Who was lost?" -n 8)
  if(NOT so MATCHES "${m} ratio 0.30:" OR NOT so MATCHES "% of context pairs kept")
    message(FATAL_ERROR "run --method ${m} output:\n${so}")
  endif()
  kvzip_ok(so run -m ${model} --context ${ctx_file} --method ${m} --ratio 1.0 -q "Who was lost?" -n 8)
  if(NOT so MATCHES "answers identical to the full cache: 1/1")
    message(FATAL_ERROR "run --method ${m} --ratio 1.0 changed the answer:\n${so}")
  endif()
endforeach()
execute_process(COMMAND ${KVZIP} run -m ${model} --context ${ctx_file} --method snapkv --kvpress
                        -q "Who?" -n 4
                RESULT_VARIABLE rc OUTPUT_VARIABLE so ERROR_VARIABLE err)
if(NOT rc EQUAL 1 OR NOT err MATCHES "(^|\n)kvzip: error: --method snapkv does not combine")
  message(FATAL_ERROR "run --method snapkv --kvpress: rc ${rc}, stderr:\n${err}")
endif()
