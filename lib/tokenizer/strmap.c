/* Open-addressing hash tables (linear probing, FNV-1a / a 64-bit mix) for
 * the vocabulary and the merge table; jansson's objects are only used while
 * parsing. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/text_util.h"

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static size_t table_cap(size_t expected)
{
    size_t cap = 16;
    while (cap < expected * 2 + 2) cap *= 2;
    return cap;
}

dlv_status dlv_strmap_init(dlv_strmap *m, size_t expected)
{
    memset(m, 0, sizeof *m);
    if (expected > ((size_t)1 << 28)) return dlv_error_nomem("a vocabulary table", SIZE_MAX);
    m->cap = table_cap(expected);
    m->keys = calloc(m->cap, sizeof *m->keys);
    m->lens = calloc(m->cap, sizeof *m->lens);
    m->hashes = calloc(m->cap, sizeof *m->hashes);
    m->vals = calloc(m->cap, sizeof *m->vals);
    if (!m->keys || !m->lens || !m->hashes || !m->vals) {
        dlv_strmap_free(m);
        return dlv_error_nomem("a vocabulary table", m->cap * 16);
    }
    return DLV_OK;
}

static dlv_status strmap_grow(dlv_strmap *m)
{
    dlv_strmap bigger;
    dlv_status st = dlv_strmap_init(&bigger, m->cap);
    if (st != DLV_OK) return st;
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i]) dlv_strmap_put(&bigger, m->keys[i], m->lens[i], m->vals[i]);
    dlv_strmap_free(m);
    *m = bigger;
    return DLV_OK;
}

dlv_status dlv_strmap_put(dlv_strmap *m, const char *key, size_t len, int32_t val)
{
    if (len > UINT32_MAX) return dlv_error(DLV_E_FORMAT, "a token of %zu bytes is too long", len);
    if ((m->n + 1) * 2 > m->cap) {
        dlv_status st = strmap_grow(m);
        if (st != DLV_OK) return st;
    }
    uint64_t h = hash_bytes(key, len);
    size_t mask = m->cap - 1, i = (size_t)h & mask;
    while (m->keys[i]) {
        if (m->hashes[i] == (uint32_t)(h >> 32) && m->lens[i] == len &&
            memcmp(m->keys[i], key, len) == 0) {
            m->vals[i] = val;
            return DLV_OK;
        }
        i = (i + 1) & mask;
    }
    m->keys[i] = key;
    m->hashes[i] = (uint32_t)(h >> 32);
    m->lens[i] = (uint32_t)len;
    m->vals[i] = val;
    m->n++;
    return DLV_OK;
}

int32_t dlv_strmap_get(const dlv_strmap *m, const char *key, size_t len)
{
    if (!m->cap) return -1;
    uint64_t h = hash_bytes(key, len);
    size_t mask = m->cap - 1, i = (size_t)h & mask;
    while (m->keys[i]) {
        if (m->hashes[i] == (uint32_t)(h >> 32) && m->lens[i] == len &&
            memcmp(m->keys[i], key, len) == 0)
            return m->vals[i];
        i = (i + 1) & mask;
    }
    return -1;
}

void dlv_strmap_free(dlv_strmap *m)
{
    free(m->keys);
    free(m->lens);
    free(m->hashes);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

dlv_status dlv_pairmap_init(dlv_pairmap *m, size_t expected)
{
    memset(m, 0, sizeof *m);
    if (expected > ((size_t)1 << 28)) return dlv_error_nomem("a merge table", SIZE_MAX);
    m->cap = table_cap(expected);
    m->keys = calloc(m->cap, sizeof *m->keys);
    m->rank = calloc(m->cap, sizeof *m->rank);
    m->merged = calloc(m->cap, sizeof *m->merged);
    if (!m->keys || !m->rank || !m->merged) {
        dlv_pairmap_free(m);
        return dlv_error_nomem("a merge table", m->cap * 16);
    }
    return DLV_OK;
}

static uint64_t pair_key(int32_t a, int32_t b)
{
    return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
}

dlv_status dlv_pairmap_put(dlv_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t merged)
{
    if ((m->n + 1) * 2 > m->cap) {
        dlv_pairmap bigger;
        dlv_status st = dlv_pairmap_init(&bigger, m->cap);
        if (st != DLV_OK) return st;
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i]) {
                uint64_t k = m->keys[i] - 1;
                dlv_pairmap_put(&bigger, (int32_t)(k >> 32), (int32_t)(k & 0xFFFFFFFFu),
                                m->rank[i], m->merged[i]);
            }
        dlv_pairmap_free(m);
        *m = bigger;
    }
    uint64_t key = pair_key(a, b);
    size_t mask = m->cap - 1, i = (size_t)mix64(key) & mask;
    while (m->keys[i]) {
        if (m->keys[i] == key) {
            m->rank[i] = rank;
            m->merged[i] = merged;
            return DLV_OK;
        }
        i = (i + 1) & mask;
    }
    m->keys[i] = key;
    m->rank[i] = rank;
    m->merged[i] = merged;
    m->n++;
    return DLV_OK;
}

int dlv_pairmap_get(const dlv_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *merged)
{
    if (!m->cap) return 0;
    uint64_t key = pair_key(a, b);
    size_t mask = m->cap - 1, i = (size_t)mix64(key) & mask;
    while (m->keys[i]) {
        if (m->keys[i] == key) {
            *rank = m->rank[i];
            *merged = m->merged[i];
            return 1;
        }
        i = (i + 1) & mask;
    }
    return 0;
}

void dlv_pairmap_free(dlv_pairmap *m)
{
    free(m->keys);
    free(m->rank);
    free(m->merged);
    memset(m, 0, sizeof *m);
}
