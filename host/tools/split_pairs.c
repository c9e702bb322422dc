/* split_pairs: see split_pairs.h. */
#include "tools/split_pairs.h"

#include "base/outfile.h"
#include "job/corpus.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The length of a line break at s[i] as Python's str.splitlines() knows
 * them (\n \r \v \f, \x1c-\x1e, U+0085, U+2028, U+2029), or 0: a training
 * tool that reads the files with splitlines() must see one line per text. */
static size_t line_break(const char *s, size_t n, size_t i) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\n' || c == '\r' || c == '\v' || c == '\f' || (c >= 0x1c && c <= 0x1e)) return 1;
    if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] == 0x85) return 2;
    if (c == 0xe2 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 && ((unsigned char)s[i + 2] & 0xfe) == 0xa8) return 3;
    return 0;
}

/* One text as one line: line breaks and tabs become spaces. */
static int put_line(FILE *f, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        size_t br = line_break(s, n, i);
        if (br) i += br - 1;
        if (putc(br || s[i] == '\t' ? ' ' : s[i], f) == EOF) return -1;
    }
    return putc('\n', f) == EOF ? -1 : 0;
}

int lm_split_pairs(const char *input, const char *prefix, const char *src_ext, const char *tgt_ext, const lm_engine_config *cfg,
                   long *pairs, lm_err *err) {
    char out[2][4200];
    const char *ext[2] = {src_ext, tgt_ext};
    for (int k = 0; k < 2; k++)
        if (snprintf(out[k], sizeof out[k], "%s.%s", prefix, ext[k]) >= (int)sizeof out[k]) return lm_fail(err, "%s: path too long", prefix);
    if (!strcmp(src_ext, tgt_ext)) return lm_fail(err, "the two outputs would both be %s", out[0]);
    lm_engine_config c = *cfg;
    c.input_format = LM_FORMAT_JSONL;
    lm_corpus corpus;
    if (lm_corpus_open(&corpus, &input, 1, &c, NULL, 0, err) != 0) return -1;
    corpus.pairs = true;
    snprintf(corpus.source_field, sizeof corpus.source_field, "%s", cfg->source_field);
    snprintf(corpus.text_field, sizeof corpus.text_field, "%s", cfg->target_field);
    lm_protect keep = {0};
    lm_outfile f[2];
    int rc = -1, opened = 0;
    char label[4200];
    *pairs = 0;
    snprintf(label, sizeof label, "the input %s", input);
    if (lm_protect_path(&keep, input, label, err) != 0 || lm_corpus_scan(&corpus, err) != 0) goto done;
    lm_outfile_on_signals();
    for (; opened < 2; opened++)
        if (lm_outfile_open(&f[opened], out[opened], &keep, err) != 0) goto done;
    for (;;) {
        lm_record r;
        int got = lm_corpus_next(&corpus, &r, err);
        if (got < 0) goto done;
        if (got == 0) break;
        const char *why = r.malformed ? r.malformed : r.bad_bytes ? "invalid UTF-8 or NUL bytes" : r.overlong ? "a text too long" : NULL;
        if (why || !r.src) {
            lm_fail(err, "%s:%ld: not a pair (%s): the two files would lose their alignment", input, r.line, why ? why : "a blank line");
            lm_record_free(&r);
            goto done;
        }
        int bad = put_line(f[0].f, r.src, r.src_len) || put_line(f[1].f, r.text, r.len);
        lm_record_free(&r);
        if (bad) { lm_fail(err, "%s: write error: %s", out[0], strerror(errno)); goto done; }
        (*pairs)++;
    }
    /* both complete before either takes its final name, and both or neither */
    rc = lm_outfile_commit(f, 2, err);
    opened = 0;
done:
    for (int k = 0; k < opened; k++) lm_outfile_abandon(&f[k]);
    lm_protect_free(&keep);
    lm_corpus_close(&corpus);
    return rc;
}
