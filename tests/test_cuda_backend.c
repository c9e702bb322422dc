/*
 * test_cuda_backend: the CUDA backend's parts above the kernels.
 *
 * Without a GPU (any CUDA build): how the GPU probe judges what the runtime
 * says (no driver, no device, a driver older than the runtime) and the
 * out-of-memory message; then one "skipped" line.
 * With a GPU:
 *   - the cuBLAS product wrapper alone against a CPU product on non-square
 *     shapes in fp32, fp16 and bf16 (the comparison is shown to catch a
 *     transposed weight);
 *   - the whole backend at SMaLL-100 shapes (12/3 layers, d_model 1024, 16
 *     heads of 64, FFN 4096, vocabulary 128,112; LYRICMT_TEST_LAYERS=E,D
 *     sets fewer layers) with random weights (tests/random_model.c): CUDA
 *     fp32 against the CPU backend over 160 rows (encoder states,
 *     logits, greedy ids, a beam reorder between steps);
 *   - in-flight batching in fp32: sentences appended mid-decode (encode_more,
 *     dropping finished ones), a step of the running rows before they join
 *     (on CUDA beside their encoder: the join's reorder alone orders their
 *     rows after it), fresh rows beside rows at later positions, then beams
 *     forking: CUDA against the CPU backend at every step;
 *   - in fp16 and bf16: encoder states and step-0 logits near the CPU's
 *     (relative RMS under 2e-2 / 8e-2: an upload that converts a matrix before
 *     its copy lands garbles them), and decode_step_topk against decode_step plus
 *     the host's top-k, greedy and k = 10 and 16, with edits;
 *   - sampling drawn on the device (decode_step_sample) against the CPU
 *     backend's: the same tokens and draws for the same streams, and a row
 *     alone draws as it does in a batch;
 *   - augmentation's rescoring (sampling that records each hypothesis's
 *     label log-probs) through the search: the CPU's hypotheses and label
 *     sums, with no whole row of logits leaving the device, and the same
 *     from the whole-row fallback the search keeps for backends without
 *     the op;
 *   - beams wider than the device's top-k (9): whole rows of logits, into
 *     the backend's pinned buffer at every step, and the CPU's hypotheses;
 *   - CUDA graphs: a capture runs nothing, a launch replays it reading
 *     pinned sources as they are then, a wait inside a capture invalidates
 *     it; the decoder step replayed from graphs (cuda/cuda_graph.c) gives
 *     the logits of plain launches while rows change, fork and return, with
 *     the captures and launches its policy predicts (the least recently
 *     launched graph replaced when all 8 are held).
 */
#include "cpu/cpu_backend.h"
#include "cuda/cuda_backend.h"
#include "cpu/cpu_weights.h"
#include "cuda/cuda_blas.h"
#include "cuda/cuda_device.h"
#include "cuda/cuda_graph.h"
#include "config/engine_config.h"
#include "kernels/kernels.h"
#include "backend/logits.h"
#include "engine/search.h"
#include "testing.h"
#include "cuda_testing.h"
#include "random_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)(rng >> 40) / 8388608.0f - 1.0f;
}
static void fill(float *x, size_t n, float scale, float offset) { for (size_t i = 0; i < n; i++) x[i] = offset + frand() * scale; }

/* |a - b| / |b| over whole arrays: a garbled matrix gives O(1), rounding a few 1e-3. */
static double rms_rel_err(const float *a, const float *b, size_t n) {
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        r += (double)b[i] * b[i];
    }
    return isnan(d) ? INFINITY : sqrt(d / (r + 1e-30));
}

/* ---- without a GPU ---- */

static void test_probe_cases(void) {
    char why[256];
    CHECK(lm_cuda_classify(cudaErrorInsufficientDriver, 0, 0, 13000, why, sizeof why) == LM_CUDA_ABSENT && strstr(why, "no NVIDIA driver") &&
              !strstr(why, "insufficient"),
          "no driver at all is 'no GPU', not the runtime's driver message: %s", why);
    CHECK(lm_cuda_classify(cudaErrorNoDevice, 0, 13000, 13000, why, sizeof why) == LM_CUDA_ABSENT && strstr(why, "no CUDA device"),
          "a driver that sees no device is 'no GPU': %s", why);
    CHECK(lm_cuda_classify(cudaSuccess, 0, 13000, 13000, why, sizeof why) == LM_CUDA_ABSENT, "zero devices is 'no GPU'");
    CHECK(lm_cuda_classify(cudaErrorInsufficientDriver, 0, 12080, 13000, why, sizeof why) == LM_CUDA_BROKEN && strstr(why, "12.8") &&
              strstr(why, "13.0") && strstr(why, "cudaErrorInsufficientDriver"),
          "a driver older than the runtime is an error naming both versions: %s", why);
    CHECK(lm_cuda_classify(cudaErrorDevicesUnavailable, 0, 13000, 13000, why, sizeof why) == LM_CUDA_BROKEN,
          "a busy device is an error, not a skip: %s", why);
    CHECK(lm_cuda_classify(cudaSuccess, 1, 13000, 13000, why, sizeof why) == LM_CUDA_READY, "one device is ready");
}

static void test_oom_message(void) {
    lm_err err;
    lm_cuda_out_of_memory(&err, (size_t)3000 << 20 | 5, (size_t)1200 << 20, (size_t)81559 << 20, "out of memory");
    CHECK(strstr(err.msg, "needs a 3001 MB buffer") && strstr(err.msg, "1200 MB of the GPU's 81559 MB are free") &&
              !strstr(err.msg, "more needed"),
          "out-of-memory message: %s", err.msg);
}

/* ---- the product wrapper ---- */

static void to_dtype(void **dst, const float *src, size_t n, int dtype, cudaStream_t s) {
    float *tmp = NULL;
    const char *msg = "";
    cudaMalloc(dst, n * (dtype == LM_K_F32 ? 4 : 2));
    cudaMalloc((void **)&tmp, n * sizeof(float));
    cudaMemcpyAsync(tmp, src, n * sizeof(float), cudaMemcpyHostToDevice, s);
    CHECK(lm_k_convert(tmp, *dst, dtype, n, s, &msg) == 0, "convert: %s", msg);
    cudaStreamSynchronize(s);
    cudaFree(tmp);
}

/* y = x . W^T on the CPU from the values the device holds (rounded to dtype). */
static void ref_linear(const float *x, const float *w, float *y, int rows, int in, int out) {
    for (int i = 0; i < rows; i++)
        for (int o = 0; o < out; o++) {
            double acc = 0;
            for (int j = 0; j < in; j++) acc += (double)x[(size_t)i * in + j] * w[(size_t)o * in + j];
            y[(size_t)i * out + o] = (float)acc;
        }
}

/* cuBLAS's type and the name of each LM_K_ dtype. */
static const cudaDataType_t types[3] = {CUDA_R_32F, CUDA_R_16F, CUDA_R_16BF};
static const char *const names[3] = {"fp32", "fp16", "bf16"};

/* The values a device array of dtype holds, as floats. */
static void from_device(float *to, const void *d, size_t n, int dtype, cudaStream_t s) {
    uint16_t *h = malloc(n * 2);
    if (dtype == LM_K_F32) cudaMemcpyAsync(to, d, n * 4, cudaMemcpyDeviceToHost, s);
    else cudaMemcpyAsync(h, d, n * 2, cudaMemcpyDeviceToHost, s);
    cudaStreamSynchronize(s);
    for (size_t i = 0; dtype != LM_K_F32 && i < n; i++) to[i] = lm_half_bits_to_float(h[i], dtype);
    free(h);
}

/* x rounded as the device stores it in dtype (what the product then reads). */
static void round_like_device(float *x, size_t n, int dtype, cudaStream_t s) {
    if (dtype == LM_K_F32) return;
    void *d = NULL;
    to_dtype(&d, x, n, dtype, s);
    from_device(x, d, n, dtype, s);
    cudaFree(d);
}

/* The product with its bias (fp32 output) and with bias and ReLU (output
 * and bias in the input's dtype, as the first FFN product runs) in
 * cuBLASLt's epilogue, against the CPU's product plus the bias, ReLU and
 * the rounding to dtype done here. Both round the same value to 16 bits,
 * but a device sum a hair from the reference's can round to the neighbour:
 * one unit in the last place, up to 2^-8 (bf16) or 2^-10 (fp16) of the
 * value, hence twice that as the bound; a missing bias (as large as the
 * product), a missing ReLU or a bias read along the wrong axis is 0.1 or
 * more. */
static void check_epilogues(lm_cuda_gemm *g, int dtype, int rows, int in, int out, const void *d_w, const void *d_x, const float *prod,
                            cudaStream_t s) {
    size_t ny = (size_t)rows * out;
    float *b = malloc((size_t)out * 4), *b16 = malloc((size_t)out * 4), *want = malloc(ny * 4), *got = malloc(ny * 4);
    fill(b, (size_t)out, 20, 0);
    memcpy(b16, b, (size_t)out * 4);
    round_like_device(b16, (size_t)out, dtype, s); /* the bias the ReLU epilogue reads, in the output's dtype */
    void *d_b32 = NULL, *d_b = NULL, *d_y = NULL;
    to_dtype(&d_b32, b, (size_t)out, LM_K_F32, s);
    to_dtype(&d_b, b16, (size_t)out, dtype, s);
    cudaMalloc(&d_y, ny * 4);
    lm_dev_linear l = {(void *)d_w, NULL, in, out, NULL};
    lm_err err;
    for (int relu = 0; relu < 2; relu++) {
        int out_dtype = relu ? dtype : LM_K_F32;
        for (size_t i = 0; i < ny; i++) {
            float v = prod[i] + (relu ? b16 : b)[i % out];
            want[i] = relu && v < 0 ? 0 : v;
        }
        round_like_device(want, ny, out_dtype, s);
        int rc = lm_cuda_linear_epilogue(g, types[dtype], rows, &l, relu ? d_b : d_b32, relu ? LM_CUDA_EP_RELU_BIAS : LM_CUDA_EP_BIAS, d_x, d_y,
                                         types[out_dtype], &err);
        CHECK(rc == 0, "epilogue %s%s: %s", names[dtype], relu ? " bias+ReLU" : " bias", rc < 0 ? err.msg : "cuBLASLt does not serve it");
        if (rc != 0) continue;
        from_device(got, d_y, ny, out_dtype, s);
        double e = lm_max_rel_err(got, want, ny), tol = out_dtype == LM_K_BF16 ? 8e-3 : out_dtype == LM_K_F16 ? 2e-3 : 1e-5;
        CHECK(e < tol, "epilogue %s%s rows=%d in=%d out=%d: differs from the CPU's by %g (tolerance %g)", names[dtype], relu ? " bias+ReLU" : " bias",
              rows, in, out, e, tol);
    }
    cudaFree(d_b32); cudaFree(d_b); cudaFree(d_y);
    free(b); free(b16); free(want); free(got);
}

