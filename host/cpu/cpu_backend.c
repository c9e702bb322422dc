/*
 * cpu_backend: the M2M100 forward pass on the CPU, and the reference every
 * CUDA kernel is checked against.
 *
 * Encoder rows are packed (sentences back to back, no padding), so no work
 * is spent on pad tokens and no mask is needed: sentence s owns rows
 * [offset[s], offset[s] + len[s]). Matrix products go to cpu_weights (BLAS,
 * packed AVX-512, int8 or bf16 as the weights were prepared); attention
 * (cpu_attention) and norms (cpu_norm, with the residual add fused in) are
 * spread over threads with OpenMP.
 *
 * In-flight batching: encode_more appends sentences to the packed encoder
 * state (dropping, first, those no row decodes any more once they hold half
 * of it), and each decoder row keeps its own length, so rows that joined
 * later run at their own positions. Every decoder product is the packed one
 * (fixed summation order per output) and attention is per row, so a row's
 * numbers do not depend on its neighbours.
 *
 * The self-attention cache is a slot a row, planned as the CUDA backend's
 * (lm_kv_slots, backend.h): a beam reorder copies only the forks, once each,
 * with no second copy of the cache to stage them in.
 */
#include "cpu/cpu_backend.h"
#include "cpu/cpu_attention.h"
#include "cpu/cpu_norm.h"
#include "cpu/cpu_weights.h"
#include "backend/sample.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define LN_EPS 1e-5f

typedef struct {
    lm_backend base;
    int threads;
    /* encoder batch: sentences numbered since encode; a dropped one has len 0 */
    int n_sent, total;          /* sentences, packed rows in use */
    int cap_sent, cap_total;    /* room in offset/len and in the packed buffers */
    int32_t *offset, *len;
    float *enc_out;             /* (total, D) */
    float **cross_k, **cross_v; /* per decoder layer: (total, D) */
    /* decoding */
    int rows, max_rows, max_steps, steps_done;
    int32_t *row_sentence;
    int32_t *row_len;           /* tokens each row has been fed: its next position */
    int32_t *row_len_old;       /* reorder scratch: (rows) */
    lm_kv_slots slots;          /* each row's slot in self_k and self_v (backend.h) */
    int32_t *forks;             /* reorder scratch: the forks' sources, destinations, lengths (3 x rows) */
    float **self_k, **self_v;   /* per decoder layer: (max_rows slots, max_steps, D) */
    const lm_cpu_weights *weights; /* prepared weights, shared with other backends; not owned */
    /* work buffers, grown on demand */
    float *x, *h, *q, *k, *v, *att, *ffn;
    size_t cap_rows_d, cap_rows_f;
    /* attention scores, one slice per thread, sized once for the longest
     * possible key count (max_positions) */
    float *scores;
    size_t scores_per_thread;
    lm_cpu_attention_fn attend;        /* the kernels this CPU runs, chosen once */
    lm_cpu_norm_row_fn norm_row;
    /* sampling: its rows of logits and one sampler per thread, grown on demand */
    float *sample_logits;
    size_t cap_sample;
    lm_sampler *samplers;
    int n_samplers;
} cpu_backend;

/* ---- building blocks ---- */

/* y (n, out) = x (n, in) . W^T + b, from W's prepared form (cpu_weights.h:
 * fp32 BLAS or packed, int8 or bf16, split over this backend's threads) */
static void linear(const float *x, int n, const lm_linear *l, const lm_cpu_matrix *p, float *y) {
    lm_cpu_linear(p, n, x, l->b, y);
}

/* x += add (when given), then y = layer_norm(x): the residual add of a
 * pre-norm block fused into the norm that follows it */
static void add_norm(const cpu_backend *c, float *x, const float *add, int n, int d, const lm_norm *nm, float *y) {
    lm_cpu_norm_row_fn row = c->norm_row;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
        row(x + (size_t)i * d, add ? add + (size_t)i * d : NULL, d, nm->gamma, nm->beta, LN_EPS, y + (size_t)i * d);
}

