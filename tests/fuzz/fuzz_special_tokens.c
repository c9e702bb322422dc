/* Fuzz target: tokenizer_config.json and special_tokens_map.json as the
 * tokenizer reads their special-token lists (NUL-separated in the input),
 * loaded beside tiny-a's vocabulary, then a text with literal special tokens
 * encoded and ids across the special range decoded. */
#include "fuzz_util.h"
#include "model/tokenizer.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready;
    if (!ready) {
        lm_fuzz_copy_fixture("tiny-a", "vocab.json");
        lm_fuzz_copy_fixture("tiny-a", "sentencepiece.bpe.model");
        ready = 1;
    }
    const uint8_t *nul = memchr(data, 0, size);
    size_t first = nul ? (size_t)(nul - data) : size;
    lm_fuzz_write("tokenizer_config.json", data, first);
    lm_fuzz_write("special_tokens_map.json", nul ? nul + 1 : NULL, nul ? size - first - 1 : 0);
    lm_tokenizer *tok;
    lm_err err;
    if (lm_tokenizer_load(lm_fuzz_dir(), 500, &tok, &err) != 0) return 0;
    static const char text[] = "the </s> king __ko__ of <unk> the __en____fr__ block";
    int32_t *ids = NULL, all[500];
    int n = 0;
    if (lm_tokenizer_encode(tok, text, sizeof text - 1, &ids, &n, &err) == 0) free(ids);
    for (int i = 0; i < 500; i++) all[i] = i;
    char *out = NULL;
    if (lm_tokenizer_decode(tok, all, 500, &out, &err) == 0) free(out);
    lm_tokenizer_free(tok);
    return 0;
}
