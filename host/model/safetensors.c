/*
 * safetensors reader. Layout: u64 little-endian header length N, N bytes of
 * JSON starting with '{', then the data buffer. We enforce the rules of the
 * reference implementation: N bounded, tensors contiguous and
 * non-overlapping, covering the data buffer exactly, sizes matching
 * shape x dtype, no duplicate names.
 */
#include "model/tensor_file.h"
#include "model/model_files.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAFETENSORS_MAX_HEADER 100000000ull

typedef struct {
    uint64_t begin, end;
    int index;
} span;

static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static int parse_dtype(const char *s, lm_dtype *out) {
    if (strcmp(s, "F32") == 0) *out = LM_F32;
    else if (strcmp(s, "F16") == 0) *out = LM_F16;
    else if (strcmp(s, "BF16") == 0) *out = LM_BF16;
    else return -1;
    return 0;
}

/* A JSON number that is a non-negative integer representable exactly. */
static int json_u64(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || d != (double)(uint64_t)d) return -1;
    *out = (uint64_t)d;
    return 0;
}

static int parse_entry(const cJSON *item, lm_tensor_info *t, uint64_t *begin, uint64_t *end, lm_err *err) {
    const char *name = item->string;
    if (strlen(name) >= LM_MAX_NAME) return lm_fail(err, "tensor name too long: '%.40s...'", name);
    memset(t, 0, sizeof *t);
    strcpy(t->name, name);
    if (!cJSON_IsObject(item)) return lm_fail(err, "tensor '%s': entry is not an object", name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dt)) return lm_fail(err, "tensor '%s': missing dtype", name);
    if (parse_dtype(dt->valuestring, &t->dtype) != 0)
        return lm_fail(err, "tensor '%s': unsupported dtype %s (need F32, F16 or BF16)", name, dt->valuestring);
    if (!cJSON_IsArray(shape)) return lm_fail(err, "tensor '%s': missing shape", name);
    int nd = cJSON_GetArraySize(shape);
    if (nd > LM_MAX_DIMS) return lm_fail(err, "tensor '%s': %d dimensions, at most %d allowed", name, nd, LM_MAX_DIMS);
    t->ndim = nd;
    uint64_t numel = 1;
    for (int i = 0; i < nd; i++) {
        uint64_t d;
        if (json_u64(cJSON_GetArrayItem(shape, i), &d) != 0 || d > INT64_MAX)
            return lm_fail(err, "tensor '%s': bad shape entry %d", name, i);
        t->shape[i] = (int64_t)d;
        if (!lm_mul_u64(numel, d, &numel)) return lm_fail(err, "tensor '%s': shape overflows", name);
    }
    if (!lm_mul_u64(numel, lm_dtype_size(t->dtype), &t->nbytes))
        return lm_fail(err, "tensor '%s': byte size overflows", name);
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        json_u64(cJSON_GetArrayItem(offs, 0), begin) != 0 || json_u64(cJSON_GetArrayItem(offs, 1), end) != 0)
        return lm_fail(err, "tensor '%s': bad data_offsets", name);
    if (*end < *begin || *end - *begin != t->nbytes)
        return lm_fail(err, "tensor '%s': data_offsets [%llu, %llu) hold %llu bytes but shape x dtype needs %llu",
                       name, (unsigned long long)*begin, (unsigned long long)*end,
                       (unsigned long long)(*end - *begin), (unsigned long long)t->nbytes);
    return 0;
}

static int parse_header(lm_tensor_file *tf, const char *json, size_t json_len, const uint8_t *buffer,
                        uint64_t buffer_len, lm_err *err) {
    cJSON *root = cJSON_ParseWithLength(json, json_len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return lm_fail(err, "header is not a JSON object");
    }
    int count = cJSON_GetArraySize(root);
    span *spans = calloc((size_t)count + 1, sizeof *spans);
    int n_spans = 0, rc = -1;
    if (!spans) { lm_fail(err, "out of memory"); goto done; }
    for (const cJSON *item = root->child; item; item = item->next) {
        if (strcmp(item->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(item)) { lm_fail(err, "__metadata__ is not an object"); goto done; }
            continue;
        }
        lm_tensor_info t;
        uint64_t begin = 0, end = 0;
        if (parse_entry(item, &t, &begin, &end, err) != 0) goto done;
        t.data = buffer + begin; /* validated against buffer_len below, before use */
        t.storage = t.data;
        t.storage_nbytes = t.nbytes;
        t.storage_id = tf->n;
        if (lm_tensor_file_add(tf, &t, err) != 0) goto done;
        spans[n_spans++] = (span){begin, end, tf->n - 1};
    }
    /* contiguous, non-overlapping, exact cover of the data buffer */
    qsort(spans, (size_t)n_spans, sizeof *spans, span_cmp);
    uint64_t pos = 0;
    for (int i = 0; i < n_spans; i++) {
        const char *name = tf->tensors[spans[i].index].name;
        if (spans[i].begin != pos) {
            lm_fail(err, "tensor '%s': data starts at %llu, expected %llu (%s)", name,
                    (unsigned long long)spans[i].begin, (unsigned long long)pos,
                    spans[i].begin < pos ? "overlaps the previous tensor" : "gap before it");
            goto done;
        }
        pos = spans[i].end;
    }
    if (pos != buffer_len) {
        lm_fail(err, "tensors cover %llu bytes but the data section is %llu bytes (%s)",
                (unsigned long long)pos, (unsigned long long)buffer_len,
                pos > buffer_len ? "file truncated" : "trailing bytes");
        goto done;
    }
    rc = 0;
done:
    free(spans);
    cJSON_Delete(root);
    return rc;
}

int lm_safetensors_open(const char *path, lm_tensor_file *tf, lm_err *err) {
    memset(tf, 0, sizeof *tf);
    snprintf(tf->path, sizeof tf->path, "%s", path);
    if (lm_mmap_open(path, lm_model_files[LM_MF_SAFETENSORS].max_bytes, &tf->map, err) != 0) return -1;
    const uint8_t *d = tf->map.data;
    uint64_t size = tf->map.size;
    if (size < 8) { lm_fail(err, "%s: file too small for a safetensors header", path); goto fail; }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | d[i];
    if (n > SAFETENSORS_MAX_HEADER) {
        lm_fail(err, "%s: header length %llu exceeds the %llu limit", path, (unsigned long long)n,
                SAFETENSORS_MAX_HEADER);
        goto fail;
    }
    if (n + 8 > size) {
        lm_fail(err, "%s: header length %llu runs past the end of the %llu-byte file", path,
                (unsigned long long)n, (unsigned long long)size);
        goto fail;
    }
    if (n < 2 || d[8] != '{') { lm_fail(err, "%s: header does not start with '{'", path); goto fail; }
    if (lm_utf8_invalid_at((const char *)d + 8, n) >= 0) {
        lm_fail(err, "%s: header is not valid UTF-8", path);
        goto fail;
    }
    if (parse_header(tf, (const char *)d + 8, n, d + 8 + n, size - 8 - n, err) != 0) {
        lm_fail_prefix(err, "%s", path);
        goto fail;
    }
    return 0;
fail:
    lm_tensor_file_close(tf);
    return -1;
}
