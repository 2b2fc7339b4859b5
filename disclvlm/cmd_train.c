/* disclvlm train: contrastive (+ next-token) fine-tuning of soft prompts,
 * LoRA and the logit scale through the public training API, with
 * checkpoints, resumption, a per-step progress line and a JSONL log
 * (docs/cli.md, "Training"). The examples and their order are in
 * train_data.c. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "dist.h"
#include "disclvlm.h"
#include "train_data.h"

#define DEFAULT_BATCH 8

static void usage(FILE *to)
{
    fprintf(to,
            "usage: disclvlm train --model DIR --data TRAIN.jsonl --out ADAPTER_DIR [options]\n"
            "\n"
            "Fine-tunes an adapter (soft prompts, LoRA, logit scale) with the contrastive\n"
            "loss on the short captions plus the next-token loss on the long ones, and\n"
            "writes it to ADAPTER_DIR; the training checkpoint (adapter + optimizer state)\n"
            "goes to ADAPTER_DIR.ckpt. One JSON object per line in the data file:\n"
            "{\"image\": \"path relative to the file\", \"caption\": \"short\",\n"
            " \"long_caption\": \"long\"} (long_caption optional; .csv/.tsv/.tar also read).\n"
            "\n"
            "data and steps:\n"
            "  --steps N            optimizer steps (default ceil(examples / B) * epochs;\n"
            "                       0 writes the initial adapter)\n"
            "  --epochs E           passes over the data when --steps is not given (1)\n"
            "  --batch B            examples per step (%d); an epoch's last batch may be short\n"
            "  --micro-batch M      GradCache micro-batch (0: the whole batch at once)\n"
            "  --shuffle            a new seeded order each epoch (default: file order)\n"
            "  --seed S             LoRA initialisation and shuffle seed (0)\n"
            "  --on-bad-example skip|fail\n"
            "                       an example whose image does not decode or whose\n"
            "                       caption is empty is skipped (default) or fatal\n"
            "optimisation:\n"
            "  --lr X (1e-4)  --optimizer adamw|sgd  --weight-decay X (0)  --grad-clip X (0: off)\n"
            "  --schedule constant|cosine  --warmup N (0)\n"
            "  --train SETS         trainable sets, from soft,lora,logit_scale,projector,llm,\n"
            "                       vision (default soft,lora,logit_scale)\n"
            "  --lora-rank R (16)  --lora-alpha A (16)\n"
            "  --lora-targets LIST  from q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj\n"
            "  --ntp-weight X       weight of the next-token loss (1; 0: off)\n"
            "  --no-contrastive     switch the contrastive loss off\n"
            "  --recompute          recompute activations per layer (less memory)\n"
            "starting point and output:\n"
            "  --init DIR           start from this adapter (soft prompts, LoRA, scale, prompts)\n"
            "  --resume CKPT        continue a run from its checkpoint (same data and options)\n"
            "  --save-every N       also write the checkpoint every N steps\n"
            "  --log LOG.jsonl      one JSON object per step (appended to when resuming)\n"
            "  --save-model DIR     also write the trained model (projector/llm/vision sets)\n"
            "                       as a Hugging Face model directory\n"
            "  --save-model-dtype f32|bf16|f16\n"
            "                       convert its float tensors (default: as the checkpoint)\n"
            "  --dist auto|mpi|none data-parallel over the ranks of an MPI job (default auto:\n"
            "                       when started by mpirun or srun); --batch is global\n"
            "  --backend NAME       cpu (default), cuda, auto, or sim (test builds)\n"
            "  --threads N          CPU worker threads (default 0: one per online CPU)\n"
            "  --compute f32|bf16   what the matrix products compute in (default f32)\n"
            "  --weight-dtype auto|f32|bf16|f16\n"
            "                       hold the weights in this dtype (default: as stored)\n",
            DEFAULT_BATCH);
}

/* The command line. */
typedef struct train_cli {
    cli_run_opts run;
    const char *data, *out, *init, *resume, *log, *save_model, *save_model_dtype;
    long long steps;      /* -1: from the epochs */
    long long epochs;
    long long batch;
    long long save_every; /* 0: only at the end */
    uint64_t seed;
    int shuffle, on_bad_fail;
    int ntp_off;          /* --ntp-weight 0: long captions are not used */
    int no_contrastive;   /* --no-contrastive */
    dlv_train_options *topts;
    char lib_given[256];  /* the optimisation options given, for the --resume note */
    const char *dist;     /* --dist: "auto" (default), "mpi" or "none" */
    cli_dist d;           /* data-parallel: the ranks (one process: no comm) */
} train_cli;

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "disclvlm: train: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see 'disclvlm train --help')\n");
    va_end(ap);
    return 2;
}

