#include "core/array.h"

#include <stdint.h>
#include <stdlib.h>

#include "core/error.h"

void *dlv_array_grow(void *items, size_t *cap, size_t elem, size_t first, const char *what)
{
    if (*cap > SIZE_MAX / 2 / elem || first > SIZE_MAX / elem) {
        dlv_error(DLV_E_NOMEM, "out of memory: %s cannot grow past %zu elements", what, *cap);
        return NULL;
    }
    const size_t n = *cap ? 2 * *cap : first;
    void *p = realloc(items, n * elem);
    if (!p) {
        dlv_error_nomem(what, n * elem);
        return NULL;
    }
    *cap = n;
    return p;
}
