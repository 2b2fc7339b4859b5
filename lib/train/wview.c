/* Weight views (see wview.h). */
#include "train/wview.h"

#include <string.h>

ptrdiff_t dlv_wview_index(const dlv_wview *v, dlv_weight_part part, const char *canonical)
{
    if (!v || !v->weights || !canonical) return -1;
    const dlv_weights *w = v->weights;
    for (size_t i = 0; i < w->n; i++)
        if (w->items[i].part == part && strcmp(w->items[i].canonical, canonical) == 0)
            return (ptrdiff_t)i;
    return -1;
}

const dlv_st_tensor *dlv_wview_get(const dlv_wview *v, dlv_weight_part part,
                                   const char *canonical, float **grad)
{
    if (grad) *grad = NULL;
    ptrdiff_t i = dlv_wview_index(v, part, canonical);
    if (i < 0) return NULL;
    if (grad && v->grad) *grad = v->grad[i];
    if (v->value && v->value[i]) return v->value[i];
    return v->weights->items[i].tensor;
}

dlv_wview dlv_wview_frozen(const dlv_weights *w)
{
    dlv_wview v = {w, NULL, NULL};
    return v;
}
