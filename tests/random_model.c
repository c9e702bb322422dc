/* random_model: see random_model.h. */
#include "random_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static float *take(lm_random_model *r, size_t n, float scale, float offset) {
    float *p = r->pool + r->used;
    r->used += n;
    for (size_t i = 0; i < n; i++) { /* uniform in offset + [-scale, scale) */
        r->rng = r->rng * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = offset + ((float)(r->rng >> 40) / 8388608.0f - 1.0f) * scale;
    }
    return p;
}

static lm_linear rand_linear(lm_random_model *r, int in, int out) {
    lm_linear l = {NULL, NULL, in, out};
    l.w = take(r, (size_t)in * out, 1.7f / sqrtf((float)in), 0); /* unit-variance outputs from unit-variance inputs */
    l.b = take(r, (size_t)out, 0.05f, 0);
    return l;
}

static lm_norm rand_norm(lm_random_model *r, int d) {
    lm_norm n;
    n.gamma = take(r, (size_t)d, 0.1f, 1.0f);
    n.beta = take(r, (size_t)d, 0.05f, 0);
    return n;
}

int lm_random_model_make(lm_random_model *r, int encoder_layers, int decoder_layers) {
    memset(r, 0, sizeof *r);
    r->rng = 0x9e3779b97f4a7c15ull;
    lm_model_config *c = &r->m.cfg.model;
    *c = (lm_model_config){.d_model = 1024, .encoder_layers = encoder_layers, .decoder_layers = decoder_layers, .encoder_heads = 16,
                           .decoder_heads = 16, .encoder_ffn = 4096, .decoder_ffn = 4096, .vocab_size = 128112, .max_positions = 1024,
                           .scale_embedding = true, .tie_word_embeddings = true, .activation = LM_ACT_RELU,
                           .pad_id = 1, .bos_id = 0, .eos_id = 2, .decoder_start_id = 2};
    size_t D = 1024, F = 4096, V = 128112;
    size_t enc = 4 * (D * D + D) + D * F + F + F * D + D + 4 * D, dec = 8 * (D * D + D) + D * F + F + F * D + D + 6 * D;
    r->size = V * D + encoder_layers * enc + decoder_layers * dec + 4 * D;
    lm_model *m = &r->m;
    r->pool = malloc(r->size * sizeof(float));
    m->n_positions = c->max_positions + 2;
    m->positions = malloc((size_t)m->n_positions * D * sizeof(float));
    m->enc = calloc((size_t)encoder_layers, sizeof *m->enc);
    m->dec = calloc((size_t)decoder_layers, sizeof *m->dec);
    if (!r->pool || !m->positions || !m->enc || !m->dec) return -1;
    m->embed = m->lm_head = take(r, V * D, 1.0f, 0);
    m->embed_scale = 32.0f;
    lm_sinusoidal_table(m->positions, m->n_positions, (int)D, 1);
    for (int l = 0; l < encoder_layers; l++) {
        lm_encoder_layer *L = &m->enc[l];
        L->self_norm = rand_norm(r, (int)D);
        L->q = rand_linear(r, (int)D, (int)D); L->k = rand_linear(r, (int)D, (int)D);
        L->v = rand_linear(r, (int)D, (int)D); L->o = rand_linear(r, (int)D, (int)D);
        L->ffn_norm = rand_norm(r, (int)D);
        L->fc1 = rand_linear(r, (int)D, (int)F); L->fc2 = rand_linear(r, (int)F, (int)D);
    }
    for (int l = 0; l < decoder_layers; l++) {
        lm_decoder_layer *L = &m->dec[l];
        L->self_norm = rand_norm(r, (int)D);
        L->q = rand_linear(r, (int)D, (int)D); L->k = rand_linear(r, (int)D, (int)D);
        L->v = rand_linear(r, (int)D, (int)D); L->o = rand_linear(r, (int)D, (int)D);
        L->cross_norm = rand_norm(r, (int)D);
        L->cq = rand_linear(r, (int)D, (int)D); L->ck = rand_linear(r, (int)D, (int)D);
        L->cv = rand_linear(r, (int)D, (int)D); L->co = rand_linear(r, (int)D, (int)D);
        L->ffn_norm = rand_norm(r, (int)D);
        L->fc1 = rand_linear(r, (int)D, (int)F); L->fc2 = rand_linear(r, (int)F, (int)D);
    }
    m->enc_norm = rand_norm(r, (int)D);
    m->dec_norm = rand_norm(r, (int)D);
    return r->used <= r->size ? 0 : -1;
}

void lm_random_model_free(lm_random_model *r) {
    free(r->pool);
    free(r->m.positions);
    free(r->m.enc);
    free(r->m.dec);
}
