// The public header must compile as C++ (extern "C", no C-only syntax) and
// link against the C library from a C++ translation unit.
#include "disclvlm.h"

#include <cstdio>
#include <cstring>

int main()
{
    dlv_train_stats stats = DLV_TRAIN_STATS_INIT;
    if (stats.struct_size != sizeof(dlv_train_stats)) return 1;
    if (std::strcmp(dlv_version(), DLV_VERSION_STRING) != 0) return 1;
    dlv_model_options *opts = nullptr;
    if (dlv_model_options_new(&opts) != DLV_OK) return 1;
    if (dlv_model_options_set_backend(opts, "no-such-backend") != DLV_E_INVALID_ARG) return 1;
    std::printf("C++: %s (%s)\n", dlv_version(), dlv_last_error());
    dlv_model_options_free(opts);
    return 0;
}
