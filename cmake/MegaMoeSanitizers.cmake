# -DMEGAMOE_SANITIZE=ON: ASan + UBSan (+ LSan through ASan) for the host code and its tests.
if(MEGAMOE_SANITIZE)
  if(MSVC)
    message(FATAL_ERROR "MEGAMOE_SANITIZE is supported with GCC and Clang only")
  endif()
  add_compile_options($<$<COMPILE_LANGUAGE:C,CXX>:-fsanitize=address,undefined>
                      $<$<COMPILE_LANGUAGE:C,CXX>:-fno-sanitize-recover=all>
                      $<$<COMPILE_LANGUAGE:C,CXX>:-fno-omit-frame-pointer>)
  add_link_options(-fsanitize=address,undefined)
endif()

# -DMEGAMOE_TSAN=ON: ThreadSanitizer for the host code and its tests (the tsan preset; CI runs the
# concurrency tests under it). It cannot share a process with ASan.
if(MEGAMOE_TSAN)
  if(MSVC OR MEGAMOE_SANITIZE)
    message(FATAL_ERROR "MEGAMOE_TSAN needs GCC or Clang and MEGAMOE_SANITIZE=OFF")
  endif()
  add_compile_options($<$<COMPILE_LANGUAGE:C,CXX>:-fsanitize=thread>
                      $<$<COMPILE_LANGUAGE:C,CXX>:-fno-omit-frame-pointer>)
  add_link_options(-fsanitize=thread)
endif()
