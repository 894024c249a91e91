# `cmake --install`: the kvzip binary, the layer libraries with their public headers, a CMake
# package (find_package(kvzip_vk): kvzip_vk::session, ::model, ::kvzip, ::runtime, ::shaders), a
# pkg-config file (kvzip-vk.pc) and the data the binary reads (share/kvzip-vk). Included last by
# the top-level CMakeLists.txt.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(KVZ_INCLUDE_SUBDIR kvzip-vk)
# Build-tree include paths become install-tree ones in the exported targets.
set_target_properties(kvz_runtime kvz_kvzip kvz_model PROPERTIES INTERFACE_INCLUDE_DIRECTORIES
  "$<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>;$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/${KVZ_INCLUDE_SUBDIR}>")
get_target_property(KVZ_SHADERS_GEN kvz_shaders INTERFACE_INCLUDE_DIRECTORIES)
set_target_properties(kvz_shaders PROPERTIES INTERFACE_INCLUDE_DIRECTORIES
  "$<BUILD_INTERFACE:${KVZ_SHADERS_GEN}>;$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/${KVZ_INCLUDE_SUBDIR}>")

# The Session API's target: everything from the model layer down.
add_library(kvz_session INTERFACE)
target_link_libraries(kvz_session INTERFACE kvz_model)
foreach(t shaders runtime kvzip model session)
  set_target_properties(kvz_${t} PROPERTIES EXPORT_NAME ${t})
  add_library(kvzip_vk::${t} ALIAS kvz_${t})
endforeach()

install(TARGETS kvz_shaders kvz_runtime kvz_kvzip kvz_model kvz_session EXPORT kvzip_vk_targets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
if(TARGET kvzip)
  install(TARGETS kvzip RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
# Public headers: the layers' headers (runtime/vk/ stays private), and the generated shader registry
# that runtime/recorder.h includes.
foreach(dir runtime runtime/args runtime/ops runtime/cpu kvzip model model/families)
  file(GLOB hdrs ${PROJECT_SOURCE_DIR}/${dir}/*.h)
  install(FILES ${hdrs} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/${KVZ_INCLUDE_SUBDIR}/${dir})
endforeach()
install(FILES ${KVZ_SHADERS_GEN}/kvz_shaders.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/${KVZ_INCLUDE_SUBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/tools/data/
        DESTINATION ${CMAKE_INSTALL_DATADIR}/kvzip-vk)

set(KVZ_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/kvzip_vk)
install(EXPORT kvzip_vk_targets NAMESPACE kvzip_vk:: DESTINATION ${KVZ_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/kvzip_vkConfig.cmake.in
  ${PROJECT_BINARY_DIR}/kvzip_vkConfig.cmake INSTALL_DESTINATION ${KVZ_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/kvzip_vkConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/kvzip_vkConfig.cmake
              ${PROJECT_BINARY_DIR}/kvzip_vkConfigVersion.cmake DESTINATION ${KVZ_CMAKE_DIR})
# Relocatable: prefix is found from the .pc file's own folder (lib/pkgconfig/../..).
configure_file(${PROJECT_SOURCE_DIR}/cmake/kvzip-vk.pc.in ${PROJECT_BINARY_DIR}/kvzip-vk.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/kvzip-vk.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
