/* disclvlm eval: shared state and helpers of the evaluation commands
 * (cmd_eval.c: options, model, encoding with progress, cache, Ctrl-C,
 * output; cmd_eval_tasks.c: retrieval, sugarcrepe, winoground,
 * classify). */
#ifndef DISCLVLM_EVAL_CLI_H
#define DISCLVLM_EVAL_CLI_H

#include <jansson.h>
#include <stddef.h>

#include "commands.h"
#include "dist.h"
#include "core/error.h" /* dlv_error_message: the tools' own messages */
#include "data/dataset.h"
#include "disclvlm.h"

typedef struct eval_ctx {
    const char *task;       /* "retrieval", ... */
    cli_run_opts run;
    const char **data;      /* --data values (sugarcrepe: several) */
    size_t n_data;
    const char *images;     /* --images ROOT */
    const char *split;      /* --split (retrieval; default "test") */
    const char *classes;    /* --classes (classify) */
    const char *templates;  /* --templates (classify) */
    const char *cache;      /* --cache DIR */
    size_t limit;           /* --limit N; 0 = all */
    int json;               /* --json */
    dlv_model *model;
    dlv_session *session;
    size_t dim;
    char model_key[65];     /* identity of model + adapter for the cache */
    const char *dist;       /* --dist auto|mpi|none */
    cli_dist d;             /* data-parallel: the ranks (one process: no comm) */
} eval_ctx;

/* Prints "disclvlm eval TASK: <message of the internal modules>"; returns 1. */
int eval_fail(const eval_ctx *c);
/* Prints "disclvlm eval TASK: what: <dlv_last_error()>"; returns 1, or 130
 * (with "interrupted") after Ctrl-C. */
int eval_fail_api(const eval_ctx *c, const char *what);
/* Prints "disclvlm eval TASK: <formatted>"; returns 1. */
int eval_failf(const eval_ctx *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Loads the model and the adapter, installs the Ctrl-C handler. 0 or 1. */
int eval_open(eval_ctx *c);
void eval_close(eval_ctx *c);
/* 1 once Ctrl-C was pressed. */
int eval_interrupted(void);

/* Embeds n images (path or in-memory bytes of each sample) / n texts into
 * out (n x dim), skipping repeated paths / texts, through the cache when
 * --cache is given, with a progress display. 0, 1 or 130. */
int eval_encode_images(eval_ctx *c, const dlv_sample *imgs, size_t n, float *out);
int eval_encode_paths(eval_ctx *c, const char *const *paths, size_t n, float *out);
int eval_encode_texts(eval_ctx *c, const char *const *texts, size_t n, float *out);

/* n x dim floats (NULL with a message when too big). */
float *eval_alloc(const eval_ctx *c, size_t n, size_t dim);

/* The dot product of two rows (double accumulation). */
double eval_dot(const float *a, const float *b, size_t dim);

/* The JSON header every result carries: tool and library version, task,
 * model, adapter (+ hashes), prompts, data files (+ SHA-256), limit. Adds
 * to obj; 0 or 1. */
int eval_json_header(const eval_ctx *c, json_t *obj);
/* SHA-256 of a data file, of the shards of a WebDataset pattern (their
 * bytes in order) or of a folder's listing (relative paths and sizes of
 * the image files). 0 or 1. */
int eval_data_hash(const eval_ctx *c, const char *data, char hex[65]);
/* Prints obj (indented) to stdout and frees it; 0 or 1. */
int eval_json_print(json_t *obj);

int eval_retrieval(eval_ctx *c);
int eval_sugarcrepe(eval_ctx *c);
int eval_winoground(eval_ctx *c);
int eval_classify(eval_ctx *c);

#endif
