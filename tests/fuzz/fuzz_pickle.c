/* Fuzz target: the restricted unpickler. The input is data.pkl alone,
 * wrapped in a valid archive with a few storages for it to refer to. */
#include "fuzz_util.h"
#include "model/tensor_file.h"
#include "zip_writer.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const uint8_t storage[1024];
    const lm_zip_member members[] = {
        {"archive/data.pkl", data, size},
        {"archive/byteorder", "little", 6},
        {"archive/data/0", storage, 256},
        {"archive/data/1", storage, 64},
        {"archive/data/2", storage, 1024},
    };
    size_t zip_size;
    uint8_t *zip = lm_zip_build(members, (int)(sizeof members / sizeof *members), &zip_size);
    if (!zip) abort();
    lm_tensor_file tf;
    lm_err err;
    if (lm_torchbin_open(lm_fuzz_write("pytorch_model.bin", zip, zip_size), &tf, &err) == 0) lm_tensor_file_close(&tf);
    free(zip);
    return 0;
}
