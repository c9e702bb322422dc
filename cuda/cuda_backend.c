/*
 * cuda_backend: the M2M100 forward pass on an NVIDIA GPU, behind the same
 * interface as the CPU backend (host/backend/backend.h); search and scheduling stay on
 * the host and are shared.
 *
 * Precision: weights live on the device in the chosen dtype (fp32 to check
 * against the CPU; bf16, the default, or fp16 for speed) and so do the inputs
 * of every matrix product and the decoder's self-attention KV cache; products
 * accumulate in fp32 (compute 32F, tensor cores for 16-bit inputs) and write
 * fp32, but for the first FFN product, whose bias and ReLU cuBLASLt's
 * epilogue adds before writing the compute dtype the second reads; the
 * residual stream, layer norms, softmaxes and the encoder's cross-attention
 * keys and values stay fp32.
 *
 * Memory: the model is uploaded once and never changes. Per-batch state (work
 * buffers, encoder output and cross-attention K/V, the self-attention KV
 * cache, logits) is reserved up front for the configured batch size and grows
 * only when a batch needs more, never per step. The KV cache is one buffer of
 * slots, one a row: a beam reorder renumbers slots (a row keeps its parent's
 * slot when it is the parent's first child) and copies only the forks, each
 * its parent's own length, into slots no row keeps (lm_kv_slots, the plan
 * the CPU backend follows too).
 *
 * Launches: the decoder step's (decoder_launches) are captured into a CUDA
 * graph per step key and replayed (cuda_graph.c), so below a few hundred
 * rows the host's launches no longer set the step's pace.
 *
 * In-flight batching: encode_more appends sentences to the encoder state
 * (also a double buffer: when finished sentences hold half of it, or it is
 * full, the rest is gathered into the other half), and each decoder row keeps
 * its own length, so the embedding, the cache append and self-attention take
 * a position and a key count per row. The encoder runs on a lane of its
 * own, issued by the next decoder step (encode_append), so that an admission
 * encoded a step ahead (sched.h) runs beside that step.
 */
#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/cuda_device.h"
#include "cuda/cuda_graph.h"
#include "config/engine_config.h"
#include "kernels/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float *gamma, *beta;
} dev_norm;

/* Encoder layers leave the cross-attention members empty. */
typedef struct {
    dev_norm self_norm, cross_norm, ffn_norm;
    lm_dev_linear qkv, o, cq, ck, cv, co, fc1, fc2; /* qkv: the three projections' rows stacked, one product */
} dev_layer;

/* A device buffer that only grows. */
typedef struct {
    void *p;
    size_t bytes;
} dev_buf;

/* A stream and what runs on it alone: its products' handles and workspace
 * (a workspace serves one stream at a time), its work rows. */
typedef struct {
    cudaStream_t stream;
    lm_cuda_gemm mm;           /* cuBLAS, cuBLASLt and their workspace (cuda_device.h) */
    dev_buf x, y, h, qkv, att, ffn, idx;
} lane;

typedef struct {
    lm_backend base;
    int dtype;                 /* LM_K_F32 / F16 / BF16 */
    cudaDataType_t gemm_type;
    /* decoding: the steps, reorders, relayouts and uploads; encoding: encode
     * and encode_more, so that an admission's encoder runs beside the steps
     * queued after it (issue_encode says how the two are ordered) */
    lane decoding, encoding;
    cudaEvent_t encoded;       /* recorded after each encode's last write: decoding waits for it before it reads those sentences */
    cudaEvent_t planned;       /* recorded on decoding when an encode is planned: the encoder waits for what was queued there */
    int ready_sent;            /* sentences below this decoding has waited for */
    int32_t *enc_host;         /* pinned: an encode's token indices (4 per token row), read by its upload */
    size_t enc_host_bytes;
    bool deferred;             /* an encode planned, its launches not yet issued (issue_encode) */
    int deferred_rows, deferred_at; /* its token rows, and the first in the live half */
    long encodes_issued;       /* for tests */
    bool overlap;              /* encodes deferred and run beside the steps (LYRICMT_CUDA_OVERLAP=0: issued at the call, waited for) */
    bool epilogues;            /* biases and ReLU in the products' epilogues (LYRICMT_CUDA_EPILOGUES=0: as kernels) */
    long epilogue_products;    /* enqueued with one, for tests */
    /* the model, immutable after create */
    void *embed, *lm_head;     /* (V, D) dtype; lm_head == embed when tied */
    float *positions;
    dev_layer *enc, *dec;
    dev_norm enc_norm, dec_norm;
    void **weights;            /* every weight allocation, for destroy and broadcast */
    size_t *weight_bytes;
    int n_weights;
    int device;                /* the CUDA device this backend lives on */
    bool fill;                 /* create copies the weights from the host; otherwise they come by broadcast */
    /* encoder batch: sentences numbered since encode; a dropped one has len 0 */
    int n_sent, total, cap_sent; /* sentences, token rows in use, room in offset/len */
    int32_t *offset, *len;     /* host copies */
    int enc_cur, enc_cap[2];   /* the live half of enc_out/cross; token rows each half holds */
    /* decoding */
    int rows, max_rows, max_steps, steps_done;
    lm_kv_slots slots;         /* host: each row's KV cache slot (backend.h) */
    int32_t *row_sentence;     /* host */
    int32_t *row_len, *row_len_old; /* host: tokens each row was fed (its next position); reorder scratch */
    /* pinned host staging (cudaMallocHost): the per-step index upload and the
     * top-k's copy back are true asynchronous copies, read and written when
     * the stream runs, so each is rewritten or read only after a wait */
    int32_t *host_idx;         /* per-step indices (rows x 6), then the reorder's lists (rows x 3): apart, so a step
                                * rewrites its part while the reorder's upload may still read the other */
    void *host_top;            /* top-k ids and values (rows x LM_K_TOPK_MAX x 8 bytes) */
    float *host_logits;        /* the search's whole rows of logits (cuda_row_buffer) */
    size_t host_logits_bytes;
    int host_rows;             /* rows they hold: they only grow (pinning costs far more than malloc) */
    cudaEvent_t reorder_done;  /* recorded after the reorder's upload: the next reorder's lists wait for it */
    /* device state */
    dev_buf q, enc_out[2], enc_in, cross[2], kv, logits, edits, top_ids, top_vals, row_map, topk_scratch;
    /* sampling (cuda_decode_step_sample): rows' inputs and outputs, the kernel's scratch, their host staging */
    dev_buf sample_io, sample_scratch;
    char *sample_host;
    size_t sample_host_bytes;
    lm_cuda_graphs graphs;     /* the decoder step's launches, replayed (cuda_graph.h) */
} cuda_backend;

#define D_(c) ((c)->base.model->cfg.model.d_model)

static size_t dtype_size(int dtype) { return dtype == LM_K_F32 ? 4 : 2; }

/* Grows by half again past what is asked: buffers sized by what a step
 * carries (edits, sampled rows) would otherwise regrow nearly every step,
 * and cudaFree waits for the whole device. */
static int reserve(dev_buf *b, size_t bytes, lm_err *err) {
    if (bytes <= b->bytes) return 0;
    if (b->bytes) bytes += bytes / 2;
    if (b->p) CUDA_TRY(cudaFree(b->p));
    b->p = NULL;
    b->bytes = 0;
    if (lm_cuda_malloc(&b->p, bytes, err) != 0) return -1;
    b->bytes = bytes;
    return 0;
}

/* A lane's stream (non-blocking: not ordered after the legacy default
 * stream) and its products' handles, on the current device. */
static int lane_open(lane *w, lm_err *err) {
    CUDA_TRY(cudaStreamCreateWithFlags(&w->stream, cudaStreamNonBlocking));
    return lm_cuda_gemm_open(&w->mm, w->stream, err) != 0 ? lm_fail_prefix(err, "--device cuda") : 0;
}

static void lane_close(lane *w) {
    dev_buf *bufs[] = {&w->x, &w->y, &w->h, &w->qkv, &w->att, &w->ffn, &w->idx};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) cudaFree(bufs[i]->p);
    lm_cuda_gemm_close(&w->mm);
    if (w->stream) cudaStreamDestroy(w->stream);
}

/* Pinned host memory that only grows (pinning costs far more than malloc):
 * *p holds *have bytes, and at least `bytes` after. cudaFreeHost waits for
 * the device, which may still copy from or into the old block; on an error
 * *p is NULL and *have 0, so destroy never frees a block twice. */