static void activate(float *x, size_t n, lm_activation act) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        if (act == LM_ACT_RELU) x[i] = x[i] > 0 ? x[i] : 0;
        else x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
    }
}

static int ensure_work(cpu_backend *c, size_t rows, lm_err *err) {
    const lm_model_config *mc = &c->base.model->cfg.model;
    int f = mc->encoder_ffn > mc->decoder_ffn ? mc->encoder_ffn : mc->decoder_ffn;
    size_t need_d = rows * (size_t)mc->d_model, need_f = rows * (size_t)f;
    if (need_d > c->cap_rows_d) {
        float **bufs[] = {&c->x, &c->h, &c->q, &c->k, &c->v, &c->att};
        for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) {
            free(*bufs[i]);
            *bufs[i] = lm_malloc(need_d * sizeof(float), err);
            if (!*bufs[i]) { c->cap_rows_d = 0; return -1; }
        }
        c->cap_rows_d = need_d;
    }
    if (need_f > c->cap_rows_f) {
        free(c->ffn);
        c->ffn = lm_malloc(need_f * sizeof(float), err);
        if (!c->ffn) { c->cap_rows_f = 0; return -1; }
        c->cap_rows_f = need_f;
    }
    return 0;
}

/* token embedding x scale + sinusoidal position (table row pos + 2) */
static void embed(const lm_model *m, const int32_t *tokens, const int32_t *positions, int n, float *x) {
    int d = m->cfg.model.d_model;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *e = m->embed + (size_t)tokens[i] * d;
        const float *p = m->positions + (size_t)(positions[i] + 2) * d;
        for (int j = 0; j < d; j++) x[(size_t)i * d + j] = e[j] * m->embed_scale + p[j];
    }
}

/* x += add, then att = fc2(act(fc1(norm(x)))); the caller adds att to x
 * (fused into the next norm) */
static void feed_forward(cpu_backend *c, int n, const float *add, const lm_norm *nm, const lm_linear *fc1,
                         const lm_linear *fc2, const lm_cpu_matrix *p1, const lm_cpu_matrix *p2) {
    const lm_model_config *mc = &c->base.model->cfg.model;
    add_norm(c, c->x, add, n, mc->d_model, nm, c->h);
    bool relu = mc->activation == LM_ACT_RELU; /* fused into the product */
    lm_cpu_linear_relu(p1, n, c->h, fc1->b, relu, c->ffn);
    if (!relu) activate(c->ffn, (size_t)n * fc1->out, mc->activation);
    linear(c->ffn, n, fc2, p2, c->att);
}

/* ---- encoder ---- */

static void free_batch(cpu_backend *c) {
    const lm_model_config *mc = &c->base.model->cfg.model;
    free(c->offset); free(c->len); free(c->enc_out);
    if (c->cross_k)
        for (int l = 0; l < mc->decoder_layers; l++) { free(c->cross_k[l]); free(c->cross_v[l]); }
    free(c->cross_k); free(c->cross_v);
    c->offset = c->len = NULL;
    c->enc_out = NULL;
    c->cross_k = c->cross_v = NULL;
    c->n_sent = c->total = c->cap_sent = c->cap_total = 0;
}

/* Reallocates a buffer of floats to n, keeping its contents. */
static int grow_floats(float **p, size_t n, lm_err *err) {
    float *q = realloc(*p, n * sizeof(float));
    if (!q) return lm_fail(err, "out of memory for the encoder state (%zu MiB)", n * sizeof(float) >> 20);
    *p = q;
    return 0;
}

/* Drops the sentences no row decodes any more when they hold at least half
 * of the packed rows: the others move down in order (memmove, since each
 * moves only towards the start). */
