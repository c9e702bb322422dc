/* Fuzz target: the YAML engine config (lm_engine_config_load_yaml). */
#include "config/engine_config.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lm_engine_config c;
    lm_engine_config_defaults(&c);
    lm_err err;
    (void)lm_engine_config_load_yaml(&c, lm_fuzz_write("engine.yaml", data, size), &err);
    return 0;
}
