/*
 * model: an M2M100-family checkpoint in memory, immutable after loading.
 *
 * Dimension letters used across the engine:
 *   D = d_model, F = ffn width, V = vocabulary, H = heads, S = source length.
 * Every weight is float32, row-major [out][in] as PyTorch stores nn.Linear.
 * f32 tensors point straight into the mapped file; f16/bf16 ones are widened
 * once into buffers the model owns.
 */
#ifndef LM_MODEL_H
#define LM_MODEL_H

#include "model/model_config.h"
#include "model/tensor_file.h"

typedef struct {
    const float *w; /* (out, in) */
    const float *b; /* (out) */
    int in, out;
} lm_linear;

typedef struct {
    const float *gamma, *beta; /* (D) */
} lm_norm;

typedef struct {
    lm_norm self_norm;
    lm_linear q, k, v, o;
    lm_norm ffn_norm;
    lm_linear fc1, fc2;
} lm_encoder_layer;

typedef struct {
    lm_norm self_norm;
    lm_linear q, k, v, o;
    lm_norm cross_norm;
    lm_linear cq, ck, cv, co;
    lm_norm ffn_norm;
    lm_linear fc1, fc2;
} lm_decoder_layer;

typedef struct {
    lm_dir_config cfg;
    const float *embed;       /* (V, D) shared by encoder, decoder and output */
    const float *lm_head;     /* (V, D): embed unless untied */
    float embed_scale;        /* sqrt(D) or 1 */
    float *positions;         /* (max_positions + 2, D) sinusoidal table */
    int n_positions;
    lm_encoder_layer *enc;
    lm_decoder_layer *dec;
    lm_norm enc_norm, dec_norm;

    char weights_path[4096];
    lm_dtype stored_dtype;
    uint64_t n_params;
    lm_tensor_file file;
    float **owned;            /* f16/bf16 storages widened to f32, one buffer per storage */
    int n_owned;
} lm_model;

/* Loads dir (config, generation and tokenizer configs, weights). */
int  lm_model_load(const char *dir, lm_model *m, lm_err *err);
void lm_model_free(lm_model *m);

/* Row p of the sinusoidal table, as transformers computes it (offset 2 is
 * the caller's business). Exposed for tests. */
void lm_sinusoidal_table(float *out, int rows, int dim, int padding_idx);

#endif
