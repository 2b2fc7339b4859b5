/* SHA-256 (FIPS 180-4): a small streaming implementation, for the dataset
 * file hashes that evaluation results carry (docs/evaluation.md) and the
 * embedding cache keys. Not for secrets: no constant-time guarantees. */
#ifndef DLV_TOOLS_SHA256_H
#define DLV_TOOLS_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "disclvlm.h"

typedef struct dlv_sha256 {
    uint32_t h[8];
    uint64_t n_bytes;  /* message length so far */
    uint8_t block[64]; /* pending input */
    size_t used;       /* bytes in block */
} dlv_sha256;

void dlv_sha256_init(dlv_sha256 *c);
void dlv_sha256_update(dlv_sha256 *c, const void *data, size_t n);
/* Writes the 32-byte digest; the context must be re-initialised to reuse. */
void dlv_sha256_final(dlv_sha256 *c, uint8_t digest[32]);

/* The lowercase hex digest (64 characters + NUL) of n bytes. */
void dlv_sha256_hex(const void *data, size_t n, char hex[65]);
/* The digest as hex (64 characters + NUL). */
void dlv_sha256_to_hex(const uint8_t digest[32], char hex[65]);

/* The hex digest of a whole file, read in chunks (any size). DLV_E_IO
 * naming the path when it cannot be opened or read. */
dlv_status dlv_sha256_file(const char *path, char hex[65]);

#endif
