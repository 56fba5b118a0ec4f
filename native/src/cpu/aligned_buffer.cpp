#include "cpu/aligned_buffer.h"

#include <sys/mman.h>

#include <cstdlib>

#include "core/error.h"

namespace megamoe::cpu {

namespace {

// Large buffers (a layer's weights are gigabytes) are 2 MiB aligned and marked for transparent
// huge pages: first-touch page faults dominate copying weights otherwise, 512 times fewer of them.
constexpr size_t kHugePage = size_t{2} << 20;

}  // namespace

void* aligned_allocate(int64_t bytes) {
  if (bytes < 0) fail(MEGAMOE_ERROR_OUT_OF_MEMORY, "cannot allocate ", bytes, " bytes of host memory");
  const auto wanted = static_cast<size_t>(bytes < 1 ? 1 : bytes);
  const size_t alignment = wanted >= kHugePage ? kHugePage : kHostAlignment;
  // std::aligned_alloc wants a multiple of the alignment; a non-null pointer for 0 bytes keeps
  // "allocation failed" unambiguous.
  const size_t rounded = (wanted + alignment - 1) / alignment * alignment;
  void* data = std::aligned_alloc(alignment, rounded);
  if (data == nullptr) fail(MEGAMOE_ERROR_OUT_OF_MEMORY, "cannot allocate ", bytes, " bytes of host memory");
#ifdef MADV_HUGEPAGE
  if (alignment == kHugePage) madvise(data, rounded, MADV_HUGEPAGE);  // a hint; failure is harmless
#endif
  return data;
}

void aligned_free(void* data) noexcept { std::free(data); }

}  // namespace megamoe::cpu
