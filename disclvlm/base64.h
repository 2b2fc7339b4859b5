/* Standard base64 (RFC 4648, '+' '/', '=' padding), for the server's
 * embeddings (encoding_format "base64") and images. */
#ifndef DLV_CLI_BASE64_H
#define DLV_CLI_BASE64_H

#include <stddef.h>

/* Decodes n characters of src into a new buffer (*out, *out_len; free()).
 * Whitespace is skipped; anything else that is not base64, or a wrong
 * length or padding, is -1 (nothing allocated). */
int base64_decode(const char *src, size_t n, unsigned char **out, size_t *out_len);
/* The encoding of n bytes as a new NUL-terminated string (free()), or NULL. */
char *base64_encode(const void *src, size_t n);

#endif
