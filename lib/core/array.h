/* Growing arrays: the one copy of the doubling realloc that lists of ids,
 * pieces, segments and batch items use. */
#ifndef DLV_CORE_ARRAY_H
#define DLV_CORE_ARRAY_H

#include <stddef.h>

/* Room for more elements of elem bytes: returns items reallocated to twice
 * *cap elements (first when *cap is 0) and sets *cap; or NULL, with
 * DLV_E_NOMEM recorded naming `what`, items and *cap untouched (also when
 * the new size would overflow). */
void *dlv_array_grow(void *items, size_t *cap, size_t elem, size_t first, const char *what);

#endif
