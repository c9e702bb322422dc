/* json_util: see json_util.h. */
#include "base/json_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int lm_json_int(const cJSON *obj, const char *key, int *out, int lo, int hi, bool required, const char *file, lm_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) return required ? lm_fail(err, "%s: missing key '%s'", file, key) : 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return lm_fail(err, "%s: '%s' must be an integer", file, key);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return lm_fail(err, "%s: '%s' is %.0f, outside [%d, %d]", file, key, v->valuedouble, lo, hi);
    *out = (int)v->valuedouble;
    return 0;
}

int lm_json_float(const cJSON *obj, const char *key, float *out, float lo, float hi, const char *file, lm_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v)) return lm_fail(err, "%s: '%s' must be a number", file, key);
    if (!(v->valuedouble >= lo && v->valuedouble <= hi))
        return lm_fail(err, "%s: '%s' is %g, outside [%g, %g]", file, key, v->valuedouble, lo, hi);
    *out = (float)v->valuedouble;
    return 0;
}

int lm_json_bool(const cJSON *obj, const char *key, bool *out, const char *file, lm_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) return lm_fail(err, "%s: '%s' must be true or false", file, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

int lm_json_string(const cJSON *obj, const char *key, char *out, size_t cap, const char *file, lm_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsString(v)) return lm_fail(err, "%s: '%s' must be a string", file, key);
    if (strlen(v->valuestring) >= cap) return lm_fail(err, "%s: '%s' is too long", file, key);
    strcpy(out, v->valuestring);
    return 0;
}

int lm_json_append_line(lm_strbuf *b, cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    int rc = s && lm_strbuf_add(b, s, strlen(s)) == 0 && lm_strbuf_add(b, "\n", 1) == 0 ? 0 : -1;
    free(s);
    cJSON_Delete(o);
    return rc;
}
