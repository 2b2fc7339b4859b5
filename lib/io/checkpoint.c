/* Placeholder: being written. */
#include "io/safetensors.h"
_Static_assert(1, "placeholder");
