/* corpus: see corpus.h. */
#include "corpus.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int add_file(lm_corpus *c, const char *path, const char *name, lm_err *err) {
    lm_corpus_file *grown = realloc(c->files, ((size_t)c->n_files + 1) * sizeof *grown);
    if (!grown) return lm_fail(err, "out of memory");
    c->files = grown;
    lm_corpus_file *f = &c->files[c->n_files];
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    f->name = strdup(name);
    c->n_files++;
    if (!f->path || !f->name) return lm_fail(err, "out of memory");
    return 0;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Adds the regular files under dir (skipping hidden names), sorted by name
 * at each level so a job always sees the same order. */
static int add_dir(lm_corpus *c, const char *dir, const char *rel, int depth, lm_err *err) {
    if (depth > 64) return lm_fail(err, "%s: directories nest too deeply", dir);
    DIR *d = opendir(dir);
    if (!d) return lm_fail(err, "%s: cannot open directory: %s", dir, strerror(errno));
    char **names = NULL;
    int n = 0, rc = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char **grown = realloc(names, ((size_t)n + 1) * sizeof *names);
        if (!grown || !(grown[n] = strdup(e->d_name))) { names = grown ? grown : names; rc = lm_fail(err, "out of memory"); break; }
        names = grown;
        n++;
    }
    closedir(d);
    if (rc == 0) qsort(names, (size_t)n, sizeof *names, by_name);
    for (int i = 0; i < n && rc == 0; i++) {
        char path[4096], name[4096];
        struct stat st;
        if (snprintf(path, sizeof path, "%s/%s", dir, names[i]) >= (int)sizeof path ||
            snprintf(name, sizeof name, "%s%s%s", rel, rel[0] ? "/" : "", names[i]) >= (int)sizeof name) {
            rc = lm_fail(err, "%s/%s: path too long", dir, names[i]);
        } else if (stat(path, &st) != 0) {
            rc = lm_fail(err, "%s: %s", path, strerror(errno));
        } else if (S_ISDIR(st.st_mode)) {
            rc = add_dir(c, path, name, depth + 1, err);
        } else if (S_ISREG(st.st_mode)) {
            rc = add_file(c, path, name, err);
        }
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

int lm_corpus_open(lm_corpus *c, const char *const *paths, int n_paths, const lm_engine_config *cfg, lm_err *err) {
    memset(c, 0, sizeof *c);
    c->format = cfg->input_format;
    strcpy(c->id_field, cfg->id_field);
    strcpy(c->text_field, cfg->text_field);
    for (int i = 0; i < n_paths; i++) {
        struct stat st;
        if (stat(paths[i], &st) != 0) { lm_fail(err, "%s: cannot open: %s", paths[i], strerror(errno)); goto fail; }
        if (S_ISDIR(st.st_mode)) {
            if (add_dir(c, paths[i], "", 0, err) != 0) goto fail;
        } else {
            const char *base = strrchr(paths[i], '/');
            if (add_file(c, paths[i], base ? base + 1 : paths[i], err) != 0) goto fail;
        }
    }
    if (n_paths > 0 && c->n_files == 0) { lm_fail(err, "%s: no input files found", paths[0]); goto fail; }
    return 0;
fail:
    lm_corpus_close(c);
    return -1;
}

void lm_corpus_close(lm_corpus *c) {
    for (int i = 0; i < c->n_files; i++) { free(c->files[i].path); free(c->files[i].name); }
    free(c->files);
    if (c->f && c->f != stdin) fclose(c->f);
    free(c->buf);
    memset(c, 0, sizeof *c);
}

int lm_corpus_scan(lm_corpus *c, lm_err *err) {
    enum { CHUNK = 1 << 20 };
    char *buf = lm_malloc(CHUNK, err);
    if (!buf) return -1;
    for (int i = 0; i < c->n_files; i++) {
        lm_corpus_file *f = &c->files[i];
        FILE *in = fopen(f->path, "rb");
        if (!in) { free(buf); return lm_fail(err, "%s: cannot open: %s", f->path, strerror(errno)); }
        uint64_t h = LM_HASH_INIT;
        size_t got;
        char last = '\n';
        f->size = 0;
        f->lines = 0;
        while ((got = fread(buf, 1, CHUNK, in)) > 0) {
            h = lm_hash64(buf, got, h);
            for (char *p = buf; (p = memchr(p, '\n', got - (size_t)(p - buf))); p++) f->lines++;
            f->size += got;
            last = buf[got - 1];
        }
        bool bad = ferror(in);
        fclose(in);
        if (bad) { free(buf); return lm_fail(err, "%s: read error", f->path); }
        if (last != '\n') f->lines++; /* a last line without its newline */
        f->hash = h;
    }
    free(buf);
    return 0;
}

long lm_corpus_total(const lm_corpus *c) {
    if (c->n_files == 0) return -1;
    long n = 0;
    for (int i = 0; i < c->n_files; i++) n += c->files[i].lines;
    return n;
}

const char *lm_corpus_file_label(const lm_corpus *c, int file) {
    return c->n_files == 0 ? "<stdin>" : c->files[file].path;
}

int lm_utf8_repair(char **s, size_t *len) {
    int fixed = 0;
    for (;;) {
        long bad = lm_utf8_invalid_at(*s, *len);
        size_t nul = strnlen(*s, *len);
        if (bad < 0 && nul == *len) return fixed;
        size_t at = bad >= 0 && (size_t)bad < nul ? (size_t)bad : nul;
        char *out = malloc(*len + 3);
        if (!out) return -1;
        memcpy(out, *s, at);
        memcpy(out + at, "\xef\xbf\xbd", 3);
        memcpy(out + at + 3, *s + at + 1, *len - at - 1);
        *len += 2;
        out[*len] = '\0';
        free(*s);
        *s = out;
        fixed++;
    }
}

/* text may point into r->text itself. */
static int set_text(lm_record *r, const char *text, size_t len) {
    char *copy = malloc(len + 1);
    if (!copy) return -1;
    memcpy(copy, text, len);
    copy[len] = '\0';
    free(r->text);
    r->text = copy;
    r->len = len;
    return 0;
}

/* Splits a TSV or JSONL line into id and text; r->text holds the raw line. */
static int parse_fields(lm_corpus *c, lm_record *r) {
    if (lm_is_blank(r->text, r->len)) {
        r->id = strdup("");
        return set_text(r, "", 0);
    }
    if (c->format == LM_FORMAT_TSV) {
        char *tab = memchr(r->text, '\t', r->len);
        if (!tab) {
            r->malformed = "no tab between id and text";
            r->id = strdup("");
            return set_text(r, "", 0);
        }
        r->id = strndup(r->text, (size_t)(tab - r->text));
        char *rest = tab + 1;
        return set_text(r, rest, r->len - (size_t)(rest - r->text));
    }
    cJSON *obj = cJSON_ParseWithLength(r->text, r->len);
    const cJSON *id = obj ? cJSON_GetObjectItemCaseSensitive(obj, c->id_field) : NULL;
    const cJSON *text = obj ? cJSON_GetObjectItemCaseSensitive(obj, c->text_field) : NULL;
    int rc = 0;
    if (!cJSON_IsObject(obj)) r->malformed = "not a JSON object";
    else if (!cJSON_IsString(text)) r->malformed = "no string text field";
    if (cJSON_IsString(id)) {
        r->id = strdup(id->valuestring);
    } else if (cJSON_IsNumber(id) && isfinite(id->valuedouble)) {
        char num[64];
        snprintf(num, sizeof num, "%.17g", id->valuedouble);
        r->id = strdup(num);
        r->id_is_number = true;
    } else {
        r->id = strdup(""); /* missing or unusable id: the line number still places it */
    }
    if (r->malformed) rc = set_text(r, "", 0);
    else rc = set_text(r, text->valuestring, strlen(text->valuestring));
    cJSON_Delete(obj);
    return rc;
}

int lm_corpus_next(lm_corpus *c, lm_record *r, lm_err *err) {
    memset(r, 0, sizeof *r);
    ssize_t got;
    for (;;) {
        if (!c->f) {
            if (c->n_files == 0) {
                if (c->cur > 0) return 0;
                c->f = stdin;
            } else {
                if (c->cur >= c->n_files) return 0;
                c->f = fopen(c->files[c->cur].path, "rb");
                if (!c->f) return lm_fail(err, "%s: cannot open: %s", c->files[c->cur].path, strerror(errno));
            }
            c->line_no = 0;
        }
        got = getline(&c->buf, &c->cap, c->f);
        if (got >= 0) break;
        bool bad = ferror(c->f);
        if (c->f != stdin) fclose(c->f);
        c->f = NULL;
        if (bad) return lm_fail(err, "%s: read error", lm_corpus_file_label(c, c->cur));
        c->cur++;
    }
    size_t len = (size_t)got;
    c->line_no++;
    if (len && c->buf[len - 1] == '\n') len--;
    if (len && c->buf[len - 1] == '\r') len--;
    r->file = c->n_files ? c->cur : 0;
    r->line = c->line_no;
    if (set_text(r, c->buf, len) != 0) return lm_fail(err, "out of memory");
    r->bad_bytes = lm_utf8_repair(&r->text, &r->len);
    if (r->bad_bytes < 0) return lm_fail(err, "out of memory");
    if (c->format == LM_FORMAT_TEXT) {
        char id[4200];
        if (c->n_files > 1) snprintf(id, sizeof id, "%s:%ld", c->files[c->cur].name, r->line);
        else snprintf(id, sizeof id, "%ld", r->line);
        r->id = strdup(id);
        r->id_is_number = c->n_files <= 1;
    } else if (parse_fields(c, r) != 0) {
        return lm_fail(err, "out of memory");
    }
    if (!r->id) return lm_fail(err, "out of memory");
    return 1;
}

void lm_record_free(lm_record *r) {
    free(r->id);
    free(r->text);
    memset(r, 0, sizeof *r);
}