static cudaError_t grow_pinned(void **p, size_t *have, size_t bytes) {
    if (bytes <= *have) return cudaSuccess;
    cudaError_t e = cudaFreeHost(*p);
    *p = NULL;
    *have = 0;
    if (e == cudaSuccess) e = cudaMallocHost(p, bytes);
    if (e != cudaSuccess) {
        *p = NULL;
        return e;
    }
    *have = bytes;
    return cudaSuccess;
}

/* ---- upload ----
 * Every copy goes on the backend's stream, the one the kernels run on: that
 * stream is non-blocking, so it is NOT ordered after copies on the legacy
 * default stream (plain cudaMemcpy), and a convert there could read `staging`
 * before its copy landed. On one stream the copy, the convert and the next
 * matrix's copy into the same staging run in order. From pageable memory the
 * copy returns once the source is staged, so the host may move on;
 * upload_model waits for the stream once at the end. */

/* A weight's device memory, recorded for destroy and broadcast. */
static int alloc_weight(cuda_backend *c, size_t bytes, void **out, lm_err *err) {
    CUDA_TRY(cudaMalloc(out, bytes));
    c->weight_bytes[c->n_weights] = bytes;
    c->weights[c->n_weights++] = *out;
    return 0;
}

static int upload_f32(cuda_backend *c, const float *src, size_t n, float **out, lm_err *err) {
    void *p;
    if (alloc_weight(c, n * sizeof(float), &p, err) != 0) return -1;
    *out = p;
    if (!c->fill) return 0;
    CUDA_TRY(cudaMemcpyAsync(p, src, n * sizeof(float), cudaMemcpyHostToDevice, c->decoding.stream));
    *out = p;
    return 0;
}

/* A matrix in the compute dtype: copied as fp32 into `staging`, converted on the device. */
static int upload_matrix(cuda_backend *c, const float *src, size_t n, void **out, float *staging, lm_err *err) {
    if (c->dtype == LM_K_F32) return upload_f32(c, src, n, (float **)out, err);
    void *p;
    if (alloc_weight(c, n * dtype_size(c->dtype), &p, err) != 0) return -1;
    *out = p;
    if (!c->fill) return 0;
    CUDA_TRY(cudaMemcpyAsync(staging, src, n * sizeof(float), cudaMemcpyHostToDevice, c->decoding.stream));
    KERNEL_TRY(lm_k_convert(staging, p, c->dtype, n, c->decoding.stream, kmsg));
    *out = p;
    return 0;
}

static int upload_linear(cuda_backend *c, const lm_linear *l, lm_dev_linear *d, float *staging, lm_err *err) {
    d->in = l->in;
    d->out = l->out;
    if (upload_matrix(c, l->w, (size_t)l->in * l->out, &d->w, staging, err) != 0) return -1;
    return upload_f32(c, l->b, (size_t)l->out, &d->b, err);
}

/* The first FFN product: its bias in the compute dtype too, for the
 * epilogue that writes that dtype (linear_act). */
static int upload_fc1(cuda_backend *c, const lm_linear *l, lm_dev_linear *d, float *staging, lm_err *err) {
    if (upload_linear(c, l, d, staging, err) != 0) return -1;
    return c->dtype == LM_K_F32 ? 0 : upload_matrix(c, l->b, (size_t)l->out, &d->b16, staging, err);
}

/* q, k and v as one (3 out, in) matrix and one bias: one product where three
 * ran (fewer launches, and a wider product uses the GPU better at few rows). */
static int upload_qkv(cuda_backend *c, const lm_linear *q, const lm_linear *k, const lm_linear *v, lm_dev_linear *d, float *staging,
                      lm_err *err) {
    const lm_linear *part[3] = {q, k, v};
    size_t in = (size_t)q->in, out = (size_t)q->out, es = dtype_size(c->dtype);
    d->in = q->in;
    d->out = 3 * q->out;
    void *w;
    float *b;
    if (alloc_weight(c, 3 * out * in * es, &w, err) != 0 || alloc_weight(c, 3 * out * sizeof(float), (void **)&b, err) != 0) return -1;
    d->w = w;
    d->b = b;
    if (!c->fill) return 0;
    for (int i = 0; i < 3; i++) {
        float *to = c->dtype == LM_K_F32 ? (float *)w + i * out * in : staging + i * out * in;
        CUDA_TRY(cudaMemcpyAsync(to, part[i]->w, out * in * sizeof(float), cudaMemcpyHostToDevice, c->decoding.stream));
        CUDA_TRY(cudaMemcpyAsync(b + i * out, part[i]->b, out * sizeof(float), cudaMemcpyHostToDevice, c->decoding.stream));
    }
    if (c->dtype != LM_K_F32) KERNEL_TRY(lm_k_convert(staging, w, c->dtype, 3 * out * in, c->decoding.stream, kmsg));
    return 0;
}

static int upload_norm(cuda_backend *c, const lm_norm *n, dev_norm *d, lm_err *err) {
    int dm = D_(c);
    if (upload_f32(c, n->gamma, (size_t)dm, &d->gamma, err) != 0) return -1;
    return upload_f32(c, n->beta, (size_t)dm, &d->beta, err);
}

static int wait_stream(cuda_backend *c, lm_err *err) {
    CUDA_TRY(cudaStreamSynchronize(c->decoding.stream));
    return 0;
}

static int upload_model(cuda_backend *c, lm_err *err) {
    const lm_model *m = c->base.model;
    const lm_model_config *mc = &m->cfg.model;
    int D = mc->d_model;
    int tensors = 8 + mc->encoder_layers * 17 + mc->decoder_layers * 27; /* matrices, biases, norms */
    c->weights = lm_calloc((size_t)tensors, sizeof *c->weights, err);
    c->weight_bytes = lm_calloc((size_t)tensors, sizeof *c->weight_bytes, err);
    c->enc = lm_calloc((size_t)mc->encoder_layers, sizeof *c->enc, err);
    c->dec = lm_calloc((size_t)mc->decoder_layers, sizeof *c->dec, err);
    if (!c->weights || !c->weight_bytes || !c->enc || !c->dec) return -1;
    float *staging = NULL;
    lm_err later;
    size_t largest = (size_t)mc->vocab_size * D, ffn = (size_t)D * (mc->encoder_ffn > mc->decoder_ffn ? mc->encoder_ffn : mc->decoder_ffn);
    if (ffn > largest) largest = ffn;
    if ((size_t)3 * D * D > largest) largest = (size_t)3 * D * D;
    if (c->dtype != LM_K_F32 && c->fill) CUDA_TRY(cudaMalloc((void **)&staging, largest * sizeof(float)));
    int rc = -1;
    if (upload_matrix(c, m->embed, (size_t)mc->vocab_size * D, &c->embed, staging, err) != 0) goto done;
    c->lm_head = c->embed;
    if (m->lm_head != m->embed && upload_matrix(c, m->lm_head, (size_t)mc->vocab_size * D, &c->lm_head, staging, err) != 0)
        goto done;
    if (upload_f32(c, m->positions, (size_t)m->n_positions * D, &c->positions, err) != 0) goto done;
    for (int l = 0; l < mc->encoder_layers; l++) {
        const lm_encoder_layer *L = &m->enc[l];
        dev_layer *d = &c->enc[l];
        if (upload_norm(c, &L->self_norm, &d->self_norm, err) || upload_norm(c, &L->ffn_norm, &d->ffn_norm, err) ||
            upload_qkv(c, &L->q, &L->k, &L->v, &d->qkv, staging, err) || upload_linear(c, &L->o, &d->o, staging, err) ||
            upload_fc1(c, &L->fc1, &d->fc1, staging, err) || upload_linear(c, &L->fc2, &d->fc2, staging, err))
            goto done;
    }
    for (int l = 0; l < mc->decoder_layers; l++) {
        const lm_decoder_layer *L = &m->dec[l];
        dev_layer *d = &c->dec[l];
        if (upload_norm(c, &L->self_norm, &d->self_norm, err) || upload_norm(c, &L->cross_norm, &d->cross_norm, err) ||
            upload_norm(c, &L->ffn_norm, &d->ffn_norm, err) || upload_qkv(c, &L->q, &L->k, &L->v, &d->qkv, staging, err) ||
            upload_linear(c, &L->o, &d->o, staging, err) || upload_linear(c, &L->cq, &d->cq, staging, err) ||
            upload_linear(c, &L->ck, &d->ck, staging, err) || upload_linear(c, &L->cv, &d->cv, staging, err) ||
            upload_linear(c, &L->co, &d->co, staging, err) || upload_fc1(c, &L->fc1, &d->fc1, staging, err) ||
            upload_linear(c, &L->fc2, &d->fc2, staging, err))
            goto done;
    }
    if (upload_norm(c, &m->enc_norm, &c->enc_norm, err) || upload_norm(c, &m->dec_norm, &c->dec_norm, err)) goto done;
    rc = 0;
done:
    /* every copy and convert done before staging goes (and before the first batch) */
    if (wait_stream(c, rc == 0 ? err : &later) != 0) rc = -1; /* the first error is the one reported */
    if (staging && cudaFree(staging) != cudaSuccess && rc == 0) rc = lm_fail(err, "freeing the upload staging buffer failed");
    return rc;
}