static void test_linear(int dtype, int rows, int in, int out) {
    cudaStream_t s;
    lm_cuda_gemm g;
    cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    lm_err open_err;
    CHECK(lm_cuda_gemm_open(&g, s, &open_err) == 0, "cuBLAS: %s", open_err.msg);
    if (!g.lt) {
        lm_cuda_gemm_close(&g);
        cudaStreamDestroy(s);
        return;
    }
    size_t nw = (size_t)in * out, nx = (size_t)rows * in, ny = (size_t)rows * out;
    float *w = malloc(nw * 4), *wt = malloc(nw * 4), *x = malloc(nx * 4), *want = malloc(ny * 4), *got = malloc(ny * 4);
    fill(w, nw, 1, 0);
    fill(x, nx, 1, 0);
    round_like_device(w, nw, dtype, s);
    round_like_device(x, nx, dtype, s);
    for (int o = 0; o < out; o++)
        for (int j = 0; j < in; j++) wt[(size_t)j * out + o] = w[(size_t)o * in + j];
    ref_linear(x, w, want, rows, in, out);
    void *d_w = NULL, *d_wt = NULL, *d_x = NULL;
    float *d_y = NULL;
    to_dtype(&d_w, w, nw, dtype, s);
    to_dtype(&d_wt, wt, nw, dtype, s);
    to_dtype(&d_x, x, nx, dtype, s);
    cudaMalloc((void **)&d_y, ny * 4);
    lm_err err;
    lm_dev_linear l = {d_w, NULL, in, out, NULL};
    int rc = lm_cuda_linear(&g, types[dtype], rows, &l, d_x, d_y, &err);
    CHECK(rc == 0, "linear %s: %s", names[dtype], err.msg);
    from_device(got, d_y, ny, LM_K_F32, s);
    /* inputs identical to the reference's; only fp32 accumulation order differs */
    double e = lm_max_rel_err(got, want, ny), tol = dtype == LM_K_F32 ? 1e-5 : 1e-4;
    CHECK(e < tol, "linear %s rows=%d in=%d out=%d: differs from the CPU product by %g", names[dtype], rows, in, out, e);
    /* the same comparison on a transposed weight (what a swapped OP_T/OP_N or
     * leading dimension would read) must fail: the shapes are not square */
    lm_dev_linear lt = {d_wt, NULL, in, out, NULL};
    rc = lm_cuda_linear(&g, types[dtype], rows, &lt, d_x, d_y, &err);
    from_device(got, d_y, ny, LM_K_F32, s);
    CHECK(rc != 0 || lm_max_rel_err(got, want, ny) > 0.1, "linear %s: a transposed weight passes the comparison", names[dtype]);
    check_epilogues(&g, dtype, rows, in, out, d_w, d_x, want, s);
    cudaFree(d_w); cudaFree(d_wt); cudaFree(d_x); cudaFree(d_y);
    free(w); free(wt); free(x); free(want); free(got);
    lm_cuda_gemm_close(&g);
    cudaStreamDestroy(s);
}

#define N_SENT 8
#define ROWS 160
#define STEPS 4

/* The batch both backends see: 8 sentences of 3 to 45 tokens, 20 rows each. */
typedef struct {
    int32_t tokens[N_SENT * 64], lens[N_SENT], total, row_sentence[ROWS], feed[STEPS][ROWS], parent[ROWS];
} batch;

static void make_batch(batch *b, int V) {
    b->total = 0;
    for (int s = 0; s < N_SENT; s++) {
        b->lens[s] = 3 + (s * 7) % 43;
        for (int i = 0; i < b->lens[s]; i++) b->tokens[b->total++] = 4 + (int32_t)((frand() + 1) * 0.5f * (V - 5));
    }
    for (int r = 0; r < ROWS; r++) b->row_sentence[r] = r % N_SENT;
    for (int t = 0; t < STEPS; t++)
        for (int r = 0; r < ROWS; r++) b->feed[t][r] = t == 0 ? 2 : 4 + (int32_t)((frand() + 1) * 0.5f * (V - 5));
    for (int r = 0; r < ROWS; r++) b->parent[r] = (r * 37 + 11) % ROWS / N_SENT * N_SENT + r % N_SENT; /* same sentence */
}

/* The CPU backend's encoder states (every sentence, back to back) and step-0
 * logits, kept by test_backend_fp32 for the 16-bit runs. */
static float *cpu_states, *cpu_logits0;
/* The CPU backend's weights for the random model, packed once for every test. */
static lm_cpu_weights cpu_w;

static int start_batch(lm_backend *be, const batch *b, lm_err *err) {
    if (be->ops->encode(be, b->tokens, b->lens, N_SENT, err) != 0) return -1;
    return be->ops->decode_start(be, b->row_sentence, ROWS, STEPS, err);
}

/* CUDA fp32 against the CPU backend: encoder states, logits at every step, greedy ids. */
static void test_backend_fp32(lm_random_model *rm, const batch *b) {
    lm_err err;
    const lm_model *m = &rm->m;
    int V = m->cfg.model.vocab_size, D = m->cfg.model.d_model;
    lm_backend *cpu = lm_cpu_backend_create(m, &cpu_w, 0, &err);
    CHECK(cpu != NULL, "cpu backend: %s", cpu ? "" : err.msg);
    lm_backend *gpu = lm_cuda_backend_create(m, LM_PREC_FP32, 256, &err);
    CHECK(gpu != NULL, "cuda backend fp32: %s", gpu ? "" : err.msg);
    if (!cpu || !gpu) goto done;
    CHECK(start_batch(cpu, b, &err) == 0, "cpu: %s", err.msg);
    CHECK(start_batch(gpu, b, &err) == 0, "cuda: %s", err.msg);
    float *c = malloc(sizeof(float) * 64 * D);
    double worst = 0;
    for (int s = 0, off = 0; s < N_SENT; off += b->lens[s], s++) {
        float *a = cpu_states + (size_t)off * D;
        CHECK(cpu->ops->encoder_output(cpu, s, a, &err) == 0 && gpu->ops->encoder_output(gpu, s, c, &err) == 0, "encoder_output");
        double e = lm_max_rel_err(c, a, (size_t)b->lens[s] * D);
        worst = e > worst ? e : worst;
    }
    CHECK(worst < 1e-4, "SMaLL-100 shapes: CUDA fp32 encoder states differ from the CPU's by %g", worst);
    free(c);
    float *la = malloc(sizeof(float) * ROWS * V), *lc = malloc(sizeof(float) * ROWS * V), *row = malloc(sizeof(float) * V);
    for (int t = 0; t < STEPS; t++) {
        if (t == 2) { /* beams fork: rows continue others of their sentence */
            CHECK(cpu->ops->reorder(cpu, b->parent, b->row_sentence, ROWS, &err) == 0, "cpu reorder: %s", err.msg);
            CHECK(gpu->ops->reorder(gpu, b->parent, b->row_sentence, ROWS, &err) == 0, "cuda reorder: %s", err.msg);
        }
        CHECK(cpu->ops->decode_step(cpu, b->feed[t], t, la, &err) == 0, "cpu step %d: %s", t, err.msg);
        CHECK(gpu->ops->decode_step(gpu, b->feed[t], t, lc, &err) == 0, "cuda step %d: %s", t, err.msg);
        double e = lm_max_rel_err(lc, la, (size_t)ROWS * V);
        if (t == 0) memcpy(cpu_logits0, la, sizeof(float) * ROWS * V);
        CHECK(e < 1e-4, "SMaLL-100 shapes, %d rows: CUDA fp32 logits at step %d differ from the CPU's by %g", ROWS, t, e);
        int differ = 0;
        for (int r = 0; r < ROWS; r++) {
            int32_t ia, ic;
            float va, vc;
            memcpy(row, la + (size_t)r * V, sizeof(float) * V);
            lm_greedy_pick(row, V, NULL, 0, 1.0f, &ia, &va);
            memcpy(row, lc + (size_t)r * V, sizeof(float) * V);
            lm_greedy_pick(row, V, NULL, 0, 1.0f, &ic, &vc);
            /* a different pick only where the CPU's two candidates are within the tolerance */
            if (ia != ic && fabsf(la[(size_t)r * V + ia] - la[(size_t)r * V + ic]) > 1e-4f * (1 + fabsf(la[(size_t)r * V + ia]))) differ++;
        }
        CHECK(differ == 0, "SMaLL-100 shapes: step %d: %d of %d rows pick another token on CUDA fp32", t, differ, ROWS);
    }
    free(la); free(lc); free(row);
done:
    if (gpu) gpu->ops->destroy(gpu);
    if (cpu) cpu->ops->destroy(cpu);
}

/* In-flight batching on both backends, step by step: 4 sentences start (16
 * rows), only sentence 3's rows survive step 1, sentences 4-7 are appended
 * (dropping 0-2: they hold more encoder rows than sentence 3) and join as 12
 * fresh rows at position 0 beside 4 rows at position 3, then rows fork
 * within their sentences, twice with no step between. */