static void drop_unused(cpu_backend *c) {
    const lm_model_config *mc = &c->base.model->cfg.model;
    size_t d = (size_t)mc->d_model;
    bool *used = calloc((size_t)c->n_sent + 1, sizeof *used);
    if (!used) return; /* nothing dropped: memory stays, results do not change */
    for (int r = 0; r < c->rows; r++) used[c->row_sentence[r]] = true;
    long live = 0;
    for (int s = 0; s < c->n_sent; s++)
        if (used[s]) live += c->len[s];
    if (c->total - live < live || live == c->total) { free(used); return; }
    int at = 0;
    for (int s = 0; s < c->n_sent; s++) {
        if (!used[s] || c->len[s] == 0) { c->len[s] = 0; continue; }
        if (c->offset[s] != at) {
            size_t from = (size_t)c->offset[s] * d, to = (size_t)at * d, n = (size_t)c->len[s] * d * sizeof(float);
            memmove(c->enc_out + to, c->enc_out + from, n);
            for (int l = 0; l < mc->decoder_layers; l++) {
                memmove(c->cross_k[l] + to, c->cross_k[l] + from, n);
                memmove(c->cross_v[l] + to, c->cross_v[l] + from, n);
            }
        }
        c->offset[s] = at;
        at += c->len[s];
    }
    c->total = at;
    free(used);
}

/* Encodes n sentences (packed, tokens back to back) and appends them after
 * the sentences already held. */
static int encode_append(cpu_backend *c, const int32_t *tokens, const int32_t *lens, int n, lm_err *err) {
    const lm_model *m = c->base.model;
    const lm_model_config *mc = &m->cfg.model;
    int d = mc->d_model, heads = mc->encoder_heads, hd = d / heads;
    int total;
    if (lm_backend_check_sources(mc, c->n_sent, tokens, lens, n, &total, err) != 0) return -1;
    if (c->n_sent + n > c->cap_sent) {
        int cap = c->cap_sent * 2 > c->n_sent + n ? c->cap_sent * 2 : c->n_sent + n;
        int32_t *off = realloc(c->offset, (size_t)cap * sizeof *off);
        if (off) c->offset = off;
        int32_t *len = realloc(c->len, (size_t)cap * sizeof *len);
        if (len) c->len = len;
        if (!off || !len) return lm_fail(err, "out of memory");
        c->cap_sent = cap;
    }
    if (!c->cross_k) {
        c->cross_k = calloc((size_t)mc->decoder_layers, sizeof(float *));
        c->cross_v = calloc((size_t)mc->decoder_layers, sizeof(float *));
        if (!c->cross_k || !c->cross_v) return lm_fail(err, "out of memory");
    }
    int at = c->total;
    if (at + total > c->cap_total) {
        size_t cap = (size_t)at + total > (size_t)c->cap_total * 3 / 2 ? (size_t)at + total : (size_t)c->cap_total * 3 / 2;
        if (grow_floats(&c->enc_out, cap * d, err)) return -1;
        for (int l = 0; l < mc->decoder_layers; l++)
            if (grow_floats(&c->cross_k[l], cap * d, err) || grow_floats(&c->cross_v[l], cap * d, err)) return -1;
        c->cap_total = (int)cap;
    }
    if (ensure_work(c, (size_t)total, err) != 0) return -1;
    int32_t *pos = lm_malloc((size_t)total * sizeof(int32_t), err), *local = lm_malloc((size_t)n * sizeof(int32_t), err);
    if (!pos || !local) { free(pos); free(local); return -1; }
    for (int s = 0, o = 0; s < n; o += lens[s], s++) {
        local[s] = o;
        for (int i = 0; i < lens[s]; i++) pos[o + i] = i;
    }
    embed(m, tokens, pos, total, c->x);
    free(pos);

    float scaling = 1.0f / sqrtf((float)hd);
    for (int l = 0; l < mc->encoder_layers; l++) {
        const lm_encoder_layer *L = &m->enc[l];
        add_norm(c, c->x, l > 0 ? c->att : NULL, total, d, &L->self_norm, c->h); /* the last FFN's output */
#define ENC(i) lm_cpu_weights_enc(c->weights, l, LM_ENC_##i)
        linear(c->h, total, &L->q, ENC(Q), c->q);
        linear(c->h, total, &L->k, ENC(K), c->k);
        linear(c->h, total, &L->v, ENC(V), c->v);
#pragma omp parallel num_threads(c->threads)
        {
            float *scores = c->scores + (size_t)omp_get_thread_num() * c->scores_per_thread;
#pragma omp for collapse(2) schedule(dynamic)
            for (int s = 0; s < n; s++)
                for (int h = 0; h < heads; h++) {
                    size_t base = (size_t)local[s] * d + (size_t)h * hd;
                    for (int i = 0; i < lens[s]; i++)
                        c->attend(c->q + base + (size_t)i * d, scaling, c->k + base, c->v + base, lens[s], d, hd,
                                  scores, c->att + base + (size_t)i * d);
                }
        }
        linear(c->att, total, &L->o, ENC(O), c->h);
        feed_forward(c, total, c->h, &L->ffn_norm, &L->fc1, &L->fc2, ENC(FC1), ENC(FC2));
#undef ENC
    }
    free(local);
    float *enc = c->enc_out + (size_t)at * d;
    add_norm(c, c->x, c->att, total, d, &m->enc_norm, enc);
    for (int l = 0; l < mc->decoder_layers; l++) {
        linear(enc, total, &m->dec[l].ck, lm_cpu_weights_dec(c->weights, l, LM_DEC_CK), c->cross_k[l] + (size_t)at * d);
        linear(enc, total, &m->dec[l].cv, lm_cpu_weights_dec(c->weights, l, LM_DEC_CV), c->cross_v[l] + (size_t)at * d);
    }
    for (int s = 0; s < n; s++) {
        c->offset[c->n_sent + s] = at;
        c->len[c->n_sent + s] = lens[s];
        at += lens[s];
    }
    c->n_sent += n;
    c->total = at;
    return 0;
}

