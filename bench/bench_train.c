/* Times one training step through the public API (dlv_train_step) on a
 * model directory (meant for the ~160M-parameter random LLaVA that
 * bench_forward_torch.py writes, with a tokenizer copied in; see
 * bench/README.md) and reports the peak resident memory (ru_maxrss).
 *
 * The step: a batch of BATCH random 224 x 224 RGB images, each with a short
 * caption (contrastive loss) and a long caption (next-token loss), both made
 * of a fixed word list; trainable: soft prompts, LoRA (rank 16, alpha 16, on
 * q/k/v/o/gate/up/down of every LLM layer), logit scale; AdamW, lr 1e-4.
 * bench_train_torch.py builds exactly the same batch and step in PyTorch.
 *
 * Usage: bench_train MODEL_DIR [reps] [n_threads] [batch]
 *   (defaults 3, 0 = one per CPU, 8): one warm-up step, then the median of
 *   `reps` steps (and the fastest). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "disclvlm.h"

enum { SIDE = 224, MAX_BATCH = 64, MAX_REPS = 64, SHORT_WORDS = 8, LONG_WORDS = 40 };

/* The caption words, shared with bench_train_torch.py. */
static const char *const words[32] = {
    "a",      "photo", "of",    "red",   "blue",   "green", "dog",    "cat",
    "sitting", "on",   "the",   "old",   "wooden", "table", "near",   "window",
    "with",   "small", "large", "bright", "yellow", "car",  "parked", "street",
    "under",  "tree",  "in",    "morning", "light", "and",  "two",    "people"};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void check(dlv_status st, const char *what)
{
    if (st != DLV_OK) {
        fprintf(stderr, "%s failed: %s (%s)\n", what, dlv_status_str(st), dlv_last_error());
        exit(1);
    }
}

static long maxrss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024; /* Linux: KiB */
}

/* Caption k of n words: word (k * 7 + j * 13 + j * j) mod 32 at position j
 * (the same formula in bench_train_torch.py). */
static void caption(int k, int n, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (int j = 0; j < n; j++) {
        const char *w = words[(k * 7 + j * 13 + j * j) % 32];
        int r = snprintf(out + len, cap - len, "%s%s", j ? " " : "", w);
        if (r < 0 || (size_t)r >= cap - len) break;
        len += (size_t)r;
    }
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 5) {
        fprintf(stderr, "usage: %s MODEL_DIR [reps] [n_threads] [batch]\n", argv[0]);
        return 2;
    }
    const int reps = argc > 2 ? atoi(argv[2]) : 3;
    const int threads = argc > 3 ? atoi(argv[3]) : 0;
    const int batch = argc > 4 ? atoi(argv[4]) : 8;
    if (reps < 1 || reps > MAX_REPS || threads < 0 || batch < 2 || batch > MAX_BATCH) {
        fprintf(stderr, "bad reps, threads or batch\n");
        return 2;
    }

    dlv_model *m = NULL;
    dlv_session *s = NULL;
    dlv_session_options *so = NULL;
    check(dlv_model_load(argv[1], NULL, &m), argv[1]);
    check(dlv_session_options_new(&so), "session options");
    check(dlv_session_options_set_threads(so, threads), "threads");
    check(dlv_session_new(m, so, &s), "session");
    dlv_session_options_free(so);
    const long rss_loaded = maxrss_mib();

    /* Random images: pixel (x, y, c) of image k is a fixed formula (the same
     * in bench_train_torch.py). */
    dlv_image *imgs[MAX_BATCH];
    uint8_t *px = malloc((size_t)SIDE * SIDE * 3);
    if (!px) return 1;
    for (int k = 0; k < batch; k++) {
        for (int y = 0; y < SIDE; y++)
            for (int x = 0; x < SIDE; x++)
                for (int c = 0; c < 3; c++)
                    px[(y * SIDE + x) * 3 + c] =
                        (uint8_t)((x * 37 + y * 11 + c * 101 + k * 53 + ((x * y) % 17) * 7) % 256);
        check(dlv_image_from_rgb(px, SIDE, SIDE, SIDE * 3, &imgs[k]), "dlv_image_from_rgb");
    }
    free(px);

    dlv_batch *b = NULL;
    check(dlv_batch_new(&b), "batch");
    for (int k = 0; k < batch; k++) {
        char sc[512], lc[1024];
        caption(k, SHORT_WORDS, sc, sizeof sc);
        caption(k + 100, LONG_WORDS, lc, sizeof lc);
        check(dlv_batch_add(b, imgs[k], sc, lc), "dlv_batch_add");
    }

    dlv_train_options *o = NULL;
    check(dlv_train_options_new(&o), "train options");
    static const char *const kv[][2] = {
        {"train", "soft,lora,logit_scale"}, {"optimizer", "adamw"}, {"lr", "1e-4"},
        {"weight_decay", "0"}, {"lora_rank", "16"}, {"lora_alpha", "16"},
        {"lora_targets", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"}};
    for (size_t i = 0; i < sizeof kv / sizeof *kv; i++)
        check(dlv_train_options_set(o, kv[i][0], kv[i][1]), kv[i][0]);
    check(dlv_train_begin(s, o), "dlv_train_begin");
    dlv_train_options_free(o);

    double t[MAX_REPS + 1];
    dlv_train_stats st = DLV_TRAIN_STATS_INIT;
    for (int r = 0; r <= reps; r++) {
        const double t0 = now_ms();
        check(dlv_train_step(s, b, &st), "dlv_train_step");
        t[r] = now_ms() - t0;
        printf("libdisclvlm step %d: %.0f ms  L_c %.6f  L_ntp %.6f  tokens %llu\n", r + 1, t[r],
               st.loss_contrastive, st.loss_ntp, (unsigned long long)st.tokens);
        fflush(stdout);
    }
    qsort(t + 1, (size_t)reps, sizeof *t, cmp_double);
    printf("libdisclvlm: batch %d, %d threads: median step %.0f ms, fastest %.0f ms (warm-up "
           "%.0f ms); peak RSS %ld MiB (%ld MiB after loading)\n",
           batch, threads, t[1 + reps / 2], t[1], t[0], maxrss_mib(), rss_loaded);

    dlv_batch_free(b);
    for (int k = 0; k < batch; k++) dlv_image_free(imgs[k]);
    dlv_session_free(s);
    dlv_model_free(m);
    return 0;
}