/* ---- building blocks ---- */

/* y (rows, out) fp32 = x (rows, in; dtype) . W^T (cuda_device.c, tested alone in test_cuda_backend). */
static int gemm(const cuda_backend *c, const lane *w, int rows, const lm_dev_linear *l, const void *x, float *y, lm_err *err) {
    return lm_cuda_linear(&w->mm, c->gemm_type, rows, l, x, y, err);
}

/* out (rows, l->out) = act(x . W^T + b) in out_dtype (fp32, or the compute
 * dtype): one product with the bias and ReLU in its epilogue, which saves a
 * launch and, for a 16-bit output, the fp32 round trip of the product; or,
 * with epilogues off (GELU always: see LM_CUDA_EP_BIAS), the product into
 * fp32 and lm_k_bias_act. A cuBLASLt that refuses an epilogue turns them
 * off for this backend, said once. */
static int linear_act(cuda_backend *c, lane *w, int rows, const lm_dev_linear *l, const void *x, int act, void *out, int out_dtype, lm_err *err) {
    if (c->epilogues && act != LM_K_ACT_GELU) {
        const void *bias = out_dtype == LM_K_F32 ? (const void *)l->b : l->b16;
        int rc = lm_cuda_linear_epilogue(&w->mm, c->gemm_type, rows, l, bias, act == LM_K_ACT_RELU ? LM_CUDA_EP_RELU_BIAS : LM_CUDA_EP_BIAS, x,
                                         out, out_dtype == LM_K_F32 ? CUDA_R_32F : c->gemm_type, err);
        c->epilogue_products += rc == 0;
        if (rc <= 0) return rc;
        fprintf(stderr, "lyricmt: cuda: cuBLASLt epilogues off (this cuBLASLt does not serve a %d x %d product's bias%s); biases and "
                        "activations run as kernels\n", l->out, l->in, act == LM_K_ACT_RELU ? " and ReLU" : "");
        c->epilogues = false;
    }
    float *y = out_dtype == LM_K_F32 ? out : w->y.p;
    if (gemm(c, w, rows, l, x, y, err)) return -1;
    KERNEL_TRY(lm_k_bias_act(y, l->b, out, out_dtype, (size_t)l->out, rows, l->out, act, 1.0f, w->stream, kmsg));
    return 0;
}

/* bytes from the host, waited for (the caller frees or rewrites src next). */
static int to_device_now(cuda_backend *c, void *dst, const void *src, size_t bytes, lm_err *err) {
    CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->decoding.stream));
    CUDA_TRY(cudaStreamSynchronize(c->decoding.stream));
    return 0;
}

/* The memory a decoder row holds for max_steps tokens (its KV cache), the
 * same layout cuda_decode_start reserves. */
static size_t kv_row_bytes(const cuda_backend *c, int max_steps) {
    const lm_model_config *mc = &c->base.model->cfg.model;
    return (size_t)mc->decoder_layers * 2 * max_steps * mc->d_model * dtype_size(c->dtype);
}

/* Work buffers' bytes a row (reserve_work's sum). */
static size_t work_row_bytes(const cuda_backend *c) {
    const lm_model_config *mc = &c->base.model->cfg.model;
    size_t D = (size_t)mc->d_model, F = (size_t)(mc->encoder_ffn > mc->decoder_ffn ? mc->encoder_ffn : mc->decoder_ffn);
    size_t es = dtype_size(c->dtype), wide = F > D ? F : D;
    return D * 4 + wide * 4 + D * es + 4 * D * 4 + D * es + F * es + 6 * sizeof(int32_t);
}

/* A lane's work buffers for n rows (and the decoder's cross-attention queries). */
static int reserve_work(cuda_backend *c, lane *w, size_t n, lm_err *err) {
    const lm_model_config *mc = &c->base.model->cfg.model;
    size_t D = (size_t)mc->d_model, F = (size_t)(mc->encoder_ffn > mc->decoder_ffn ? mc->encoder_ffn : mc->decoder_ffn);
    size_t es = dtype_size(c->dtype), wide = F > D ? F : D;
    if (reserve(&w->x, n * D * 4, err) || reserve(&w->y, n * wide * 4, err) || reserve(&w->h, n * D * es, err) ||
        reserve(&w->qkv, n * 3 * D * 4, err) || reserve(&w->att, n * D * es, err) || reserve(&w->ffn, n * F * es, err) ||
        reserve(&w->idx, n * 6 * sizeof(int32_t), err))
        return -1;
    return w == &c->decoding ? reserve(&c->q, n * D * 4, err) : 0;
}

/* x += fc2(act(fc1(h))) + b2, then next_norm(x) into h. */
static int feed_forward(cuda_backend *c, lane *w, int n, const dev_layer *L, const dev_norm *next, void *next_out, int next_dtype,
                        lm_err *err) {
    int act = c->base.model->cfg.model.activation == LM_ACT_RELU ? LM_K_ACT_RELU : LM_K_ACT_GELU;
    if (linear_act(c, w, n, &L->fc1, w->h.p, act, w->ffn.p, c->dtype, err)) return -1;
    if (gemm(c, w, n, &L->fc2, w->ffn.p, w->y.p, err)) return -1;
    KERNEL_TRY(lm_k_add_layernorm(w->x.p, w->y.p, L->fc2.b, next->gamma, next->beta, next_out, next_dtype, n, D_(c), w->stream, kmsg));
    return 0;
}

/* ---- encoder ---- */

/* Decoder layer l's cross-attention keys (kv 0) or values (kv 1) in encoder half h: (enc_cap[h], D). */
static float *cross_kv(cuda_backend *c, int h, int l, int kv) {
    return (float *)c->cross[h].p + (size_t)(2 * l + kv) * c->enc_cap[h] * D_(c);
}

static int wait_encoded(cuda_backend *c, lm_err *err);

/* Gathers the sentences with keep[s] into the other encoder half (room for
 * `cap` token rows), back to back, and makes it the live one; the others are
 * dropped (len 0). */
static int relayout(cuda_backend *c, const bool *keep, int cap, lm_err *err) {
    const lm_model_config *mc = &c->base.model->cfg.model;
    size_t D = (size_t)mc->d_model;
    int from = c->enc_cur, to = 1 - from, rows = 0;
    if (wait_encoded(c, err) != 0) return -1; /* it reads every sentence held */
    if (reserve(&c->enc_out[to], (size_t)cap * D * 4, err) ||
        reserve(&c->cross[to], (size_t)mc->decoder_layers * 2 * cap * D * 4, err))
        return -1;
    c->enc_cap[to] = cap;
    for (int s = 0; s < c->n_sent; s++) rows += keep[s] ? c->len[s] : 0;
    int32_t *map = lm_malloc((size_t)(rows ? rows : 1) * sizeof *map, err); /* new token row -> old */
    if (!map) return -1;
    for (int s = 0, at = 0; s < c->n_sent; s++) {
        if (!keep[s]) { c->len[s] = 0; continue; }
        for (int i = 0; i < c->len[s]; i++) map[at + i] = c->offset[s] + i;
        c->offset[s] = at;
        at += c->len[s];
    }
    int rc = rows ? reserve(&c->row_map, (size_t)rows * sizeof *map, err) : 0;
    if (rc == 0 && rows) rc = to_device_now(c, c->row_map.p, map, (size_t)rows * sizeof *map, err);
    free(map);
    if (rc != 0) return -1;
    if (rows) {
        KERNEL_TRY(lm_k_gather_rows(c->enc_out[to].p, c->enc_out[from].p, c->row_map.p, NULL, NULL, rows, D, D, 1, c->decoding.stream, kmsg));
        for (int l = 0; l < mc->decoder_layers; l++)
            for (int kv = 0; kv < 2; kv++)
                KERNEL_TRY(lm_k_gather_rows(cross_kv(c, to, l, kv), cross_kv(c, from, l, kv), c->row_map.p, NULL, NULL, rows, D, D, 1, c->decoding.stream,
                                            kmsg));
    }
    c->enc_cur = to;
    c->total = rows;
    return 0;
}

