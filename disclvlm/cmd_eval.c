/* disclvlm eval: option parsing, the model, encoding (de-duplicated, cached,
 * with progress and Ctrl-C), the JSON header. The tasks are in
 * cmd_eval_tasks.c; metrics and data formats in lib/eval and lib/data
 * (compiled into the tool, see core/error.c). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/fs.h"
#include "common/sha256.h"
#include "dist.h"
#include "eval_cli.h"

#define IMAGES_PER_CALL 8
#define TEXTS_PER_CALL 32

/* ---- Errors ------------------------------------------------------------- */

static volatile sig_atomic_t interrupted = 0;
/* The session the Ctrl-C handler cancels. dlv_session_cancel on a non-NULL
 * session is a single lock-free atomic store (lib/api/session.c), which C11
 * allows in a signal handler; the pointer is set only while it is valid. */
static dlv_session *volatile cancel_target = NULL;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
    dlv_session *s = cancel_target;
    if (s) dlv_session_cancel(s);
}

int eval_interrupted(void) { return interrupted != 0; }

static int interrupted_exit(const eval_ctx *c)
{
    fprintf(stderr, "\ndisclvlm: eval %s: interrupted\n", c->task);
    return 130;
}

int eval_fail(const eval_ctx *c)
{
    if (interrupted) return interrupted_exit(c);
    const char *m = dlv_error_message();
    fprintf(stderr, "disclvlm: eval %s: %s\n", c->task, *m ? m : "unknown error");
    return 1;
}

int eval_fail_api(const eval_ctx *c, const char *what)
{
    if (interrupted) return interrupted_exit(c);
    const char *m = dlv_last_error();
    fprintf(stderr, "disclvlm: eval %s: %s: %s\n", c->task, what, (m && *m) ? m : "unknown error");
    return 1;
}

int eval_failf(const eval_ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "disclvlm: eval %s: ", c->task);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

float *eval_alloc(const eval_ctx *c, size_t n, size_t dim)
{
    if (dim && n > SIZE_MAX / sizeof(float) / dim) {
        eval_failf(c, "%zu x %zu floats do not fit in memory", n, dim);
        return NULL;
    }
    size_t count = n * dim;
    float *p = malloc((count ? count : 1) * sizeof *p);
    if (!p) eval_failf(c, "out of memory for %zu x %zu floats", n, dim);
    return p;
}

double eval_dot(const float *a, const float *b, size_t dim)
{
    double s = 0;
    for (size_t d = 0; d < dim; d++) s += (double)a[d] * (double)b[d];
    return s;
}

/* ---- Model -------------------------------------------------------------- */

static void hash_str(dlv_sha256 *h, const char *s)
{
    uint64_t n = s ? strlen(s) : UINT64_MAX;
    dlv_sha256_update(h, &n, sizeof n);
    if (s) dlv_sha256_update(h, s, strlen(s));
}

/* Adds a folder's top-level regular files (name, size, modification time)
 * to h, in name order. */
static void hash_listing(dlv_sha256 *h, const char *dir)
{
    struct dirent **ents = NULL;
    int n = scandir(dir, &ents, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        char *p = dlv_path_join(dir, ents[i]->d_name);
        struct stat st;
        if (p && stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
            hash_str(h, ents[i]->d_name);
            int64_t v[3] = {(int64_t)st.st_size, (int64_t)st.st_mtim.tv_sec,
                            (int64_t)st.st_mtim.tv_nsec};
            dlv_sha256_update(h, v, sizeof v);
        }
        free(p);
        free(ents[i]);
    }
    free(ents);
}

