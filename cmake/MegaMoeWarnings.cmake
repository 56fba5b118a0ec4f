# Warnings for MegaMoe's own targets (never for third-party code).
function(megamoe_set_warnings target)
  if(MSVC)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:/W4 /permissive->)
  else()
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion
                                -Werror=return-type -Werror=uninitialized>)
  endif()
endfunction()