static int cpu_encode(lm_backend *b, const int32_t *tokens, const int32_t *lens, int n, lm_err *err) {
    cpu_backend *c = (cpu_backend *)b;
    free_batch(c);
    return encode_append(c, tokens, lens, n, err);
}

static int cpu_encode_more(lm_backend *b, const int32_t *tokens, const int32_t *lens, int n, lm_err *err) {
    cpu_backend *c = (cpu_backend *)b;
    drop_unused(c);
    return encode_append(c, tokens, lens, n, err);
}

static int cpu_encoder_output(lm_backend *b, int s, float *out, lm_err *err) {
    cpu_backend *c = (cpu_backend *)b;
    if (lm_backend_check_sentence(c->len, c->n_sent, s, err) != 0) return -1;
    int d = b->model->cfg.model.d_model;
    memcpy(out, c->enc_out + (size_t)c->offset[s] * d, (size_t)c->len[s] * d * sizeof(float));
    return 0;
}

/* ---- decoder ---- */

static void free_decode(cpu_backend *c) {
    const lm_model_config *mc = &c->base.model->cfg.model;
    if (c->self_k)
        for (int l = 0; l < mc->decoder_layers; l++) { free(c->self_k[l]); free(c->self_v[l]); }
    free(c->self_k); free(c->self_v); free(c->row_sentence); free(c->row_len);
    free(c->row_len_old); free(c->forks);
    lm_kv_slots_free(&c->slots);
    c->self_k = c->self_v = NULL;
    c->row_sentence = c->row_len = c->row_len_old = c->forks = NULL;
    c->rows = 0;
}