int eval_open(eval_ctx *c)
{
    if (cli_open("eval", &c->run, &c->model, &c->session, &c->dim)) return 1;
    /* The cache key's model part: library version, backend, compute and
     * weight dtypes (both change the embeddings), the model folder's real
     * path and listing, the adapter's listing. */
    dlv_sha256 h;
    uint8_t d[32];
    dlv_sha256_init(&h);
    hash_str(&h, "disclvlm-eval-cache-1");
    hash_str(&h, dlv_version());
    hash_str(&h, c->run.backend);
    hash_str(&h, c->run.compute);
    hash_str(&h, c->run.weight_dtype);
    char *real = realpath(c->run.model_dir, NULL);
    hash_str(&h, real ? real : c->run.model_dir);
    free(real);
    hash_listing(&h, c->run.model_dir);
    if (c->run.adapter_dir) {
        real = realpath(c->run.adapter_dir, NULL);
        hash_str(&h, real ? real : c->run.adapter_dir);
        free(real);
        hash_listing(&h, c->run.adapter_dir);
    } else
        hash_str(&h, NULL);
    dlv_sha256_final(&h, d);
    dlv_sha256_to_hex(d, c->model_key);

    cancel_target = c->session;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C ends the process at once */
    sigaction(SIGINT, &sa, NULL);
    return 0;
}

void eval_close(eval_ctx *c)
{
    cancel_target = NULL;
    dlv_session_free(c->session);
    dlv_model_free(c->model);
    c->session = NULL;
    c->model = NULL;
}

/* ---- Progress ----------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct progress {
    int tty, shown;
    int quiet; /* a rank other than 0 of a data-parallel run */
    double t0, last;
    size_t total;
    const char *what, *task;
} progress;

