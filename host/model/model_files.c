/* model_files: see model_files.h. */
#include "model/model_files.h"

#include <stddef.h>

const char *const lm_model_files[] = {
    "config.json",          "generation_config.json", "tokenizer_config.json", "special_tokens_map.json",
    "vocab.json",           "sentencepiece.bpe.model", "model.safetensors",    "pytorch_model.bin",
    NULL,
};
