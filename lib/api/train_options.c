/* dlv_train_options: key = value settings over dlv_train_config. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/train_options.h"
#include "core/error.h"
#include "model/lora.h"

DLV_API dlv_status dlv_train_options_new(dlv_train_options **out)
{
    if (!out) return dlv_error(DLV_E_INVALID_ARG, "dlv_train_options_new: out is NULL");
    *out = malloc(sizeof **out);
    if (!*out) return dlv_error_nomem("train options", sizeof **out);
    dlv_train_config_defaults(&(*out)->cfg);
    return DLV_OK;
}

DLV_API void dlv_train_options_free(dlv_train_options *opts) { free(opts); }

static dlv_status bad(const char *key, const char *value, const char *want)
{
    return dlv_error(DLV_E_INVALID_ARG, "dlv_train_options_set: %s = '%s': expected %s", key,
                     value, want);
}

static dlv_status parse_real(const char *key, const char *value, double lo, double hi,
                             double *out)
{
    char *end = NULL;
    errno = 0;
    double d = strtod(value, &end);
    if (end == value || *end || errno || !isfinite(d) || d < lo || d > hi) {
        /* The message gives the range the key accepts. */
        char want[96];
        if (isfinite(hi) && hi < 1e300)
            snprintf(want, sizeof want, "a number in [%g, %g]", lo, hi);
        else
            snprintf(want, sizeof want, "a finite number >= %g", lo);
        return bad(key, value, want);
    }
    *out = d;
    return DLV_OK;
}

static dlv_status parse_int(const char *key, const char *value, long long lo, long long hi,
                            long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (end == value || *end || errno || v < lo || v > hi) {
        char want[96];
        if (hi < LLONG_MAX)
            snprintf(want, sizeof want, "an integer in %lld..%lld", lo, hi);
        else
            snprintf(want, sizeof want, "an integer >= %lld", lo);
        return bad(key, value, want);
    }
    *out = v;
    return DLV_OK;
}

static dlv_status parse_bool(const char *key, const char *value, int *out)
{
    if (!strcmp(value, "1") || !strcmp(value, "true")) *out = 1;
    else if (!strcmp(value, "0") || !strcmp(value, "false")) *out = 0;
    else return bad(key, value, "0, 1, true or false");
    return DLV_OK;
}

/* A comma list of names into a bit mask; names[i] is bit i. */
static dlv_status parse_list(const char *key, const char *value, const char *const *names,
                             size_t n_names, unsigned *out)
{
    unsigned mask = 0;
    const char *p = value;
    while (*p) {
        size_t len = strcspn(p, ",");
        size_t i = 0;
        for (; i < n_names; i++)
            if (strlen(names[i]) == len && !strncmp(p, names[i], len)) break;
        if (i == n_names) {
            char want[256];
            size_t used = (size_t)snprintf(want, sizeof want, "a comma list of");
            for (size_t k = 0; k < n_names && used < sizeof want; k++)
                used += (size_t)snprintf(want + used, sizeof want - used, "%s %s",
                                         k ? "," : "", names[k]);
            return bad(key, value, want);
        }
        mask |= 1u << i;
        p += len;
        if (*p == ',') p++;
    }
    if (!mask) return bad(key, value, "at least one name");
    *out = mask;
    return DLV_OK;
}

DLV_API dlv_status dlv_train_options_set(dlv_train_options *opts, const char *key,
                                         const char *value)
{
    if (!opts || !key || !value)
        return dlv_error(DLV_E_INVALID_ARG, "dlv_train_options_set: NULL argument");
    dlv_train_config *c = &opts->cfg;
    long long i = 0;
    dlv_status st;
    if (!strcmp(key, "train")) {
        static const char *const sets[] = {"soft", "lora", "logit_scale", "projector", "llm",
                                           "vision"};
        return parse_list(key, value, sets, 6, &c->sets);
    }
    if (!strcmp(key, "lora_targets")) {
        static const char *const mods[] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                           "gate_proj", "up_proj", "down_proj"};
        return parse_list(key, value, mods, DLV_LORA_N_MODULES, &c->lora_targets);
    }
    if (!strcmp(key, "optimizer")) {
        if (!strcmp(value, "adamw")) c->optim.kind = DLV_OPT_ADAMW;
        else if (!strcmp(value, "sgd")) c->optim.kind = DLV_OPT_SGD;
        else return bad(key, value, "adamw or sgd");
        return DLV_OK;
    }
    if (!strcmp(key, "schedule")) {
        if (!strcmp(value, "constant")) c->optim.schedule = DLV_SCHED_CONSTANT;
        else if (!strcmp(value, "cosine")) c->optim.schedule = DLV_SCHED_COSINE;
        else return bad(key, value, "constant or cosine");
        return DLV_OK;
    }
    if (!strcmp(key, "lr")) return parse_real(key, value, 0, 1e6, &c->optim.lr);
    if (!strcmp(key, "weight_decay")) return parse_real(key, value, 0, 1e6, &c->optim.weight_decay);
    if (!strcmp(key, "beta1")) return parse_real(key, value, 0, 0.999999, &c->optim.beta1);
    if (!strcmp(key, "beta2")) return parse_real(key, value, 0, 0.999999999, &c->optim.beta2);
    if (!strcmp(key, "eps")) return parse_real(key, value, 1e-30, 1, &c->optim.eps);
    if (!strcmp(key, "grad_clip")) return parse_real(key, value, 0, 1e12, &c->optim.grad_clip);
    if (!strcmp(key, "lora_alpha")) return parse_real(key, value, 1e-9, 1e9, &c->lora_alpha);
    if (!strcmp(key, "ntp_weight")) return parse_real(key, value, 0, 1e6, &c->ntp_weight);
    if (!strcmp(key, "contrastive")) return parse_bool(key, value, &c->contrastive);
    if (!strcmp(key, "recompute")) return parse_bool(key, value, &c->recompute);
    if (!strcmp(key, "cache_features")) return parse_bool(key, value, &c->cache_features);
    if (!strcmp(key, "warmup")) {
        if ((st = parse_int(key, value, 0, INT64_MAX / 2, &i))) return st;
        c->optim.warmup = i;
        return DLV_OK;
    }
    if (!strcmp(key, "total_steps")) {
        if ((st = parse_int(key, value, 0, INT64_MAX / 2, &i))) return st;
        c->optim.total_steps = i;
        return DLV_OK;
    }
    if (!strcmp(key, "lora_rank")) {
        if ((st = parse_int(key, value, 1, 65536, &i))) return st;
        c->lora_rank = i;
        return DLV_OK;
    }
    if (!strcmp(key, "micro_batch")) {
        if ((st = parse_int(key, value, 0, 1 << 20, &i))) return st;
        c->micro_batch = i;
        return DLV_OK;
    }
    if (!strcmp(key, "seed")) {
        char *end = NULL;
        errno = 0;
        unsigned long long u = strtoull(value, &end, 10);
        if (end == value || *end || errno || value[0] == '-')
            return bad(key, value, "an unsigned integer");
        c->seed = u;
        return DLV_OK;
    }
    return dlv_error(DLV_E_INVALID_ARG, "dlv_train_options_set: unknown key '%s' (see "
                     "docs/training.md)", key);
}
