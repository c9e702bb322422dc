/*
 * model_config: what a Hugging Face M2M100-family model directory says about
 * itself, from config.json, generation_config.json and tokenizer_config.json.
 * Every size comes from these files; nothing about SMaLL-100 is hard-coded.
 */
#ifndef LM_MODEL_CONFIG_H
#define LM_MODEL_CONFIG_H

#include "base/util.h"

typedef enum { LM_CONV_M2M100 = 0, LM_CONV_SMALL100 = 1 } lm_convention;

typedef enum { LM_ACT_RELU = 0, LM_ACT_GELU = 1 } lm_activation;

typedef struct {
    int d_model;
    int encoder_layers, decoder_layers;
    int encoder_heads, decoder_heads;
    int encoder_ffn, decoder_ffn;
    int vocab_size;
    int max_positions;
    bool scale_embedding;
    bool tie_word_embeddings;
    lm_activation activation;
    int pad_id, bos_id, eos_id, decoder_start_id;
} lm_model_config;

/* Decoding settings with transformers' meaning and defaults. */
typedef struct {
    int num_beams;
    int max_length;            /* counts the decoder start token, like transformers */
    int min_length;
    float length_penalty;
    bool early_stopping;
    int no_repeat_ngram_size;
    float repetition_penalty;
    int num_return_sequences;
    bool do_sample;
    float temperature;
    int top_k;
    float top_p;
    int forced_bos_id;         /* -1: none */
} lm_gen_config;

typedef struct {
    lm_convention convention;  /* from tokenizer_class */
    char src_lang[16], tgt_lang[16];
    int num_madeup_words;
    bool clean_up_spaces;      /* recorded for `info`; the pipeline passes False */
} lm_tok_config;

typedef struct {
    lm_model_config model;
    lm_gen_config gen;
    lm_tok_config tok;
} lm_dir_config;

/* Reads the three JSON files of a model directory. Missing config.json is an
 * error; the other two are optional. */
int lm_dir_config_load(const char *dir, lm_dir_config *cfg, lm_err *err);

void lm_gen_config_defaults(lm_gen_config *g);

#endif
