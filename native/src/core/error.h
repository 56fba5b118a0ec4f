// Errors inside the library are C++ exceptions carrying a status; the C ABI layer turns them into a
// status code plus the thread-local message (abi/guard.h). Nothing else may throw across it.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

#include "megamoe/megamoe.h"

namespace megamoe {

class Error : public std::runtime_error {
 public:
  Error(megamoe_status_t status, const std::string& message) : std::runtime_error(message), status_(status) {}
  megamoe_status_t status() const noexcept { return status_; }

 private:
  megamoe_status_t status_;
};

// Concatenates anything streamable: cat("expected ", n, " rows").
template <typename... Parts>
std::string cat(Parts&&... parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  return out.str();
}

template <typename... Parts>
[[noreturn]] void fail(megamoe_status_t status, Parts&&... parts) {
  throw Error(status, cat(std::forward<Parts>(parts)...));
}

// Rejects an argument: MEGAMOE_ERROR_INVALID_ARGUMENT, "argument '<name>': <detail>".
template <typename... Parts>
[[noreturn]] void invalid(const char* argument, Parts&&... parts) {
  fail(MEGAMOE_ERROR_INVALID_ARGUMENT, "argument '", argument, "': ", std::forward<Parts>(parts)...);
}

}  // namespace megamoe
