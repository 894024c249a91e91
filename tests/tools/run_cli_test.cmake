# `kvzip compress` and `kvzip run` end to end on stories260K (tests/tools/): compress a context to a
# cache file, answer from the full and the compressed cache, answer again from the file, and refuse
# a corrupted file with a one-line error naming the cause. Run by ctest with KVZIP (the binary),
# SRC (the repo root) and WORK (a scratch folder); KVZIP_DEVICE picks the backend.
include(${CMAKE_CURRENT_LIST_DIR}/cli_common.cmake)
set(ctx ${SRC}/tests/data/stories260K/context.txt)
set(cache ${WORK}/run_cli_$ENV{KVZIP_DEVICE}.kvz)
file(REMOVE ${cache})

kvzip_ok(out compress -m ${model} --context ${ctx} --chunk 32 --ratio 0.3 -o ${cache})
if(NOT out MATCHES "30.0% of context pairs kept")
  message(FATAL_ERROR "compress did not keep 30% of the pairs:\n${out}")
endif()

kvzip_ok(out run -m ${model} --context ${ctx} --chunk 32 --ratio 0.3 -q "Who was lost?" -n 12)
foreach(want "full cache:" "kvzip ratio 0.30:" "answers identical to the full cache: [01]/1"
        "30.0% of context pairs kept" "prefill [0-9]+ ms" "scoring [0-9]+ ms")
  if(NOT out MATCHES "${want}")
    message(FATAL_ERROR "kvzip run output lacks '${want}':\n${out}")
  endif()
endforeach()

kvzip_ok(out run -m ${model} --load-cache ${cache} -q "Who was lost?" -n 12)
if(NOT out MATCHES "cache file, 30.0% kept:" OR NOT out MATCHES "30.0% of the context pairs kept")
  message(FATAL_ERROR "kvzip run --load-cache gave no answer:\n${out}")
endif()

# Overwrite three bytes in the middle of the K/V payload: refused by the checksum, exit status 1.
file(COPY_FILE ${cache} ${cache}.bad)
file(SIZE ${cache} size)
math(EXPR mid "${size} / 2")
execute_process(COMMAND sh -c "printf '\\377\\000\\252' | dd of='${cache}.bad' bs=1 seek=${mid} conv=notrunc status=none"
                RESULT_VARIABLE rc)
file(SIZE ${cache}.bad bad_size)
if(NOT rc EQUAL 0 OR NOT bad_size EQUAL size)
  message(FATAL_ERROR "could not corrupt the cache file (${rc}, ${bad_size} of ${size} bytes)")
endif()
execute_process(COMMAND ${KVZIP} run -m ${model} --load-cache ${cache}.bad -q "Who?" -n 4
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 1 OR NOT err MATCHES "kvzip: error: .*checksum")
  message(FATAL_ERROR "a corrupted cache file was not refused cleanly (${rc}):\n${out}\n${err}")
endif()
# Online KVzap (tiny committed surrogate): evicts while prefilling; a truncated weights file is
# refused with a one-line error.
kvzip_ok(out run -m ${model} --context ${ctx} -q "Who was lost?" -n 8 --kvzap
         ${SRC}/tests/data/stories260K/stories260K.mlp.kvzap --kvzap-threshold -3 --kvzap-window 16)
if(NOT out MATCHES "kvzap tau -3.00:" OR NOT out MATCHES "([0-9.]+)% of context pairs kept")
  message(FATAL_ERROR "kvzip run --kvzap output:\n${out}")
endif()
string(REGEX MATCH "([0-9.]+)% of context pairs kept" m "${out}")
if(NOT CMAKE_MATCH_1 LESS 100)
  message(FATAL_ERROR "kvzip run --kvzap evicted nothing:\n${out}")
endif()
file(WRITE ${WORK}/truncated.kvzap "KVZAPW01")
execute_process(COMMAND ${KVZIP} run -m ${model} --context ${ctx} -q "Who?" -n 4 --kvzap
                        ${WORK}/truncated.kvzap
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 1 OR NOT err MATCHES "kvzip: error: .*truncated KVzap")
  message(FATAL_ERROR "a truncated KVzap file was not refused cleanly (${rc}):\n${out}\n${err}")
endif()
message(STATUS "kvzip compress/run/--load-cache OK; corrupt file refused: ${err}")