static void test_admission(lm_random_model *rm, const batch *b) {
    lm_err err;
    const lm_model *m = &rm->m;
    int V = m->cfg.model.vocab_size, D = m->cfg.model.d_model;
    enum { START = 16, MID = 4, LIVE = 16, MAX_STEPS = 8 };
    lm_backend *be[2] = {lm_cpu_backend_create(m, &cpu_w, 0, &err), lm_cuda_backend_create(m, LM_PREC_FP32, 64, &err)};
    CHECK(be[0] && be[1], "backends for the admission test: %s", err.msg);
    float *lg[2] = {malloc(sizeof(float) * LIVE * V), malloc(sizeof(float) * LIVE * V)};
    float *st[2] = {malloc(sizeof(float) * 64 * D), malloc(sizeof(float) * 64 * D)};
    int first_half = 0;
    for (int s = 0; s < 4; s++) first_half += b->lens[s];
    int32_t sent[LIVE], parent[LIVE], feed[LIVE];
    long issued = 0;
    for (int r = 0; r < START; r++) sent[r] = r % 4;
    for (int k = 0; k < 2 && be[0] && be[1]; k++) {
        CHECK(be[k]->ops->encode_more != NULL, "%s: encode_more", be[k]->ops->name);
        CHECK(be[k]->ops->encode(be[k], b->tokens, b->lens, 4, &err) == 0, "%s encode: %s", be[k]->ops->name, err.msg);
        CHECK(be[k]->ops->decode_start(be[k], sent, START, MAX_STEPS, &err) == 0, "%s decode_start: %s", be[k]->ops->name, err.msg);
    }
    for (int step = 0; step < 8 && be[0] && be[1]; step++) {
        int rows = step < 2 ? START : step < 4 ? MID : LIVE, n = 0;
        if (step == 2) { /* only sentence 3 goes on */
            for (int r = 3; r < START; r += 4) { parent[n] = r; sent[n++] = 3; }
            for (int k = 0; k < 2; k++)
                CHECK(be[k]->ops->reorder(be[k], parent, sent, MID, &err) == 0, "%s reorder: %s", be[k]->ops->name, err.msg);
            rows = MID;
        }
        if (step == 3) { /* sentences 4-7 are encoded, and step 3 runs without them (on CUDA beside their encoder) */
            issued = lm_cuda_backend_encodes_issued(be[1]);
            for (int k = 0; k < 2; k++) {
                CHECK(be[k]->ops->encode_more(be[k], b->tokens + first_half, b->lens + 4, 4, &err) == 0, "%s encode_more: %s",
                      be[k]->ops->name, err.msg);
                CHECK(be[k]->ops->encoder_output(be[k], 0, st[k], &err) != 0, "%s: sentence 0 dropped", be[k]->ops->name);
            }
            CHECK(lm_cuda_backend_encodes_issued(be[1]) == issued, "admission: encode_more issued its encoder at once");
        }
        if (step == 4) { /* they join, 3 rows each: the reorder alone must order their rows after their encoder */
            for (int r = 0; r < LIVE; r++) {
                parent[r] = r < MID ? r : -1;
                sent[r] = r < MID ? 3 : 4 + (r - MID) % 4;
            }
            for (int k = 0; k < 2; k++)
                CHECK(be[k]->ops->reorder(be[k], parent, sent, LIVE, &err) == 0, "%s reorder: %s", be[k]->ops->name, err.msg);
        }
        if (step == 6) { /* rows fork within their sentences, the others end (their cache slots go to the forks): the
                          * joined rows (2 tokens) thrice each, then two of sentence 3's (6 tokens) twice each, so
                          * that the longest fork is not the first */
            for (int r = 0; r < LIVE; r++) {
                parent[r] = r < LIVE - MID ? MID + r % 4 : (r - (LIVE - MID)) / 2;
                sent[r] = r < LIVE - MID ? 4 + r % 4 : 3;
            }
            for (int k = 0; k < 2; k++)
                CHECK(be[k]->ops->reorder(be[k], parent, sent, LIVE, &err) == 0, "%s reorder: %s", be[k]->ops->name, err.msg);
            /* and at once another, no step between: each pair of rows continues the pair's first (its lists must not
             * overwrite the first reorder's before their upload ran: the CUDA reorder no longer waits for it) */
            int32_t parent2[LIVE], sent2[LIVE];
            for (int r = 0; r < LIVE; r++) {
                parent2[r] = r / 2 * 2;
                sent2[r] = sent[parent2[r]];
            }
            memcpy(sent, sent2, sizeof sent);
            for (int k = 0; k < 2; k++)
                CHECK(be[k]->ops->reorder(be[k], parent2, sent, LIVE, &err) == 0, "%s second reorder: %s", be[k]->ops->name, err.msg);
        }
        for (int r = 0; r < rows; r++) feed[r] = step == 0 || (step == 4 && r >= MID) ? 2 : b->feed[step % STEPS][r];
        for (int k = 0; k < 2; k++)
            CHECK(be[k]->ops->decode_step(be[k], feed, step, lg[k], &err) == 0, "%s step %d: %s", be[k]->ops->name, step, err.msg);
        double e = lm_max_rel_err(lg[1], lg[0], (size_t)rows * V);
        CHECK(e < 1e-4, "admission: step %d (%d rows): CUDA fp32 logits differ from the CPU's by %g", step, rows, e);
        if (step == 3)
            CHECK(lm_cuda_backend_encodes_issued(be[1]) == issued + 1, "admission: the step after encode_more issued %ld encodes, not 1",
                  lm_cuda_backend_encodes_issued(be[1]) - issued);
        if (step == 4) /* read only now: encoder_output waits for the encoder itself */
            for (int s = 3; s < 8; s++) {
                for (int k = 0; k < 2; k++)
                    CHECK(be[k]->ops->encoder_output(be[k], s, st[k], &err) == 0, "%s encoder_output %d: %s", be[k]->ops->name, s, err.msg);
                double es = lm_max_rel_err(st[1], st[0], (size_t)b->lens[s] * D);
                CHECK(es < 1e-4, "admission: sentence %d's encoder states on CUDA differ from the CPU's by %g", s, es);
            }
    }
    for (int k = 0; k < 2; k++) {
        if (be[k]) be[k]->ops->destroy(be[k]);
        free(lg[k]);
        free(st[k]);
    }
}

/* A batch given up mid-decode, its relayout's gathers (into the other
 * encoder half) still queued on the decoding lane, then a new batch encoded
 * into that half from row 0: the new encoder must run after those gathers
 * (the `planned` event), whichever lane runs first. Here the encoding lane
 * does: the next encode_more waits for the last encode, and nothing has
 * waited for decoding since the gathers (no buffer grows, so no cudaFree
 * waits for the device). The new batch's step against the CPU backend's,
 * which runs the same calls. Sentences 4-7 hold 123 tokens, 0-3 54. */
static void test_abandoned_batch(lm_random_model *rm, const batch *b) {
    lm_err err;
    const lm_model *m = &rm->m;
    int V = m->cfg.model.vocab_size, first4 = 0;
    for (int s = 0; s < 4; s++) first4 += b->lens[s];
    lm_backend *be[2] = {lm_cpu_backend_create(m, &cpu_w, 0, &err), lm_cuda_backend_create(m, LM_PREC_FP32, 256, &err)};
    float *lg[2] = {malloc(sizeof(float) * 4 * V), malloc(sizeof(float) * 4 * V)};
    int32_t sent[4] = {0, 1, 2, 3}, feed[4] = {2, 2, 2, 2}, three = 3;
    CHECK(be[0] && be[1], "abandoned batch: backends: %s", err.msg);
    for (int k = 0; k < 2 && be[0] && be[1]; k++) {
        const lm_backend_ops *o = be[k]->ops;
        const char *n = o->name;
        /* the largest encode first: later ones grow no buffer */
        CHECK(o->encode(be[k], b->tokens + first4, b->lens + 4, 4, &err) == 0 && o->decode_start(be[k], sent, 4, 4, &err) == 0 &&
                  o->decode_step(be[k], feed, 0, lg[k], &err) == 0 && o->reorder(be[k], &three, &three, 1, &err) == 0,
              "abandoned batch (%s): the first batch: %s", n, err.msg);
        /* its sentences 0-2 dropped: sentence 3 moves to the other half's first rows, then the batch is given up */
        CHECK(o->encode_more(be[k], b->tokens, b->lens, 4, &err) == 0, "abandoned batch (%s): encode_more: %s", n, err.msg);
        CHECK(o->encode(be[k], b->tokens, b->lens, 4, &err) == 0 && o->decode_start(be[k], sent, 4, 4, &err) == 0 &&
                  o->encode_more(be[k], b->tokens + first4, b->lens + 4, 1, &err) == 0 &&
                  o->decode_step(be[k], feed, 0, lg[k], &err) == 0,
              "abandoned batch (%s): the new batch: %s", n, err.msg);
    }
    if (be[0] && be[1]) {
        double e = lm_max_rel_err(lg[1], lg[0], (size_t)4 * V);
        CHECK(e < 1e-4, "abandoned batch: the new batch's logits on CUDA differ from the CPU's by %g", e);
    }
    for (int k = 0; k < 2; k++) {
        if (be[k]) be[k]->ops->destroy(be[k]);
        free(lg[k]);
    }
}

/* The overlap's switch (LYRICMT_CUDA_OVERLAP): on, the default, an encode is
 * issued by its first reader (or the next step) and the scheduler encodes
 * ahead (encode_async); off, it is issued at its call and joins at once.
 * The encoder states are the same bytes either way. */
static void test_overlap_switch(lm_random_model *rm, const batch *b) {
    lm_err err;
    size_t n = (size_t)b->lens[0] * rm->m.cfg.model.d_model;
    lm_backend *be = lm_cuda_backend_create(&rm->m, LM_PREC_FP32, 64, &err);
    float *st[2] = {malloc(n * sizeof(float)), malloc(n * sizeof(float))};
    CHECK(be != NULL, "overlap: backend: %s", be ? "" : err.msg);
    for (int on = 1; on >= 0 && be; on--) {
        lm_cuda_backend_set_overlap(be, on);
        CHECK(be->ops->encode_async == on, "overlap %s: the scheduler %s", on ? "on" : "off", on ? "encodes ahead" : "joins at once");
        long issued = lm_cuda_backend_encodes_issued(be);
        CHECK(be->ops->encode(be, b->tokens, b->lens, 1, &err) == 0, "overlap: encode: %s", err.msg);
        CHECK(lm_cuda_backend_encodes_issued(be) == issued + !on, "overlap %s: %ld encodes issued at the call", on ? "on" : "off",
              lm_cuda_backend_encodes_issued(be) - issued);
        CHECK(be->ops->encoder_output(be, 0, st[on], &err) == 0 && lm_cuda_backend_encodes_issued(be) == issued + 1,
              "overlap %s: the reader issues what is left, once", on ? "on" : "off");
    }
    CHECK(memcmp(st[0], st[1], n * sizeof(float)) == 0, "overlap: the encoder states in line and deferred differ");
    if (be) be->ops->destroy(be);
    free(st[0]);
    free(st[1]);
}