static int parse_count(const char *opt, const char *v, long long lo, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || *end || n < lo) {
        fprintf(stderr, "disclvlm: train: %s: '%s' is not an integer >= %lld (see 'disclvlm "
                        "train --help')\n", opt, v, lo);
        return 2;
    }
    *out = n;
    return 0;
}

/* The options passed straight to dlv_train_options_set. */
static const struct {
    const char *opt, *key;
} lib_opts[] = {
    {"--micro-batch", "micro_batch"}, {"--lr", "lr"},
    {"--optimizer", "optimizer"},     {"--weight-decay", "weight_decay"},
    {"--grad-clip", "grad_clip"},     {"--schedule", "schedule"},
    {"--warmup", "warmup"},           {"--lora-rank", "lora_rank"},
    {"--lora-alpha", "lora_alpha"},   {"--lora-targets", "lora_targets"},
    {"--train", "train"},             {"--ntp-weight", "ntp_weight"},
};

static void note_given(train_cli *c, const char *opt)
{
    size_t used = strlen(c->lib_given);
    snprintf(c->lib_given + used, sizeof c->lib_given - used, "%s%s", used ? " " : "", opt);
}

static int lib_set(train_cli *c, const char *opt, const char *key, const char *value)
{
    note_given(c, opt);
    if (dlv_train_options_set(c->topts, key, value) != DLV_OK) {
        fprintf(stderr, "disclvlm: train: %s: %s\n", opt, dlv_last_error());
        return 2;
    }
    return 0;
}

/* The tool's own options that take a value. */
static int is_value_opt(const char *a)
{
    static const char *const names[] = {"--data", "--out", "--init", "--resume", "--log",
                                         "--steps", "--epochs", "--batch", "--save-every",
                                         "--seed", "--on-bad-example", "--save-model",
                                         "--save-model-dtype", "--dist"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        if (!strcmp(a, names[k])) return 1;
    return 0;
}

/* Returns 0, 2 (usage error) or -1 (--help printed: exit 0). */
static int parse(int argc, char **argv, train_cli *c)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return -1;
        }
        if (!strcmp(a, "--adapter"))
            return usage_error("%s: use --init DIR to start from an adapter", a);
        int r = cli_run_opt("train", argc, argv, &i, &c->run);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (!strcmp(a, "--shuffle")) {
            c->shuffle = 1;
            continue;
        }
        if (!strcmp(a, "--no-contrastive")) {
            c->no_contrastive = 1;
            if (lib_set(c, a, "contrastive", "0")) return 2;
            continue;
        }
        if (!strcmp(a, "--recompute")) {
            if (lib_set(c, a, "recompute", "1")) return 2;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) return usage_error("unexpected argument '%s'", a);
        const char *lib_key = NULL;
        for (size_t k = 0; k < sizeof lib_opts / sizeof lib_opts[0] && !lib_key; k++)
            if (!strcmp(a, lib_opts[k].opt)) lib_key = lib_opts[k].key;
        if (!lib_key && !is_value_opt(a)) return usage_error("unknown option '%s'", a);
        if (i + 1 >= argc) return usage_error("option '%s' needs a value", a);
        const char *v = argv[++i];
        if (lib_key) {
            if (lib_set(c, a, lib_key, v)) return 2;
            /* Long captions are checked only when the next-token loss uses them. */
            if (!strcmp(lib_key, "ntp_weight")) c->ntp_off = strtod(v, NULL) == 0.0;
            continue;
        }
        if (!strcmp(a, "--data")) c->data = v;
        else if (!strcmp(a, "--out")) c->out = v;
        else if (!strcmp(a, "--init")) c->init = v;
        else if (!strcmp(a, "--resume")) c->resume = v;
        else if (!strcmp(a, "--log")) c->log = v;
        else if (!strcmp(a, "--save-model")) c->save_model = v;
        else if (!strcmp(a, "--save-model-dtype")) c->save_model_dtype = v;
        else if (!strcmp(a, "--dist")) {
            if (!cli_dist_valid(v)) return usage_error("--dist: '%s' is not auto, mpi or none", v);
            c->dist = v;
        }
        else if (!strcmp(a, "--steps")) {
            if (parse_count(a, v, 0, &c->steps)) return 2;
        } else if (!strcmp(a, "--epochs")) {
            if (parse_count(a, v, 1, &c->epochs)) return 2;
        } else if (!strcmp(a, "--batch")) {
            if (parse_count(a, v, 1, &c->batch)) return 2;
        } else if (!strcmp(a, "--save-every")) {
            if (parse_count(a, v, 1, &c->save_every)) return 2;
        } else if (!strcmp(a, "--seed")) {
            char *end = NULL;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10);
            if (errno || end == v || *end || v[0] == '-')
                return usage_error("--seed: '%s' is not an unsigned integer", v);
            c->seed = s; /* the shuffle's seed too: not noted as ignored on --resume */
            if (dlv_train_options_set(c->topts, "seed", v) != DLV_OK) {
                fprintf(stderr, "disclvlm: train: %s: %s\n", a, dlv_last_error());
                return 2;
            }
        } else if (!strcmp(a, "--on-bad-example")) {
            if (!strcmp(v, "skip")) c->on_bad_fail = 0;
            else if (!strcmp(v, "fail")) c->on_bad_fail = 1;
            else return usage_error("--on-bad-example: '%s' is not skip or fail", v);
        }
    }
    if (!c->run.model_dir || !c->data || !c->out)
        return usage_error("%s is required", !c->run.model_dir ? "--model DIR"
                                             : !c->data        ? "--data FILE"
                                                               : "--out ADAPTER_DIR");
    if (c->init && c->resume)
        return usage_error("--init and --resume exclude each other (a checkpoint holds its "
                           "adapter)");
    if (c->batch > (long long)(SIZE_MAX / 2)) return usage_error("--batch: too large");
    return 0;
}

