/*
 * json_util: typed, range-checked reads of optional keys from a cJSON object.
 * Each returns 0 when the key is absent (and not required) or valid, and -1
 * with a message naming the file and key otherwise.
 */
#ifndef LM_JSON_UTIL_H
#define LM_JSON_UTIL_H

#include "base/util.h"
#include <cjson/cJSON.h>

int lm_json_int(const cJSON *obj, const char *key, int *out, int lo, int hi, bool required, const char *file, lm_err *err);
int lm_json_float(const cJSON *obj, const char *key, float *out, float lo, float hi, const char *file, lm_err *err);
int lm_json_bool(const cJSON *obj, const char *key, bool *out, const char *file, lm_err *err);
/* A null value counts as absent. */
int lm_json_string(const cJSON *obj, const char *key, char *out, size_t cap, const char *file, lm_err *err);

/* Appends o to b as one line of JSON and deletes o: 0, or -1 when out of memory. */
int lm_json_append_line(lm_strbuf *b, cJSON *o);

#endif
