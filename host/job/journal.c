/* journal: see journal.h. */
#include "job/journal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* 2: inputs known by place, name and content; the arithmetic recorded */
#define MAGIC "lyricmt journal 2"

static void flatten(char *s) {
    for (; *s; s++)
        if (*s == '\t' || *s == '\n' || *s == '\r') *s = ' ';
}

static int push_line(lm_journal *j, char *line) {
    char **grown = realloc(j->lines, ((size_t)j->n + 1) * sizeof *grown);
    if (!grown) { free(line); return -1; }
    j->lines = grown;
    j->lines[j->n++] = line;
    return 0;
}

int lm_journal_add(lm_journal *j, const char *kind, const char *key, const char *fmt, ...) {
    char value[1024], k[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    snprintf(k, sizeof k, "%s", key);
    flatten(value);
    flatten(k);
    size_t n = strlen(kind) + strlen(k) + strlen(value) + 3;
    char *line = malloc(n);
    if (!line) return -1;
    snprintf(line, n, "%s\t%s\t%s", kind, k, value);
    return push_line(j, line);
}

void lm_journal_free(lm_journal *j) {
    for (int i = 0; i < j->n; i++) free(j->lines[i]);
    free(j->lines);
    memset(j, 0, sizeof *j);
}

int lm_journal_save(const char *path, const lm_journal *j, lm_err *err) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return lm_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
    fprintf(f, MAGIC "\n");
    for (int i = 0; i < j->n; i++) fprintf(f, "%s\n", j->lines[i]);
    fprintf(f, "progress\t%ld\t%d\t%llu\nend\n", j->records, j->output, (unsigned long long)j->bytes);
    bool ok = fflush(f) == 0 && !ferror(f) && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        lm_fail(err, "%s: cannot write the journal: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int lm_journal_load(const char *path, lm_journal *j, lm_err *err) {
    memset(j, 0, sizeof *j);
    if (!lm_file_exists(path)) return 0;
    char *text;
    size_t len;
    if (lm_read_file(path, 1 << 24, &text, &len, err) != 0) return -1;
    bool magic = false, progress = false, end = false;
    int rc = 0;
    for (char *line = text, *next; line && *line && rc == 0; line = next) {
        next = strchr(line, '\n');
        if (!next) { rc = -1; break; } /* every line of a saved journal ends in a newline */
        *next++ = '\0';
        if (!magic && !strncmp(line, "lyricmt journal ", 16) && strcmp(line, MAGIC) != 0) {
            lm_fail(err, "%s: written by another version of lyricmt (%.40s); remove it (or pass --restart) to start over", path, line);
            lm_journal_free(j);
            free(text);
            return -1;
        }
        if (!magic) { magic = !strcmp(line, MAGIC); if (!magic) rc = -1; continue; }
        if (end) { rc = -1; break; }
        if (!strcmp(line, "end")) { end = true; continue; }
        unsigned long long bytes;
        if (!strncmp(line, "progress\t", 9)) {
            progress = sscanf(line + 9, "%ld\t%d\t%llu", &j->records, &j->output, &bytes) == 3 && j->records >= 0 && j->output >= 0;
            j->bytes = bytes;
            if (!progress) rc = -1;
            continue;
        }
        char *copy = strdup(line);
        if (!copy || push_line(j, copy) != 0) rc = -1;
    }
    free(text);
    if (rc != 0 || !magic || !progress || !end) {
        lm_journal_free(j);
        return lm_fail(err, "%s: not a complete lyricmt journal; remove it (or pass --restart) to start over", path);
    }
    return 1;
}

/* Splits "kind\tkey\tvalue" into the "kind\tkey" length and the value. */
static size_t key_length(const char *line) {
    const char *tab = strchr(line, '\t');
    tab = tab ? strchr(tab + 1, '\t') : NULL;
    return tab ? (size_t)(tab - line) : strlen(line);
}

static int by_key(const void *a, const void *b) {
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    size_t kx = key_length(x), ky = key_length(y);
    int c = strncmp(x, y, kx < ky ? kx : ky);
    return c ? c : (kx > ky) - (kx < ky);
}

/* The journal's lines sorted by key, so each lookup is a binary search: a
 * journal may hold a line per input file, and comparing two by linear search
 * would be quadratic in the size of an archive. */
static const char **sorted_lines(const lm_journal *j) {
    const char **v = malloc(((size_t)j->n + 1) * sizeof *v);
    if (!v) return NULL;
    for (int i = 0; i < j->n; i++) v[i] = j->lines[i];
    qsort(v, (size_t)j->n, sizeof *v, by_key);
    return v;
}

static const char *find_key(const char **sorted, int n, const char *line) {
    const char **hit = bsearch(&line, sorted, (size_t)n, sizeof *sorted, by_key);
    return hit ? *hit : NULL;
}

static void describe(const char *line, char *kind, char *key, size_t cap) {
    size_t k = key_length(line);
    const char *tab = strchr(line, '\t');
    size_t kind_len = tab ? (size_t)(tab - line) : k;
    snprintf(kind, cap, "%.*s", (int)kind_len, line);
    snprintf(key, cap, "%.*s", tab && (size_t)(tab - line) < k ? (int)(k - kind_len - 1) : 0, tab ? tab + 1 : "");
}

int lm_journal_compare(const lm_journal *saved, const lm_journal *now, lm_err *err) {
    char kind[512], key[512];
    const char **now_sorted = sorted_lines(now), **saved_sorted = sorted_lines(saved);
    int rc = 0;
    if (!now_sorted || !saved_sorted) rc = lm_fail(err, "out of memory comparing journals");
    for (int i = 0; i < saved->n && rc == 0; i++) {
        const char *was = saved->lines[i], *is = find_key(now_sorted, now->n, was);
        describe(was, kind, key, sizeof kind);
        if (!is) rc = lm_fail(err, "%s '%s' was part of the job and no longer is", kind, key);
        else if (strcmp(was, is) != 0)
            rc = lm_fail(err, "%s '%s' changed since the journal was written (was '%s', now '%s')", kind, key,
                         was + key_length(was) + (was[key_length(was)] ? 1 : 0), is + key_length(is) + (is[key_length(is)] ? 1 : 0));
    }
    for (int i = 0; i < now->n && rc == 0; i++)
        if (!find_key(saved_sorted, saved->n, now->lines[i])) {
            describe(now->lines[i], kind, key, sizeof kind);
            rc = lm_fail(err, "%s '%s' was not part of the job when the journal was written", kind, key);
        }
    free(now_sorted);
    free(saved_sorted);
    return rc;
}