static void fmt_duration(char *buf, size_t n, double s)
{
    if (!(s >= 0) || s > 1e8) {
        snprintf(buf, n, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

static void progress_start(progress *p, const char *task, const char *what, size_t total)
{
    p->quiet = 0;
    p->tty = isatty(2);
    p->shown = 0;
    p->t0 = p->last = now_s();
    p->total = total;
    p->what = what;
    p->task = task;
}

/* A bar redrawn in place on a terminal (at most 10 times a second);
 * otherwise a plain line every 10 seconds. */
static void progress_tick(progress *p, size_t done)
{
    double t = now_s();
    if (p->quiet) return;
    if (done < p->total && t - p->last < (p->tty ? 0.1 : 10.0)) return;
    if (!p->tty && !p->shown && done == p->total) return; /* short run: stay quiet */
    p->last = t;
    double rate = t > p->t0 ? (double)done / (t - p->t0) : 0;
    char eta[32];
    fmt_duration(eta, sizeof eta, rate > 0 ? (double)(p->total - done) / rate : -1);
    if (p->tty) {
        char bar[31];
        size_t fill = p->total ? done * 30 / p->total : 30;
        for (size_t i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\rdisclvlm: eval %s: %s [%s] %zu/%zu, %.1f/s, ETA %s\033[K", p->task,
                p->what, bar, done, p->total, rate, eta);
    } else {
        fprintf(stderr, "disclvlm: eval %s: %s %zu/%zu, %.1f/s, ETA %s\n", p->task, p->what, done,
                p->total, rate, eta);
    }
    fflush(stderr);
    p->shown = 1;
}

static void progress_end(progress *p)
{
    if (p->shown && p->tty) fputc('\n', stderr);
    p->shown = 0;
}

/* ---- Cache -------------------------------------------------------------- */

static const char CACHE_MAGIC[8] = {'D', 'L', 'V', 'E', 'M', 'B', '1', '\0'};

/* The cache file of a list of items: sha256(model key, kind, the items'
 * contents). NULL without --cache (or with a message on failure: *rc). */
static char *cache_path(const eval_ctx *c, const char *kind, const dlv_sample *imgs,
                        const char *const *texts, size_t n, int *rc)
{
    *rc = 0;
    if (!c->cache) return NULL;
    dlv_sha256 h;
    uint8_t d[32];
    dlv_sha256_init(&h);
    hash_str(&h, c->model_key);
    hash_str(&h, kind);
    uint64_t nn = n;
    dlv_sha256_update(&h, &nn, sizeof nn);
    for (size_t i = 0; i < n; i++) {
        if (texts) {
            hash_str(&h, texts[i]);
        } else if (imgs[i].image_data) {
            char hex[65];
            dlv_sha256_hex(imgs[i].image_data, imgs[i].image_size, hex);
            hash_str(&h, hex);
        } else {
            char hex[65];
            if (dlv_sha256_file(imgs[i].image, hex) != DLV_OK) {
                *rc = eval_fail(c);
                return NULL;
            }
            hash_str(&h, hex);
        }
    }
    dlv_sha256_final(&h, d);
    char hex[65], name[80];
    dlv_sha256_to_hex(d, hex);
    snprintf(name, sizeof name, "%s-%s.emb", kind, hex);
    char *p = dlv_path_join(c->cache, name);
    if (!p) *rc = eval_failf(c, "out of memory");
    return p;
}

/* 1 when the cache file holds n x dim floats (read into out). */
static int cache_load(const eval_ctx *c, const char *path, size_t n, float *out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char magic[8];
    uint64_t hdr[2];
    int ok = fread(magic, 1, 8, f) == 8 && memcmp(magic, CACHE_MAGIC, 8) == 0 &&
             fread(hdr, sizeof hdr[0], 2, f) == 2 && hdr[0] == n && hdr[1] == c->dim &&
             fread(out, sizeof *out, n * c->dim, f) == n * c->dim && fgetc(f) == EOF;
    fclose(f);
    if (!ok) fprintf(stderr, "disclvlm: eval %s: %s: not a valid cache file, recomputing\n", c->task, path);
    return ok;
}

static void cache_store(const eval_ctx *c, const char *path, size_t n, const float *e)
{
    uint64_t hdr[2] = {n, c->dim};
    dlv_atomic_file *f = NULL;
    if (mkdir(c->cache, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "disclvlm: eval %s: %s: cannot create the cache folder: %s\n", c->task,
                c->cache, strerror(errno));
        return;
    }
    dlv_status st = dlv_atomic_open(path, &f);
    if (st == DLV_OK) {
        st = dlv_atomic_write(f, CACHE_MAGIC, 8);
        if (st == DLV_OK) st = dlv_atomic_write(f, hdr, sizeof hdr);
        if (st == DLV_OK) st = dlv_atomic_write(f, e, n * c->dim * sizeof *e);
        if (st == DLV_OK)
            st = dlv_atomic_commit(f); /* frees f either way */
        else
            dlv_atomic_abort(f);
    }
    if (st != DLV_OK)
        fprintf(stderr, "disclvlm: eval %s: cache not written: %s\n", c->task, dlv_error_message());
}

/* ---- Encoding ----------------------------------------------------------- */

typedef struct keyed {
    const char *key;
    size_t i;
} keyed;

static int cmp_keyed(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    int r = strcmp(x->key, y->key);
    return r ? r : (x->i > y->i) - (x->i < y->i);
}

/* map[i] = the unique item of input i; reps (heap) = the first input of
 * each unique item, in input order. keys[i] NULL: never merged. */
static int dedup(const eval_ctx *c, const char *const *keys, size_t n, size_t *map,
                 size_t **reps_out, size_t *n_u)
{
    keyed *k = malloc((n ? n : 1) * sizeof *k);
    size_t *reps = malloc((n ? n : 1) * sizeof *reps);
    size_t *first = malloc((n ? n : 1) * sizeof *first);
    if (!k || !reps || !first) {
        free(k);
        free(reps);
        free(first);
        return eval_failf(c, "out of memory");
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        first[i] = i;
        if (keys[i]) k[m++] = (keyed){keys[i], i};
    }
    qsort(k, m, sizeof *k, cmp_keyed);
    for (size_t j = 1; j < m; j++)
        if (strcmp(k[j].key, k[j - 1].key) == 0) first[k[j].i] = first[k[j - 1].i];
    size_t u = 0;
    for (size_t i = 0; i < n; i++) {
        if (first[i] == i) {
            map[i] = u;
            reps[u++] = i;
        } else
            map[i] = map[first[i]];
    }
    free(k);
    free(first);
    *reps_out = reps;
    *n_u = u;
    return 0;
}

static int encode_unique_images(eval_ctx *c, const dlv_sample *imgs, size_t n, float *out)
{
    dlv_image *batch[IMAGES_PER_CALL] = {NULL};
    progress pr;
    progress_start(&pr, c->task, "images", n);
    pr.quiet = c->d.rank != 0;
    int rc = 0;
    for (size_t off = 0; off < n && rc == 0; off += IMAGES_PER_CALL) {
        if (interrupted) {
            rc = 130;
            break;
        }
        size_t k = n - off < IMAGES_PER_CALL ? n - off : IMAGES_PER_CALL, made = 0;
        for (; made < k; made++) {
            const dlv_sample *s = &imgs[off + made];
            dlv_status st = s->image_data
                                ? dlv_image_from_memory(s->image_data, s->image_size, &batch[made])
                                : dlv_image_from_file(s->image, &batch[made]);
            if (st != DLV_OK) break;
        }
        if (made < k) {
            progress_end(&pr);
            rc = eval_fail_api(c, imgs[off + made].where ? imgs[off + made].where : "image");
        } else if (dlv_encode_images(c->session, (const dlv_image *const *)batch, k,
                                     out + off * c->dim, k * c->dim) != DLV_OK) {
            progress_end(&pr);
            rc = eval_fail_api(c, "encoding images");
        } else
            progress_tick(&pr, off + k);
        for (size_t j = 0; j < made; j++) {
            dlv_image_free(batch[j]);
            batch[j] = NULL;
        }
    }
    progress_end(&pr);
    if (rc == 130 || (rc && interrupted)) return interrupted_exit(c);
    return rc;
}

static int encode_unique_texts(eval_ctx *c, const char *const *texts, size_t n, float *out)
{
    char cmd[64];
    snprintf(cmd, sizeof cmd, "eval %s", c->task);
    if (cli_check_texts(cmd, c->session, texts, n, c->run.truncate, NULL)) return 1;
    progress pr;
    progress_start(&pr, c->task, "texts", n);
    pr.quiet = c->d.rank != 0;
    for (size_t off = 0; off < n; off += TEXTS_PER_CALL) {
        if (interrupted) {
            progress_end(&pr);
            return interrupted_exit(c);
        }
        size_t k = n - off < TEXTS_PER_CALL ? n - off : TEXTS_PER_CALL;
        if (dlv_encode_text(c->session, texts + off, k, out + off * c->dim, k * c->dim) !=
            DLV_OK) {
            progress_end(&pr);
            return eval_fail_api(c, "encoding texts");
        }
        progress_tick(&pr, off + k);
    }
    progress_end(&pr);
    return 0;
}

/* Unique items -> cache or model -> expanded rows of out. */
static int encode_any(eval_ctx *c, const dlv_sample *imgs, const char *const *texts, size_t n,
                      float *out)
{
    const char **keys = malloc((n ? n : 1) * sizeof *keys);
    size_t *map = malloc((n ? n : 1) * sizeof *map), *reps = NULL, n_u = 0;
    dlv_sample *uimg = NULL;
    const char **utxt = NULL;
    float *e = NULL;
    char *cpath = NULL;
    int rc = 0;
    if (!keys || !map) {
        rc = eval_failf(c, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) keys[i] = texts ? texts[i] : imgs[i].image;
    if ((rc = dedup(c, keys, n, map, &reps, &n_u))) goto done;
    if (texts) {
        if (!(utxt = malloc((n_u ? n_u : 1) * sizeof *utxt))) {
            rc = eval_failf(c, "out of memory");
            goto done;
        }
        for (size_t u = 0; u < n_u; u++) utxt[u] = texts[reps[u]];
    } else {
        if (!(uimg = malloc((n_u ? n_u : 1) * sizeof *uimg))) {
            rc = eval_failf(c, "out of memory");
            goto done;
        }
        for (size_t u = 0; u < n_u; u++) uimg[u] = imgs[reps[u]]; /* shallow: borrowed */
    }
    if (!(e = eval_alloc(c, n_u, c->dim))) {
        rc = 1;
        goto done;
    }
    cpath = cache_path(c, texts ? "text" : "image", uimg, utxt, n_u, &rc);
    if (rc) goto done;
    if (!cpath || !cache_load(c, cpath, n_u, e)) {
        /* Data-parallel: each rank encodes its shard, then all hold all. */
        size_t lo = 0, hi = n_u;
        cli_dist_shard(&c->d, n_u, &lo, &hi);
        rc = texts ? encode_unique_texts(c, utxt + lo, hi - lo, e + lo * c->dim)
                   : encode_unique_images(c, uimg + lo, hi - lo, e + lo * c->dim);
        if (!rc) {
            char cmd[64];
            snprintf(cmd, sizeof cmd, "eval %s", c->task);
            rc = cli_dist_gather_rows(cmd, &c->d, e, n_u, c->dim);
        }
        if (rc) goto done;
        if (cpath && c->d.rank == 0) cache_store(c, cpath, n_u, e);
    }
    for (size_t i = 0; i < n; i++) memcpy(out + i * c->dim, e + map[i] * c->dim, c->dim * sizeof *e);
done:
    free(cpath);
    free(e);
    free(uimg);
    free(utxt);
    free(reps);
    free(map);
    free(keys);
    return rc;
}

int eval_encode_images(eval_ctx *c, const dlv_sample *imgs, size_t n, float *out)
{
    return encode_any(c, imgs, NULL, n, out);
}

int eval_encode_paths(eval_ctx *c, const char *const *paths, size_t n, float *out)
{
    dlv_sample *s = calloc(n ? n : 1, sizeof *s);
    if (!s) return eval_failf(c, "out of memory");
    for (size_t i = 0; i < n; i++) {
        s[i].image = (char *)(uintptr_t)paths[i];
        s[i].where = s[i].image;
    }
    int rc = encode_any(c, s, NULL, n, out);
    free(s);
    return rc;
}

int eval_encode_texts(eval_ctx *c, const char *const *texts, size_t n, float *out)
{
    return encode_any(c, NULL, texts, n, out);
}

/* ---- JSON --------------------------------------------------------------- */

/* sha256 over the named files of a folder that exist (name, then content),
 * for the adapter's identity; "" when none. */
static void hash_adapter(const char *dir, char hex[65])
{
    static const char *files[] = {"adapter_config.json", "adapter_model.safetensors",
                                  "soft_prompts.safetensors", "prompts.json"};
    dlv_sha256 h;
    uint8_t d[32];
    dlv_sha256_init(&h);
    int any = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *p = dlv_path_join(dir, files[i]);
        char fh[65];
        if (p && dlv_is_file(p) && dlv_sha256_file(p, fh) == DLV_OK) {
            hash_str(&h, files[i]);
            hash_str(&h, fh);
            any = 1;
        }
        free(p);
    }
    dlv_sha256_final(&h, d);
    if (any)
        dlv_sha256_to_hex(d, hex);
    else
        hex[0] = '\0';
}

/* Adds "rel\tsize\n" of every regular file under dir (recursively, sorted). */
static int hash_tree(dlv_sha256 *h, const char *dir, const char *rel)
{
    struct dirent **ents = NULL;
    int n = scandir(dir, &ents, NULL, alphasort);
    if (n < 0) return 0;
    int ok = 1;
    for (int i = 0; i < n; i++) {
        const char *nm = ents[i]->d_name;
        if (ok && strcmp(nm, ".") != 0 && strcmp(nm, "..") != 0) {
            char *p = dlv_path_join(dir, nm), *r = rel ? dlv_path_join(rel, nm) : strdup(nm);
            struct stat st;
            if (!p || !r)
                ok = 0;
            else if (stat(p, &st) == 0 && S_ISDIR(st.st_mode))
                ok = hash_tree(h, p, r);
            else if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
                char line[64];
                snprintf(line, sizeof line, "\t%lld\n", (long long)st.st_size);
                dlv_sha256_update(h, r, strlen(r));
                dlv_sha256_update(h, line, strlen(line));
            }
            free(p);
            free(r);
        }
        free(ents[i]);
    }
    free(ents);
    return ok;
}

int eval_data_hash(const eval_ctx *c, const char *data, char hex[65])
{
    if (dlv_is_dir(data)) {
        dlv_sha256 h;
        uint8_t d[32];
        dlv_sha256_init(&h);
        if (!hash_tree(&h, data, NULL)) return eval_failf(c, "%s: cannot list the folder", data);
        dlv_sha256_final(&h, d);
        dlv_sha256_to_hex(d, hex);
        return 0;
    }
    if (!strchr(data, '{')) return dlv_sha256_file(data, hex) == DLV_OK ? 0 : eval_fail(c);
    char **shards = NULL;
    size_t n = 0;
    if (dlv_expand_braces(data, 1000000, &shards, &n) != DLV_OK) return eval_fail(c);
    dlv_sha256 h;
    uint8_t d[32], buf[1 << 16];
    dlv_sha256_init(&h);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        FILE *f = fopen(shards[i], "rb");
        if (!f) {
            rc = eval_failf(c, "%s: cannot open: %s", shards[i], strerror(errno));
            break;
        }
        size_t k;
        while ((k = fread(buf, 1, sizeof buf, f)) > 0) dlv_sha256_update(&h, buf, k);
        if (ferror(f)) rc = eval_failf(c, "%s: read failed", shards[i]);
        fclose(f);
    }
    dlv_free_strings(shards, n);
    if (rc) return rc;
    dlv_sha256_final(&h, d);
    dlv_sha256_to_hex(d, hex);
    return 0;
}

static const char TIE_RULE[] =
    "ties count against the model: a right answer wins a comparison only with a strictly "
    "greater score; a rank counts the wrong candidates scoring greater than or equal to the "
    "right one";

int eval_json_header(const eval_ctx *c, json_t *o)
{
    json_object_set_new(o, "task", json_string(c->task));
    json_object_set_new(o, "disclvlm_version", json_string(dlv_version()));
    json_object_set_new(o, "backend", json_string(c->run.backend));
    json_object_set_new(o, "compute", json_string(c->run.compute));
    json_object_set_new(o, "weight_dtype", json_string(c->run.weight_dtype));
    json_object_set_new(o, "model", json_string(c->run.model_dir));
    char *cfg = dlv_path_join(c->run.model_dir, "config.json");
    char hex[65];
    if (cfg && dlv_sha256_file(cfg, hex) == DLV_OK)
        json_object_set_new(o, "model_config_sha256", json_string(hex));
    free(cfg);
    json_object_set_new(o, "adapter",
                        c->run.adapter_dir ? json_string(c->run.adapter_dir) : json_null());
    /* The prompts: the adapter's prompts.json when it has one, else the
     * model family's defaults (docs/adapter-format.md). */
    json_t *prompts = NULL;
    if (c->run.adapter_dir) {
        char *pj = dlv_path_join(c->run.adapter_dir, "prompts.json");
        if (pj && dlv_is_file(pj)) prompts = json_load_file(pj, 0, NULL);
        free(pj);
        hash_adapter(c->run.adapter_dir, hex);
        json_object_set_new(o, "adapter_sha256", hex[0] ? json_string(hex) : json_null());
    }
    json_object_set_new(o, "prompts",
                        prompts ? prompts : json_string("model defaults (docs/adapter-format.md)"));
    json_t *data = json_array();
    for (size_t i = 0; i < c->n_data; i++) {
        if (eval_data_hash(c, c->data[i], hex)) {
            json_decref(data);
            return 1;
        }
        json_array_append_new(data, json_pack("{s:s, s:s}", "path", c->data[i], "sha256", hex));
    }
    json_object_set_new(o, "data", data);
    json_object_set_new(o, "images_root", c->images ? json_string(c->images) : json_null());
    json_object_set_new(o, "limit", c->limit ? json_integer((json_int_t)c->limit) : json_null());
    json_object_set_new(o, "tie_rule", json_string(TIE_RULE));
    return 0;
}

int eval_json_print(json_t *obj)
{
    char *s = json_dumps(obj, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(obj);
    if (!s) {
        fprintf(stderr, "disclvlm: eval: out of memory writing JSON\n");
        return 1;
    }
    puts(s);
    free(s);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- Command line ------------------------------------------------------- */

static void eval_usage(FILE *to)
{
    fprintf(to,
            "usage: disclvlm eval TASK --model DIR [--adapter DIR] --data FILE [options]\n"
            "\n"
            "tasks:\n"
            "  retrieval   image->text and text->image Recall@1/5/10\n"
            "              --data KARPATHY.json [--split test] (or .jsonl, .csv/.tsv, .tar, a\n"
            "              {a..b} shard pattern: samples with the same image are one image)\n"
            "  sugarcrepe  accuracy of s(image, caption) > s(image, negative_caption)\n"
            "              --data SUBSET.json... (several subsets: one table row each)\n"
            "  winoground  text, image and group scores; --data FILE.jsonl, images are\n"
            "              IMG_ROOT/<image_x>.png\n"
            "  classify    zero-shot top-1 / top-5; --data FOLDER_OR_CSV --classes NAMES.txt\n"
            "              [--templates TEMPLATES.txt] (one a line, \"{}\" = the class name;\n"
            "              default \"a photo of a {}.\"); prompt ensembling: the mean of the\n"
            "              templates' normalised embeddings, renormalised\n"
            "\n"
            "options:\n"
            "  --images ROOT      the folder image paths are relative to (default: the data\n"
            "                     file's folder)\n"
            "  --limit N          only the first N images / items (classify: N examples\n"
            "                     spread over the list), for quick looks\n"
            "  --dist auto|mpi|none  each rank of an MPI job encodes a shard (default auto:\n"
            "                     when started by mpirun or srun); rank 0 prints the results\n"
            "  --cache DIR        keep embeddings in DIR, keyed by the SHA-256 of the model\n"
            "                     (path, file sizes and times), the adapter and the inputs'\n"
            "                     contents; a second run reuses them\n"
            "  --json             print the result as JSON (with the model, adapter, prompts,\n"
            "                     data files' SHA-256 and counts) instead of a table\n" CLI_RUN_OPTS_HELP
            "\n"
            "Ties count against the model (docs/evaluation.md). Progress goes to stderr (a\n"
            "bar on a terminal, a line every 10 s otherwise). Ctrl-C stops cleanly (exit\n"
            "130). Exit status: 0 done, 1 failure, 2 usage error.\n");
}

static int need_value(const char *task, int argc, char **argv, int i)
{
    if (i + 1 < argc && !(argv[i + 1][0] == '-' && argv[i + 1][1] == '-')) return 1;
    fprintf(stderr, "disclvlm: eval %s: option '%s' needs a value\n", task, argv[i]);
    return 0;
}

int cmd_eval(int argc, char **argv)
{
    if (argc < 2)
        return cli_missing("eval", "a TASK (retrieval, sugarcrepe, winoground, classify)");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        eval_usage(stdout);
        return 0;
    }
    static const struct {
        const char *name;
        int (*run)(eval_ctx *);
    } tasks[] = {{"retrieval", eval_retrieval},
                 {"sugarcrepe", eval_sugarcrepe},
                 {"winoground", eval_winoground},
                 {"classify", eval_classify}};
    int (*run)(eval_ctx *) = NULL;
    eval_ctx c;
    memset(&c, 0, sizeof c);
    c.run = (cli_run_opts)CLI_RUN_OPTS_INIT;
    c.d = (cli_dist)CLI_DIST_INIT;
    c.dist = "auto";
    for (size_t t = 0; t < sizeof tasks / sizeof tasks[0]; t++)
        if (strcmp(argv[1], tasks[t].name) == 0) {
            run = tasks[t].run;
            c.task = tasks[t].name;
        }
    if (!run) {
        fprintf(stderr, "disclvlm: eval: unknown task '%s' (retrieval, sugarcrepe, winoground, "
                        "classify)\n",
                argv[1]);
        return 2;
    }
    c.data = calloc((size_t)argc, sizeof *c.data);
    if (!c.data) {
        fprintf(stderr, "disclvlm: eval: out of memory\n");
        return 1;
    }
    int is_sc = strcmp(c.task, "sugarcrepe") == 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_run_opt("eval", argc, argv, &i, &c.run);
        if (r < 0) goto usage_error;
        if (r > 0) continue;
        if (strcmp(a, "--dist") == 0) {
            if (!need_value(c.task, argc, argv, i)) goto usage_error;
            c.dist = argv[++i];
            if (!cli_dist_valid(c.dist)) {
                fprintf(stderr, "disclvlm: eval %s: --dist: '%s' is not auto, mpi or none\n",
                        c.task, c.dist);
                goto usage_error;
            }
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            eval_usage(stdout);
            free(c.data);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            c.json = 1;
        } else if (strcmp(a, "--data") == 0) {
            if (!need_value(c.task, argc, argv, i)) goto usage_error;
            c.data[c.n_data++] = argv[++i];
            /* sugarcrepe: the following non-option arguments are more subsets */
            while (is_sc && i + 1 < argc && argv[i + 1][0] != '-') c.data[c.n_data++] = argv[++i];
        } else if (strcmp(a, "--images") == 0 || strcmp(a, "--split") == 0 ||
                   strcmp(a, "--classes") == 0 || strcmp(a, "--templates") == 0 ||
                   strcmp(a, "--cache") == 0 || strcmp(a, "--limit") == 0) {
            if (!need_value(c.task, argc, argv, i)) goto usage_error;
            const char *v = argv[++i];
            if (strcmp(a, "--images") == 0)
                c.images = v;
            else if (strcmp(a, "--split") == 0 && strcmp(c.task, "retrieval") == 0)
                c.split = v;
            else if (strcmp(a, "--classes") == 0 && strcmp(c.task, "classify") == 0)
                c.classes = v;
            else if (strcmp(a, "--templates") == 0 && strcmp(c.task, "classify") == 0)
                c.templates = v;
            else if (strcmp(a, "--cache") == 0)
                c.cache = v;
            else if (strcmp(a, "--limit") == 0) {
                char *end;
                errno = 0;
                unsigned long long n = strtoull(v, &end, 10);
                if (errno || end == v || *end || v[0] == '-' || n == 0) {
                    fprintf(stderr, "disclvlm: eval %s: --limit: '%s' is not an integer >= 1\n",
                            c.task, v);
                    goto usage_error;
                }
                c.limit = (size_t)n;
            } else {
                fprintf(stderr, "disclvlm: eval %s: option '%s' does not apply to this task\n",
                        c.task, a);
                goto usage_error;
            }
        } else {
            fprintf(stderr, "disclvlm: eval %s: %s '%s'\n", c.task,
                    a[0] == '-' ? "unknown option" : "unexpected argument", a);
            goto usage_error;
        }
    }
    if (!c.run.model_dir || c.n_data == 0) {
        fprintf(stderr, "disclvlm: eval %s: %s is required (see 'disclvlm eval --help')\n",
                c.task, !c.run.model_dir ? "--model DIR" : "--data FILE");
        goto usage_error;
    }
    if (c.n_data > 1 && !is_sc) {
        fprintf(stderr, "disclvlm: eval %s: give one --data\n", c.task);
        goto usage_error;
    }
    if (strcmp(c.task, "classify") == 0 && !c.classes) {
        fprintf(stderr, "disclvlm: eval classify: --classes NAMES.txt is required\n");
        goto usage_error;
    }
    if (strcmp(c.task, "retrieval") == 0 && !c.split) c.split = "test";
    char cmd[64];
    snprintf(cmd, sizeof cmd, "eval %s", c.task);
    if (cli_dist_open(cmd, c.dist, &c.d)) {
        free(c.data);
        return 1;
    }
    /* Every rank computes the metrics from the same gathered embeddings;
     * rank 0 alone prints them. */
    if (c.d.rank != 0 && !freopen("/dev/null", "w", stdout))
        fprintf(stderr, "disclvlm: %s: rank %d: cannot silence its output; it repeats rank 0's\n",
                cmd, c.d.rank);
    int rc = run(&c);
    cli_dist_fail(cmd, &c.d, rc);
    eval_close(&c);
    cli_dist_close(&c.d);
    free(c.data);
    return rc;
usage_error:
    free(c.data);
    return 2;
}