static int cpu_decode_start(lm_backend *b, const int32_t *row_sentence, int rows, int max_steps, lm_err *err) {
    cpu_backend *c = (cpu_backend *)b;
    const lm_model_config *mc = &b->model->cfg.model;
    free_decode(c);
    if (lm_backend_check_steps(mc, max_steps, err) != 0) return -1;
    size_t per_layer = (size_t)rows * max_steps * mc->d_model;
    c->self_k = calloc((size_t)mc->decoder_layers, sizeof(float *));
    c->self_v = calloc((size_t)mc->decoder_layers, sizeof(float *));
    c->row_sentence = lm_malloc((size_t)rows * sizeof(int32_t), err);
    c->row_len = lm_calloc((size_t)rows, sizeof(int32_t), err);
    c->row_len_old = lm_malloc((size_t)rows * sizeof(int32_t), err);
    c->forks = lm_malloc((size_t)rows * 3 * sizeof(int32_t), err);
    if (!c->self_k || !c->self_v || !c->row_sentence || !c->row_len || !c->row_len_old || !c->forks ||
        lm_kv_slots_start(&c->slots, rows, err) != 0)
        return lm_fail(err, "out of memory for the KV cache");
    for (int l = 0; l < mc->decoder_layers; l++) {
        c->self_k[l] = lm_malloc(per_layer * sizeof(float), err);
        c->self_v[l] = lm_malloc(per_layer * sizeof(float), err);
        if (!c->self_k[l] || !c->self_v[l]) return -1;
    }
    if (lm_backend_check_rows(c->len, c->n_sent, row_sentence, rows, err) != 0) return -1;
    memcpy(c->row_sentence, row_sentence, (size_t)rows * sizeof *c->row_sentence);
    c->rows = c->max_rows = rows;
    c->max_steps = max_steps;
    c->steps_done = 0;
    return ensure_work(c, (size_t)rows, err);
}

/* A decoder layer's start, for R rows: the last layer's output (c->x + c->att)
 * normed, then the self-attention's queries, keys and values (c->q, c->k, c->v). */
static void decoder_layer_qkv(cpu_backend *c, int l, int R) {
    const lm_decoder_layer *L = &c->base.model->dec[l];
#define PACK(i) lm_cpu_weights_dec(c->weights, l, LM_DEC_##i)
    add_norm(c, c->x, l > 0 ? c->att : NULL, R, c->base.model->cfg.model.d_model, &L->self_norm, c->h); /* the last FFN's output */
    linear(c->h, R, &L->q, PACK(Q), c->q);
    linear(c->h, R, &L->k, PACK(K), c->k);
    linear(c->h, R, &L->v, PACK(V), c->v);
#undef PACK
}

/* A decoder layer after its self-attention (in c->att, R rows): the output
 * projection, cross-attention of row r over sentence sent[r], and the
 * feed-forward block; the layer's output is c->x + c->att, added by the next
 * norm. Every step of decode_step and decode_forced's one pass run it. */
static void decoder_layer_rest(cpu_backend *c, int l, int R, const int32_t *sent) {
    const lm_model *m = c->base.model;
    const lm_model_config *mc = &m->cfg.model;
    const lm_decoder_layer *L = &m->dec[l];
    int d = mc->d_model, heads = mc->decoder_heads, hd = d / heads;
    float scaling = 1.0f / sqrtf((float)hd);
#define PACK(i) lm_cpu_weights_dec(c->weights, l, LM_DEC_##i)
    linear(c->att, R, &L->o, PACK(O), c->h);
    /* cross-attention over the row's sentence */
    add_norm(c, c->x, c->h, R, d, &L->cross_norm, c->h);
    linear(c->h, R, &L->cq, PACK(CQ), c->q);
#pragma omp parallel num_threads(c->threads)
    {
        float *scores = c->scores + (size_t)omp_get_thread_num() * c->scores_per_thread;
#pragma omp for collapse(2) schedule(static)
        for (int r = 0; r < R; r++)
            for (int h = 0; h < heads; h++) {
                int s = sent[r];
                size_t col = (size_t)h * hd, base = (size_t)c->offset[s] * d + col;
                c->attend(c->q + (size_t)r * d + col, scaling, c->cross_k[l] + base, c->cross_v[l] + base, c->len[s], d, hd,
                          scores, c->att + (size_t)r * d + col);
            }
    }
    linear(c->att, R, &L->co, PACK(CO), c->h);
    feed_forward(c, R, c->h, &L->ffn_norm, &L->fc1, &L->fc2, PACK(FC1), PACK(FC2));
#undef PACK
}