/* ---- Checkpoint metadata ------------------------------------------------ */

/* The step and the configured total_steps recorded in a checkpoint's
 * train_state.safetensors (its header's __metadata__ "step" and "config").
 * 0, or 1 after printing the error. */
static int checkpoint_info(const char *dir, long long *step, long long *total)
{
    size_t n = strlen(dir) + 32;
    char *path = malloc(n);
    if (!path) return fprintf(stderr, "disclvlm: train: out of memory\n"), 1;
    snprintf(path, n, "%s/train_state.safetensors", dir);
    FILE *f = fopen(path, "rb");
    unsigned char len8[8];
    char *hdr = NULL;
    json_t *root = NULL;
    int rc = 1;
    uint64_t hlen = 0;
    if (!f) {
        fprintf(stderr, "disclvlm: train: --resume: %s: %s\n", path, strerror(errno));
        goto out;
    }
    if (fread(len8, 1, 8, f) != 8) goto bad;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | len8[i];
    if (hlen == 0 || hlen > ((uint64_t)100 << 20)) goto bad;
    hdr = malloc((size_t)hlen);
    if (!hdr || fread(hdr, 1, (size_t)hlen, f) != hlen) goto bad;
    root = json_loadb(hdr, (size_t)hlen, 0, NULL);
    json_t *meta = json_object_get(root, "__metadata__");
    const char *s = json_string_value(json_object_get(meta, "step"));
    const char *cfg = json_string_value(json_object_get(meta, "config"));
    char *end = NULL;
    if (!s) goto bad;
    errno = 0;
    *step = strtoll(s, &end, 10);
    if (errno || end == s || *end || *step < 0) goto bad;
    *total = -1;
    json_t *cj = cfg ? json_loads(cfg, 0, NULL) : NULL;
    json_t *t = json_object_get(cj, "total_steps");
    if (json_is_integer(t)) *total = (long long)json_integer_value(t);
    json_decref(cj);
    rc = 0;
    goto out;
bad:
    fprintf(stderr, "disclvlm: train: --resume: %s: no readable training step in its header\n",
            path);
out:
    if (f) fclose(f);
    json_decref(root);
    free(hdr);
    free(path);
    return rc;
}

