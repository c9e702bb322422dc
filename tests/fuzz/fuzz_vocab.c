/* Fuzz target: vocab.json (lm_tokenizer_load with SMaLL-100's vocabulary
 * size). No SentencePiece model is present, so a vocabulary that passes
 * every check ends in "missing" rather than in a slow model load. */
#include "fuzz_util.h"
#include "model/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lm_fuzz_write("vocab.json", data, size);
    lm_tokenizer *tok;
    lm_err err;
    if (lm_tokenizer_load(lm_fuzz_dir(), 128112, &tok, &err) == 0) lm_tokenizer_free(tok);
    return 0;
}
