# ctest script: installs the build into a scratch prefix, then configures, builds and runs the C
# quickstart against it through find_package(MegaMoe).
set(prefix "${BUILD_DIR}/_test_install")
set(consumer "${BUILD_DIR}/_test_consumer")
file(REMOVE_RECURSE "${prefix}" "${consumer}")

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  message("${out}")
endfunction()

run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}")
run(${CMAKE_COMMAND} -S "${SOURCE_DIR}/examples/c" -B "${consumer}" -G "${GENERATOR}" "-DCMAKE_PREFIX_PATH=${prefix}")
run(${CMAKE_COMMAND} --build "${consumer}")
run("${consumer}/megamoe_quickstart")