static int cpu_decode_step(lm_backend *b, const int32_t *tokens, int step, float *logits, lm_err *err) {
    cpu_backend *c = (cpu_backend *)b;
    const lm_model *m = b->model;
    const lm_model_config *mc = &m->cfg.model;
    int d = mc->d_model, heads = mc->decoder_heads, hd = d / heads, R = c->rows;
    if (lm_backend_check_feed(mc, tokens, step, c->steps_done, c->row_len, R, c->max_steps, err) != 0) return -1;
    int32_t *pos = c->row_len; /* each row's next position */
    embed(m, tokens, pos, R, c->x);
    float scaling = 1.0f / sqrtf((float)hd);
    size_t row_stride = (size_t)c->max_steps * d;
    const int32_t *slot = c->slots.slot;
    for (int l = 0; l < mc->decoder_layers; l++) {
        /* self-attention over this row's cache, including the new token */
        decoder_layer_qkv(c, l, R);
        for (int r = 0; r < R; r++) {
            size_t at = (size_t)slot[r] * row_stride + (size_t)pos[r] * d;
            memcpy(c->self_k[l] + at, c->k + (size_t)r * d, (size_t)d * sizeof(float));
            memcpy(c->self_v[l] + at, c->v + (size_t)r * d, (size_t)d * sizeof(float));
        }
#pragma omp parallel num_threads(c->threads)
        {
            float *scores = c->scores + (size_t)omp_get_thread_num() * c->scores_per_thread;
#pragma omp for collapse(2) schedule(static)
            for (int r = 0; r < R; r++)
                for (int h = 0; h < heads; h++) {
                    size_t col = (size_t)h * hd, keys = (size_t)slot[r] * row_stride + col;
                    c->attend(c->q + (size_t)r * d + col, scaling, c->self_k[l] + keys, c->self_v[l] + keys, pos[r] + 1, d, hd, scores,
                              c->att + (size_t)r * d + col);
                }
        }
        decoder_layer_rest(c, l, R, c->row_sentence);
    }
    c->steps_done = step + 1;
    for (int r = 0; r < R; r++) c->row_len[r]++;
    /* without logits, the last FFN's output is not added: nothing reads x
     * before the next step embeds over it */
    if (!logits) return 0;
    add_norm(c, c->x, c->att, R, d, &m->dec_norm, c->h);
    lm_cpu_linear(&c->weights->head, R, c->h, NULL, logits);
    return 0;
}

/* Rows of logits decode_forced's output projection writes at once: the
 * projection's weights are read once per this many positions. */
#define FORCED_HEAD_ROWS 128

