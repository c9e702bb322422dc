/* Fuzz target: config.json, generation_config.json and tokenizer_config.json
 * (lm_dir_config_load). The input holds the three texts separated by NUL
 * bytes; a missing part is a missing (optional) file. */
#include "fuzz_util.h"
#include "model/model_config.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const names[] = {"config.json", "generation_config.json", "tokenizer_config.json"};
    const uint8_t *p = data, *end = data + size;
    for (int i = 0; i < 3; i++) {
        const uint8_t *nul = p ? memchr(p, 0, (size_t)(end - p)) : NULL;
        size_t len = p ? (size_t)((nul ? nul : end) - p) : 0;
        lm_fuzz_write(names[i], p, len);
        p = nul ? nul + 1 : NULL;
    }
    lm_dir_config cfg;
    lm_err err;
    (void)lm_dir_config_load(lm_fuzz_dir(), &cfg, &err);
    return 0;
}
