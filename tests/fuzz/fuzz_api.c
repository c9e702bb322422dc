/* Fuzz target: the library's entry points (include/lyricmt.h) as a program
 * calls them with whatever its users hand it: "key=value" settings and
 * lines of any bytes, translated, or split at a tab into pairs and scored.
 * The input is settings, one a line, then a 0x01 byte, then the lines; the
 * first byte's low bit picks scoring. The tiny fixture is opened once.
 * Beyond memory errors it checks what callers rely on: a result per input,
 * valid UTF-8 out, blank lines without hypotheses, and on failure no result
 * and a one-line message. */
#include "include/lyricmt.h"
#include "base/util.h"

#include <stdlib.h>
#include <string.h>

#define MAX_ITEMS 16

/* Splits s (NUL-terminated) at sep in place, up to MAX_ITEMS pieces. */
static int split(char *s, char sep, char **out) {
    int n = 0;
    for (char *p = s; p && n < MAX_ITEMS;) {
        out[n++] = p;
        if ((p = strchr(p, sep))) *p++ = '\0';
    }
    return n;
}

/* Settings that only make an input slow (a beam of 1000, the tokenizer's
 * whole vocabulary as hypotheses) or read files are left out. */
static bool cheap(const char *s) {
    static const char *const slow[] = {"num_beams=", "num_return_sequences=", "decoding.num_beams=", "decoding.num_return_sequences="};
    if (!strncmp(s, "config=", 7)) return false;
    for (size_t i = 0; i < sizeof slow / sizeof *slow; i++)
        if (!strncmp(s, slow[i], strlen(slow[i])) && atoi(s + strlen(slow[i])) > 8) return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static lyricmt_translator *t;
    if (!t) {
        const char *threads[] = {"threads=1"};
        lyricmt_error err;
        if (lyricmt_open("tests/fixtures/tiny-b", threads, 1, &t, &err) != 0) abort();
    }
    if (size == 0 || size > 4096) return 0;
    bool score = data[0] & 1;
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    char *body = memchr(text, 1, size - 1);
    char *settings[MAX_ITEMS], *lines[MAX_ITEMS], *targets[MAX_ITEMS];
    int ns = 0, n = 0;
    if (body) {
        *body++ = '\0';
        ns = split(text, '\n', settings);
        for (int i = 0; i < ns; i++)
            if (!cheap(settings[i])) goto done;
    }
    n = split(body ? body : text, '\n', lines);
    for (int i = 0; i < n; i++) {
        char *tab = strchr(lines[i], '\t');
        if (tab) *tab++ = '\0';
        targets[i] = tab ? tab : "";
    }
    lyricmt_call call = {(const char *const *)settings, (size_t)ns, NULL, NULL, NULL};
    lyricmt_results *r = (lyricmt_results *)1;
    lyricmt_error err = {{0}};
    int rc = score ? lyricmt_score(t, (const char *const *)lines, (const char *const *)targets, (size_t)n, &call, &r, &err)
                   : lyricmt_translate(t, (const char *const *)lines, (size_t)n, &call, &r, &err);
    if (rc != LYRICMT_OK) {
        if (r != NULL || !err.message[0] || strchr(err.message, '\n')) abort();
        goto done;
    }
    if (!r || r->n != (size_t)n || (score ? !r->scores : !r->translations)) abort();
    for (int i = 0; !score && i < n; i++) {
        const lyricmt_translation *x = &r->translations[i];
        if ((x->flags & LYRICMT_BLANK) && x->n_hypotheses) abort();
        for (size_t h = 0; h < x->n_hypotheses; h++)
            if (lm_utf8_invalid_at(x->texts[h], strlen(x->texts[h])) >= 0) abort();
    }
    lyricmt_results_free(r);
done:
    free(text);
    return 0;
}
