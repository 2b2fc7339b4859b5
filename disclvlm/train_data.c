/* disclvlm train: reading and checking the training examples, and their
 * order per epoch (train_data.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eval_cli.h"
#include "train_data.h"

dlv_status train_sample_image(const dlv_sample *s, dlv_image **out)
{
    if (s->image_data) return dlv_image_from_memory(s->image_data, s->image_size, out);
    return dlv_image_from_file(s->image, out);
}

static int blank(const char *s)
{
    if (!s) return 1;
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') return 0;
    return 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Records a bad example; 0, or 1 when out of memory. */
static int add_bad(train_data *d, const char *where, const char *reason)
{
    train_bad *b = realloc(d->bad, (d->n_bad + 1) * sizeof *b);
    if (!b) return 1;
    d->bad = b;
    b[d->n_bad].where = strdup(where ? where : "?");
    b[d->n_bad].reason = strdup(reason);
    if (!b[d->n_bad].where || !b[d->n_bad].reason) {
        free(b[d->n_bad].where);
        free(b[d->n_bad].reason);
        return 1;
    }
    d->n_bad++;
    return 0;
}

/* Whether text's sequence fits the model: 0 when it does (or is cut by
 * --truncate, counted in *cut), 1 with the reason in why, -1 on a library
 * error (printed). */
static int check_positions(dlv_session *session, const char *text, int what, const char *label,
                           int truncate, size_t *cut, char *why, size_t cap)
{
    char reason[256];
    const int r = cli_text_fits("train", session, text, what, reason, sizeof reason);
    if (r <= 0) return r;
    if (truncate) {
        (*cut)++;
        return 0;
    }
    snprintf(why, cap, "%s: %s", label, reason);
    return 1;
}

/* Why sample s cannot be trained on (into why), or 0 when it can; -1 on a
 * library error (printed). */
static int check_sample(const dlv_sample *s, const dlv_model *model, const train_check *tc,
                        int check_image, size_t *cut, char *why, size_t cap)
{
    if (blank(s->caption)) {
        snprintf(why, cap, "%s", s->caption ? "empty caption" : "no caption");
        return 1;
    }
    int r = check_positions(tc->session, s->caption, DLV_POSITIONS_TEXT, "caption", tc->truncate,
                            cut, why, cap);
    if (r) return r;
    if (tc->long_captions && s->long_caption && *s->long_caption &&
        (r = check_positions(tc->session, s->long_caption, DLV_POSITIONS_AFTER_IMAGE,
                             "long caption", tc->truncate, cut, why, cap)))
        return r;
    if (!check_image) return 0;
    dlv_image *im = NULL;
    dlv_status st = train_sample_image(s, &im);
    if (st == DLV_OK) st = dlv_image_check(model, im, NULL);
    dlv_image_free(im);
    if (st != DLV_OK) {
        const char *m = dlv_last_error();
        snprintf(why, cap, "image: %s", (m && *m) ? m : "cannot be read");
        return 1;
    }
    return 0;
}

int train_data_load(const char *path, const dlv_model *model, const train_check *tc,
                    int on_bad_fail, int check_images, train_data *d)
{
    if (dlv_dataset_read(path, NULL, &d->ds) != DLV_OK) {
        fprintf(stderr, "disclvlm: train: %s\n", dlv_error_message());
        return 1;
    }
    d->good = malloc((d->ds.n ? d->ds.n : 1) * sizeof *d->good);
    if (!d->good) {
        fprintf(stderr, "disclvlm: train: out of memory\n");
        return 1;
    }
    int tty = isatty(2), shown = 0, rc = 0;
    size_t cut = 0;
    double t0 = now_s(), last = t0;
    for (size_t i = 0; i < d->ds.n && rc == 0; i++) {
        const dlv_sample *s = &d->ds.items[i];
        char why[1024];
        const int bad = check_sample(s, model, tc, check_images, &cut, why, sizeof why);
        if (bad < 0) {
            rc = 1;
        } else if (!bad) {
            d->good[d->n_good++] = i;
        } else if (on_bad_fail) {
            if (shown) fputc('\n', stderr);
            shown = 0;
            fprintf(stderr, "disclvlm: train: %s: bad example: %s (--on-bad-example fail)\n",
                    s->where ? s->where : path, why);
            rc = 1;
        } else if (add_bad(d, s->where, why)) {
            fprintf(stderr, "disclvlm: train: out of memory\n");
            rc = 1;
        }
        double t = now_s();
        if (tty && check_images && (t - last > 0.5 || i + 1 == d->ds.n)) {
            fprintf(stderr, "\rdisclvlm: train: checked %zu/%zu examples, %.0f/s\033[K", i + 1,
                    d->ds.n, (double)(i + 1) / (t - t0 > 0 ? t - t0 : 1e-9));
            shown = 1;
            last = t;
        }
    }
    if (shown) fputc('\n', stderr);
    if (!rc && cut)
        fprintf(stderr, "disclvlm: train: note: %zu caption(s) longer than the model's positions "
                        "are truncated (--truncate)\n", cut);
    return rc;
}

void train_data_free(train_data *d)
{
    dlv_dataset_free(&d->ds);
    free(d->good);
    for (size_t i = 0; i < d->n_bad; i++) {
        free(d->bad[i].where);
        free(d->bad[i].reason);
    }
    free(d->bad);
    *d = (train_data)TRAIN_DATA_INIT;
}

void train_data_report(const train_data *d)
{
    if (!d->n_bad) return;
    fprintf(stderr, "disclvlm: train: skipped %zu bad example%s of %zu:", d->n_bad,
            d->n_bad == 1 ? "" : "s", d->ds.n);
    for (size_t i = 0; i < d->n_bad && i < 10; i++)
        fprintf(stderr, "%s %s (%s)", i ? ";" : "", d->bad[i].where, d->bad[i].reason);
    if (d->n_bad > 10) fprintf(stderr, "; ... (%zu more)", d->n_bad - 10);
    fputc('\n', stderr);
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void train_epoch_order(size_t n, int shuffle, uint64_t seed, uint64_t epoch, size_t *perm)
{
    for (size_t i = 0; i < n; i++) perm[i] = i;
    if (!shuffle) return;
    uint64_t x = seed + 0x9E3779B97F4A7C15ull * (epoch + 1);
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(splitmix64(&x) % (uint64_t)i);
        size_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}
