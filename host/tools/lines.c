/* lines: see lines.h. */
#include "tools/lines.h"
#include "tools/metrics.h"

#include <stdlib.h>
#include <string.h>

/* The code point that ends at s[end - 1] and where it starts, for stripping
 * from the right; an invalid tail is treated as a non-space character. */
static uint32_t prev_cp(const char *s, size_t end, size_t *start) {
    size_t i = end - 1;
    while (i > 0 && end - i < 4 && ((uint8_t)s[i] & 0xc0) == 0x80) i--;
    size_t n = lm_utf8_seq_len(s, end, i);
    if (n != end - i) { *start = end - 1; return 0xfffd; }
    *start = i;
    const uint8_t *u = (const uint8_t *)s + i;
    switch (n) {
    case 1: return u[0];
    case 2: return (uint32_t)(u[0] & 0x1f) << 6 | (u[1] & 0x3f);
    case 3: return (uint32_t)(u[0] & 0x0f) << 12 | (uint32_t)(u[1] & 0x3f) << 6 | (u[2] & 0x3f);
    default: return (uint32_t)(u[0] & 0x07) << 18 | (uint32_t)(u[1] & 0x3f) << 12 | (uint32_t)(u[2] & 0x3f) << 6 | (u[3] & 0x3f);
    }
}

int lm_lines_load(const char *path, bool rstrip, lm_lines *out, lm_err *err) {
    memset(out, 0, sizeof *out);
    size_t len;
    if (lm_read_file(path, LM_LINES_MAX_BYTES, &out->buf, &len, err) != 0) return -1;
    size_t cap = 1;
    for (size_t i = 0; i < len; i++) cap += out->buf[i] == '\n';
    out->line = malloc(cap * sizeof *out->line);
    if (!out->line) { lm_lines_free(out); return lm_fail(err, "out of memory"); }
    char *s = out->buf;
    for (size_t i = 0; i < len;) {
        size_t end = i;
        while (end < len && s[end] != '\n') end++;
        size_t next = end + 1;
        const char *nul = memchr(s + i, '\0', end - i);
        long bad = lm_utf8_invalid_at(s + i, end - i);
        if (nul || bad >= 0) {
            lm_fail(err, "%s: line %d: %s at byte %ld of the line", path, out->n + 1, nul ? "a NUL byte" : "invalid UTF-8",
                    nul ? (long)(nul - (s + i)) + 1 : bad + 1);
            lm_lines_free(out);
            return -1;
        }
        size_t start;
        if (end > i && s[end - 1] == '\r') end--; /* CRLF */
        while (rstrip && end > i && lm_py_isspace(prev_cp(s, end, &start))) end = start;
        s[end] = '\0';
        out->line[out->n++] = s + i;
        i = next;
    }
    return 0;
}

void lm_lines_free(lm_lines *l) {
    free(l->buf);
    free(l->line);
    memset(l, 0, sizeof *l);
}
