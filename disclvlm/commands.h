/* The disclvlm command-line tool: one file per subcommand. Each returns the
 * process exit code; errors go to stderr as one line. */
#ifndef DISCLVLM_COMMANDS_H
#define DISCLVLM_COMMANDS_H

int cmd_info(int argc, char **argv);
int cmd_preprocess(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);   /* also cmd_detokenize, cmd_tokenize.c */
int cmd_detokenize(int argc, char **argv);
int cmd_embed(int argc, char **argv);        /* cmd_encode.c */
int cmd_encode_image(int argc, char **argv); /* cmd_encode.c */
int cmd_encode_text(int argc, char **argv);  /* cmd_encode.c */
int cmd_score(int argc, char **argv);
int cmd_eval(int argc, char **argv);         /* cmd_eval.c, cmd_eval_tasks.c */
int cmd_train(int argc, char **argv);        /* cmd_train.c, train_data.c */
int cmd_shapesworld(int argc, char **argv);  /* cmd_shapesworld.c, shapesworld.c */
int cmd_serve(int argc, char **argv);        /* cmd_serve.c, serve_api.c */

/* Prints "disclvlm: <context>: <last error>" to stderr; returns 1. */
int cli_fail(const char *context);

/* ---- Shared by the commands that run the model (cmd_encode.c) ---- */

#include <stddef.h>

#include "disclvlm.h"

/* --model DIR, --adapter DIR, --backend NAME, --threads N, --compute DTYPE,
 * --weight-dtype DTYPE, --truncate. */
typedef struct cli_run_opts {
    const char *model_dir;
    const char *adapter_dir; /* NULL: no adapter */
    const char *backend;     /* "cpu" unless given */
    int threads;             /* -1: the library's default */
    const char *compute;     /* --compute: "f32" (default) or "bf16" */
    const char *weight_dtype; /* --weight-dtype: "auto" (default), "f32", "bf16", "f16" */
    int truncate;            /* --truncate: cut texts that do not fit the model */
} cli_run_opts;

#define CLI_RUN_OPTS_INIT {NULL, NULL, "cpu", -1, "f32", "auto", 0}

/* The usage lines of the options above, for the commands' --help. */
#define CLI_RUN_OPTS_HELP                                                                \
    "  --model DIR        the Hugging Face LLaVA model directory (required)\n"         \
    "  --adapter DIR      an adapter directory (docs/adapter-format.md)\n"              \
    "  --backend NAME     cpu (default), cuda or auto\n"                               \
    "  --threads N        CPU worker threads (default 0: one per online CPU)\n"         \
    "  --compute f32|bf16 what the matrix products compute in (default f32: exact;\n"  \
    "                     bf16: ~2x faster on CPUs with AVX512-BF16, cosine >= 0.9999)\n" \
    "  --weight-dtype auto|f32|bf16|f16\n"                                             \
    "                     hold the weights in this dtype (default auto: as stored;\n"  \
    "                     f32 makes f32 compute on a bf16 checkpoint faster, at 2x\n"  \
    "                     its memory)\n"                                                  \
    "  --truncate         cut texts longer than the model's max_position_embeddings\n"  \
    "                     (default: refuse them, naming the first)\n"

/* "disclvlm: CMD: WHAT is required (see 'disclvlm CMD --help')" on stderr;
 * returns 2 (a usage error). */
int cli_missing(const char *cmd, const char *what);

/* If argv[*i] is one of the options above, consumes it and its value and
 * returns 1; returns 0 if it is none of them; prints a usage error and
 * returns -1 (exit 2) for a missing or bad value. */
int cli_run_opt(const char *cmd, int argc, char **argv, int *i, cli_run_opts *o);

/* Loads the model, opens a session, loads the adapter; *dim receives the
 * embedding size. Returns 0, or prints the error and returns 1 (the caller
 * frees what was set, with dlv_session_free / dlv_model_free). */
int cli_open(const char *cmd, const cli_run_opts *o, dlv_model **model, dlv_session **session,
             size_t *dim);
/* The session part of cli_open, for one more session on a loaded model
 * (disclvlm serve's workers). */
int cli_open_session(const char *cmd, const cli_run_opts *o, dlv_model *model,
                     dlv_session **session);

/* Encode n image files / texts into out (n x dim floats) in bounded chunks,
 * with a progress line on stderr when it is a terminal. Return 0, or print
 * the error and return 1. */
int cli_encode_image_files(const char *cmd, dlv_session *session, const char *const *paths,
                           size_t n, size_t dim, float *out);
int cli_encode_texts(const char *cmd, dlv_session *session, const char *const *texts, size_t n,
                     size_t dim, float *out);

/* Before anything runs: every text's sequence must fit the model's
 * positions (dlv_text_positions). Without truncate the first that does not
 * is an error naming it ("FILE:LINE" when file is given, text i+1 being
 * line i+1, else "text N") and the limit; with it, a note says how many
 * will be cut. Returns 0, or prints the error and returns 1. */
/* Whether text's sequence (what: DLV_POSITIONS_*) fits the model: 0, or 1
 * with the reason in why; -1 after printing a library error. An
 * image-then-text sequence the model does not have (a CLIPModel) fits. */
int cli_text_fits(const char *cmd, dlv_session *session, const char *text, int what,
                  char *why, size_t cap);

int cli_check_texts(const char *cmd, dlv_session *session, const char *const *texts, size_t n,
                    int truncate, const char *file);

#endif
