/* Fuzz target: lyric records (lm_corpus_open, _scan, _next) with UTF-8
 * repair. The first input byte picks text, TSV or JSONL, with bits 5 and 6
 * both set (source, target) pairs as `lyricmt score` reads them, and with its
 * top bit a tiny line cap so cut lines are fuzzed too; the rest is the file.
 * Beyond memory errors it checks what the job relies on: one record per
 * scanned line, and record text (and a pair's source) that is valid UTF-8
 * without NUL bytes. */
#include "job/corpus.h"
#include "fuzz_util.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    static const lm_format formats[] = {LM_FORMAT_TEXT, LM_FORMAT_TSV, LM_FORMAT_JSONL};
    lm_engine_config cfg;
    lm_engine_config_defaults(&cfg);
    cfg.input_format = formats[(data[0] & 0x7f) % 3];
    const char *path = lm_fuzz_write("lyrics.txt", data + 1, size - 1);
    lm_corpus c;
    lm_err err;
    if (lm_corpus_open(&c, &path, 1, &cfg, NULL, 0, &err) != 0) return 0;
    if (data[0] & 0x80) c.line_cap = 1 + (data[0] & 0x1f);
    if ((data[0] & 0x60) == 0x60) {
        c.pairs = true;
        strcpy(c.source_field, "source");
        strcpy(c.text_field, "target");
    }
    if (lm_corpus_scan(&c, &err) == 0) {
        lm_record r;
        long n = 0;
        int got;
        while ((got = lm_corpus_next(&c, &r, &err)) == 1) {
            if (lm_utf8_invalid_at(r.text, r.len) >= 0 || strlen(r.text) != r.len) abort();
            if (r.src && (lm_utf8_invalid_at(r.src, r.src_len) >= 0 || strlen(r.src) != r.src_len)) abort();
            if (c.pairs && !r.src && !r.malformed && !lm_is_blank(r.text, r.len)) abort(); /* a pair or a reason */
            lm_record_free(&r);
            n++;
        }
        if (got == 0 && n != lm_corpus_total(&c)) abort();
    }
    lm_corpus_close(&c);
    return 0;
}