/* The encoder's launches for the last encode_append (c->deferred): on the
 * encoding lane, from the staged indices into the rows it planned, after
 * what decoding had queued when it was planned (`planned`: a relayout's
 * gathers into the same half, left queued when a batch was given up and a
 * new one starts at row 0), then the `encoded` event, which decoding waits
 * for before it reads them (wait_encoded). */
static int issue_launches(cuda_backend *c, lm_err *err) {
    lm_backend *b = &c->base;
    lane *w = &c->encoding;
    const lm_model_config *mc = &b->model->cfg.model;
    int D = mc->d_model, heads = mc->encoder_heads, hd = D / heads, total = c->deferred_rows, at = c->deferred_at, h = c->enc_cur;
    int32_t *d_idx = w->idx.p;
    CUDA_TRY(cudaStreamWaitEvent(w->stream, c->planned, 0));
    CUDA_TRY(cudaMemcpyAsync(d_idx, c->enc_host, (size_t)total * 4 * sizeof(int32_t), cudaMemcpyHostToDevice, w->stream));
    int32_t *d_tok = d_idx, *d_pos = d_idx + total, *d_start = d_idx + 2 * total, *d_len = d_idx + 3 * total;
    float *enc = (float *)c->enc_out[h].p + (size_t)at * D;
    float scaling = 1.0f / sqrtf((float)hd);
    KERNEL_TRY(lm_k_embed(w->x.p, c->embed, c->dtype, c->positions, d_tok, d_pos, total, D, b->model->embed_scale, w->stream, kmsg));
    KERNEL_TRY(lm_k_add_layernorm(w->x.p, NULL, NULL, c->enc[0].self_norm.gamma, c->enc[0].self_norm.beta, w->h.p, c->dtype, total, D,
                                  w->stream, kmsg));
    for (int l = 0; l < mc->encoder_layers; l++) {
        const dev_layer *L = &c->enc[l];
        /* q, k, v in one product and one bias launch; attention scales q as it loads it */
        float *qkv = w->qkv.p;
        if (linear_act(c, w, total, &L->qkv, w->h.p, LM_K_ACT_NONE, qkv, LM_K_F32, err)) return -1;
        KERNEL_TRY(lm_k_attention(qkv, 3 * D, scaling, qkv + D, qkv + 2 * D, LM_K_F32, 3 * D, d_start, d_len, w->att.p, c->dtype, D, total,
                                  heads, hd, w->stream, kmsg));
        if (gemm(c, w, total, &L->o, w->att.p, w->y.p, err)) return -1;
        KERNEL_TRY(lm_k_add_layernorm(w->x.p, w->y.p, L->o.b, L->ffn_norm.gamma, L->ffn_norm.beta, w->h.p, c->dtype, total, D, w->stream,
                                      kmsg));
        bool last = l + 1 == mc->encoder_layers;
        const dev_norm *next = last ? &c->enc_norm : &c->enc[l + 1].self_norm;
        if (feed_forward(c, w, total, L, next, last ? (void *)enc : w->h.p, last ? LM_K_F32 : c->dtype, err)) return -1;
    }
    /* cross-attention keys and values of every decoder layer, computed once per sentence */
    const void *enc_in = enc;
    if (c->dtype != LM_K_F32) {
        KERNEL_TRY(lm_k_convert(enc, c->enc_in.p, c->dtype, (size_t)total * D, w->stream, kmsg));
        enc_in = c->enc_in.p;
    }
    for (int l = 0; l < mc->decoder_layers; l++) {
        float *ck = cross_kv(c, h, l, 0) + (size_t)at * D, *cv = cross_kv(c, h, l, 1) + (size_t)at * D;
        if (linear_act(c, w, total, &c->dec[l].ck, enc_in, LM_K_ACT_NONE, ck, LM_K_F32, err) ||
            linear_act(c, w, total, &c->dec[l].cv, enc_in, LM_K_ACT_NONE, cv, LM_K_F32, err))
            return -1;
    }
    CUDA_TRY(cudaEventRecord(c->encoded, w->stream));
    return 0;
}

/* Issues the deferred encode, once. Should a launch fail, what it did issue
 * is waited for, so that nothing of it still reads the staging or the work
 * rows the next encode rewrites (`encoded` was not recorded for it). */
static int issue_encode(cuda_backend *c, lm_err *err) {
    c->deferred = false;
    c->encodes_issued++;
    if (issue_launches(c, err) == 0) return 0;
    cudaStreamSynchronize(c->encoding.stream); /* the launch's error is the one reported */
    return lm_fail_prefix(err, "the encoder");
}

/* Decoding's work from here on waits for every encode so far: the deferred
 * one issued first, then a wait on the device, not on the host. */
static int wait_encoded(cuda_backend *c, lm_err *err) {
    if (c->deferred && issue_encode(c, err) != 0) return -1;
    if (c->ready_sent < c->n_sent) CUDA_TRY(cudaStreamWaitEvent(c->decoding.stream, c->encoded, 0));
    c->ready_sent = c->n_sent;
    return 0;
}

/* The same, needed only when a row belongs to a sentence decoding has not
 * waited for: a step over the rows already running does not wait, and
 * runs beside an encode that was called before it. */
static int wait_rows_encoded(cuda_backend *c, const int32_t *row_sentence, int rows, lm_err *err) {
    for (int r = 0; r < rows; r++)
        if (row_sentence[r] >= c->ready_sent) return wait_encoded(c, err);
    return 0;
}

/* Appends n sentences after the ones held: their rows, buffers and staged
 * indices are planned here, and their encoder is issued later
 * (issue_encode), by the next decoder step once it has launched its own
 * work, or by the first call that reads them. So the host issues the
 * encoder's hundred-odd launches while the GPU runs a step, rather than
 * the step waiting for them, and an admission encoded a step ahead
 * (sched.h) runs beside that step. */
static int encode_append(cuda_backend *c, const int32_t *tokens, const int32_t *lens, int n, lm_err *err) {
    lm_backend *b = &c->base;
    const lm_model_config *mc = &b->model->cfg.model;
    int total;
    if (lm_backend_check_sources(mc, c->n_sent, tokens, lens, n, &total, err) != 0) return -1;
    if (c->deferred && issue_encode(c, err) != 0) return -1;
    if (c->n_sent + n > c->cap_sent) {
        int cap = c->cap_sent * 2 > c->n_sent + n ? c->cap_sent * 2 : c->n_sent + n;
        int32_t *off = realloc(c->offset, (size_t)cap * sizeof *off);
        if (off) c->offset = off;
        int32_t *len = realloc(c->len, (size_t)cap * sizeof *len);
        if (len) c->len = len;
        if (!off || !len) return lm_fail(err, "out of memory");
        c->cap_sent = cap;
    }
    if (c->total + total > c->enc_cap[c->enc_cur]) { /* full: everything held moves to a larger other half */
        bool *keep = lm_malloc(((size_t)c->n_sent + 1) * sizeof *keep, err);
        if (!keep) return -1;
        for (int s = 0; s < c->n_sent; s++) keep[s] = c->len[s] > 0;
        int grown = c->enc_cap[c->enc_cur] * 3 / 2, need = c->total + total;
        int rc = relayout(c, keep, need > grown ? need : grown, err);
        free(keep);
        if (rc != 0) return -1;
    }
    /* the last encode is done before its staging and work rows are reused
     * (in flight it was waited for by the step its rows joined) */
    CUDA_TRY(cudaEventSynchronize(c->encoded));
    CUDA_TRY(grow_pinned((void **)&c->enc_host, &c->enc_host_bytes, (size_t)total * 4 * sizeof(int32_t)));
    /* indices per token row: token, position, first key row, key count (its sentence, in this group) */
    int32_t *h_idx = c->enc_host;
    for (int s = 0, off = 0; s < n; off += lens[s], s++) {
        for (int i = 0; i < lens[s]; i++) {
            h_idx[off + i] = tokens[off + i];
            h_idx[total + off + i] = i;
            h_idx[2 * total + off + i] = off;
            h_idx[3 * total + off + i] = lens[s];
        }
    }
    if (reserve_work(c, &c->encoding, (size_t)total, err) ||
        reserve(&c->enc_in, (size_t)total * mc->d_model * dtype_size(c->dtype), err))
        return -1;
    CUDA_TRY(cudaEventRecord(c->planned, c->decoding.stream));
    c->deferred = true;
    c->deferred_rows = total;
    c->deferred_at = c->total;
    if (!c->overlap) { /* in line, as before the overlap: issued and waited for here */
        if (issue_encode(c, err) != 0) return -1;
        CUDA_TRY(cudaEventSynchronize(c->encoded));
    }
    for (int s = 0, at = c->total; s < n; s++) {
        c->offset[c->n_sent + s] = at;
        c->len[c->n_sent + s] = lens[s];
        at += lens[s];
    }
    c->n_sent += n;
    c->total += total;
    return 0;
}

