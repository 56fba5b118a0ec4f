// Every C entry point runs its body through guarded(): exceptions become a status plus the
// thread-local message "<function>: <detail>", so nothing C++ crosses the ABI.
#pragma once

#include <exception>
#include <new>

#include "core/error.h"
#include "megamoe/megamoe.h"

namespace megamoe {

// Never throws: if the message cannot be stored, megamoe_last_error_message() reports that instead.
void set_last_error(const char* function, const char* detail) noexcept;

template <typename Body>
megamoe_status_t guarded(const char* function, Body&& body) noexcept {
  try {
    body();
    return MEGAMOE_SUCCESS;
  } catch (const Error& e) {
    set_last_error(function, e.what());
    return e.status();
  } catch (const std::bad_alloc&) {
    set_last_error(function, "out of host memory");
    return MEGAMOE_ERROR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    set_last_error(function, e.what());
    return MEGAMOE_ERROR_INTERNAL;
  } catch (...) {
    set_last_error(function, "unknown exception");
    return MEGAMOE_ERROR_INTERNAL;
  }
}

}  // namespace megamoe
