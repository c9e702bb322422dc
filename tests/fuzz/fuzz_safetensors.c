/* Fuzz target: model.safetensors, header and tensor table (lm_safetensors_open). */
#include "fuzz_util.h"
#include "model/tensor_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lm_tensor_file tf;
    lm_err err;
    if (lm_safetensors_open(lm_fuzz_write("model.safetensors", data, size), &tf, &err) == 0) {
        for (int i = 0; i < tf.n; i++) (void)lm_tensor_file_find(&tf, tf.tensors[i].name);
        lm_tensor_file_close(&tf);
    }
    return 0;
}
