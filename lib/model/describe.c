/* Placeholder: being written. */
#include "model/model.h"
_Static_assert(1, "placeholder");
