/* special_tokens: see special_tokens.h. */
#include "model/special_tokens.h"
#include "model/model_files.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static int read_json(const char *dir, lm_model_file_id which, cJSON **root, char *path, size_t cap, lm_err *err) {
    *root = NULL;
    if (lm_path_join(path, cap, dir, lm_model_files[which].name, err) != 0) return -1;
    if (!lm_file_exists(path)) return 0;
    char *text;
    size_t len;
    if (lm_read_file(path, lm_model_files[which].max_bytes, &text, &len, err) != 0) return -1;
    *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(*root)) {
        cJSON_Delete(*root);
        *root = NULL;
        return lm_fail(err, "%s: not a JSON object", path);
    }
    return 0;
}

/* A token is a string or an AddedToken object {"content": ...}. */
static const char *token_text(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsObject(v) && cJSON_IsString(c) ? c->valuestring : NULL;
}

static int add_entry(lm_special_entry **list, int *n, const char *text, int32_t id, const char *path, const char *key, lm_err *err) {
    if (*n >= LM_SPECIAL_MAX) return lm_fail(err, "%s: %s has more than %d tokens", path, key, LM_SPECIAL_MAX);
    size_t len = strlen(text);
    if (len == 0 || len > LM_SPECIAL_MAX_LEN) return lm_fail(err, "%s: %s: a token of %zu bytes (1 to %d allowed)", path, key, len, LM_SPECIAL_MAX_LEN);
    if (lm_utf8_invalid_at(text, len) >= 0) return lm_fail(err, "%s: %s: a token that is not UTF-8", path, key);
    lm_special_entry *p = realloc(*list, (size_t)(*n + 1) * sizeof *p);
    if (!p) return lm_fail(err, "out of memory");
    *list = p;
    if (!(p[*n].text = strdup(text))) return lm_fail(err, "out of memory");
    p[(*n)++].id = id;
    return 0;
}

/* The list under key, if it is a non-empty array; 1 when taken. */
static int take_list(lm_special_tokens *st, const cJSON *root, const char *key, const char *path, lm_err *err) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!a || cJSON_IsNull(a)) return 0;
    if (!cJSON_IsArray(a)) return lm_fail(err, "%s: '%s' must be a list of tokens", path, key);
    if (cJSON_GetArraySize(a) == 0) return 0;
    for (const cJSON *v = a->child; v; v = v->next) {
        const char *text = token_text(v);
        if (!text) return lm_fail(err, "%s: '%s' holds something that is not a token", path, key);
        if (add_entry(&st->extra, &st->n_extra, text, -1, path, key, err) != 0) return -1;
    }
    return 1;
}

static int read_decoder(lm_special_tokens *st, const cJSON *d, const char *path, lm_err *err) {
    if (!cJSON_IsObject(d)) return lm_fail(err, "%s: 'added_tokens_decoder' must be an object of id -> token", path);
    st->has_decoder = true;
    for (const cJSON *v = d->child; v; v = v->next) {
        char *end;
        long id = strtol(v->string, &end, 10);
        const char *text = token_text(v);
        if (!v->string[0] || *end || id < 0 || id > INT32_MAX || !text)
            return lm_fail(err, "%s: added_tokens_decoder: entry '%.40s' is not id -> {\"content\": ...}", path, v->string);
        if (add_entry(&st->decoder, &st->n_decoder, text, (int32_t)id, path, "added_tokens_decoder", err) != 0) return -1;
    }
    return 0;
}

int lm_special_tokens_load(const char *dir, lm_special_tokens *st, lm_err *err) {
    memset(st, 0, sizeof *st);
    char path[4096];
    cJSON *cfg, *map = NULL;
    if (read_json(dir, LM_MF_TOKENIZER_CONFIG, &cfg, path, sizeof path, err) != 0) return -1;
    int rc = 0, taken = 0;
    if (cfg) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder");
        if (d) rc = read_decoder(st, d, path, err);
        if (rc == 0) taken = take_list(st, cfg, "extra_special_tokens", path, err);
        if (rc == 0 && taken == 0) taken = take_list(st, cfg, "additional_special_tokens", path, err);
        if (taken < 0) rc = -1;
    }
    /* the legacy file counts only where the config has no added_tokens_decoder */
    if (rc == 0 && taken == 0 && !st->has_decoder) {
        rc = read_json(dir, LM_MF_SPECIAL_TOKENS_MAP, &map, path, sizeof path, err);
        if (rc == 0 && map) {
            taken = take_list(st, map, "additional_special_tokens", path, err);
            if (taken == 0) taken = take_list(st, map, "extra_special_tokens", path, err);
            if (taken < 0) rc = -1;
        }
    }
    cJSON_Delete(cfg);
    cJSON_Delete(map);
    if (rc != 0) lm_special_tokens_free(st);
    return rc;
}

void lm_special_tokens_free(lm_special_tokens *st) {
    for (int i = 0; i < st->n_extra; i++) free(st->extra[i].text);
    for (int i = 0; i < st->n_decoder; i++) free(st->decoder[i].text);
    free(st->extra);
    free(st->decoder);
    memset(st, 0, sizeof *st);
}
