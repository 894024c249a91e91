# `cmake --install` of the build tree BUILD into WORK/prefix, then: the files a user needs are there,
# a consumer project (tests/install/consumer) configures with find_package(kvzip_vk), builds and
# runs on the CPU backend, pkg-config resolves kvzip-vk.pc, and the installed binary finds its data
# under share/kvzip-vk with no path into the source tree compiled in. Run by ctest.
file(REMOVE_RECURSE ${WORK})
set(prefix ${WORK}/prefix)
function(run_ok)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${ARGN} failed (${rc}):\n${out}\n${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
  set(err "${err}" PARENT_SCOPE)
endfunction()

run_ok(${CMAKE_COMMAND} --install ${BUILD} --prefix ${prefix})
foreach(f bin/kvzip lib/libkvz_model.a lib/libkvz_runtime.a lib/libkvz_shaders.a
          include/kvzip-vk/model/session.h include/kvzip-vk/runtime/recorder.h
          include/kvzip-vk/kvz_shaders.h lib/cmake/kvzip_vk/kvzip_vkConfig.cmake
          lib/pkgconfig/kvzip-vk.pc share/kvzip-vk/demo/questions.json
          share/kvzip-vk/demo/context.txt share/kvzip-vk/eval/pg_essays_haystack.txt)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "cmake --install did not install ${f}")
  endif()
endforeach()

run_ok(${CMAKE_COMMAND} -S ${SRC}/tests/install/consumer -B ${WORK}/consumer -G ${GEN}
       -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release)
run_ok(${CMAKE_COMMAND} --build ${WORK}/consumer)
run_ok(${WORK}/consumer/consumer ${SRC}/tests/data/stories260K/stories260K.bin
       ${SRC}/tests/data/stories260K/context.txt)
if(NOT out MATCHES "kept 0\\.[23][0-9]* tokens [1-8] answer: ")
  message(FATAL_ERROR "the consumer's output:\n${out}")
endif()

set(ENV{PKG_CONFIG_PATH} ${prefix}/lib/pkgconfig)
run_ok(pkg-config --cflags --libs kvzip-vk)
if(NOT out MATCHES "-I[^ ]*/include/kvzip-vk" OR NOT out MATCHES "-lkvz_model")
  message(FATAL_ERROR "pkg-config kvzip-vk gave:\n${out}")
endif()
string(REGEX MATCH "-I([^ ]*/include/kvzip-vk)" m "${out}")
if(NOT EXISTS ${CMAKE_MATCH_1}/model/session.h)
  message(FATAL_ERROR "pkg-config's include folder ${CMAKE_MATCH_1} lacks model/session.h")
endif()

# The installed binary: no source-tree path compiled in, and the demo reads its text from
# share/kvzip-vk (stories260K's 512-token context is too short for it: the error proves the read).
file(STRINGS ${prefix}/bin/kvzip src_paths REGEX "${SRC}/tools")
if(src_paths)
  message(FATAL_ERROR "the installed kvzip names source-tree paths: ${src_paths}")
endif()
run_ok(${prefix}/bin/kvzip --version)
execute_process(COMMAND ${prefix}/bin/kvzip run -m ${SRC}/tests/data/stories260K/stories260K.bin
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 1 OR NOT err MATCHES "kvzip: error: context of [0-9]+ tokens")
  message(FATAL_ERROR "the installed demo did not read its text (${rc}):\n${out}\n${err}")
endif()
message(STATUS "install, consumer, pkg-config and data lookup OK")