/* decode_step_topk against decode_step + the host's pick on another backend of
 * the same precision fed the same (identical products give identical logits). */
static void test_topk_path(lm_random_model *rm, const batch *b, int precision) {
    const char *name = precision == LM_PREC_FP16 ? "fp16" : "bf16";
    lm_err err;
    const lm_model *m = &rm->m;
    int V = m->cfg.model.vocab_size;
    lm_backend *whole = lm_cuda_backend_create(m, precision, 256, &err);
    CHECK(whole != NULL, "cuda %s: %s", name, whole ? "" : err.msg);
    lm_backend *topk = lm_cuda_backend_create(m, precision, 256, &err);
    CHECK(topk != NULL, "cuda %s: %s", name, topk ? "" : err.msg);
    if (!whole || !topk) goto done;
    CHECK(start_batch(whole, b, &err) == 0 && start_batch(topk, b, &err) == 0, "%s start: %s", name, err.msg);
    /* weights uploaded and converted whole (the upload race would garble some):
     * states and step-0 logits near the CPU's as a whole. Bounds (provisional
     * until measured): fp16 2e-2 and bf16 8e-2 relative RMS, about ten times
     * the rounding of 15 layers' product inputs (2^-11, 2^-8 each) and ten
     * times below what a garbled matrix gives. */
    double tol = precision == LM_PREC_FP16 ? 2e-2 : 8e-2, worst = 0;
    float *st = malloc(sizeof(float) * 64 * m->cfg.model.d_model);
    for (int s = 0, off = 0; s < N_SENT; off += b->lens[s], s++) {
        CHECK(whole->ops->encoder_output(whole, s, st, &err) == 0, "%s encoder_output: %s", name, err.msg);
        double e = rms_rel_err(st, cpu_states + (size_t)off * m->cfg.model.d_model, (size_t)b->lens[s] * m->cfg.model.d_model);
        worst = e > worst ? e : worst;
    }
    free(st);
    CHECK(worst < tol, "SMaLL-100 shapes: CUDA %s encoder states differ from the CPU's by %g (bound %g)", name, worst, tol);
    float *logits = malloc(sizeof(float) * ROWS * V), *vals = malloc(sizeof(float) * ROWS * 16), *want_v = malloc(sizeof(float) * 16);
    int32_t *ids = malloc(sizeof(int32_t) * ROWS * 16), want_i[16];
    lm_edit *edits = malloc(sizeof(lm_edit) * ROWS * 6);
    int32_t start[ROWS + 1];
    for (int t = 0; t < STEPS; t++) {
        int k = t == 1 ? 1 : t == 2 ? 10 : 16;
        bool greedy = k == 1;
        int n = 0;
        for (int r = 0; r < ROWS; r++) { /* repetition penalties on the row's fed tokens, a ban */
            start[r] = n;
            for (int s = 0; s <= t && s < 3; s++) edits[n++] = (lm_edit){b->feed[s][r], LM_EDIT_PENALIZE};
            if (r % 3 == 0) edits[n++] = (lm_edit){(r * 997) % V, LM_EDIT_BAN};
        }
        start[ROWS] = n;
        if (t == 2) {
            CHECK(whole->ops->reorder(whole, b->parent, b->row_sentence, ROWS, &err) == 0, "reorder: %s", err.msg);
            CHECK(topk->ops->reorder(topk, b->parent, b->row_sentence, ROWS, &err) == 0, "reorder: %s", err.msg);
        }
        lm_topk_request req = {k, greedy, 1.2f, edits, start};
        CHECK(whole->ops->decode_step(whole, b->feed[t], t, logits, &err) == 0, "%s step %d: %s", name, t, err.msg);
        if (t == 0) {
            double e = rms_rel_err(logits, cpu_logits0, (size_t)ROWS * V);
            CHECK(e < tol, "SMaLL-100 shapes: CUDA %s step-0 logits differ from the CPU's by %g (bound %g)", name, e, tol);
        }
        CHECK(topk->ops->decode_step_topk(topk, b->feed[t], t, &req, ids, vals, &err) == 0, "%s topk step %d: %s", name, t, err.msg);
        int bad = -1;
        for (int r = 0; r < ROWS && bad < 0; r++) {
            float *row = logits + (size_t)r * V;
            int ne = start[r + 1] - start[r];
            if (greedy) lm_greedy_pick(row, V, edits + start[r], ne, 1.2f, want_i, want_v);
            else lm_logprob_topk(row, V, edits + start[r], ne, 1.2f, k, want_i, want_v);
#define NEAR(a, b) (fabsf((a) - (b)) <= 1e-5f * (1 + fabsf(b)))
            for (int j = 0; j < k; j++) {
                int32_t g = ids[(size_t)r * k + j];
                /* another token only in a near-tie of the host's list (sums run in another order) */
                bool tie = (j > 0 && NEAR(want_v[j - 1], want_v[j])) || (j + 1 < k && NEAR(want_v[j + 1], want_v[j]));
                if (!NEAR(vals[(size_t)r * k + j], want_v[j]) || (g != want_i[j] && !tie)) bad = r;
            }
#undef NEAR
        }
        CHECK(bad < 0, "%s step %d (k=%d): decode_step_topk differs from decode_step + host top-k at row %d", name, t, k, bad);
    }
    free(logits); free(vals); free(want_v); free(ids); free(edits);
done:
    if (whole) whole->ops->destroy(whole);
    if (topk) topk->ops->destroy(topk);
}

/* Sampling drawn on the device (decode_step_sample) against the CPU backend's
 * (sample.c) for the same streams: 24 rows, three steps (the recipe; top-k 0
 * with a nucleus, every row's whole vocabulary sorted; top-k 5 with forced
 * rows skipped), edits as the search makes them. The same tokens and draw
 * counts (the logits differ in their last bits, so a draw could flip only
 * within that distance of a boundary), log-probs within 1e-4, and so the raw
 * log-probs rescoring reads (the drawn token's under the unedited row; the
 * skipped rows' label's). Then three of
 * the rows alone, each in a batch of one on a fresh decode: the same tokens
 * and draws as in the batch of 24 (cuBLAS sums such a row in another order
 * here, on purpose, so only the bits of the logits may move). */
/* Row r's edits at step t of test_sample_path, as the search makes them
 * (penalties on the tokens fed, a ban), and at step 0 on every third row a
 * ban on its best token and a penalty (0.8 at that step: it raises them) on
 * the next 7 (cpu_logits0 holds that step's rows): the random model's rows
 * are so peaked that edits elsewhere leave every log-prob's bits as they
 * were, while here the drawn token is most likely a penalised one, whose raw
 * log-prob (far from its edited one) must come from its value before the
 * edits. */
static int sample_row_edits(const batch *b, int r, int t, int V, lm_edit *out) {
    int n = 0;
    for (int s = 1; s <= t; s++) out[n++] = (lm_edit){b->feed[s][r], LM_EDIT_PENALIZE};
    if (r % 3 == 0) out[n++] = (lm_edit){(r * 997) % V, LM_EDIT_BAN};
    if (t == 0 && r % 3 == 1) {
        int32_t idx[8];
        float val[8];
        int have = 0;
        for (int i = 0; i < V; i++) lm_rank_insert(idx, val, &have, 8, i, cpu_logits0[(size_t)r * V + i]);
        for (int i = 0; i < have; i++) out[n++] = (lm_edit){idx[i], i == 0 ? LM_EDIT_BAN : LM_EDIT_PENALIZE};
    }
    return n;
}

