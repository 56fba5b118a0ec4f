// Version, build description and public struct sizes.
#include <cstring>

#include "megamoe/megamoe.h"

#define MEGAMOE_STRINGIFY_(x) #x
#define MEGAMOE_STRINGIFY(x) MEGAMOE_STRINGIFY_(x)

#if defined(MEGAMOE_WITH_CUDA)
#define MEGAMOE_BUILD_CUDA "cuda=ON;cuda_architectures=" MEGAMOE_CUDA_ARCHITECTURES
#else
#define MEGAMOE_BUILD_CUDA "cuda=OFF;cuda_disabled_reason=" MEGAMOE_CUDA_DISABLED_REASON
#endif

extern "C" {

MEGAMOE_API int32_t megamoe_version(void) { return MEGAMOE_VERSION; }

MEGAMOE_API const char* megamoe_version_string(void) {
  return MEGAMOE_STRINGIFY(MEGAMOE_VERSION_MAJOR) "." MEGAMOE_STRINGIFY(MEGAMOE_VERSION_MINOR) "." MEGAMOE_STRINGIFY(
      MEGAMOE_VERSION_PATCH);
}

MEGAMOE_API const char* megamoe_build_info(void) {
  return "version=" MEGAMOE_STRINGIFY(MEGAMOE_VERSION_MAJOR) "." MEGAMOE_STRINGIFY(MEGAMOE_VERSION_MINOR) "." MEGAMOE_STRINGIFY(
      MEGAMOE_VERSION_PATCH) ";compiler=" MEGAMOE_COMPILER_ID ";build_type=" MEGAMOE_BUILD_TYPE ";" MEGAMOE_BUILD_CUDA;
}

MEGAMOE_API int64_t megamoe_struct_size(const char* type_name) {
  if (type_name == nullptr) return -1;
  if (std::strcmp(type_name, "megamoe_tensor_t") == 0) return sizeof(megamoe_tensor_t);
  if (std::strcmp(type_name, "megamoe_device_info_t") == 0) return sizeof(megamoe_device_info_t);
  if (std::strcmp(type_name, "megamoe_moe_config_t") == 0) return sizeof(megamoe_moe_config_t);
  if (std::strcmp(type_name, "megamoe_ep_config_t") == 0) return sizeof(megamoe_ep_config_t);
  return -1;
}

}  // extern "C"
