/* split_pairs: see split_pairs.h. */
#include "tools/split_pairs.h"

#include "job/corpus.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One text as one line: line breaks and tabs become spaces. */
static int put_line(FILE *f, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (putc(s[i] == '\n' || s[i] == '\r' || s[i] == '\t' ? ' ' : s[i], f) == EOF) return -1;
    return putc('\n', f) == EOF ? -1 : 0;
}

static int finish(FILE *f, const char *path, lm_err *err) {
    if (fflush(f) != 0 || fsync(fileno(f)) != 0 || ferror(f)) {
        lm_fail(err, "%s: write error: %s", path, strerror(errno));
        fclose(f);
        return -1;
    }
    return fclose(f) == 0 ? 0 : lm_fail(err, "%s: write error: %s", path, strerror(errno));
}

int lm_split_pairs(const char *input, const char *prefix, const char *src_ext, const char *tgt_ext, const lm_engine_config *cfg,
                   long *pairs, lm_err *err) {
    char out[2][4200], part[2][4300];
    const char *ext[2] = {src_ext, tgt_ext};
    lm_file_id in_id, id;
    if (!lm_file_id_get(input, &in_id)) return lm_fail(err, "%s: %s", input, strerror(errno));
    for (int k = 0; k < 2; k++) {
        if (snprintf(out[k], sizeof out[k], "%s.%s", prefix, ext[k]) >= (int)sizeof out[k]) return lm_fail(err, "%s: path too long", prefix);
        if (snprintf(part[k], sizeof part[k], "%s.partial", out[k]) >= (int)sizeof part[k]) return lm_fail(err, "%s: path too long", prefix);
        if ((lm_file_id_get(out[k], &id) && lm_file_id_eq(id, in_id)) || (lm_file_id_get(part[k], &id) && lm_file_id_eq(id, in_id)))
            return lm_fail(err, "refusing to write %s: it is the input %s", out[k], input);
    }
    if (!strcmp(src_ext, tgt_ext)) return lm_fail(err, "the two outputs would both be %s", out[0]);
    lm_engine_config c = *cfg;
    c.input_format = LM_FORMAT_JSONL;
    lm_corpus corpus;
    if (lm_corpus_open(&corpus, &input, 1, &c, NULL, 0, err) != 0) return -1;
    corpus.pairs = true;
    snprintf(corpus.source_field, sizeof corpus.source_field, "%s", cfg->source_field);
    snprintf(corpus.text_field, sizeof corpus.text_field, "%s", cfg->target_field);
    FILE *f[2] = {NULL, NULL};
    int rc = -1;
    *pairs = 0;
    if (lm_corpus_scan(&corpus, err) != 0) goto done;
    for (int k = 0; k < 2; k++)
        if (!(f[k] = lm_open_for_writing(part[k], O_CREAT | O_TRUNC | O_CLOEXEC, NULL, err))) goto done;
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
        int bad = put_line(f[0], r.src, r.src_len) || put_line(f[1], r.text, r.len);
        lm_record_free(&r);
        if (bad) { lm_fail(err, "%s: write error: %s", part[0], strerror(errno)); goto done; }
        (*pairs)++;
    }
    for (int k = 0; k < 2; k++) {
        int bad = finish(f[k], part[k], err);
        f[k] = NULL;
        if (bad) goto done;
    }
    /* both complete before either takes its final name */
    for (int k = 0; k < 2; k++)
        if (rename(part[k], out[k]) != 0) { lm_fail(err, "cannot rename %s to %s: %s", part[k], out[k], strerror(errno)); goto done; }
    rc = 0;
done:
    for (int k = 0; k < 2; k++) {
        if (f[k]) fclose(f[k]);
        if (rc != 0) unlink(part[k]);
    }
    lm_corpus_close(&corpus);
    return rc;
}