static void test_sample_path(lm_random_model *rm, const batch *b) {
    enum { SR = 24, SSTEPS = 3 };
    lm_err err;
    const lm_model *m = &rm->m;
    int V = m->cfg.model.vocab_size;
    lm_backend *cpu = lm_cpu_backend_create(m, &cpu_w, 0, &err);
    lm_backend *gpu = lm_cuda_backend_create(m, LM_PREC_FP32, 256, &err);
    lm_backend *alone = lm_cuda_backend_create(m, LM_PREC_FP32, 256, &err);
    CHECK(cpu && gpu && alone, "backends: %s", err.msg);
    if (!cpu || !gpu || !alone) goto done;
    /* step 0's penalty below 1 raises the tokens it edits (sample_row_edits) */
    const struct { float T; int k; float p, penalty; } S[SSTEPS] = {{0.9f, 50, 0.95f, 0.8f}, {1.3f, 0, 0.8f, 1.2f}, {1.0f, 5, 1.0f, 1.2f}};
    int32_t sent[SR], feed[SR], ids_c[SR], ids_g[SR], batch_ids[SSTEPS][SR], start[SR + 1], labels[SR];
    uint64_t keys[SR], draws_c[SR], draws_g[SR], batch_draws[SSTEPS][SR];
    float lp_c[SR], lp_g[SR], raw_c[SR], raw_g[SR];
    bool skip[SR];
    lm_edit edits[SR * 12];
    int n_edits[SSTEPS][SR];
    for (int r = 0; r < SR; r++) {
        sent[r] = r % N_SENT;
        keys[r] = 0x5eed0000ull + (uint64_t)r * 977;
        draws_c[r] = draws_g[r] = (uint64_t)r;
    }
    CHECK(cpu->ops->encode(cpu, b->tokens, b->lens, N_SENT, &err) == 0 && cpu->ops->decode_start(cpu, sent, SR, STEPS, &err) == 0,
          "cpu start: %s", err.msg);
    CHECK(gpu->ops->encode(gpu, b->tokens, b->lens, N_SENT, &err) == 0 && gpu->ops->decode_start(gpu, sent, SR, STEPS, &err) == 0,
          "cuda start: %s", err.msg);
    for (int t = 0; t < SSTEPS; t++) {
        int n = 0;
        for (int r = 0; r < SR; r++) {
            feed[r] = b->feed[t][r];
            skip[r] = t == 2 && r % 5 == 0;
            labels[r] = (r * 7919 + t) % V;
            start[r] = n;
            n += sample_row_edits(b, r, t, V, edits + n);
            n_edits[t][r] = n - start[r];
        }
        start[SR] = n;
        lm_sample_request rc = {S[t].T, S[t].k, S[t].p, S[t].penalty, edits, start, keys, draws_c, skip, labels};
        lm_sample_request rg = rc;
        rg.draws = draws_g;
        CHECK(cpu->ops->decode_step_sample(cpu, feed, t, &rc, ids_c, lp_c, raw_c, &err) == 0, "cpu sample step %d: %s", t, err.msg);
        CHECK(gpu->ops->decode_step_sample(gpu, feed, t, &rg, ids_g, lp_g, raw_g, &err) == 0, "cuda sample step %d: %s", t, err.msg);
        int bad = -1, drawn = 0, raw_apart = 0, edited_drawn = 0;
        for (int r = 0; r < SR && bad < 0; r++) {
            drawn += draws_g[r] == (uint64_t)(r + t) + !skip[r]; /* skipped rows take none */
            if (draws_c[r] != draws_g[r] || (!skip[r] && (ids_c[r] != ids_g[r] || !(fabsf(lp_c[r] - lp_g[r]) <= 1e-4f * (1 + fabsf(lp_c[r]))))) ||
                !(fabsf(raw_c[r] - raw_g[r]) <= 1e-4f * (1 + fabsf(raw_c[r]))))
                bad = r;
            raw_apart += !skip[r] && raw_c[r] != lp_c[r]; /* the edits moved the row: the raw log-prob is its own number */
            for (int i = start[r]; i < start[r + 1] && !skip[r]; i++)
                if (edits[i].token == ids_c[r] && edits[i].kind == LM_EDIT_PENALIZE) { edited_drawn++; break; }
            batch_ids[t][r] = ids_g[r];
            batch_draws[t][r] = draws_g[r];
        }
        CHECK(bad < 0, "sampling step %d (T %g, k %d, p %g): row %d: CUDA draws %d (log-prob %g, raw %g), the CPU %d (%g, raw %g)", t, S[t].T,
              S[t].k, S[t].p, bad, bad >= 0 ? ids_g[bad] : 0, bad >= 0 ? lp_g[bad] : 0, bad >= 0 ? raw_g[bad] : 0, bad >= 0 ? ids_c[bad] : 0,
              bad >= 0 ? lp_c[bad] : 0, bad >= 0 ? raw_c[bad] : 0);
        if (t == 0)
            CHECK(raw_apart >= SR / 6 && edited_drawn >= SR / 6,
                  "sampling step 0: %d rows' raw log-probs differ from the edited ones, %d rows drew a penalised token (the rows whose best "
                  "token is banned and next 7 penalised should)", raw_apart, edited_drawn);
        CHECK(drawn == SR, "sampling step %d: one draw per row not skipped, none for the others (%d of %d rows right)", t, drawn, SR);
    }
    const int lone[] = {1, 10, 23};
    for (int i = 0; i < 3; i++) {
        int r = lone[i];
        uint64_t d = (uint64_t)r;
        CHECK(alone->ops->encode(alone, b->tokens, b->lens, N_SENT, &err) == 0 && alone->ops->decode_start(alone, &sent[r], 1, STEPS, &err) == 0,
              "alone start: %s", err.msg);
        int moved = -1;
        for (int t = 0; t < SSTEPS; t++) {
            int n = sample_row_edits(b, r, t, V, edits);
            CHECK(n == n_edits[t][r], "the row's edits, rebuilt");
            int32_t one_start[2] = {0, n}, id;
            float lp;
            bool sk = t == 2 && r % 5 == 0;
            lm_sample_request req = {S[t].T, S[t].k, S[t].p, S[t].penalty, edits, one_start, &keys[r], &d, &sk, NULL};
            CHECK(alone->ops->decode_step_sample(alone, &b->feed[t][r], t, &req, &id, &lp, NULL, &err) == 0, "alone step %d: %s", t, err.msg);
            if (d != batch_draws[t][r] || (!sk && id != batch_ids[t][r])) moved = t;
        }
        CHECK(moved < 0, "sampling: row %d alone draws otherwise than in a batch of %d (step %d)", r, SR, moved);
    }
done:
    if (alone) alone->ops->destroy(alone);
    if (gpu) gpu->ops->destroy(gpu);
    if (cpu) cpu->ops->destroy(cpu);
}

/* The search's whole rows of logits: the CUDA backend's ops with decode_step
 * counting the calls that ask for logits, and those whose host memory is
 * not pinned (the copy then goes through the driver's bounce buffer). */
static lm_backend_ops counted_ops;
static int (*real_decode_step)(lm_backend *, const int32_t *, int, float *, lm_err *);
static int whole_row_steps, pageable_row_steps;
static int counted_decode_step(lm_backend *b, const int32_t *tokens, int step, float *logits, lm_err *err) {
    struct cudaPointerAttributes a;
    whole_row_steps += logits != NULL;
    pageable_row_steps += logits && !(cudaPointerGetAttributes(&a, logits) == cudaSuccess && a.type == cudaMemoryTypeHost);
    return real_decode_step(b, tokens, step, logits, err);
}

/* gpu's ops from here on: its own, decode_step counted. */
static void count_whole_rows(lm_backend *gpu) {
    counted_ops = *gpu->ops;
    real_decode_step = counted_ops.decode_step;
    counted_ops.decode_step = counted_decode_step;
    gpu->ops = &counted_ops;
}

/* The search options the search tests start from: transformers' defaults,
 * token 2 to start and to end. */
static void base_opts(lm_search_opts *o, int V) {
    *o = (lm_search_opts){0};
    lm_gen_config_defaults(&o->gen);
    o->decoder_start_id = 2;
    o->eos_id = 2;
    o->vocab_size = V;
}

/* Beams wider than the device's top-k takes (9: 18 candidates a row, over
 * LM_K_TOPK_MAX) take decode_step's whole rows, into the backend's pinned
 * buffer (row_buffer), and give the CPU's hypotheses in fp32. */
static void test_wide_beam(lm_random_model *rm, const batch *b) {
    enum { BEAMS = 9 };
    lm_err err;
    const lm_model *m = &rm->m;
    lm_backend *cpu = lm_cpu_backend_create(m, &cpu_w, 0, &err);
    lm_backend *gpu = lm_cuda_backend_create(m, LM_PREC_FP32, 256, &err);
    CHECK(cpu && gpu && 2 * BEAMS > gpu->ops->topk_max, "wide beams: backends: %s", err.msg);
    lm_search_result want[N_SENT], got[N_SENT];
    memset(want, 0, sizeof want);
    memset(got, 0, sizeof got);
    if (cpu && gpu) {
        count_whole_rows(gpu);
        lm_search_opts o;
        base_opts(&o, m->cfg.model.vocab_size);
        o.gen.num_beams = BEAMS;
        o.gen.num_return_sequences = 2;
        o.gen.max_length = 5;
        whole_row_steps = pageable_row_steps = 0;
        CHECK(lm_search_run(cpu, &o, b->tokens, b->lens, N_SENT, want, &err) >= 0, "wide beams: cpu search: %s", err.msg);
        CHECK(lm_search_run(gpu, &o, b->tokens, b->lens, N_SENT, got, &err) >= 0, "wide beams: cuda search: %s", err.msg);
        int bad = -1;
        for (int s = 0; s < N_SENT && bad < 0; s++)
            for (int h = 0; h < 2 && bad < 0; h++)
                if (got[s].n_hyps != 2 || want[s].n_hyps != 2 || got[s].hyps[h].n != want[s].hyps[h].n ||
                    memcmp(got[s].hyps[h].ids, want[s].hyps[h].ids, sizeof(int32_t) * (size_t)want[s].hyps[h].n) != 0)
                    bad = s;
        CHECK(bad < 0, "wide beams: sentence %d: CUDA's hypotheses differ from the CPU's", bad);
        CHECK(whole_row_steps >= o.gen.max_length - 1 && pageable_row_steps == 0,
              "wide beams: %d steps took whole rows, %d of them into pageable memory", whole_row_steps, pageable_row_steps);
    }
    for (int s = 0; s < N_SENT; s++) {
        lm_search_result_free(&want[s]);
        lm_search_result_free(&got[s]);
    }
    if (gpu) gpu->ops->destroy(gpu);
    if (cpu) cpu->ops->destroy(cpu);
}

/* Augmentation's sampling with rescoring (label_logprobs) through the
 * search: a forced language token (every row skipped at step 0, its label
 * still counted), a repetition penalty (edited rows, whose drawn token is
 * often an edited one), samples stopped at max_length (their </s> a step
 * later, on a skipped row). CUDA with decode_step_sample takes no whole row
 * of logits and gives the CPU's hypotheses, and label sums within 1e-4
 * relative (the device's sums run in another order, the logits differ in
 * their last bits); without the op the search's whole-row fallback gives the
 * same on CUDA, so the counter is seen to count. */
