# Shared by the CLI CI tests (tests/tools/run_cli_test.cmake, bench_cli_test.cmake): the test
# model and kvzip_ok. Needs KVZIP and SRC set.
set(model ${SRC}/tests/data/stories260K/stories260K.bin)

# Runs `kvzip ARGN`; fails the test unless it exits 0; sets out_var to its stdout.
function(kvzip_ok out_var)
  execute_process(COMMAND ${KVZIP} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "kvzip ${ARGN} failed (${rc}):\n${out}\n${err}")
  endif()
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()
