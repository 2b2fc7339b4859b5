/* Real-size smoke test: loads a llava-1.5-7b-sized checkpoint (e.g. the
 * random bf16 one bench/gen_llava_7b writes) through the public API, encodes
 * one image and one text, and checks that the process's peak RSS stays below
 * 1.2 x the weight bytes (the weights are memory-mapped and read in place, so
 * the rest must be scratch) and that both embeddings are finite and
 * unit-norm. Prints the load time, the time per image and per text, the RSS
 * after each step (VmRSS split into file-backed and anonymous pages, from
 * /proc/self/status) and the peak (getrusage ru_maxrss).
 *
 * Usage: smoke_7b MODEL_DIR [--image PATH] [--text TEXT] [--threads N]
 *                 [--compute f32|bf16] [--check-f32] [--load-only]
 *   defaults: ../shared/assets/images/chelsea.png, "a photo of a cat",
 *   0 threads (one per online CPU), f32 compute. --check-f32 (with
 *   --compute bf16) encodes both again in an f32 session and prints the
 *   cosine between the two modes' embeddings (failing below 0.9999).
 * Exit status: 0 pass; 1 a check failed or a call returned an error;
 * 2 usage; 3 encoding is not implemented in this build (the load part
 * still ran and was checked). */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include <disclvlm.h>

#define RSS_LIMIT 1.2

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A field of /proc/self/status in kB, or -1. */
static long status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t n = strlen(field);
    long v = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, n) && line[n] == ':') {
            v = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static double gib(double bytes)
{
    return bytes / (1024.0 * 1024.0 * 1024.0);
}

static void print_rss(const char *when)
{
    printf("  rss %-14s VmRSS %6.2f GiB (file %6.2f, anon %6.2f)  VmHWM %6.2f GiB\n", when,
           gib(status_kb("VmRSS") * 1024.0), gib(status_kb("RssFile") * 1024.0),
           gib(status_kb("RssAnon") * 1024.0), gib(status_kb("VmHWM") * 1024.0));
    fflush(stdout);
}

/* Sum of the sizes of the *.safetensors files in dir (the weight bytes). */
static double weight_bytes(const char *dir, int *n_files)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    double sum = 0;
    *n_files = 0;
    if (!d) return 0;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        char path[4096];
        struct stat st;
        if (n < 12 || strcmp(e->d_name + n - 12, ".safetensors") != 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) == 0) {
            sum += (double)st.st_size;
            (*n_files)++;
        }
    }
    closedir(d);
    return sum;
}

/* 0 if v is finite and unit-norm, else prints why and returns 1. */
static int check_embedding(const char *what, const float *v, size_t dim)
{
    double ss = 0;
    for (size_t i = 0; i < dim; i++) {
        if (!isfinite(v[i])) {
            printf("FAIL: %s embedding has a non-finite value at %zu\n", what, i);
            return 1;
        }
        ss += (double)v[i] * (double)v[i];
    }
    printf("  %s embedding: dim %zu, norm %.6f, first %.5f %.5f %.5f %.5f\n", what, dim, sqrt(ss),
           (double)v[0], (double)v[1], (double)v[2], (double)v[3]);
    if (fabs(sqrt(ss) - 1.0) > 1e-3) {
        printf("FAIL: %s embedding is not unit-norm (%.6f)\n", what, sqrt(ss));
        return 1;
    }
    return 0;
}

static int fail(const char *what, dlv_status st)
{
    printf("FAIL: %s: status %d: %s\n", what, (int)st, dlv_last_error());
    return 1;
}

/* Encodes image and text again in an f32 session and prints the cosine of
 * each with the embedding given; 1 below MIN_COSINE or on an error. */