static void test_rescore_search(lm_random_model *rm, const batch *b) {
    enum { RET = 2 };
    lm_err err;
    const lm_model *m = &rm->m;
    int V = m->cfg.model.vocab_size;
    lm_backend *cpu = lm_cpu_backend_create(m, &cpu_w, 0, &err);
    lm_backend *gpu = lm_cuda_backend_create(m, LM_PREC_FP32, 256, &err);
    CHECK(cpu && gpu, "backends: %s", err.msg);
    lm_search_result want[N_SENT], got[N_SENT];
    memset(want, 0, sizeof want);
    memset(got, 0, sizeof got);
    if (!cpu || !gpu) goto done;
    count_whole_rows(gpu);
    int (*sample_op)(lm_backend *, const int32_t *, int, const lm_sample_request *, int32_t *, float *, float *, lm_err *) =
        counted_ops.decode_step_sample;
    lm_search_opts o;
    base_opts(&o, V);
    o.gen.do_sample = true;
    o.gen.num_beams = 1;
    o.gen.num_return_sequences = RET;
    o.gen.temperature = 0.9f;
    o.gen.top_k = 50;
    o.gen.top_p = 0.95f;
    o.gen.repetition_penalty = 1.3f;
    o.gen.max_length = 6;
    o.gen.forced_bos_id = V - 7;
    o.seed = 1234;
    o.label_logprobs = true;
    CHECK(lm_search_run(cpu, &o, b->tokens, b->lens, N_SENT, want, &err) >= 0, "cpu search: %s", err.msg);
    for (int pass = 0; pass < 2; pass++) {
        bool op = pass == 0;
        counted_ops.decode_step_sample = op ? sample_op : NULL;
        whole_row_steps = pageable_row_steps = 0;
        CHECK(lm_search_run(gpu, &o, b->tokens, b->lens, N_SENT, got, &err) >= 0, "cuda search (%s): %s", op ? "op" : "whole rows", err.msg);
        int bad = -1, tails = 0;
        for (int s = 0; s < N_SENT && bad < 0; s++) {
            if (got[s].n_hyps != RET || want[s].n_hyps != RET) { bad = s; break; }
            for (int h = 0; h < RET; h++) {
                const lm_hypothesis *g = &got[s].hyps[h], *w = &want[s].hyps[h];
                tails += w->n_labels == w->n; /* stopped at max_length: </s> labelled on a skipped row */
                if (g->n != w->n || memcmp(g->ids, w->ids, sizeof *g->ids * (size_t)w->n) != 0 || g->n_labels != w->n_labels ||
                    w->n_labels < w->n - 1 || !(fabs(g->label_sum - w->label_sum) <= 1e-4 * (1 + fabs(w->label_sum))) ||
                    !(fabsf(g->score - w->score) <= 1e-4f * (1 + fabsf(w->score))))
                    bad = s;
            }
        }
        CHECK(bad < 0, "rescoring search on CUDA (%s): sentence %d: hypotheses or label sums differ from the CPU's (first: %.6f against %.6f)",
              op ? "decode_step_sample" : "whole rows", bad, bad >= 0 && got[bad].n_hyps ? got[bad].hyps[0].label_sum : 0.0,
              bad >= 0 && want[bad].n_hyps ? want[bad].hyps[0].label_sum : 0.0);
        CHECK(tails > 0, "rescoring search: no sample stopped at max_length (the </s> label on a skipped row goes untested)");
        if (op) CHECK(whole_row_steps == 0, "rescoring search on CUDA: %d steps took whole rows of logits to the host", whole_row_steps);
        else CHECK(whole_row_steps >= o.gen.max_length - 1 && pageable_row_steps == 0,
                   "the whole-row fallback: %d steps counted, %d of them into pageable memory", whole_row_steps, pageable_row_steps);
        for (int s = 0; s < N_SENT; s++) lm_search_result_free(&got[s]);
    }
done:
    for (int s = 0; s < N_SENT; s++) lm_search_result_free(&want[s]);
    if (gpu) gpu->ops->destroy(gpu);
    if (cpu) cpu->ops->destroy(cpu);
}

/* stderr into a file while calls that are expected to complain run (the
 * emulator names a refused call, the backend says what it turned off). */
typedef struct {
    char path[40];
    int fd, saved;
} stderr_capture;

static void capture_stderr(stderr_capture *c) {
    snprintf(c->path, sizeof c->path, "/tmp/lyricmt-stderr-XXXXXX");
    fflush(stderr);
    c->fd = mkstemp(c->path);
    c->saved = dup(2);
    if (c->fd >= 0) dup2(c->fd, 2);
}

/* stderr back; how many times `needle` was written meanwhile. */
static int release_stderr(stderr_capture *c, const char *needle) {
    char text[8192] = "";
    fflush(stderr);
    if (c->saved >= 0) {
        dup2(c->saved, 2);
        close(c->saved);
    }
    ssize_t n = c->fd >= 0 ? pread(c->fd, text, sizeof text - 1, 0) : 0;
    text[n > 0 ? n : 0] = 0;
    if (c->fd >= 0) close(c->fd);
    unlink(c->path);
    int said = 0;
    for (const char *p = text; needle && (p = strstr(p, needle)); p++) said++;
    return said;
}

/* Stream capture as the backend uses it: nothing runs at capture; each
 * launch runs the captured copies and kernel again, a pinned source read
 * as it is at that launch; a wait inside a capture invalidates it and
 * leaves the stream usable. */
static void test_graph_capture(void) {
    enum { N = 37 };
    cudaStream_t s;
    float *pin_in, *pin_out, *d_in, *d_out, *d_bias, bias[N];
    CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess, "graph test: stream");
    CHECK(cudaMallocHost((void **)&pin_in, N * sizeof(float)) == cudaSuccess && cudaMallocHost((void **)&pin_out, N * sizeof(float)) == cudaSuccess,
          "graph test: pinned buffers");
    CHECK(cudaMalloc((void **)&d_in, N * sizeof(float)) == cudaSuccess && cudaMalloc((void **)&d_out, N * sizeof(float)) == cudaSuccess &&
              cudaMalloc((void **)&d_bias, N * sizeof(float)) == cudaSuccess,
          "graph test: device buffers");
    for (int i = 0; i < N; i++) bias[i] = (float)i * 0.5f;
    /* on s: a plain cudaMemcpy from pageable memory may land after a non-blocking stream's kernel reads it */
    CHECK(cudaMemcpyAsync(d_bias, bias, sizeof bias, cudaMemcpyHostToDevice, s) == cudaSuccess && cudaStreamSynchronize(s) == cudaSuccess,
          "graph test: bias upload");
    for (int i = 0; i < N; i++) pin_out[i] = -1.0f;
    const char *kmsg = "";
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess, "graph test: begin capture");
    CHECK(cudaMemcpyAsync(d_in, pin_in, N * sizeof(float), cudaMemcpyHostToDevice, s) == cudaSuccess, "graph test: captured upload");
    CHECK(lm_k_bias_act(d_in, d_bias, d_out, LM_K_F32, N, 1, N, LM_K_ACT_NONE, 2.0f, s, &kmsg) == 0, "graph test: captured kernel: %s", kmsg);
    CHECK(cudaMemcpyAsync(pin_out, d_out, N * sizeof(float), cudaMemcpyDeviceToHost, s) == cudaSuccess, "graph test: captured download");
    CHECK(cudaStreamEndCapture(s, &graph) == cudaSuccess && graph, "graph test: end capture");
    CHECK(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess, "graph test: instantiate");
    CHECK(cudaStreamSynchronize(s) == cudaSuccess, "graph test: sync after capture");
    CHECK(pin_out[0] == -1.0f && pin_out[N - 1] == -1.0f, "graph test: the capture ran its work (%g)", pin_out[0]);
    for (int round = 0; round < 2 && exec; round++) {
        for (int i = 0; i < N; i++) pin_in[i] = (float)(i + 100 * round);
        CHECK(cudaGraphLaunch(exec, s) == cudaSuccess && cudaStreamSynchronize(s) == cudaSuccess, "graph test: launch %d", round);
        int bad = 0;
        for (int i = 0; i < N; i++) bad += pin_out[i] != ((float)(i + 100 * round) + bias[i]) * 2.0f;
        CHECK(bad == 0, "graph test: launch %d: %d of %d values are not the pinned input's as it was at the launch (%g, %g)", round, bad, N,
              pin_out[1], ((float)(1 + 100 * round) + bias[1]) * 2.0f);
    }
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    /* a wait while capturing: refused, the capture invalidated, the stream fine after */
    CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess, "graph test: second capture");
    stderr_capture quiet; /* the emulator names the refused call: expected here, so not shown */
    capture_stderr(&quiet);
    cudaError_t waited = cudaStreamSynchronize(s);
    release_stderr(&quiet, NULL);
    CHECK(waited != cudaSuccess, "graph test: a stream wait inside a capture was allowed");
    graph = NULL;
    CHECK(cudaStreamEndCapture(s, &graph) == cudaErrorStreamCaptureInvalidated && !graph, "graph test: an invalidated capture gave a graph");
    cudaGetLastError();
    pin_in[0] = 7.0f;
    CHECK(cudaMemcpyAsync(d_in, pin_in, sizeof(float), cudaMemcpyHostToDevice, s) == cudaSuccess &&
              cudaMemcpyAsync(pin_out, d_in, sizeof(float), cudaMemcpyDeviceToHost, s) == cudaSuccess && cudaStreamSynchronize(s) == cudaSuccess &&
              pin_out[0] == 7.0f,
          "graph test: the stream after an invalidated capture");
    cudaFree(d_in); cudaFree(d_out); cudaFree(d_bias);
    cudaFreeHost(pin_in); cudaFreeHost(pin_out);
    cudaStreamDestroy(s);
}

/* A body for lm_cuda_graph_run: doubles d's one value, then, by mode, returns
 * its own error (1) or waits for its stream (2: what a capture cannot hold). */
typedef struct {
    float *d;
    cudaStream_t s;
    int mode;
} toy_step;

static int toy_body(void *ctx, lm_err *err) {
    toy_step *t = ctx;
    const char *kmsg = "";
    if (lm_k_bias_act(t->d, NULL, t->d, LM_K_F32, 1, 1, 1, LM_K_ACT_NONE, 2.0f, t->s, &kmsg) != 0) return lm_fail(err, "toy: %s", kmsg);
    if (t->mode == 1) return lm_fail(err, "toy: its own failure");
    if (t->mode == 2 && cudaStreamSynchronize(t->s) != cudaSuccess) return lm_fail(err, "toy: the wait was refused");
    return 0;
}

/* cuda_graph.c's policy with a toy body: a key captured on its second call
 * in a row; a body failing for its own reason while captured returns its
 * error, graphs staying on; a body doing what a capture cannot hold turns
 * graphs off, said once, and runs plain. The value doubles once per run
 * that counts: 2 (A plain), 4 (A captured and launched), 8 (B plain, then
 * its error), 8 (B's capture discarded), 16 (C plain), 32 (C's capture
 * refused, then plain), 64 (A plain: graphs are off). */
