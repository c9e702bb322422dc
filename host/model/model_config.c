/* model_config: see model_config.h. */
#include "model/model_config.h"
#include "model/model_files.h"
#include "base/json_util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIM_LIMIT 65536
#define VOCAB_LIMIT (16 << 20)

void lm_gen_config_defaults(lm_gen_config *g) {
    /* transformers' GenerationConfig defaults */
    *g = (lm_gen_config){
        .num_beams = 1, .max_length = 20, .min_length = 0, .length_penalty = 1.0f,
        .early_stopping = false, .no_repeat_ngram_size = 0, .repetition_penalty = 1.0f,
        .num_return_sequences = 1, .do_sample = false, .temperature = 1.0f, .top_k = 50,
        .top_p = 1.0f, .forced_bos_id = -1,
    };
}

static int read_model(const cJSON *root, const char *path, lm_model_config *m, lm_err *err) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "m2m_100") != 0)
        return lm_fail(err, "%s: model_type is %s%s%s, only m2m_100 (M2M100 / SMaLL-100) is supported", path,
                       cJSON_IsString(type) ? "'" : "", cJSON_IsString(type) ? type->valuestring : "missing",
                       cJSON_IsString(type) ? "'" : "");
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    if (arch) {
        const cJSON *a0 = cJSON_IsArray(arch) ? cJSON_GetArrayItem(arch, 0) : NULL;
        if (!cJSON_IsString(a0) || (strcmp(a0->valuestring, "M2M100ForConditionalGeneration") != 0 &&
                                    strcmp(a0->valuestring, "M2M100Model") != 0))
            return lm_fail(err, "%s: architectures[0] is not M2M100ForConditionalGeneration", path);
    }
    struct { const char *key; int *dst; int lo, hi; } ints[] = {
        {"d_model", &m->d_model, 1, DIM_LIMIT},
        {"encoder_layers", &m->encoder_layers, 1, 1024},
        {"decoder_layers", &m->decoder_layers, 1, 1024},
        {"encoder_attention_heads", &m->encoder_heads, 1, 4096},
        {"decoder_attention_heads", &m->decoder_heads, 1, 4096},
        {"encoder_ffn_dim", &m->encoder_ffn, 1, 8 * DIM_LIMIT},
        {"decoder_ffn_dim", &m->decoder_ffn, 1, 8 * DIM_LIMIT},
        {"vocab_size", &m->vocab_size, 8, VOCAB_LIMIT},
        {"max_position_embeddings", &m->max_positions, 1, 1 << 20},
    };
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
        if (lm_json_int(root, ints[i].key, ints[i].dst, ints[i].lo, ints[i].hi, true, path, err) != 0) return -1;
    m->pad_id = 1; m->bos_id = 0; m->eos_id = 2; m->decoder_start_id = 2;
    struct { const char *key; int *dst; } ids[] = {
        {"pad_token_id", &m->pad_id}, {"bos_token_id", &m->bos_id},
        {"eos_token_id", &m->eos_id}, {"decoder_start_token_id", &m->decoder_start_id},
    };
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++)
        if (lm_json_int(root, ids[i].key, ids[i].dst, 0, m->vocab_size - 1, false, path, err) != 0) return -1;
    m->scale_embedding = true;
    m->tie_word_embeddings = true;
    if (lm_json_bool(root, "scale_embedding", &m->scale_embedding, path, err) != 0) return -1;
    if (lm_json_bool(root, "tie_word_embeddings", &m->tie_word_embeddings, path, err) != 0) return -1;
    char act[32] = "relu";
    if (lm_json_string(root, "activation_function", act, sizeof act, path, err) != 0) return -1;
    if (strcmp(act, "relu") == 0) m->activation = LM_ACT_RELU;
    else if (strcmp(act, "gelu") == 0) m->activation = LM_ACT_GELU;
    else return lm_fail(err, "%s: activation_function '%s' is not supported (relu, gelu)", path, act);
    if (m->d_model % m->encoder_heads || m->d_model % m->decoder_heads)
        return lm_fail(err, "%s: d_model %d is not divisible by the attention heads (%d, %d)", path, m->d_model,
                       m->encoder_heads, m->decoder_heads);
    if (m->d_model % 2) return lm_fail(err, "%s: d_model %d must be even for sinusoidal positions", path, m->d_model);
    return 0;
}

/* Reads the generation keys that exist in this object (config.json carries
 * them in old checkpoints, generation_config.json in new ones). */
