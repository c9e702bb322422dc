/* Fuzz target: the zip directory of pytorch_model.bin (lm_zip_open). */
#include "fuzz_util.h"
#include "model/torch_zip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lm_zip z;
    lm_err err;
    if (lm_zip_open(data, size, &z, &err) == 0) {
        for (int i = 0; i < z.n; i++) (void)lm_zip_find(&z, z.entries[i].name);
        lm_zip_free(&z);
    }
    return 0;
}
