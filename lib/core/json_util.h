/* jansson helpers: strict parsing and typed field access with defaults.
 * Every error names the label (usually the file) and the field. */
#ifndef DLV_CORE_JSON_UTIL_H
#define DLV_CORE_JSON_UTIL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "disclvlm.h"

/* Parses text (not necessarily NUL-terminated) rejecting duplicate keys. */
dlv_status dlv_json_parse(const char *text, size_t len, const char *label, json_t **out);

/* Reads the file at path (at most max_bytes) and parses it as a JSON object
 * (anything else: DLV_E_FORMAT "path: expected a JSON object"). */
dlv_status dlv_json_load_object(const char *path, size_t max_bytes, json_t **out);

/* The frame of every config parser: parses text (NUL-terminated or not) as
 * JSON and hands the root to from_root(root, label, out); on any failure
 * *out (out_size bytes) is left zeroed. dlv_json_config_load reads the file
 * at path first (at most max_bytes) and labels messages with the path. */
typedef dlv_status (*dlv_json_root_fn)(const json_t *root, const char *label, void *out);
dlv_status dlv_json_config_parse(const char *text, size_t len, const char *label,
                                 dlv_json_root_fn from_root, void *out, size_t out_size);
dlv_status dlv_json_config_load(const char *path, size_t max_bytes, dlv_json_root_fn from_root,
                                void *out, size_t out_size);

/* Writes root to path as indented JSON (keys in insertion order) and a
 * newline, atomically (core/fs.h). root is not consumed. */
dlv_status dlv_json_save(const json_t *root, const char *path);

/* Typed getters on obj[key]. Absent or null -> *out = def, DLV_OK. Present
 * with the wrong type -> DLV_E_FORMAT "label: field 'key': expected ...". */
dlv_status dlv_json_int(const json_t *obj, const char *key, int64_t def,
                        const char *label, int64_t *out);
/* Accepts integers and reals. */
dlv_status dlv_json_real(const json_t *obj, const char *key, double def,
                         const char *label, double *out);
dlv_status dlv_json_bool(const json_t *obj, const char *key, int def,
                         const char *label, int *out);
/* Copies a string into buf (cap bytes); too long -> DLV_E_FORMAT. */
dlv_status dlv_json_str(const json_t *obj, const char *key, const char *def,
                        const char *label, char *buf, size_t cap);

#endif