/* ---- Progress, log, Ctrl-C --------------------------------------------- */

static volatile sig_atomic_t interrupted = 0;

static void on_signal(int sig)
{
    interrupted = 1;
    signal(sig, SIG_DFL); /* a second Ctrl-C ends the process at once */
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fmt_duration(double s, char *buf, size_t cap)
{
    if (!(s >= 0) || s > 1e9) {
        snprintf(buf, cap, "?");
        return;
    }
    long long t = (long long)(s + 0.5);
    snprintf(buf, cap, "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
}

/* A JSON number, or null when not finite. */
static void json_num(FILE *f, const char *key, double v, int comma)
{
    if (isfinite(v)) fprintf(f, "\"%s\": %.9g%s", key, v, comma ? ", " : "");
    else fprintf(f, "\"%s\": null%s", key, comma ? ", " : "");
}

typedef struct step_report {
    long long step, total, epoch;
    size_t examples;      /* the global batch */
    size_t local;         /* this rank's share (examples with one process) */
    int world;
    double step_s, elapsed_s, eta_s;
    const dlv_train_stats *st;
} step_report;

static void print_progress(const step_report *r)
{
    char eta[32];
    fmt_duration(r->eta_s, eta, sizeof eta);
    fprintf(stderr,
            "disclvlm: train: step %lld/%lld epoch %lld loss %.6f (contrastive %.6f, ntp %.6f) "
            "lr %.3g grad_norm %.4g scale %.4g %.2f ex/s ETA %s\n",
            r->step, r->total, r->epoch + 1, r->st->loss, r->st->loss_contrastive,
            r->st->loss_ntp, r->st->learning_rate, r->st->grad_norm, r->st->logit_scale,
            r->step_s > 0 ? (double)r->examples / r->step_s : 0.0, eta);
}

static int write_log(FILE *f, const step_report *r)
{
    fprintf(f, "{\"step\": %lld, \"total_steps\": %lld, \"epoch\": %lld, \"examples\": %zu, "
               "\"tokens\": %" PRIu64 ", ",
            r->step, r->total, r->epoch + 1, r->examples, r->st->tokens);
    fprintf(f, "\"world_size\": %d, \"local_batch\": %zu, ", r->world, r->local);
    json_num(f, "loss", r->st->loss, 1);
    json_num(f, "loss_c", r->st->loss_contrastive, 1);
    json_num(f, "loss_ntp", r->st->loss_ntp, 1);
    json_num(f, "lr", r->st->learning_rate, 1);
    json_num(f, "grad_norm", r->st->grad_norm, 1);
    json_num(f, "logit_scale", r->st->logit_scale, 1);
    json_num(f, "examples_per_s", r->step_s > 0 ? (double)r->examples / r->step_s : 0.0, 1);
    json_num(f, "step_s", r->step_s, 1);
    json_num(f, "elapsed_s", r->elapsed_s, 1);
    json_num(f, "eta_s", r->eta_s, 0);
    fputs("}\n", f);
    return fflush(f) != 0 || ferror(f);
}

/* ---- The run ------------------------------------------------------------ */

/* --dist: joins the MPI job and checks that the global batch splits over
 * the ranks. 0, or the exit code. */
static int open_comm(train_cli *c)
{
    if (cli_dist_open("train", c->dist, &c->d)) return 1;
    if (c->d.comm && c->batch % c->d.world != 0) {
        fprintf(stderr, "disclvlm: train: --batch %lld is the global batch and must split evenly "
                        "over the %d ranks\n", c->batch, c->d.world);
        return 2;
    }
    return 0;
}

/* OUT without trailing slashes, plus ".ckpt". */
static char *checkpoint_dir(const char *out)
{
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/') n--;
    char *p = malloc(n + 6);
    if (p) {
        memcpy(p, out, n);
        memcpy(p + n, ".ckpt", 6);
    }
    return p;
}

/* Fails early, before any training, when OUT cannot be written: its parent
 * must be a writable directory and OUT, when it exists, a directory. */
static int check_out(const char *opt, const char *out)
{
    struct stat sb;
    if (stat(out, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "disclvlm: train: %s %s: exists and is not a directory\n", opt, out);
        return 1;
    }
    char *parent = strdup(out);
    if (!parent) return fprintf(stderr, "disclvlm: train: out of memory\n"), 1;
    size_t n = strlen(parent);
    while (n > 1 && parent[n - 1] == '/') parent[--n] = '\0';
    char *slash = strrchr(parent, '/');
    const char *dir = slash ? (slash == parent ? "/" : (*slash = '\0', parent)) : ".";
    int rc = 0;
    if (access(dir, W_OK | X_OK) != 0) {
        fprintf(stderr, "disclvlm: train: %s %s: cannot write in %s: %s\n", opt, out, dir,
                strerror(errno));
        rc = 1;
    }
    free(parent);
    return rc;
}

/* Saves the checkpoint; 0 or 1. */
static int save_checkpoint(dlv_session *s, const char *ckpt)
{
    dlv_status st = dlv_train_checkpoint_save(s, ckpt);
    if (st != DLV_OK) return cli_fail("train: checkpoint");
    return 0;
}

/* One step on the examples order[first .. first + k) of d. 0 or 1. */
static int run_step(dlv_session *s, const train_data *d, const size_t *order, size_t k,
                    dlv_train_stats *st)
{
    dlv_image **imgs = calloc(k, sizeof *imgs);
    dlv_batch *b = NULL;
    int rc = 0;
    if (!imgs) return fprintf(stderr, "disclvlm: train: out of memory\n"), 1;
    if (dlv_batch_new(&b) != DLV_OK) rc = cli_fail("train");
    for (size_t i = 0; i < k && !rc; i++) {
        const dlv_sample *sm = &d->ds.items[d->good[order[i]]];
        const char *lc = (sm->long_caption && *sm->long_caption) ? sm->long_caption : NULL;
        if (train_sample_image(sm, &imgs[i]) != DLV_OK ||
            dlv_batch_add(b, imgs[i], sm->caption, lc) != DLV_OK)
            rc = cli_fail(sm->where ? sm->where : "train");
    }
    if (!rc && dlv_train_step(s, b, st) != DLV_OK) rc = cli_fail("train: step");
    dlv_batch_free(b);
    for (size_t i = 0; i < k; i++) dlv_image_free(imgs[i]);
    free(imgs);
    return rc;
}

static int train_loop(const train_cli *c, dlv_session *s, const train_data *d, long long start,
                      long long total, const char *ckpt, FILE *log)
{
    const size_t n = d->n_good, B = (size_t)c->batch;
    const long long per_epoch = (long long)((n + B - 1) / B);
    size_t *perm = malloc((n ? n : 1) * sizeof *perm);
    if (!perm) return fprintf(stderr, "disclvlm: train: out of memory\n"), 1;
    long long epoch = -1;
    double t0 = now_s();
    int rc = 0;
    for (long long step = start; step < total && !rc; step++) {
        long long e = step / per_epoch, j = step % per_epoch;
        if (e != epoch) {
            train_epoch_order(n, c->shuffle, c->seed, (uint64_t)e, perm);
            epoch = e;
        }
        size_t first = (size_t)j * B, k = n - first < B ? n - first : B;
        /* Data-parallel: rank r takes [r k / world, (r + 1) k / world) of
         * the global batch (equal shares when world divides k). */
        const size_t lo = k * (size_t)c->d.rank / (size_t)c->d.world,
                     hi = k * (size_t)(c->d.rank + 1) / (size_t)c->d.world;
        if (k < (size_t)c->d.world) {
            /* Fewer examples than ranks (an epoch's last batch): skipped by
             * every rank alike. */
            if (c->d.rank == 0)
                fprintf(stderr, "disclvlm: train: note: step %lld has %zu example%s for %d "
                                "ranks; skipped\n", step + 1, k, k == 1 ? "" : "s", c->d.world);
            continue;
        }
        dlv_train_stats st = DLV_TRAIN_STATS_INIT;
        double ts = now_s();
        if ((rc = run_step(s, d, perm + first + lo, hi - lo, &st))) break;
        double te = now_s();
        long long done = step + 1 - start;
        step_report r = {step + 1, total, e, k, hi - lo, c->d.world, te - ts, te - t0,
                         (te - t0) / (double)done * (double)(total - step - 1), &st};
        if (c->d.rank == 0) print_progress(&r);
        if (log && write_log(log, &r)) {
            fprintf(stderr, "disclvlm: train: --log %s: %s\n", c->log, strerror(errno));
            rc = 1;
            break;
        }
        if (interrupted) {
            if (c->d.rank != 0) {
                rc = 130;
                break;
            }
            if (save_checkpoint(s, ckpt) == 0)
                fprintf(stderr, "disclvlm: train: interrupted after step %lld; checkpoint in %s "
                                "(continue with --resume %s)\n", step + 1, ckpt, ckpt);
            rc = 130;
            break;
        }
        if (c->save_every && (step + 1) % c->save_every == 0 && step + 1 < total &&
            c->d.rank == 0)
            rc = save_checkpoint(s, ckpt);
    }
    free(perm);
    return rc;
}

int cmd_train(int argc, char **argv)
{
    train_cli c = {.run = CLI_RUN_OPTS_INIT, .steps = -1, .epochs = 1, .batch = DEFAULT_BATCH,
                   .dist = "auto", .d = CLI_DIST_INIT};
    if (dlv_train_options_new(&c.topts) != DLV_OK) return cli_fail("train");
    int rc = parse(argc, argv, &c);
    dlv_model *model = NULL;
    dlv_session *session = NULL;
    train_data d = TRAIN_DATA_INIT;
    char *ckpt = NULL;
    FILE *log = NULL;
    size_t dim = 0;
    if (rc) {
        rc = rc < 0 ? 0 : rc;
        goto done;
    }
    ckpt = checkpoint_dir(c.out);
    if (!ckpt) {
        rc = 1;
        goto done;
    }
    if ((rc = open_comm(&c))) goto done;
    if ((rc = check_out("--out", c.out)) || (rc = cli_open("train", &c.run, &model, &session, &dim)))
        goto done;
    if (c.d.comm && dlv_session_set_comm(session, c.d.comm) != DLV_OK) {
        rc = cli_fail("train");
        goto done;
    }
    if (c.init && dlv_adapter_load(session, c.init) != DLV_OK) {
        rc = cli_fail("train: --init");
        goto done;
    }
    const train_check tcheck = {session, c.run.truncate, !c.ntp_off};
    if ((rc = train_data_load(c.data, model, &tcheck, c.on_bad_fail, c.steps != 0, &d)))
        goto done;

    const size_t n = d.n_good, B = (size_t)c.batch;
    long long total = c.steps >= 0 ? c.steps : (long long)((n + B - 1) / B) * c.epochs;
    if (c.steps != 0 && n == 0) {
        fprintf(stderr, "disclvlm: train: %s: no usable examples\n", c.data);
        rc = 1;
        goto done;
    }
    long long start = 0;
    if (c.resume) {
        long long saved_total = -1;
        if (dlv_train_checkpoint_load(session, c.resume) != DLV_OK) {
            rc = cli_fail("train: --resume");
            goto done;
        }
        if ((rc = checkpoint_info(c.resume, &start, &saved_total))) goto done;
        if (c.lib_given[0])
            fprintf(stderr, "disclvlm: train: --resume: the training options come from the "
                            "checkpoint; ignoring %s\n", c.lib_given);
        if (saved_total >= 0 && saved_total != total)
            fprintf(stderr, "disclvlm: train: --resume: warning: this run plans %lld steps, the "
                            "checkpoint's run %lld (are --data, --batch, --epochs and --steps "
                            "the same?)\n", total, saved_total);
        fprintf(stderr, "disclvlm: train: resuming at step %lld of %lld\n", start, total);
    } else {
        /* The cosine schedule's length. dlv_train_begin wants it above warmup
         * even when no step will run: a --steps 0 run records 2^40. */
        char buf[32];
        snprintf(buf, sizeof buf, "%lld", total > 0 ? total : 1LL << 40);
        if (dlv_train_options_set(c.topts, "total_steps", buf) != DLV_OK ||
            dlv_train_begin(session, c.topts) != DLV_OK) {
            rc = cli_fail("train");
            goto done;
        }
    }
    /* Every output is checked before the first step: a foreign file in
     * --out, OUT.ckpt or --save-model would otherwise fail after all of them. */
    if (dlv_train_check_outputs(session, c.out, ckpt, c.save_model) != DLV_OK) {
        rc = cli_fail("train");
        goto done;
    }
    /* A batch of one example has nothing to contrast with: its contrastive
     * loss is identically zero, so only the next-token loss can train. */
    const size_t eff = n < B ? n : B;
    if (total > 0 && eff == 1 && !c.no_contrastive) {
        int has_long = 0;
        for (size_t i = 0; i < n && !has_long; i++) {
            const dlv_sample *sm = &d.ds.items[d.good[i]];
            has_long = sm->long_caption && *sm->long_caption;
        }
        if (c.ntp_off || !has_long) {
            fprintf(stderr, "disclvlm: train: %s: every batch has one example, whose contrastive "
                            "loss is identically zero, and there is no next-token loss: nothing "
                            "would be learned (use --batch 2 or more, and 2 or more examples)\n",
                    n == 1 ? c.data : "--batch 1");
            rc = 1;
            goto done;
        }
        fprintf(stderr, "disclvlm: train: note: every batch has one example: the contrastive "
                        "loss is identically zero and only the next-token loss trains\n");
    } else if (total > 0 && !c.no_contrastive && n > 1 && n % B == 1) {
        fprintf(stderr, "disclvlm: train: note: the last batch of each epoch has one example, "
                        "whose contrastive loss is zero\n");
    }
    if (c.d.rank == 0)
        fprintf(stderr, "disclvlm: train: %zu examples, batch %zu, %lld steps (%lld per epoch)%s\n",
                n, B, total, n ? (long long)((n + B - 1) / B) : 0LL,
                c.shuffle ? ", shuffled" : "");
    if (c.d.comm && c.d.rank == 0)
        fprintf(stderr, "disclvlm: train: data-parallel: world_size %d, local_batch %zu (%s)\n",
                c.d.world, B / (size_t)c.d.world, dlv_comm_describe(c.d.comm));
    if (c.log && c.d.rank == 0) {
        log = fopen(c.log, c.resume ? "a" : "w");
        if (!log) {
            fprintf(stderr, "disclvlm: train: --log %s: %s\n", c.log, strerror(errno));
            rc = 1;
            goto done;
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if ((rc = train_loop(&c, session, &d, start, total, ckpt, log))) goto done;
    /* Every rank holds the same state: rank 0 alone writes it. */
    if (c.d.rank != 0) goto done;
    if ((rc = save_checkpoint(session, ckpt))) goto done;
    /* The session's adapter is the trainer's state (after dlv_train_begin
     * too, so --steps 0 writes the initial adapter). */
    /* A model without adapters (CLIPModel) trains its own weights: they are
     * in the checkpoint and, with --save-model, in a model directory. */
    dlv_status ast = dlv_adapter_save(session, c.out);
    if (ast == DLV_E_UNSUPPORTED) {
        fprintf(stderr, "disclvlm: train: note: this model has no adapter, so nothing is "
                        "written to %s; the trained weights are in the checkpoint%s%s%s\n",
                c.out, c.save_model ? "" : " (a model directory: --resume ",
                c.save_model ? "" : ckpt, c.save_model ? "" : " --save-model DIR)");
    } else if (ast != DLV_OK) {
        rc = cli_fail("train: --out");
        goto done;
    }
    if (c.save_model &&
        dlv_train_save_model(session, c.save_model, c.save_model_dtype) != DLV_OK) {
        rc = cli_fail("train: --save-model");
        goto done;
    }
    /* Name only what was written (a CLIPModel has no adapter). */
    fprintf(stderr, "disclvlm: train: %s%s%scheckpoint in %s%s%s\n", ast == DLV_OK ? "adapter in " : "",
            ast == DLV_OK ? c.out : "", ast == DLV_OK ? ", " : "", ckpt,
            c.save_model ? ", model in " : "", c.save_model ? c.save_model : "");
done:
    if (log && fclose(log) != 0 && !rc) {
        fprintf(stderr, "disclvlm: train: --log %s: %s\n", c.log, strerror(errno));
        rc = 1;
    }
    if (rc != 2 && c.d.rank == 0) train_data_report(&d);
    /* The other ranks would wait for this one in the next collective. */
    cli_dist_fail("train", &c.d, rc);
    train_data_free(&d);
    dlv_session_free(session);
    dlv_model_free(model);
    cli_dist_close(&c.d);
    dlv_train_options_free(c.topts);
    free(ckpt);
    return rc;
}