static void test_graph_policy(void) {
    toy_step t = {NULL, NULL, 0};
    lm_cuda_graphs g;
    lm_err err;
    float one = 1.0f, got = 0;
    CHECK(cudaStreamCreateWithFlags(&t.s, cudaStreamNonBlocking) == cudaSuccess && cudaMalloc((void **)&t.d, sizeof(float)) == cudaSuccess &&
              cudaMemcpyAsync(t.d, &one, sizeof one, cudaMemcpyHostToDevice, t.s) == cudaSuccess,
          "graph policy: stream and value");
    lm_cuda_graphs_init(&g);
    int key_a = 1, key_b = 2, key_c = 3, rc[8];
    rc[0] = lm_cuda_graph_run(&g, t.s, &key_a, sizeof key_a, toy_body, &t, &err);
    rc[1] = lm_cuda_graph_run(&g, t.s, &key_a, sizeof key_a, toy_body, &t, &err);
    CHECK(rc[0] == 0 && rc[1] == 0 && g.captured == 1 && g.launched == 1, "graph policy: key A: rc %d %d, %ld captured, %ld launched (want 1, 1)",
          rc[0], rc[1], g.captured, g.launched);
    t.mode = 1;
    rc[2] = lm_cuda_graph_run(&g, t.s, &key_b, sizeof key_b, toy_body, &t, &err);
    err.msg[0] = 0;
    rc[3] = lm_cuda_graph_run(&g, t.s, &key_b, sizeof key_b, toy_body, &t, &err);
    CHECK(rc[2] == -1 && rc[3] == -1 && strstr(err.msg, "its own failure") && g.on && g.captured == 1,
          "graph policy: a body's own error while captured: rc %d, \"%s\", graphs %s, %ld captured", rc[3], err.msg, g.on ? "on" : "off", g.captured);
    t.mode = 2;
    stderr_capture notice;
    capture_stderr(&notice);
    rc[4] = lm_cuda_graph_run(&g, t.s, &key_c, sizeof key_c, toy_body, &t, &err);
    rc[5] = lm_cuda_graph_run(&g, t.s, &key_c, sizeof key_c, toy_body, &t, &err);
    int said = release_stderr(&notice, "CUDA graphs off");
    t.mode = 0;
    rc[6] = lm_cuda_graph_run(&g, t.s, &key_a, sizeof key_a, toy_body, &t, &err);
    CHECK(rc[4] == 0 && rc[5] == 0 && rc[6] == 0 && !g.on && g.launched == 1 && said == 1,
          "graph policy: a refused capture: rc %d %d %d, graphs %s, %ld launched; said %d times (want 1)", rc[4], rc[5], rc[6],
          g.on ? "on" : "off", g.launched, said);
    CHECK(cudaMemcpyAsync(&got, t.d, sizeof got, cudaMemcpyDeviceToHost, t.s) == cudaSuccess && cudaStreamSynchronize(t.s) == cudaSuccess &&
              got == 64.0f,
          "graph policy: the value is %g, want 64 (each run that counts doubles it once)", got);
    lm_cuda_graphs_free(&g);
    cudaFree(t.d);
    cudaStreamDestroy(t.s);
}

/* The decoder step from graphs (cuda_graph.c) against plain launches, on two
 * fp32 backends fed alike: rows 1 to 8 two steps each (each count captured
 * on its second step), 1 again (a launch), 9 (the ninth graph: the least
 * recently launched, 2's, is replaced, not 1's), 1 (still held: a launch),
 * 2 (captured again). The row count changes by reorders that fork and drop
 * rows, down and up, with no buffer regrown. The logits must match the plain
 * backend's at every step, and the counts the policy's: 10 captured, 12
 * launched. */
static void test_graph_steps(lm_random_model *rm, const batch *b) {
    lm_err err;
    const lm_model *m = &rm->m;
    int V = m->cfg.model.vocab_size;
    static const int plan[] = {1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 1, 9, 9, 1, 2, 2};
    enum { STEPS_G = sizeof plan / sizeof *plan, MOST = 9 };
    lm_backend *be[2] = {lm_cuda_backend_create(m, LM_PREC_FP32, 64, &err), NULL};
    setenv("LYRICMT_CUDA_GRAPHS", "0", 1); /* the second backend's graphs off, as a user turns them off */
    be[1] = lm_cuda_backend_create(m, LM_PREC_FP32, 64, &err);
    unsetenv("LYRICMT_CUDA_GRAPHS");
    CHECK(be[0] && be[1], "graph steps: backends: %s", err.msg);
    float *lg[2] = {malloc(sizeof(float) * MOST * V), malloc(sizeof(float) * MOST * V)};
    int32_t sent[MOST], parent[MOST], feed[MOST];
    for (int r = 0; r < MOST; r++) sent[r] = r % 4;
    for (int k = 0; k < 2 && be[0] && be[1]; k++)
        CHECK(be[k]->ops->encode(be[k], b->tokens, b->lens, 4, &err) == 0 && be[k]->ops->decode_start(be[k], sent, MOST, STEPS_G + 1, &err) == 0,
              "graph steps: start: %s", err.msg);
    int rows = MOST;
    for (int t = 0; t < STEPS_G && be[0] && be[1]; t++) {
        if (plan[t] != rows) { /* row r continues row (r * 5 + t) % rows of the old rows */
            int32_t old[MOST];
            memcpy(old, sent, sizeof old);
            for (int r = 0; r < plan[t]; r++) {
                parent[r] = (r * 5 + t) % rows;
                sent[r] = old[parent[r]];
            }
            for (int k = 0; k < 2; k++) CHECK(be[k]->ops->reorder(be[k], parent, sent, plan[t], &err) == 0, "graph steps: reorder: %s", err.msg);
            rows = plan[t];
        }
        for (int r = 0; r < rows; r++) feed[r] = t == 0 ? 2 : b->feed[1 + t % (STEPS - 1)][r];
        for (int k = 0; k < 2; k++) CHECK(be[k]->ops->decode_step(be[k], feed, t, lg[k], &err) == 0, "graph steps: step %d: %s", t, err.msg);
        double e = lm_max_rel_err(lg[0], lg[1], (size_t)rows * V);
        CHECK(e < 1e-6, "graph steps: step %d (%d rows): logits from the graph differ from plain launches' by %g", t, rows, e);
    }
    long cap[2] = {0, 0}, launched[2] = {0, 0};
    for (int k = 0; k < 2 && be[0] && be[1]; k++) lm_cuda_backend_graph_counts(be[k], &cap[k], &launched[k]);
    CHECK(cap[0] == 10 && launched[0] == 12, "graph steps: %ld graphs captured and %ld launched; the policy gives 10 and 12", cap[0], launched[0]);
    CHECK(cap[1] == 0 && launched[1] == 0, "graph steps: LYRICMT_CUDA_GRAPHS=0 still captured %ld and launched %ld", cap[1], launched[1]);
    if (be[0] && be[1]) { /* switched off: the next step (2 rows, held) is plain launches */
        lm_cuda_backend_set_graphs(be[0], false);
        for (int r = 0; r < rows; r++) feed[r] = 5 + r;
        CHECK(be[0]->ops->decode_step(be[0], feed, STEPS_G, lg[0], &err) == 0, "graph steps: step after switching off: %s", err.msg);
        lm_cuda_backend_graph_counts(be[0], &cap[0], &launched[0]);
        CHECK(launched[0] == 12, "graph steps: switched off, a graph was still launched (%ld)", launched[0]);
    }
    for (int k = 0; k < 2; k++) {
        if (be[k]) be[k]->ops->destroy(be[k]);
        free(lg[k]);
    }
}

/* Biases and ReLU in cuBLASLt's epilogues against the same steps with
 * them off, graphs off on both so every product is the host's to count: the
 * products that take an epilogue are the QKV product and the first FFN
 * product of every layer and, per encoder batch, the decoder's cross keys
 * and values (2 E + 2 D per encode, 2 D per step). fp32 adds the same fp32
 * bias to the same sum either way (identical on the emulator; within 1e-4
 * where a GPU's cuBLASLt picks another kernel than GemmEx); bf16's first FFN
 * product adds a bf16 bias before its output's rounding to bf16. With graphs
 * on, switching epilogues off is another graph (its products differ). Then
 * (on the emulator only: CUDA_EMU_LT_EPILOGUES=0 is its own) a cuBLASLt that
 * refuses epilogues turns them off, said once, with the plain path's output;
 * a GELU model keeps its first FFN product plain (cuBLASLt's GELU is not the
 * model's). */