static int cuda_encode(lm_backend *b, const int32_t *tokens, const int32_t *lens, int n, lm_err *err) {
    cuda_backend *c = (cuda_backend *)b;
    c->n_sent = c->total = c->ready_sent = 0; /* the halves stay allocated for the next batch */
    return encode_append(c, tokens, lens, n, err);
}

/* Drops the sentences no row decodes any more once they hold half of the
 * encoder state, then appends. */
static int cuda_encode_more(lm_backend *b, const int32_t *tokens, const int32_t *lens, int n, lm_err *err) {
    cuda_backend *c = (cuda_backend *)b;
    bool *keep = lm_calloc((size_t)c->n_sent + 1, sizeof *keep, err);
    if (!keep) return -1;
    for (int r = 0; r < c->rows; r++) keep[c->row_sentence[r]] = true;
    long live = 0, added = 0;
    for (int s = 0; s < c->n_sent; s++) live += keep[s] ? c->len[s] : 0;
    for (int s = 0; s < n; s++) added += lens[s] > 0 ? lens[s] : 0;
    int rc = 0;
    if (c->total - live >= live && c->total > live) {
        long need = live + added, cap = c->enc_cap[c->enc_cur];
        rc = need > INT32_MAX ? lm_fail(err, "too many encoder tokens at once") : relayout(c, keep, (int)(need > cap ? need : cap), err);
    }
    free(keep);
    return rc == 0 ? encode_append(c, tokens, lens, n, err) : -1;
}

static int cuda_encoder_output(lm_backend *b, int s, float *out, lm_err *err) {
    cuda_backend *c = (cuda_backend *)b;
    if (lm_backend_check_sentence(c->len, c->n_sent, s, err) != 0 || wait_encoded(c, err) != 0) return -1;
    size_t D = (size_t)D_(c);
    CUDA_TRY(cudaMemcpyAsync(out, (float *)c->enc_out[c->enc_cur].p + (size_t)c->offset[s] * D, (size_t)c->len[s] * D * sizeof(float),
                             cudaMemcpyDeviceToHost, c->decoding.stream));
    CUDA_TRY(cudaStreamSynchronize(c->decoding.stream));
    return 0;
}

/* ---- decoder ---- */

/* Layer l's self-attention keys (kv = 0) or values (kv = 1): max_rows slots of max_steps token rows, in the compute dtype. */
static void *cache(cuda_backend *c, int l, int kv) {
    size_t per = (size_t)c->max_rows * c->max_steps * D_(c) * dtype_size(c->dtype);
    return (char *)c->kv.p + ((size_t)l * 2 + kv) * per;
}

static int cuda_decode_start(lm_backend *b, const int32_t *row_sentence, int rows, int max_steps, lm_err *err) {
    cuda_backend *c = (cuda_backend *)b;
    const lm_model_config *mc = &b->model->cfg.model;
    if (lm_backend_check_steps(mc, max_steps, err) != 0) return -1;
    if (lm_backend_check_rows(c->len, c->n_sent, row_sentence, rows, err) != 0 || wait_rows_encoded(c, row_sentence, rows, err) != 0)
        return -1;
    free(c->row_sentence);
    free(c->row_len);
    free(c->row_len_old);
    c->row_sentence = lm_malloc((size_t)rows * sizeof(int32_t), err);
    if (rows > c->host_rows) {
        size_t idx_row = 9 * sizeof(int32_t), top_row = LM_K_TOPK_MAX * (sizeof(int32_t) + sizeof(float));
        size_t have_idx = (size_t)c->host_rows * idx_row, have_top = (size_t)c->host_rows * top_row;
        c->host_rows = 0; /* until both hold `rows` */
        CUDA_TRY(grow_pinned((void **)&c->host_idx, &have_idx, (size_t)rows * idx_row));
        CUDA_TRY(grow_pinned(&c->host_top, &have_top, (size_t)rows * top_row));
        c->host_rows = rows;
    }
    c->row_len = lm_calloc((size_t)rows, sizeof(int32_t), err);
    c->row_len_old = lm_malloc((size_t)rows * sizeof(int32_t), err);
    if (!c->row_sentence || !c->row_len || !c->row_len_old || lm_kv_slots_start(&c->slots, rows, err) != 0) return -1;
    memcpy(c->row_sentence, row_sentence, (size_t)rows * sizeof(int32_t));
    if (reserve_work(c, &c->decoding, (size_t)rows, err) || reserve(&c->kv, (size_t)rows * kv_row_bytes(c, max_steps), err) ||
        reserve(&c->logits, (size_t)rows * mc->vocab_size * sizeof(float), err) ||
        reserve(&c->top_ids, (size_t)rows * LM_K_TOPK_MAX * sizeof(int32_t), err) ||
        reserve(&c->top_vals, (size_t)rows * LM_K_TOPK_MAX * sizeof(float), err) ||
        reserve(&c->topk_scratch, lm_k_logprob_topk_split_scratch(rows, mc->vocab_size), err))
        return -1;
    c->rows = c->max_rows = rows;
    c->max_steps = max_steps;
    c->steps_done = 0;
    return 0;
}

/* What a decoder step's launches are given that can change between steps:
 * the key its graph is kept under (cuda_graph.h). Every buffer, count and
 * size decoder_launches hands a kernel, a product or a copy, other than the
 * weights and the model's shapes (fixed at create), is here; one left out
 * would replay a graph over stale memory. */
typedef struct {
    const void *x, *y, *h, *q, *qkv, *att, *ffn, *idx, *kv, *logits, *cross, *host_idx;
    int rows, max_rows, max_steps, enc_cap, want_logits, epilogues;
} step_key;

typedef struct {
    cuda_backend *c;
    bool want_logits;
} step_call;

static void step_key_of(const cuda_backend *c, bool want_logits, step_key *k) {
    memset(k, 0, sizeof *k); /* padding too: keys are compared as bytes */
    k->x = c->decoding.x.p, k->y = c->decoding.y.p, k->h = c->decoding.h.p, k->q = c->q.p, k->qkv = c->decoding.qkv.p, k->att = c->decoding.att.p, k->ffn = c->decoding.ffn.p;
    k->idx = c->decoding.idx.p, k->kv = c->kv.p, k->logits = c->logits.p, k->host_idx = c->host_idx;
    k->cross = c->cross[c->enc_cur].p; /* cross_kv's base and stride */
    k->enc_cap = c->enc_cap[c->enc_cur];
    k->rows = c->rows, k->max_rows = c->max_rows, k->max_steps = c->max_steps; /* cache()'s layout, the launches' rows */
    k->want_logits = want_logits;
    k->epilogues = c->epilogues; /* which products the launches are */
}

/* The step's work on the stream, and nothing else (the graph's body): the
 * row indices' upload from pinned staging, the layers, the output
 * projection; the final-norm output in h and, when wanted, the logits
 * (rows, V) in c->logits. */
