/* Placeholder: being written. */
#include "model/config.h"
_Static_assert(1, "placeholder");
