/* Placeholder: being written. */
#include "backend/backend.h"
_Static_assert(1, "placeholder");