static int decoder_launches(void *ctx, lm_err *err) {
    const step_call *call = ctx;
    cuda_backend *c = call->c;
    const lm_model *m = c->base.model;
    const lm_model_config *mc = &m->cfg.model;
    int D = mc->d_model, heads = mc->decoder_heads, hd = D / heads, R = c->rows;
    lane *w = &c->decoding;
    int32_t *di = w->idx.p;
    CUDA_TRY(cudaMemcpyAsync(di, c->host_idx, (size_t)R * 6 * sizeof(int32_t), cudaMemcpyHostToDevice, w->stream));
    float scaling = 1.0f / sqrtf((float)hd);
    KERNEL_TRY(lm_k_embed(w->x.p, c->embed, c->dtype, c->positions, di, di + R, R, D, m->embed_scale, w->stream, kmsg));
    KERNEL_TRY(lm_k_add_layernorm(w->x.p, NULL, NULL, c->dec[0].self_norm.gamma, c->dec[0].self_norm.beta, w->h.p, c->dtype, R, D,
                                  w->stream, kmsg));
    for (int l = 0; l < mc->decoder_layers; l++) {
        const dev_layer *L = &c->dec[l];
        void *ck = cache(c, l, 0), *cv = cache(c, l, 1);
        /* self-attention over the row's cache, the new key and value appended first (at each row's own position) */
        float *qkv = w->qkv.p;
        if (linear_act(c, w, R, &L->qkv, w->h.p, LM_K_ACT_NONE, qkv, LM_K_F32, err)) return -1;
        KERNEL_TRY(lm_k_append_kv(ck, cv, c->dtype, di + 2 * R, di + R, qkv + D, qkv + 2 * D, (size_t)3 * D, NULL, NULL, R, D, w->stream, kmsg));
        KERNEL_TRY(lm_k_attention(qkv, 3 * D, scaling, ck, cv, c->dtype, D, di + 2 * R, di + 3 * R, w->att.p, c->dtype, D, R, heads, hd,
                                  w->stream, kmsg));
        if (gemm(c, w, R, &L->o, w->att.p, w->y.p, err)) return -1;
        KERNEL_TRY(lm_k_add_layernorm(w->x.p, w->y.p, L->o.b, L->cross_norm.gamma, L->cross_norm.beta, w->h.p, c->dtype, R, D,
                                      w->stream, kmsg));
        /* cross-attention over the row's sentence: its beams share the sentence's keys and values */
        float *xk = cross_kv(c, c->enc_cur, l, 0), *xv = cross_kv(c, c->enc_cur, l, 1);
        if (gemm(c, w, R, &L->cq, w->h.p, c->q.p, err)) return -1;
        KERNEL_TRY(lm_k_bias_act(c->q.p, L->cq.b, c->q.p, LM_K_F32, (size_t)D, R, D, LM_K_ACT_NONE, scaling, w->stream, kmsg));
        KERNEL_TRY(lm_k_attention(c->q.p, D, 1.0f, xk, xv, LM_K_F32, D, di + 4 * R, di + 5 * R, w->att.p, c->dtype, D, R, heads, hd, w->stream,
                                  kmsg));
        if (gemm(c, w, R, &L->co, w->att.p, w->y.p, err)) return -1;
        KERNEL_TRY(lm_k_add_layernorm(w->x.p, w->y.p, L->co.b, L->ffn_norm.gamma, L->ffn_norm.beta, w->h.p, c->dtype, R, D, w->stream,
                                      kmsg));
        const dev_norm *next = l + 1 == mc->decoder_layers ? &c->dec_norm : &c->dec[l + 1].self_norm;
        if (feed_forward(c, w, R, L, next, w->h.p, c->dtype, err)) return -1;
    }
    if (call->want_logits) {
        lm_dev_linear head = {c->lm_head, NULL, D, mc->vocab_size, NULL};
        if (gemm(c, w, R, &head, w->h.p, c->logits.p, err)) return -1;
    }
    return 0;
}

/* A step's end: a deferred encode issued, while the GPU runs the step's
 * queued work (the host's launches hidden behind it), then the wait for the
 * step's results. */
static int finish_step(cuda_backend *c, lm_err *err) {
    if (c->deferred && issue_encode(c, err) != 0) return -1;
    CUDA_TRY(cudaStreamSynchronize(c->decoding.stream));
    return 0;
}

/* One decoder step for every row: the rows' indices into pinned staging,
 * then the launches, replayed from a graph where this key ran before. */
static int decoder_forward(cuda_backend *c, const int32_t *tokens, int step, bool want_logits, lm_err *err) {
    const lm_model_config *mc = &c->base.model->cfg.model;
    int R = c->rows;
    if (lm_backend_check_feed(mc, tokens, step, c->steps_done, c->row_len, R, c->max_steps, err) != 0) return -1;
    /* per row: token, position, self keys (start, count), cross keys (start, count) */
    int32_t *hi = c->host_idx;
    for (int r = 0; r < R; r++) {
        int s = c->row_sentence[r];
        hi[r] = tokens[r];
        hi[R + r] = c->row_len[r];
        hi[2 * R + r] = c->slots.slot[r] * c->max_steps;
        hi[3 * R + r] = c->row_len[r] + 1;
        hi[4 * R + r] = c->offset[s];
        hi[5 * R + r] = c->len[s];
    }
    step_key key;
    step_key_of(c, want_logits, &key);
    step_call call = {c, want_logits};
    if (lm_cuda_graph_run(&c->graphs, c->decoding.stream, &key, sizeof key, decoder_launches, &call, err) != 0) return -1;
    c->steps_done = step + 1;
    for (int r = 0; r < R; r++) c->row_len[r]++;
    return 0;
}

static int cuda_decode_step(lm_backend *b, const int32_t *tokens, int step, float *logits, lm_err *err) {
    cuda_backend *c = (cuda_backend *)b;
    if (decoder_forward(c, tokens, step, logits != NULL, err)) return -1;
    if (logits)
        CUDA_TRY(cudaMemcpyAsync(logits, c->logits.p, (size_t)c->rows * b->model->cfg.model.vocab_size * sizeof(float),
                                 cudaMemcpyDeviceToHost, c->decoding.stream));
    if (finish_step(c, err) != 0) return -1;
    return 0;
}

/* The whole-row path's host buffer (wider beams than the top-k takes):
 * pinned, so decode_step's copy of rows x V logits is the GPU's DMA rather
 * than a pageable copy through the driver's bounce buffer. */
static float *cuda_row_buffer(lm_backend *b, size_t bytes, lm_err *err) {
    cuda_backend *c = (cuda_backend *)b;
    cudaError_t e = grow_pinned((void **)&c->host_logits, &c->host_logits_bytes, bytes);
    if (e == cudaSuccess) return c->host_logits;
    cudaGetLastError(); /* not sticky: the search goes on with pageable memory */
    lm_fail(err, "cannot pin %.0f MB of host memory for the rows of logits (%s)", bytes / 1e6, cudaGetErrorString(e));
    return NULL;
}

static int cuda_decode_step_topk(lm_backend *b, const int32_t *tokens, int step, const lm_topk_request *req, int32_t *ids,
                                 float *vals, lm_err *err) {
    cuda_backend *c = (cuda_backend *)b;
    int R = c->rows, V = b->model->cfg.model.vocab_size;
    if (decoder_forward(c, tokens, step, true, err)) return -1;
    /* edits and their row offsets, in one upload */
    int n_edits = req->edit_start[R];
    size_t edit_bytes = (size_t)n_edits * sizeof(lm_edit), start_bytes = (size_t)(R + 1) * sizeof(int32_t);
    if (reserve(&c->edits, edit_bytes + start_bytes, err)) return -1;
    int32_t *d_edits = c->edits.p, *d_start = (int32_t *)((char *)c->edits.p + edit_bytes);
    if (n_edits) CUDA_TRY(cudaMemcpyAsync(d_edits, req->edits, edit_bytes, cudaMemcpyHostToDevice, c->decoding.stream));
    CUDA_TRY(cudaMemcpyAsync(d_start, req->edit_start, start_bytes, cudaMemcpyHostToDevice, c->decoding.stream));
    /* many blocks a row, one read of the logits (kernels/logprob_topk.cu) */
    KERNEL_TRY(lm_k_logprob_topk_split(c->logits.p, R, V, d_edits, d_start, req->penalty, req->k, req->greedy, c->top_ids.p, c->top_vals.p,
                                       c->topk_scratch.p, c->decoding.stream, kmsg));
    /* both into pinned staging, one wait (into the caller's pageable memory each copy would wait) */
    size_t id_bytes = (size_t)R * req->k * sizeof(int32_t), val_bytes = (size_t)R * req->k * sizeof(float);
    CUDA_TRY(cudaMemcpyAsync(c->host_top, c->top_ids.p, id_bytes, cudaMemcpyDeviceToHost, c->decoding.stream));
    CUDA_TRY(cudaMemcpyAsync((char *)c->host_top + id_bytes, c->top_vals.p, val_bytes, cudaMemcpyDeviceToHost, c->decoding.stream));
    if (finish_step(c, err) != 0) return -1;
    memcpy(ids, c->host_top, id_bytes);
    memcpy(vals, (char *)c->host_top + id_bytes, val_bytes);
    for (int r = 0; r < R; r++) /* refused rows, as the host's pick refuses them */
        if (ids[(size_t)r * req->k] == LM_K_BAD_ROW) return lm_bad_logits(err, step, r);
    return 0;
}

/* A step whose result is each row's log-prob of its label (scoring by
 * steps): the rows' logits stay on the device (kernels/label_logprob.cu);
 * up go the labels, down the log-probs, through the pinned top-k staging. */
