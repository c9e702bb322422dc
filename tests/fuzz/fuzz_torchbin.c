/* Fuzz target: a whole pytorch_model.bin loaded as a model (lm_model_load),
 * beside tests/fixtures/tiny-b's config files: zip, pickle, tensor checks,
 * binding to the config and widening. */
#include "fuzz_util.h"
#include "model/model.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    lm_fuzz_copy_fixture("tiny-b", "config.json");
    lm_fuzz_copy_fixture("tiny-b", "generation_config.json");
    lm_fuzz_copy_fixture("tiny-b", "tokenizer_config.json");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lm_fuzz_write("pytorch_model.bin", data, size);
    lm_model m;
    lm_err err;
    if (lm_model_load(lm_fuzz_dir(), &m, &err) == 0) lm_model_free(&m);
    return 0;
}