static void test_epilogue_steps(lm_random_model *rm, const batch *b) {
    lm_err err;
    lm_model *m = &rm->m;
    int V = m->cfg.model.vocab_size, E = m->cfg.model.encoder_layers, Dl = m->cfg.model.decoder_layers;
    enum { R = 6, T = 3 };
    int32_t sent[R], feed[R];
    for (int r = 0; r < R; r++) sent[r] = r % 4;
    float *lg[3] = {malloc(sizeof(float) * R * V), malloc(sizeof(float) * R * V), malloc(sizeof(float) * R * V)};
    struct cudaDeviceProp prop;
    bool emulated = cudaGetDeviceProperties(&prop, 0) == cudaSuccess && !strncmp(prop.name, "cuda-emu", 8);
    if (!emulated) printf("test_cuda_backend: a cuBLASLt that refuses epilogues needs the emulator's CUDA_EMU_LT_EPILOGUES: not run on this GPU\n");
    setenv("LYRICMT_CUDA_GRAPHS", "0", 1);
    for (int pass = 0; pass < 3; pass++) { /* fp32, bf16, fp32 with GELU */
        int prec = pass == 1 ? LM_PREC_BF16 : LM_PREC_FP32;
        bool gelu = pass == 2;
        const char *name = pass == 0 ? "fp32" : pass == 1 ? "bf16" : "fp32 GELU";
        /* products with an epilogue: QKV and fc1 (ReLU only) a layer, and the cross keys and values */
        long per_encode = 2L * Dl + (gelu ? 1L : 2L) * E, per_step = (gelu ? 1L : 2L) * Dl;
        if (gelu) m->cfg.model.activation = LM_ACT_GELU;
        lm_backend *be[3] = {lm_cuda_backend_create(m, prec, 64, &err), NULL, NULL};
        setenv("LYRICMT_CUDA_EPILOGUES", "0", 1);
        be[1] = lm_cuda_backend_create(m, prec, 64, &err);
        unsetenv("LYRICMT_CUDA_EPILOGUES");
        be[2] = pass == 0 && emulated ? lm_cuda_backend_create(m, prec, 64, &err) : NULL;
        CHECK(be[0] && be[1] && (pass || !emulated || be[2]), "epilogues %s: backends: %s", name, err.msg);
        stderr_capture notice; /* be[2] meets a cuBLASLt that serves no epilogue: its notice goes to a file */
        int said = -1;
        for (int k = 0; k < 3 && be[0] && be[1]; k++) {
            if (!be[k]) continue;
            if (k == 2) {
                setenv("CUDA_EMU_LT_EPILOGUES", "0", 1);
                capture_stderr(&notice);
            }
            CHECK(be[k]->ops->encode(be[k], b->tokens, b->lens, 4, &err) == 0 && be[k]->ops->decode_start(be[k], sent, R, T + 5, &err) == 0,
                  "epilogues %s: start: %s", name, err.msg);
            long want = k == 0 ? per_encode : 0;
            CHECK(lm_cuda_backend_epilogue_products(be[k]) == want, "epilogues %s (backend %d): %ld products with an epilogue at encode, want %ld",
                  name, k, lm_cuda_backend_epilogue_products(be[k]), want);
            if (k == 2) { /* refused at its first product: off for good, so its steps below never ask again */
                said = release_stderr(&notice, "cuBLASLt epilogues off");
                unsetenv("CUDA_EMU_LT_EPILOGUES");
            }
        }
        for (int t = 0; t < T && be[0] && be[1]; t++) {
            for (int r = 0; r < R; r++) feed[r] = t == 0 ? 2 : b->feed[1 + t][r];
            for (int k = 0; k < 3; k++)
                if (be[k]) CHECK(be[k]->ops->decode_step(be[k], feed, t, lg[k], &err) == 0, "epilogues %s: step %d: %s", name, t, err.msg);
            /* bf16: the bf16 bias's rounding (2^-9 of a bias) moved the
             * logits 2.6e-3 to 3.5e-3 over 2 + 2 layers (measured on the
             * emulator); a lost bias or ReLU, or an fp32 bias read as bf16,
             * moves them O(1) */
            double e = lm_max_rel_err(lg[0], lg[1], (size_t)R * V), tol = prec == LM_PREC_FP32 ? 1e-4 : 3e-2;
            CHECK(e < tol, "epilogues %s: step %d: logits with epilogues differ from plain products' by %g (tolerance %g)", name, t, e, tol);
            if (be[2]) {
                e = lm_max_rel_err(lg[2], lg[1], (size_t)R * V);
                CHECK(e == 0, "epilogues refused: step %d: logits differ from plain products' by %g", t, e);
            }
        }
        long want = per_encode + per_step * T;
        if (be[0] && be[1])
            CHECK(lm_cuda_backend_epilogue_products(be[0]) == want && lm_cuda_backend_epilogue_products(be[1]) == 0,
                  "epilogues %s: %ld and %ld products with an epilogue after %d steps, want %ld and 0", name, lm_cuda_backend_epilogue_products(be[0]),
                  lm_cuda_backend_epilogue_products(be[1]), T, want);
        if (pass == 0 && be[0] && be[1]) { /* graphs on: a step's graph holds its products, so switching epilogues is another graph */
            long cap = 0, launched = 0;
            lm_cuda_backend_set_graphs(be[0], true);
            for (int t = T; t < T + 4; t++) {
                if (t == T + 2) lm_cuda_backend_set_epilogues(be[0], false);
                for (int r = 0; r < R; r++) feed[r] = 5 + r + t;
                CHECK(be[0]->ops->decode_step(be[0], feed, t, lg[0], &err) == 0, "epilogues with graphs: step %d: %s", t, err.msg);
            }
            lm_cuda_backend_graph_counts(be[0], &cap, &launched);
            CHECK(cap == 2, "epilogues with graphs: %ld graphs captured over two steps with epilogues and two without, want 2", cap);
        }
        if (be[2])
            CHECK(said == 1 && lm_cuda_backend_epilogue_products(be[2]) == 0,
                  "epilogues refused: the notice was given %d times (want 1) and %ld products took an epilogue (want 0)", said,
                  lm_cuda_backend_epilogue_products(be[2]));
        for (int k = 0; k < 3; k++)
            if (be[k]) be[k]->ops->destroy(be[k]);
        m->cfg.model.activation = LM_ACT_RELU;
    }
    unsetenv("LYRICMT_CUDA_GRAPHS");
    for (int k = 0; k < 3; k++) free(lg[k]);
}

/* Scoring by steps (lm_backend_decode_forced: the CUDA backend has no
 * decode_forced) with the log-probs taken on the device (decode_step_labels,
 * counted through a wrapper: one call a step) against the same backend's
 * whole rows reduced on the host (the op taken away): 6 rows of 1 to 8
 * labels, fp32, within 1e-5 (only the order of the sum of exponentials
 * differs). */
static int label_calls;
static int (*real_labels)(lm_backend *, const int32_t *, int, const int32_t *, float *, lm_err *);
static int counted_labels(lm_backend *b, const int32_t *tokens, int step, const int32_t *labels, float *out, lm_err *err) {
    label_calls++;
    return real_labels(b, tokens, step, labels, out, err);
}

static void test_forced_labels(lm_random_model *rm, const batch *b) {
    lm_err err;
    const lm_model *m = &rm->m;
    int V = m->cfg.model.vocab_size;
    enum { R = 6 };
    int32_t sent[R], lens[R], tokens[64], want[64], total = 0, longest = 0;
    for (int r = 0; r < R; r++) {
        sent[r] = (r * 3) % N_SENT;
        lens[r] = 1 + (r * 5) % 9; /* 1, 6, 2, 7, 3, 8 */
        longest = lens[r] > longest ? lens[r] : longest;
        for (int p = 0; p < lens[r]; p++, total++) {
            tokens[total] = p == 0 ? 2 : b->feed[1 + p % (STEPS - 1)][r];
            want[total] = (r * 7919 + p * 104729) % V;
        }
    }
    lm_backend *be[2] = {lm_cuda_backend_create(m, LM_PREC_FP32, 64, &err), NULL};
    be[1] = lm_cuda_backend_create(m, LM_PREC_FP32, 64, &err);
    CHECK(be[0] && be[1] && be[0]->ops->decode_step_labels, "forced labels: backends, with decode_step_labels: %s", err.msg);
    if (!be[0] || !be[1] || !be[0]->ops->decode_step_labels) return;
    lm_backend_ops counting = *be[0]->ops, whole_rows = *be[1]->ops;
    real_labels = counting.decode_step_labels;
    counting.decode_step_labels = counted_labels;
    whole_rows.decode_step_labels = NULL;
    be[0]->ops = &counting;
    be[1]->ops = &whole_rows;
    float out[2][64];
    label_calls = 0;
    for (int k = 0; k < 2; k++)
        CHECK(be[k]->ops->encode(be[k], b->tokens, b->lens, N_SENT, &err) == 0 &&
                  lm_backend_decode_forced(be[k], sent, tokens, lens, R, want, out[k], &err) == 0,
              "forced labels (%s): %s", k ? "whole rows" : "on the device", err.msg);
    int bad = -1;
    for (int i = 0; i < total && bad < 0; i++)
        if (!(isfinite(out[0][i]) && fabsf(out[0][i] - out[1][i]) <= 1e-5f * (1 + fabsf(out[1][i])))) bad = i;
    CHECK(bad < 0, "forced labels: position %d: %g on the device, %g from whole rows", bad, bad < 0 ? 0 : out[0][bad], bad < 0 ? 0 : out[1][bad]);
    CHECK(label_calls == longest, "forced labels: %d steps took their log-probs on the device, want %d (the longest row)", label_calls, longest);
    int32_t bad_label[R] = {0, 1, V, 3, 4, 5}, feed[R] = {2, 2, 2, 2, 2, 2};
    err.msg[0] = 0;
    CHECK(be[0]->ops->decode_start(be[0], sent, R, 4, &err) == 0 && real_labels(be[0], feed, 0, bad_label, out[0], &err) != 0 &&
              strstr(err.msg, "outside the vocabulary"),
          "forced labels: a label past the vocabulary was taken (%s)", err.msg);
    for (int k = 0; k < 2; k++) be[k]->ops->destroy(be[k]);
}

int main(void) {
    test_probe_cases();
    test_oom_message();
    if (!lm_cuda_gate("test_cuda_backend")) return lm_test_summary("test_cuda_backend");
    test_graph_capture();
    test_graph_policy();
    for (int dtype = LM_K_F32; dtype <= LM_K_BF16; dtype++) {
        test_linear(dtype, 37, 70, 53);
        test_linear(dtype, 1, 1024, 4096);
        test_linear(dtype, 160, 4096, 1024);
    }
    /* SMaLL-100's 12 encoder and 3 decoder layers; LYRICMT_TEST_LAYERS=E,D
     * fewer (every shape the same: tests/cuda_emu runs 2,2 to stay quick) */
    int enc_layers = 12, dec_layers = 3;
    const char *layers = getenv("LYRICMT_TEST_LAYERS");
    if (layers && sscanf(layers, "%d,%d", &enc_layers, &dec_layers) != 2) enc_layers = 0;
    CHECK(enc_layers > 0 && dec_layers > 0, "LYRICMT_TEST_LAYERS=%s: expected two layer counts, such as 2,2", layers);
    if (enc_layers <= 0 || dec_layers <= 0) return lm_test_summary("test_cuda_backend");
    lm_random_model rm;
    CHECK(lm_random_model_make(&rm, enc_layers, dec_layers) == 0, "making the random SMaLL-100-shaped model");
    batch b;
    make_batch(&b, rm.m.cfg.model.vocab_size);
    cpu_states = calloc((size_t)b.total * rm.m.cfg.model.d_model, sizeof(float));
    cpu_logits0 = calloc((size_t)ROWS * rm.m.cfg.model.vocab_size, sizeof(float));
    lm_err err;
    CHECK(lm_cpu_weights_init(&cpu_w, &rm.m, &err) == 0, "cpu weights: %s", err.msg);
    test_backend_fp32(&rm, &b);
    test_admission(&rm, &b);
    test_overlap_switch(&rm, &b);
    test_abandoned_batch(&rm, &b);
    test_topk_path(&rm, &b, LM_PREC_FP16);
    test_topk_path(&rm, &b, LM_PREC_BF16);
    test_sample_path(&rm, &b);
    test_rescore_search(&rm, &b);
    test_wide_beam(&rm, &b);
    test_graph_steps(&rm, &b);
    test_epilogue_steps(&rm, &b);
    test_forced_labels(&rm, &b);
    lm_cpu_weights_free(&cpu_w);
    lm_random_model_free(&rm);
    free(cpu_states);
    free(cpu_logits0);
    return lm_test_summary("test_cuda_backend");
}