static int cuda_decode_step_labels(lm_backend *b, const int32_t *tokens, int step, const int32_t *labels, float *out, lm_err *err) {
    cuda_backend *c = (cuda_backend *)b;
    int R = c->rows;
    size_t bytes = (size_t)R * sizeof(int32_t);
    if (lm_backend_check_labels(&b->model->cfg.model, labels, R, err) != 0) return -1;
    if (decoder_forward(c, tokens, step, true, err)) return -1;
    memcpy(c->host_top, labels, bytes); /* free: every op waits for its copies back before it returns */
    CUDA_TRY(cudaMemcpyAsync(c->top_ids.p, c->host_top, bytes, cudaMemcpyHostToDevice, c->decoding.stream));
    KERNEL_TRY(lm_k_label_logprob(c->logits.p, R, b->model->cfg.model.vocab_size, c->top_ids.p, c->top_vals.p, c->decoding.stream, kmsg));
    CUDA_TRY(cudaMemcpyAsync((char *)c->host_top + bytes, c->top_vals.p, (size_t)R * sizeof(float), cudaMemcpyDeviceToHost, c->decoding.stream));
    if (finish_step(c, err) != 0) return -1;
    memcpy(out, (char *)c->host_top + bytes, (size_t)R * sizeof(float));
    return 0;
}

/* Sampling drawn on the device (kernels/sample.cu): the rows of logits stay
 * there; up go each row's stream, draw count, skip flag, skipped label and
 * edits, down come its draw count, token, log-prob and (for rescoring) raw
 * log-prob, each way in one copy through one staging buffer laid out as the
 * device one:
 * keys (8R) | draws (8R) | ids (4R) | logprobs (4R) | raw logprobs (4R) | edit_start (4R + 4) | skip_label (4R) |
 * skip (R, padded to 4) | edits (8 each) | on the device only, the edited tokens' raw values (4 each, and 4 so
 * that the pointer lies inside the buffer when there are none). */
static int cuda_decode_step_sample(lm_backend *b, const int32_t *tokens, int step, const lm_sample_request *req, int32_t *ids,
                                   float *logprobs, float *raw_logprobs, lm_err *err) {
    cuda_backend *c = (cuda_backend *)b;
    size_t R = (size_t)c->rows, n_edits = (size_t)req->edit_start[R];
    int V = b->model->cfg.model.vocab_size;
    bool raw = raw_logprobs != NULL, labels = raw && req->skip && req->skip_label;
    if (lm_backend_check_sample(&b->model->cfg.model, req, (int)R, raw, err) != 0) return -1;
    size_t o_draws = 8 * R, o_ids = 16 * R, o_lp = 20 * R, o_raw = 24 * R, o_start = 28 * R, o_label = o_start + 4 * (R + 1);
    size_t o_skip = o_label + 4 * R, o_edits = (o_skip + R + 3) & ~(size_t)3, total = o_edits + n_edits * sizeof(lm_edit);
    size_t device_total = total + (raw ? 4 * (n_edits + 1) : 0);
    if (total > c->sample_host_bytes) {
        char *h = realloc(c->sample_host, total);
        if (!h) return lm_fail(err, "out of memory for sampling");
        c->sample_host = h;
        c->sample_host_bytes = total;
    }
    if (reserve(&c->sample_io, device_total, err) || reserve(&c->sample_scratch, lm_k_sample_scratch((int)R, V), err)) return -1;
    char *h = c->sample_host, *d = c->sample_io.p;
    memcpy(h, req->key, 8 * R);
    memcpy(h + o_draws, req->draws, 8 * R);
    memcpy(h + o_start, req->edit_start, 4 * (R + 1));
    if (labels) memcpy(h + o_label, req->skip_label, 4 * R);
    for (size_t r = 0; r < R; r++) h[o_skip + r] = req->skip && req->skip[r];
    if (n_edits) memcpy(h + o_edits, req->edits, n_edits * sizeof(lm_edit));
    if (decoder_forward(c, tokens, step, true, err)) return -1;
    CUDA_TRY(cudaMemcpyAsync(d, h, total, cudaMemcpyHostToDevice, c->decoding.stream));
    KERNEL_TRY(lm_k_sample(c->logits.p, (int)R, V, (const int32_t *)(d + o_edits), (const int32_t *)(d + o_start), (const uint8_t *)(d + o_skip),
                           req->penalty, req->temperature, req->top_k, req->top_p, (const uint64_t *)d, (uint64_t *)(d + o_draws),
                           c->sample_scratch.p, (int32_t *)(d + o_ids), (float *)(d + o_lp), raw ? (float *)(d + o_raw) : NULL,
                           labels ? (const int32_t *)(d + o_label) : NULL, raw ? (float *)(d + total) : NULL, c->decoding.stream, kmsg));
    /* draws, ids and log-probs, and the raw log-probs beside them when wanted */
    CUDA_TRY(cudaMemcpyAsync(h + o_draws, d + o_draws, (raw ? 20 : 16) * R, cudaMemcpyDeviceToHost, c->decoding.stream));
    if (finish_step(c, err) != 0) return -1;
    memcpy(req->draws, h + o_draws, 8 * R);
    memcpy(ids, h + o_ids, 4 * R);
    memcpy(logprobs, h + o_lp, 4 * R);
    for (size_t r = 0; r < R; r++) /* refused rows, as lm_sample_row refuses them */
        if (ids[r] == LM_K_BAD_ROW) return lm_bad_logits(err, step, (int)r);
    if (raw) /* a skipped row's is left as it was without labels, as on the CPU */
        for (size_t r = 0; r < R; r++)
            if (labels || !(req->skip && req->skip[r])) raw_logprobs[r] = ((const float *)(h + o_raw))[r];
    return 0;
}

static int cuda_reorder(lm_backend *b, const int32_t *parent, const int32_t *row_sentence, int rows, lm_err *err) {
    cuda_backend *c = (cuda_backend *)b;
    const lm_model_config *mc = &b->model->cfg.model;
    if (lm_backend_check_reorder(parent, row_sentence, rows, c->rows, c->max_rows, c->len, c->n_sent, err) != 0 ||
        wait_rows_encoded(c, row_sentence, rows, err) != 0)
        return -1;
    /* the forks, planned into pinned staging for their upload; the copy
     * runs in place, the plan's sources and destinations being disjoint */
    CUDA_TRY(cudaEventSynchronize(c->reorder_done)); /* the last reorder's upload has read its lists (done at once after a step's wait) */
    int32_t *src = c->host_idx + (size_t)6 * c->host_rows, *dst = src + rows, *len = dst + rows, most = 0;
    int forks = lm_kv_slots_reorder(&c->slots, parent, rows, c->row_len, src, dst, len);
    for (int f = 0; f < forks; f++) most = len[f] > most ? len[f] : most; /* the kernel's bound on every fork */
    if (forks) {
        int32_t *d_src = c->decoding.idx.p, *d_dst = d_src + forks, *d_len = d_dst + forks;
        CUDA_TRY(cudaMemcpyAsync(d_src, src, (size_t)forks * sizeof(int32_t), cudaMemcpyHostToDevice, c->decoding.stream));
        CUDA_TRY(cudaMemcpyAsync(d_dst, dst, (size_t)forks * sizeof(int32_t), cudaMemcpyHostToDevice, c->decoding.stream));
        CUDA_TRY(cudaMemcpyAsync(d_len, len, (size_t)forks * sizeof(int32_t), cudaMemcpyHostToDevice, c->decoding.stream));
        /* 16-bit rows pass as floats of half the width (d_model is even: checked at create) */
        size_t es = dtype_size(c->dtype), width = (size_t)mc->d_model * es / sizeof(float), stride = (size_t)c->max_steps * width;
        for (int l = 0; l < mc->decoder_layers; l++)
            for (int kv = 0; kv < 2; kv++)
                KERNEL_TRY(lm_k_gather_rows(cache(c, l, kv), cache(c, l, kv), d_src, d_dst, d_len, forks, stride, width, most, c->decoding.stream, kmsg));
    }
    memcpy(c->row_len_old, c->row_len, (size_t)c->rows * sizeof(int32_t));
    for (int r = 0; r < rows; r++) c->row_len[r] = parent[r] >= 0 ? c->row_len_old[parent[r]] : 0; /* fresh rows start at 0 */
    memcpy(c->row_sentence, row_sentence, (size_t)rows * sizeof(int32_t));
    c->rows = rows;
    CUDA_TRY(cudaEventRecord(c->reorder_done, c->decoding.stream)); /* no wait here: the next step writes the other part of host_idx */
    return 0;
}

