/* The contents of the opaque option objects. Adding a field here never
 * changes the public ABI: callers only hold pointers and call setters. */
#ifndef DLV_API_OPTIONS_H
#define DLV_API_OPTIONS_H

#include "disclvlm.h"

struct dlv_model_options {
    char backend[16];   /* "cpu", "sim", "cuda", "auto" */
    int device;
    int weight_dtype;   /* a dlv_dtype; DLV_DTYPE_COUNT: as stored ("auto") */
};

struct dlv_session_options {
    int n_threads;      /* 0 = online CPUs */
    int truncate;       /* 1: cut captions that do not fit the model's positions */
    int compute_bf16;   /* 1: matmuls in bf16 (dlv_session_options_set_compute) */
};

/* The defaults used when a caller passes NULL. */
void dlv_model_options_defaults(dlv_model_options *o);
void dlv_session_options_defaults(dlv_session_options *o);

#endif
