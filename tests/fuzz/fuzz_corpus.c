/* Fuzz target: lyric records (lm_corpus_open, _scan, _next) with UTF-8
 * repair. The first input byte picks text, TSV or JSONL; the rest is the file. */
#include "corpus.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    static const lm_format formats[] = {LM_FORMAT_TEXT, LM_FORMAT_TSV, LM_FORMAT_JSONL};
    lm_engine_config cfg;
    lm_engine_config_defaults(&cfg);
    cfg.input_format = formats[data[0] % 3];
    const char *path = lm_fuzz_write("lyrics.txt", data + 1, size - 1);
    lm_corpus c;
    lm_err err;
    if (lm_corpus_open(&c, &path, 1, &cfg, &err) != 0) return 0;
    if (lm_corpus_scan(&c, &err) == 0) {
        lm_record r;
        while (lm_corpus_next(&c, &r, &err) == 1) lm_record_free(&r);
    }
    lm_corpus_close(&c);
    return 0;
}
