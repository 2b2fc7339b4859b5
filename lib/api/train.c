/* Training batches and the training step. Batches are real now; the step
 * (backward pass, losses, optimizer) arrives with the training work. */
#include <stdlib.h>
#include <string.h>

#include "api/session.h"
#include "core/error.h"

typedef struct batch_item {
    const dlv_image *image;  /* borrowed */
    char *caption;
    char *long_caption;      /* NULL for none */
} batch_item;

struct dlv_batch {
    batch_item *items;
    size_t n, cap;
};

DLV_API dlv_status dlv_batch_new(dlv_batch **out)
{
    if (!out) return dlv_error(DLV_E_INVALID_ARG, "dlv_batch_new: out is NULL");
    *out = calloc(1, sizeof **out);
    if (!*out) return dlv_error_nomem("batch", sizeof **out);
    return DLV_OK;
}

DLV_API void dlv_batch_free(dlv_batch *batch)
{
    if (!batch) return;
    for (size_t i = 0; i < batch->n; i++) {
        free(batch->items[i].caption);
        free(batch->items[i].long_caption);
    }
    free(batch->items);
    free(batch);
}

DLV_API dlv_status dlv_batch_add(dlv_batch *batch, const dlv_image *image, const char *caption,
                                 const char *long_caption)
{
    if (!batch || !image || !caption)
        return dlv_error(DLV_E_INVALID_ARG,
                         "dlv_batch_add: batch, image and caption must not be NULL");
    if (batch->n == batch->cap) {
        size_t cap = batch->cap ? batch->cap * 2 : 16;
        batch_item *items = realloc(batch->items, cap * sizeof *items);
        if (!items) return dlv_error_nomem("batch items", cap * sizeof *items);
        batch->items = items;
        batch->cap = cap;
    }
    batch_item it = {.image = image, .caption = strdup(caption), .long_caption = NULL};
    if (long_caption) it.long_caption = strdup(long_caption);
    if (!it.caption || (long_caption && !it.long_caption)) {
        free(it.caption);
        free(it.long_caption);
        return dlv_error_nomem("batch captions", strlen(caption) + 1);
    }
    batch->items[batch->n++] = it;
    return DLV_OK;
}

DLV_API dlv_status dlv_train_step(dlv_session *session, const dlv_batch *batch,
                                  dlv_train_stats *stats)
{
    if (!session || !batch || !stats)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_train_step: NULL argument");
    if (stats->struct_size < offsetof(dlv_train_stats, loss) + sizeof stats->loss)
        return dlv_error(DLV_E_INVALID_ARG,
                         "dlv_train_step: stats->struct_size (%zu) is not set; use "
                         "DLV_TRAIN_STATS_INIT", stats->struct_size);
    if (batch->n == 0) return dlv_error(DLV_E_INVALID_ARG, "dlv_train_step: the batch is empty");
    return dlv_error(DLV_E_NOT_IMPLEMENTED,
                     "dlv_train_step: training is not implemented in libdisclvlm %s",
                     DLV_VERSION_STRING);
}