static int read_generation(const cJSON *root, const char *path, int vocab, lm_gen_config *g, lm_err *err) {
    if (lm_json_int(root, "num_beams", &g->num_beams, 1, 1024, false, path, err) ||
        lm_json_int(root, "max_length", &g->max_length, 1, 1 << 20, false, path, err) ||
        lm_json_int(root, "min_length", &g->min_length, 0, 1 << 20, false, path, err) ||
        lm_json_float(root, "length_penalty", &g->length_penalty, -100, 100, path, err) ||
        lm_json_int(root, "no_repeat_ngram_size", &g->no_repeat_ngram_size, 0, 1024, false, path, err) ||
        lm_json_float(root, "repetition_penalty", &g->repetition_penalty, 1e-6f, 1e6f, path, err) ||
        lm_json_int(root, "num_return_sequences", &g->num_return_sequences, 1, 1024, false, path, err) ||
        lm_json_bool(root, "do_sample", &g->do_sample, path, err) ||
        lm_json_float(root, "temperature", &g->temperature, 1e-6f, 1e6f, path, err) ||
        lm_json_int(root, "top_k", &g->top_k, 0, vocab, false, path, err) ||
        lm_json_float(root, "top_p", &g->top_p, 0, 1, path, err))
        return -1;
    const cJSON *es = cJSON_GetObjectItemCaseSensitive(root, "early_stopping");
    if (cJSON_IsBool(es)) g->early_stopping = cJSON_IsTrue(es);
    else if (es && !cJSON_IsNull(es))
        return lm_fail(err, "%s: early_stopping must be true or false (\"never\" is not supported)", path);
    const cJSON *fb = cJSON_GetObjectItemCaseSensitive(root, "forced_bos_token_id");
    if (fb && !cJSON_IsNull(fb) && lm_json_int(root, "forced_bos_token_id", &g->forced_bos_id, 0, vocab - 1, false, path, err))
        return -1;
    return 0;
}

static int read_tokenizer(const cJSON *root, const char *path, lm_tok_config *t, lm_err *err) {
    char cls[64] = "M2M100Tokenizer", codes[32] = "m2m100";
    if (lm_json_string(root, "tokenizer_class", cls, sizeof cls, path, err) ||
        lm_json_string(root, "language_codes", codes, sizeof codes, path, err) ||
        lm_json_string(root, "src_lang", t->src_lang, sizeof t->src_lang, path, err) ||
        lm_json_string(root, "tgt_lang", t->tgt_lang, sizeof t->tgt_lang, path, err) ||
        lm_json_int(root, "num_madeup_words", &t->num_madeup_words, 0, 1024, false, path, err) ||
        lm_json_bool(root, "clean_up_tokenization_spaces", &t->clean_up_spaces, path, err))
        return -1;
    if (strcmp(cls, "M2M100Tokenizer") == 0) t->convention = LM_CONV_M2M100;
    else if (strcmp(cls, "SMALL100Tokenizer") == 0) t->convention = LM_CONV_SMALL100;
    else return lm_fail(err, "%s: tokenizer_class '%s' is not supported (M2M100Tokenizer, SMALL100Tokenizer)", path, cls);
    if (strcmp(codes, "m2m100") != 0)
        return lm_fail(err, "%s: language_codes '%s' is not supported (only the 100-language m2m100 list)", path, codes);
    return 0;
}

/* Loads one of the model's JSON files as an object; *root is NULL if the file is absent and optional. */
static int load_json(const char *dir, lm_model_file_id which, bool required, cJSON **root, char *path, size_t cap, lm_err *err) {
    *root = NULL;
    if (lm_path_join(path, cap, dir, lm_model_files[which].name, err) != 0) return -1;
    if (!lm_file_exists(path)) return required ? lm_fail(err, "%s: missing (is %s a Hugging Face model directory?)", path, dir) : 0;
    char *text;
    size_t len;
    if (lm_read_file(path, lm_model_files[which].max_bytes, &text, &len, err) != 0) return -1;
    *root = cJSON_ParseWithLength(text, len);
    if (!*root || !cJSON_IsObject(*root)) {
        const char *where = cJSON_GetErrorPtr();
        long at = (*root == NULL && where && where >= text && where <= text + len) ? (long)(where - text) : -1;
        cJSON_Delete(*root);
        *root = NULL;
        free(text);
        return at >= 0 ? lm_fail(err, "%s: invalid JSON near byte %ld", path, at) : lm_fail(err, "%s: not a JSON object", path);
    }
    free(text);
    return 0;
}

int lm_dir_config_load(const char *dir, lm_dir_config *cfg, lm_err *err) {
    memset(cfg, 0, sizeof *cfg);
    lm_gen_config_defaults(&cfg->gen);
    cfg->tok.convention = LM_CONV_M2M100;
    strcpy(cfg->tok.src_lang, "en");
    cfg->tok.num_madeup_words = 8;
    char path[4096];
    cJSON *root;
    if (load_json(dir, LM_MF_CONFIG, true, &root, path, sizeof path, err) != 0) return -1;
    int rc = read_model(root, path, &cfg->model, err);
    if (!rc) rc = read_generation(root, path, cfg->model.vocab_size, &cfg->gen, err);
    cJSON_Delete(root);
    if (rc) return -1;
    if (load_json(dir, LM_MF_GENERATION_CONFIG, false, &root, path, sizeof path, err) != 0) return -1;
    if (root) {
        rc = read_generation(root, path, cfg->model.vocab_size, &cfg->gen, err);
        cJSON_Delete(root);
        if (rc) return -1;
    }
    if (load_json(dir, LM_MF_TOKENIZER_CONFIG, false, &root, path, sizeof path, err) != 0) return -1;
    if (root) {
        rc = read_tokenizer(root, path, &cfg->tok, err);
        cJSON_Delete(root);
        if (rc) return -1;
    }
    return 0;
}
