/* The public header alone, compiled with the project's strict warnings in
 * several C standards. */
#include "disclvlm.h"

#include <string.h>

int main(void)
{
    dlv_train_stats stats = DLV_TRAIN_STATS_INIT;
#if DLV_VERSION_NUMBER < 100
#error "version number macro is wrong"
#endif
    return (stats.struct_size == sizeof stats && strcmp(dlv_version(), DLV_VERSION_STRING) == 0) ? 0 : 1;
}