static int cpu_decode_forced(lm_backend *b, const int32_t *row_sentence, const int32_t *tokens, const int32_t *lens, int rows,
                             const int32_t *want, float *out, lm_err *err) {
    cpu_backend *c = (cpu_backend *)b;
    const lm_model *m = b->model;
    const lm_model_config *mc = &m->cfg.model;
    int d = mc->d_model, heads = mc->decoder_heads, hd = d / heads, V = mc->vocab_size, N;
    if (lm_backend_check_forced(mc, c->len, c->n_sent, row_sentence, tokens, lens, rows, want, &N, err) != 0) return -1;
    if (ensure_work(c, (size_t)N, err) != 0) return -1;
    int head_rows = N < FORCED_HEAD_ROWS ? N : FORCED_HEAD_ROWS;
    /* each position's place in its row, its sentence, and where its row starts */
    int32_t *pos = lm_malloc((size_t)N * sizeof *pos, err), *sent = lm_malloc((size_t)N * sizeof *sent, err),
            *first = lm_malloc((size_t)N * sizeof *first, err);
    float *logits = lm_malloc((size_t)head_rows * V * sizeof *logits, err);
    if (!pos || !sent || !first || !logits) { free(pos); free(sent); free(first); free(logits); return -1; }
    for (int r = 0, at = 0; r < rows; at += lens[r], r++)
        for (int p = 0; p < lens[r]; p++) {
            pos[at + p] = p;
            sent[at + p] = row_sentence[r];
            first[at + p] = at;
        }
    embed(m, tokens, pos, N, c->x);
    float scaling = 1.0f / sqrtf((float)hd);
    for (int l = 0; l < mc->decoder_layers; l++) {
        decoder_layer_qkv(c, l, N);
        /* position p attends to its row's keys 0 .. p, laid out as decode_step's
         * cache holds them (a row's positions d floats apart) */
#pragma omp parallel num_threads(c->threads)
        {
            float *scores = c->scores + (size_t)omp_get_thread_num() * c->scores_per_thread;
#pragma omp for collapse(2) schedule(static)
            for (int i = 0; i < N; i++)
                for (int h = 0; h < heads; h++) {
                    size_t col = (size_t)h * hd, keys = (size_t)first[i] * d + col;
                    c->attend(c->q + (size_t)i * d + col, scaling, c->k + keys, c->v + keys, pos[i] + 1, d, hd, scores,
                              c->att + (size_t)i * d + col);
                }
        }
        decoder_layer_rest(c, l, N, sent);
    }
    add_norm(c, c->x, c->att, N, d, &m->dec_norm, c->h);
    for (int i0 = 0; i0 < N; i0 += head_rows) {
        int n = N - i0 < head_rows ? N - i0 : head_rows;
        lm_cpu_linear(&c->weights->head, n, c->h + (size_t)i0 * d, NULL, logits);
#pragma omp parallel for schedule(static)
        for (int i = 0; i < n; i++) out[i0 + i] = lm_label_logprob(logits + (size_t)i * V, V, want[i0 + i]);
    }
    free(pos); free(sent); free(first); free(logits);
    return 0;
}

static int cpu_reorder(lm_backend *b, const int32_t *parent, const int32_t *row_sentence, int rows, lm_err *err) {
    cpu_backend *c = (cpu_backend *)b;
    const lm_model_config *mc = &b->model->cfg.model;
    if (lm_backend_check_reorder(parent, row_sentence, rows, c->rows, c->max_rows, c->len, c->n_sent, err) != 0) return -1;
    /* only the forks move, straight from slot to slot: no fork writes a slot another one reads */
    int32_t *src = c->forks, *dst = src + rows, *n = dst + rows;
    int forks = lm_kv_slots_reorder(&c->slots, parent, rows, c->row_len, src, dst, n);
    size_t d = (size_t)mc->d_model, row_stride = (size_t)c->max_steps * d;
    for (int l = 0; l < mc->decoder_layers; l++)
        for (int f = 0; f < forks; f++) {
            size_t from = (size_t)src[f] * row_stride, to = (size_t)dst[f] * row_stride, bytes = (size_t)n[f] * d * sizeof(float);
            memcpy(c->self_k[l] + to, c->self_k[l] + from, bytes);
            memcpy(c->self_v[l] + to, c->self_v[l] + from, bytes);
        }
    /* new lengths, read from the old ones first (a row may be another's parent) */
    int32_t *len = c->row_len, *old = c->row_len_old;
    memcpy(old, len, (size_t)c->rows * sizeof *old);
    for (int r = 0; r < rows; r++) len[r] = parent[r] >= 0 ? old[parent[r]] : 0;
    memcpy(c->row_sentence, row_sentence, (size_t)rows * sizeof(int32_t));
    c->rows = rows;
    return 0;
}

