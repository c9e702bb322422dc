/* model_files: see model_files.h. */
#include "model/model_files.h"

#define MiB ((uint64_t)1 << 20)
#define GiB ((uint64_t)1 << 30)

/* The caps, and why. The JSON and SentencePiece files are read whole into
 * memory and parsed (cJSON takes about 10x the text), so their caps bound
 * the memory a hostile file can take; the weights are mapped, so theirs only
 * bounds what the parser is asked to look at.
 *   config.json, generation_config.json: under 2 KB in every M2M100
 *     checkpoint; 1 MiB leaves room for label maps and comments-as-keys.
 *   tokenizer_config.json, special_tokens_map.json: 2-20 KB in the real ones
 *     (100 language tokens); 16 MiB takes an added_tokens_decoder listing a
 *     whole 128k vocabulary (~100 bytes an entry).
 *   vocab.json: 3.7 MB for M2M100's 128,104 pieces; 64 MiB is 17x that.
 *   sentencepiece.bpe.model: 2.4 MB for the same pieces; 64 MiB is 26x.
 *   model.safetensors, pytorch_model.bin: SMaLL-100's weights are 1.3 GB in
 *     fp32, M2M100-12B's 48 GB; 64 GiB takes any of the family. */
const lm_model_file lm_model_files[LM_N_MODEL_FILES] = {
    [LM_MF_CONFIG] = {"config.json", 1 * MiB, false},
    [LM_MF_GENERATION_CONFIG] = {"generation_config.json", 1 * MiB, false},
    [LM_MF_TOKENIZER_CONFIG] = {"tokenizer_config.json", 16 * MiB, false},
    [LM_MF_SPECIAL_TOKENS_MAP] = {"special_tokens_map.json", 16 * MiB, false},
    [LM_MF_VOCAB] = {"vocab.json", 64 * MiB, false},
    [LM_MF_SENTENCEPIECE] = {"sentencepiece.bpe.model", 64 * MiB, false},
    [LM_MF_SAFETENSORS] = {"model.safetensors", 64 * GiB, true},
    [LM_MF_TORCHBIN] = {"pytorch_model.bin", 64 * GiB, true},
};

int lm_model_dir_check(const char *dir, lm_err *err) {
    for (int i = 0; i < LM_N_MODEL_FILES; i++) {
        char path[4096];
        bool exists;
        if (lm_path_join(path, sizeof path, dir, lm_model_files[i].name, err) != 0 ||
            lm_file_check(path, lm_model_files[i].max_bytes, &exists, err) != 0)
            return -1;
    }
    return 0;
}

int lm_model_protect(lm_protect *p, const char *dir, lm_err *err) {
    const char *names[LM_N_MODEL_FILES + 1];
    for (int i = 0; i < LM_N_MODEL_FILES; i++) names[i] = lm_model_files[i].name;
    names[LM_N_MODEL_FILES] = NULL;
    return lm_protect_dir(p, dir, names, "the model file", err);
}