#define MIN_COSINE 0.9999
static int compare_f32(dlv_model *model, int threads, const char *image, const char *text,
                       const float *img, const float *txt, size_t dim)
{
    dlv_session_options *o = NULL;
    dlv_session *s = NULL;
    float *e = malloc(2 * dim * sizeof *e);
    int rc = 0;
    dlv_status st = DLV_OK;
    if (!e || (st = dlv_session_options_new(&o)) != DLV_OK ||
        (st = dlv_session_options_set_threads(o, threads)) != DLV_OK ||
        (st = dlv_session_new(model, o, &s)) != DLV_OK ||
        (st = dlv_encode_image_file(s, image, e, dim)) != DLV_OK ||
        (st = dlv_encode_text(s, &text, 1, e + dim, dim)) != DLV_OK) {
        rc = e ? fail("the f32 session", st) : 1;
    } else {
        for (int k = 0; k < 2; k++) {
            const float *a = k ? txt : img, *b = e + (size_t)k * dim;
            double dot = 0, na = 0, nb = 0;
            for (size_t i = 0; i < dim; i++) {
                dot += (double)a[i] * (double)b[i];
                na += (double)a[i] * (double)a[i];
                nb += (double)b[i] * (double)b[i];
            }
            double cos = dot / sqrt(na * nb);
            printf("  %s vs f32      cosine %.6f\n", k ? "text " : "image", cos);
            if (!(cos >= MIN_COSINE)) {
                printf("FAIL: %s embedding: cosine with f32 %.6f < %.4f\n", k ? "text" : "image",
                       cos, MIN_COSINE);
                rc = 1;
            }
        }
    }
    dlv_session_free(s);
    dlv_session_options_free(o);
    free(e);
    return rc;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *image = "../shared/assets/images/chelsea.png";
    const char *text = "a photo of a cat";
    int threads = 0, load_only = 0, check_f32 = 0;
    const char *compute = "f32";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--image") && i + 1 < argc) image = argv[++i];
        else if (!strcmp(argv[i], "--text") && i + 1 < argc) text = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--compute") && i + 1 < argc) compute = argv[++i];
        else if (!strcmp(argv[i], "--check-f32")) check_f32 = 1;
        else if (!strcmp(argv[i], "--load-only")) load_only = 1;
        else if (argv[i][0] != '-' && !dir) dir = argv[i];
        else dir = NULL, i = argc;
    }
    if (!dir) {
        fprintf(stderr, "usage: smoke_7b MODEL_DIR [--image PATH] [--text TEXT] "
                        "[--threads N] [--compute f32|bf16] [--check-f32] [--load-only]\n");
        return 2;
    }

    int n_files = 0;
    double wbytes = weight_bytes(dir, &n_files);
    if (wbytes <= 0) {
        printf("FAIL: no .safetensors files in %s\n", dir);
        return 1;
    }
    printf("smoke_7b: %s: %d safetensors file(s), %.0f weight bytes (%.2f GiB)\n", dir, n_files,
           wbytes, gib(wbytes));
    print_rss("start");

    int rc = 0, not_impl = 0;
    dlv_model *model = NULL;
    dlv_session *session = NULL;
    dlv_session_options *sopts = NULL;
    float *img = NULL, *txt = NULL;
    size_t dim = 0;
    double t0 = now_s();
    dlv_status st = dlv_model_load(dir, NULL, &model);
    double t_load = now_s() - t0;
    if (st != DLV_OK) {
        rc = fail("dlv_model_load", st);
        goto done;
    }
    printf("  load           %8.2f s\n", t_load);
    print_rss("after load");

    size_t need = 0;
    if (dlv_model_describe(model, NULL, 0, &need) == DLV_OK && need > 0) {
        char *desc = malloc(need);
        if (desc && dlv_model_describe(model, desc, need, NULL) == DLV_OK)
            printf("  describe: %s\n", desc);
        free(desc);
    }
    if ((st = dlv_model_embed_dim(model, &dim)) != DLV_OK) {
        rc = fail("dlv_model_embed_dim", st);
        goto done;
    }
    if (load_only) goto done;

    if ((st = dlv_session_options_new(&sopts)) != DLV_OK ||
        (st = dlv_session_options_set_threads(sopts, threads)) != DLV_OK ||
        (st = dlv_session_options_set_compute(sopts, compute)) != DLV_OK ||
        (st = dlv_session_new(model, sopts, &session)) != DLV_OK) {
        rc = fail("creating the session", st);
        goto done;
    }
    printf("  compute        %s\n", compute);
    print_rss("after session");
    img = malloc(dim * sizeof *img);
    txt = malloc(dim * sizeof *txt);
    if (!img || !txt) {
        printf("FAIL: out of memory\n");
        rc = 1;
        goto done;
    }

    t0 = now_s();
    st = dlv_encode_image_file(session, image, img, dim);
    double t_img = now_s() - t0;
    if (st == DLV_E_NOT_IMPLEMENTED) {
        printf("  encode: not implemented in this build (%s)\n", dlv_last_error());
        not_impl = 1;
        goto done;
    }
    if (st != DLV_OK) {
        rc = fail("dlv_encode_image_file", st);
        goto done;
    }
    printf("  image          %8.2f s  (%s)\n", t_img, image);
    print_rss("after image");
    rc |= check_embedding("image", img, dim);

    t0 = now_s();
    st = dlv_encode_text(session, &text, 1, txt, dim);
    double t_txt = now_s() - t0;
    if (st != DLV_OK) {
        rc = fail("dlv_encode_text", st);
        goto done;
    }
    printf("  text           %8.2f s  (\"%s\")\n", t_txt, text);
    print_rss("after text");
    rc |= check_embedding("text", txt, dim);

    float score = 0;
    if (dlv_score(session, img, 1, txt, 1, dim, &score, 1) == DLV_OK)
        printf("  score          %.6f\n", (double)score);
    if (check_f32 && !rc) rc = compare_f32(model, threads, image, text, img, txt, dim);

done:
    dlv_session_free(session);
    dlv_session_options_free(sopts);
    dlv_model_free(model);
    free(img);
    free(txt);
    {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        double peak = (double)ru.ru_maxrss * 1024.0; /* kB on Linux */
        double ratio = peak / wbytes;
        printf("peak RSS %.0f bytes (%.2f GiB), weights %.0f bytes (%.2f GiB), ratio %.3f "
               "(limit %.1f)\n",
               peak, gib(peak), wbytes, gib(wbytes), ratio, RSS_LIMIT);
        if (ratio >= RSS_LIMIT) {
            printf("FAIL: peak RSS >= %.1f x the weight bytes\n", RSS_LIMIT);
            rc = 1;
        }
    }
    if (rc) return 1;
    if (not_impl) return 3;
    printf("PASS\n");
    return 0;
}