/* The search's sampling, here so that both backends answer the same op
 * (backend.h); the draws are sample.c's, which the CUDA kernel matches. */
static int cpu_decode_step_sample(lm_backend *b, const int32_t *tokens, int step, const lm_sample_request *req, int32_t *ids,
                                  float *logprobs, float *raw_logprobs, lm_err *err) {
    cpu_backend *c = (cpu_backend *)b;
    if (lm_backend_check_sample(&b->model->cfg.model, req, c->rows, raw_logprobs != NULL, err) != 0) return -1;
    int V = b->model->cfg.model.vocab_size, threads = omp_get_max_threads();
    size_t need = (size_t)c->rows * V;
    if (need > c->cap_sample) {
        free(c->sample_logits);
        c->cap_sample = 0;
        if (!(c->sample_logits = lm_malloc(need * sizeof(float), err))) return -1;
        c->cap_sample = need;
    }
    if (threads > c->n_samplers) {
        lm_sampler *s = realloc(c->samplers, (size_t)threads * sizeof *s);
        if (!s) return lm_fail(err, "out of memory for sampling");
        memset(s + c->n_samplers, 0, (size_t)(threads - c->n_samplers) * sizeof *s);
        c->samplers = s;
        c->n_samplers = threads;
    }
    if (cpu_decode_step(b, tokens, step, c->sample_logits, err) != 0) return -1;
    return lm_sample_rows(c->sample_logits, c->rows, V, step, req, c->samplers, c->n_samplers, ids, logprobs, raw_logprobs, err);
}

static void cpu_destroy(lm_backend *b) {
    cpu_backend *c = (cpu_backend *)b;
    free(c->sample_logits);
    for (int i = 0; i < c->n_samplers; i++) lm_sampler_free(&c->samplers[i]);
    free(c->samplers);
    free_batch(c);
    free_decode(c);
    free(c->x); free(c->h); free(c->q); free(c->k); free(c->v); free(c->att); free(c->ffn);
    free(c->scores);
    free(c);
}

static const lm_backend_ops cpu_ops = {
    .name = "cpu",
    .encode = cpu_encode,
    .encode_more = cpu_encode_more,
    .encoder_output = cpu_encoder_output,
    .decode_start = cpu_decode_start,
    .decode_step = cpu_decode_step,
    .decode_step_sample = cpu_decode_step_sample,
    .decode_forced = cpu_decode_forced,
    .reorder = cpu_reorder,
    .destroy = cpu_destroy,
};

lm_backend *lm_cpu_backend_create(const lm_model *model, const lm_cpu_weights *weights, int threads, lm_err *err) {
    cpu_backend *c = lm_calloc(1, sizeof *c, err);
    if (!c) return NULL;
    c->base.ops = &cpu_ops;
    c->base.model = model;
    c->weights = weights;
    c->threads = threads > 0 ? threads : omp_get_num_procs();
    omp_set_num_threads(c->threads);
    const lm_model_config *mc = &model->cfg.model;
    int heads = mc->encoder_heads < mc->decoder_heads ? mc->encoder_heads : mc->decoder_heads;
    c->scores_per_thread = lm_cpu_attention_scratch(mc->max_positions, mc->d_model / heads);
    c->scores = lm_malloc((size_t)c->threads * c->scores_per_thread * sizeof(float), err);
    if (!c->scores) { free(c); return NULL; }
    c->attend = lm_cpu_attention_best();
    c->norm_row = lm_cpu_norm_row_best();
    openblas_set_num_threads(1); /* threads come from OpenMP: see blas_linear in cpu_weights.c */
    return &c->base;
}
