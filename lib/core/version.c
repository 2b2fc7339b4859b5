/* Run-time version and build feature queries. */
#include "dlv_build_config.h"
#include "disclvlm.h"

_Static_assert(DLV_VERSION_MAJOR * 10000 + DLV_VERSION_MINOR * 100 + DLV_VERSION_PATCH ==
                   DLV_VERSION_NUMBER,
               "version macros disagree");

DLV_API const char *dlv_version(void) { return DLV_VERSION_STRING_BUILD; }

DLV_API void dlv_version_numbers(int *major, int *minor, int *patch)
{
    if (major) *major = DLV_VERSION_MAJOR;
    if (minor) *minor = DLV_VERSION_MINOR;
    if (patch) *patch = DLV_VERSION_PATCH;
}

DLV_API const char *dlv_build_features(void)
{
    return DLV_BACKENDS_BUILT;
}
