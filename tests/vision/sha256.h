/* SHA-256 (FIPS 180-4) for comparing test outputs with golden digests. */
#ifndef DLV_TEST_SHA256_H
#define DLV_TEST_SHA256_H

#include <stddef.h>

/* Writes the lowercase hex digest (64 characters + NUL) of data to hex. */
void test_sha256_hex(const void *data, size_t n, char hex[65]);

#endif
