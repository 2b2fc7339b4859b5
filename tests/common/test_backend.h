/* The backend a test runs its models on: DLV_TEST_BACKEND ("cpu" when
 * unset). meson registers the golden, training and CLIPModel tests a second
 * time with DLV_TEST_BACKEND=sim (tests/meson.build), so the whole path runs
 * on device memory the host cannot read and must give the cpu results.
 * Header-only: each test stays one translation unit plus its helpers. */
#ifndef DLV_TESTS_TEST_BACKEND_H
#define DLV_TESTS_TEST_BACKEND_H

#include <stdio.h>
#include <stdlib.h>

#include "disclvlm.h"

static inline const char *test_backend_name(void)
{
    const char *b = getenv("DLV_TEST_BACKEND");
    return b && *b ? b : "cpu";
}

/* dlv_model_load on the test's backend. */
static inline dlv_status test_model_load(const char *dir, dlv_model **out)
{
    dlv_model_options *o = NULL;
    dlv_status st = dlv_model_options_new(&o);
    if (st == DLV_OK) st = dlv_model_options_set_backend(o, test_backend_name());
    if (st == DLV_OK) st = dlv_model_load(dir, o, out);
    else if (out) *out = NULL;
    dlv_model_options_free(o);
    return st;
}

#endif
