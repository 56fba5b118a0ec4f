# Fuzzing (tests/fuzz, docs/RELIABILITY.md). The replay tests of the fuzz targets are part of the
# test suite in every configuration. MEGAMOE_FUZZ=ON adds the libFuzzer programs, which need clang
# and the sanitizers: the library gets coverage instrumentation here, ASan + UBSan through
# MEGAMOE_SANITIZE (the fuzz preset sets both; scripts/fuzz.sh builds and runs it).
if(MEGAMOE_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "MEGAMOE_FUZZ needs clang (libFuzzer), not ${CMAKE_CXX_COMPILER_ID}: "
                        "configure with -DCMAKE_CXX_COMPILER=clang++ (scripts/fuzz.sh finds one)")
  endif()
  if(NOT MEGAMOE_SANITIZE)
    message(FATAL_ERROR "MEGAMOE_FUZZ needs MEGAMOE_SANITIZE=ON: without ASan an out-of-bounds access "
                        "is not a crash the fuzzer can see")
  endif()
  # Edge coverage only: comparison tracing in the arithmetic loops would cost most of the time, and
  # the targets choose shapes from lists of boundary values rather than needing magic numbers.
  target_compile_options(megamoe PRIVATE -fsanitize=fuzzer-no-link -fno-sanitize-coverage=trace-cmp)
endif()

if(MEGAMOE_FUZZ OR MEGAMOE_BUILD_TESTS)
  add_subdirectory(tests/fuzz)
endif()
