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