static void cuda_destroy(lm_backend *b) {
    cuda_backend *c = (cuda_backend *)b;
    cudaSetDevice(c->device); /* frees and handles belong to the backend's device */
    dev_buf *bufs[] = {&c->q, &c->enc_out[0], &c->enc_out[1], &c->enc_in, &c->cross[0], &c->cross[1], &c->kv, &c->logits, &c->edits,
                       &c->top_ids, &c->top_vals, &c->row_map, &c->topk_scratch};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) cudaFree(bufs[i]->p);
    lane_close(&c->decoding);
    lane_close(&c->encoding);
    for (int i = 0; i < c->n_weights; i++) cudaFree(c->weights[i]);
    cudaFree(c->sample_io.p);
    cudaFree(c->sample_scratch.p);
    free(c->sample_host);
    lm_cuda_graphs_free(&c->graphs);
    if (c->reorder_done) cudaEventDestroy(c->reorder_done);
    if (c->encoded) cudaEventDestroy(c->encoded);
    if (c->planned) cudaEventDestroy(c->planned);
    free(c->weights); free(c->weight_bytes); free(c->enc); free(c->dec);
    free(c->offset); free(c->len); free(c->row_sentence); cudaFreeHost(c->host_idx); cudaFreeHost(c->host_top); cudaFreeHost(c->enc_host);
    cudaFreeHost(c->host_logits); free(c->row_len); free(c->row_len_old);
    lm_kv_slots_free(&c->slots);
    free(c);
}

/* Two tables, the overlap on and off (the scheduler reads encode_async);
 * wider beams than LM_K_TOPK_MAX allows get whole rows on the host. */
#define CUDA_OPS                                                                                           \
    .name = "cuda", .encode = cuda_encode, .encode_more = cuda_encode_more,                                \
    .encoder_output = cuda_encoder_output, .decode_start = cuda_decode_start,                              \
    .decode_step = cuda_decode_step, .row_buffer = cuda_row_buffer,                                        \
    .decode_step_topk = cuda_decode_step_topk, .topk_max = LM_K_TOPK_MAX,                                  \
    .decode_step_sample = cuda_decode_step_sample, .decode_step_labels = cuda_decode_step_labels,          \
    .reorder = cuda_reorder, .destroy = cuda_destroy
static const lm_backend_ops cuda_ops = {CUDA_OPS, .encode_async = true};
static const lm_backend_ops cuda_ops_in_line = {CUDA_OPS, .encode_async = false};

static int setup(cuda_backend *c, int reserve_tokens, lm_err *err) {
    char why[256];
    lm_cuda_state st = lm_cuda_probe(why, sizeof why);
    if (st == LM_CUDA_ABSENT) return lm_fail(err, "--device cuda: no CUDA GPU found (%s): use --device cpu", why);
    if (st == LM_CUDA_BROKEN) return lm_fail(err, "--device cuda: %s", why);
    int count;
    CUDA_TRY(cudaGetDeviceCount(&count));
    if (c->device >= count) return lm_fail(err, "--devices: no CUDA device %d (this machine has %d, numbered from 0)", c->device, count);
    /* the stream, the cuBLAS handle and the weights belong to the device current now */
    CUDA_TRY(cudaSetDevice(c->device));
    if (lane_open(&c->decoding, err) != 0 || lane_open(&c->encoding, err) != 0) return -1;
    /* only waited for: no timestamps to take */
    CUDA_TRY(cudaEventCreateWithFlags(&c->reorder_done, cudaEventDisableTiming));
    CUDA_TRY(cudaEventCreateWithFlags(&c->encoded, cudaEventDisableTiming));
    CUDA_TRY(cudaEventCreateWithFlags(&c->planned, cudaEventDisableTiming));
    if (upload_model(c, err)) return -1;
    return reserve_tokens > 0 ? reserve_work(c, &c->encoding, (size_t)reserve_tokens, err) : 0;
}

lm_backend *lm_cuda_backend_create(const lm_model *model, int precision, int reserve_tokens, lm_err *err) {
    return lm_cuda_backend_create_on(model, precision, reserve_tokens, 0, true, err);
}

lm_backend *lm_cuda_backend_create_on(const lm_model *model, int precision, int reserve_tokens, int device, bool fill, lm_err *err) {
    const lm_model_config *mc = &model->cfg.model;
    if (mc->d_model / mc->encoder_heads > 256 || mc->d_model / mc->decoder_heads > 256) {
        lm_fail(err, "the CUDA attention kernel takes heads up to 256 wide");
        return NULL;
    }
    if (mc->d_model % 2 && precision != LM_PREC_FP32) { /* the reorder copies 16-bit cache rows as floats */
        lm_fail(err, "--precision %s on the GPU needs an even d_model (this model's is %d): use fp32", lm_precision_name(precision),
                mc->d_model);
        return NULL;
    }
    cuda_backend *c = lm_calloc(1, sizeof *c, err);
    if (!c) return NULL;
    c->device = device;
    c->fill = fill;
    c->base.model = model;
    c->dtype = precision == LM_PREC_FP16 ? LM_K_F16 : precision == LM_PREC_BF16 ? LM_K_BF16 : LM_K_F32;
    c->gemm_type = c->dtype == LM_K_F16 ? CUDA_R_16F : c->dtype == LM_K_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    c->epilogues = lm_cuda_switch("LYRICMT_CUDA_EPILOGUES");
    lm_cuda_backend_set_overlap(&c->base, lm_cuda_switch("LYRICMT_CUDA_OVERLAP"));
    lm_cuda_graphs_init(&c->graphs);
    if (setup(c, reserve_tokens, err) != 0) {
        cuda_destroy(&c->base);
        return NULL;
    }
    return &c->base;
}

int lm_cuda_backend_memory(lm_backend *b, int max_length, size_t *free_bytes, size_t *row_bytes, size_t *sample_row_bytes,
                           size_t *token_bytes, lm_err *err) {
    cuda_backend *c = (cuda_backend *)b;
    const lm_model_config *mc = &b->model->cfg.model;
    size_t total = 0, D = (size_t)mc->d_model;
    CUDA_TRY(cudaSetDevice(c->device));
    CUDA_TRY(cudaMemGetInfo(free_bytes, &total));
    /* a row: KV cache, logits (the whole-row path's), top-k, work rows */
    *row_bytes = kv_row_bytes(c, max_length) + (size_t)mc->vocab_size * sizeof(float) + LM_K_TOPK_MAX * 8 +
                 lm_k_logprob_topk_split_scratch(1, mc->vocab_size) + work_row_bytes(c);
    /* a sampled row's more: the sampler's scratch (three times its logits)
     * and its share of the staging (keys, draws, ids, log-probs, edits) */
    *sample_row_bytes = lm_k_sample_scratch(1, mc->vocab_size) + 32 + (size_t)LM_MAX_EDITS(max_length) * sizeof(lm_edit);
    /* a source token: encoder output and cross keys/values, both halves;
     * its 16-bit copy; the encoder's work rows */
    *token_bytes = 2 * (D * 4 + (size_t)mc->decoder_layers * 2 * D * 4) + D * dtype_size(c->dtype) + work_row_bytes(c);
    return 0;
}

int lm_cuda_backend_bind(lm_backend *b, lm_err *err) {
    CUDA_TRY(cudaSetDevice(((cuda_backend *)b)->device));
    return 0;
}

int lm_cuda_device_count(lm_err *err) {
    char why[256];
    lm_cuda_state st = lm_cuda_probe(why, sizeof why);
    if (st == LM_CUDA_ABSENT) return 0;
    if (st == LM_CUDA_BROKEN) return lm_fail(err, "--device cuda: %s", why);
    int n;
    CUDA_TRY(cudaGetDeviceCount(&n));
    return n;
}

lm_cuda_weights lm_cuda_backend_weights(lm_backend *b) {
    cuda_backend *c = (cuda_backend *)b;
    return (lm_cuda_weights){c->weights, c->weight_bytes, c->n_weights, c->device, c->decoding.stream};
}

void lm_cuda_backend_set_graphs(lm_backend *b, bool on) {
    cuda_backend *c = (cuda_backend *)b;
    if (!on) lm_cuda_graphs_free(&c->graphs);
    c->graphs.on = on;
}

void lm_cuda_backend_graph_counts(lm_backend *b, long *captured, long *launched) {
    cuda_backend *c = (cuda_backend *)b;
    *captured = c->graphs.captured;
    *launched = c->graphs.launched;
}

void lm_cuda_backend_set_epilogues(lm_backend *b, bool on) { ((cuda_backend *)b)->epilogues = on; }

long lm_cuda_backend_epilogue_products(lm_backend *b) { return ((cuda_backend *)b)->epilogue_products; }

void lm_cuda_backend_set_overlap(lm_backend *b, bool on) {
    ((cuda_backend *)b)->overlap = on;
    b->ops = on ? &cuda_ops : &cuda_ops_in_line;
}

long lm_cuda_backend_encodes_issued(lm_backend *b) { return ((cuda_backend *)b)->encodes_issued; }
