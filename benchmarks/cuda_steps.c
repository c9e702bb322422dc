/*
 * cuda_steps: the CUDA backend's time per step, by CUDA events on its
 * stream, on a random SMaLL-100-shaped model (tests/random_model.c): for each
 * precision and each batch of R rows (R sentences of --src-len tokens,
 * greedy), one encoder batch and --steps decoder steps with the top-k on the
 * device, as a bulk job runs them. Prints a Markdown table: ms per encoder
 * batch, ms per decoder step (the first step left out: cuBLAS picks its
 * algorithms then), target tokens/s (R x steps over the decoder's time) and
 * the host's wall time per step beside the events' (the difference is the
 * host's share: launches, the search's copy back), and beside each time the
 * step model's prediction for it (benchmarks/step_model.h; scaled to the
 * layers asked for, at the steps' mean cache length), so the first GPU run
 * checks the model. Each batch runs three times: as the backend runs by
 * default (the step replayed from CUDA graphs, biases and ReLU in the
 * products' cuBLASLt epilogues), launched kernel by kernel (graphs off),
 * and with the biases and ReLU as kernels (epilogues off), each beside its
 * prediction.
 *
 *   build/cuda_steps [--rows 32,256,1280] [--precisions fp32,fp16,bf16]
 *                    [--steps 32] [--src-len 20] [--layers 12,3]
 *
 * scripts/gpu-check.sh runs it on a GPU; tests/cuda_emu/run_tests.sh runs a
 * small one on the emulator (its times mean nothing there).
 */
#include "backend/backend.h"
#include "config/engine_config.h"
#include "cuda/cuda_check.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_device.h"
#include "tests/random_model.h"
#include "benchmarks/step_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    double encode_ms, step_ms, step_wall_ms, tokens_per_s;
} timing;

/* Host buffers and events for batches of up to `rows` rows, made once. */
typedef struct {
    int32_t *tokens, *lens, *row_sentence, *feed, *start, *ids, *parent;
    float *vals;
    cudaEvent_t ev[4];
} work;

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

/* Device milliseconds between two events recorded on the backend's stream. */
static int elapsed(cudaEvent_t a, cudaEvent_t b, double *ms, lm_err *err) {
    float f = 0;
    CUDA_TRY(cudaEventSynchronize(b));
    CUDA_TRY(cudaEventElapsedTime(&f, a, b));
    *ms = f;
    return 0;
}

/* One batch of `rows` sentences through the backend: the encoder, then
 * steps + 1 greedy steps, each fed the tokens the last one chose. */
static int run_batch(lm_backend *be, work *w, int rows, int src_len, int steps, int vocab, timing *t, lm_err *err) {
    cudaStream_t s = lm_cuda_backend_weights(be).stream;
    uint32_t x = 12345;
    for (int i = 0; i < rows * src_len; i++) w->tokens[i] = 4 + (int32_t)(((x = x * 1103515245u + 12345u) >> 8) % (uint32_t)(vocab - 104));
    for (int r = 0; r < rows; r++) {
        w->lens[r] = src_len;
        w->row_sentence[r] = r;
        w->feed[r] = 2; /* the decoder start */
        w->start[r + 1] = 0;
    }
    lm_topk_request req = {1, true, 1.0f, NULL, w->start};
    /* the encoder runs on a stream of its own, issued by decode_start, whose
     * stream (the one timed) then waits for it */
    CUDA_TRY(cudaEventRecord(w->ev[0], s));
    if (be->ops->encode(be, w->tokens, w->lens, rows, err) != 0 || be->ops->decode_start(be, w->row_sentence, rows, steps + 1, err) != 0)
        return -1;
    CUDA_TRY(cudaEventRecord(w->ev[1], s));
    if (elapsed(w->ev[0], w->ev[1], &t->encode_ms, err) != 0) return -1;
    double wall = 0;
    for (int step = 0; step <= steps; step++) {
        if (step == 1) { /* the first step (cuBLAS's choices) left out */
            CUDA_TRY(cudaEventRecord(w->ev[2], s));
            wall = now_ms();
        }
        if (be->ops->decode_step_topk(be, w->feed, step, &req, w->ids, w->vals, err) != 0) return -1;
        memcpy(w->feed, w->ids, sizeof(int32_t) * rows);
    }
    CUDA_TRY(cudaEventRecord(w->ev[3], s));
    if (elapsed(w->ev[2], w->ev[3], &t->step_ms, err) != 0) return -1;
    t->step_wall_ms = (now_ms() - wall) / steps;
    t->step_ms /= steps;
    t->tokens_per_s = rows / (t->step_ms / 1e3);
    return 0;
}

static double median3(double a, double b, double c) {
    double lo = a < b ? a : b, hi = a < b ? b : a;
    return c < lo ? lo : c > hi ? hi : c;
}

/* An admission in flight, as the search runs one (lm_sm_admission_us): rows
 * sentences decoding, rows/8 of them leave; then, timed, rows/8 more are
 * encoded (encode_more) while the others take a step, join (a reorder,
 * which waits for their encoder) and every row takes a step. Wall ms. */
static int run_admission(lm_backend *be, work *w, int rows, double *ms, lm_err *err) {
    int g = rows / 8 > 1 ? rows / 8 : 1, run = rows - g;
    lm_topk_request req = {1, true, 1.0f, NULL, w->start};
    for (int r = 0; r < rows; r++) w->feed[r] = 2;
    if (be->ops->encode(be, w->tokens, w->lens, rows, err) != 0 || be->ops->decode_start(be, w->row_sentence, rows, 3, err) != 0 ||
        be->ops->decode_step_topk(be, w->feed, 0, &req, w->ids, w->vals, err) != 0)
        return -1;
    for (int r = 0; r < run; r++) w->parent[r] = r;
    if (be->ops->reorder(be, w->parent, w->row_sentence, run, err) != 0) return -1;
    double t0 = now_ms();
    if (be->ops->encode_more(be, w->tokens, w->lens, g, err) != 0 || be->ops->decode_step_topk(be, w->ids, 1, &req, w->ids, w->vals, err) != 0)
        return -1;
    for (int r = run; r < rows; r++) {
        w->parent[r] = -1;
        w->row_sentence[r] = rows + r - run; /* the sentences just encoded */
        w->ids[r] = 2;
    }
    if (be->ops->reorder(be, w->parent, w->row_sentence, rows, err) != 0 ||
        be->ops->decode_step_topk(be, w->ids, 2, &req, w->ids, w->vals, err) != 0)
        return -1;
    *ms = now_ms() - t0;
    for (int r = 0; r < rows; r++) w->row_sentence[r] = r;
    return 0;
}

static void free_work(work *w) {
    free(w->tokens); free(w->lens); free(w->row_sentence); free(w->feed); free(w->start); free(w->ids); free(w->vals); free(w->parent);
    for (int i = 0; i < 4; i++)
        if (w->ev[i]) cudaEventDestroy(w->ev[i]);
}

static int make_work(work *w, int rows, int src_len, lm_err *err) {
    w->tokens = lm_malloc(sizeof(int32_t) * rows * src_len, err);
    w->lens = lm_malloc(sizeof(int32_t) * rows, err);
    w->row_sentence = lm_malloc(sizeof(int32_t) * rows, err);
    w->feed = lm_malloc(sizeof(int32_t) * rows, err);
    w->start = lm_calloc((size_t)rows + 1, sizeof(int32_t), err);
    w->ids = lm_malloc(sizeof(int32_t) * rows, err);
    w->vals = lm_malloc(sizeof(float) * rows, err);
    w->parent = lm_malloc(sizeof(int32_t) * rows, err);
    if (!w->tokens || !w->lens || !w->row_sentence || !w->feed || !w->start || !w->ids || !w->vals || !w->parent) return -1;
    for (int i = 0; i < 4; i++) CUDA_TRY(cudaEventCreate(&w->ev[i]));
    return 0;
}

/* "a,b,c" into at most cap ints; the count, or -1. */
static int int_list(const char *s, int *out, int cap) {
    int n = 0;
    for (char *end; *s && n < cap; s = *end ? end + 1 : end) {
        out[n++] = (int)strtol(s, &end, 10);
        if (end == s || out[n - 1] <= 0 || (*end && *end != ',')) return -1;
    }
    return *s ? -1 : n;
}

int main(int argc, char **argv) {
    int rows[8], n_rows = int_list("32,256,1280", rows, 8), steps = 32, src_len = 20, layers[2] = {12, 3};
    const char *precisions = "fp32,fp16,bf16";
    for (int i = 1; i + 1 < argc; i += 2) {
        bool ok = true;
        if (!strcmp(argv[i], "--rows")) ok = (n_rows = int_list(argv[i + 1], rows, 8)) > 0;
        else if (!strcmp(argv[i], "--precisions")) precisions = argv[i + 1];
        else if (!strcmp(argv[i], "--steps")) ok = (steps = atoi(argv[i + 1])) > 0;
        else if (!strcmp(argv[i], "--src-len")) ok = (src_len = atoi(argv[i + 1])) > 0;
        else if (!strcmp(argv[i], "--layers")) ok = int_list(argv[i + 1], layers, 2) == 2;
        else ok = false;
        if (!ok) {
            fprintf(stderr, "cuda_steps: bad option %s %s (see benchmarks/cuda_steps.c)\n", argv[i], argv[i + 1]);
            return 2;
        }
    }
    if (argc % 2 == 0) {
        fprintf(stderr, "cuda_steps: options come in pairs (see benchmarks/cuda_steps.c)\n");
        return 2;
    }
    lm_random_model rm;
    if (lm_random_model_make(&rm, layers[0], layers[1]) != 0) {
        fprintf(stderr, "cuda_steps: out of memory making the model\n");
        return 1;
    }
    int most = 0;
    for (int i = 0; i < n_rows; i++) most = rows[i] > most ? rows[i] : most;
    printf("SMaLL-100-shaped random model (%d + %d layers, d_model 1024, vocabulary 128,112), %d-token sentences, greedy, "
           "%d decoder steps timed after the first\n\n",
           layers[0], layers[1], src_len, steps);
    printf("| precision | rows | encoder batch (ms) | predicted | decoder step (ms) | predicted | without graphs (ms) | predicted "
           "| without epilogues: encoder (ms) | predicted | step (ms) | predicted | host wall per step (ms) | target tokens/s | predicted |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    fflush(stdout);
    int status = 0;
    char admissions[4096] = ""; /* the second table's rows, printed at the end */
    size_t adm_len = 0;
    work w = {0};
    lm_err err;
    if (make_work(&w, most, src_len, &err) != 0) {
        fprintf(stderr, "cuda_steps: %s\n", err.msg);
        return 1;
    }
    for (const char *p = precisions; *p;) {
        char name[16];
        size_t len = strcspn(p, ",");
        snprintf(name, sizeof name, "%.*s", (int)len, p);
        p += len + (p[len] == ',');
        int prec = !strcmp(name, "fp16") ? LM_PREC_FP16 : !strcmp(name, "bf16") ? LM_PREC_BF16 : !strcmp(name, "fp32") ? LM_PREC_FP32 : -1;
        lm_backend *be = prec < 0 ? NULL : lm_cuda_backend_create(&rm.m, prec, most * src_len, &err);
        if (!be) {
            fprintf(stderr, "cuda_steps: %s: %s\n", name, prec < 0 ? "expected fp32, fp16 or bf16" : err.msg);
            status = 1;
            continue;
        }
        /* the step model's shape at the layers asked for, and this precision's element size */
        lm_sm_shape shape = LM_SM_SMALL100;
        shape.enc_layers = layers[0];
        shape.dec_layers = layers[1];
        int es = prec == LM_PREC_FP32 ? 4 : 2;
        timing t;
        bool ok = run_batch(be, &w, rows[0], src_len, 2, rm.m.cfg.model.vocab_size, &t, &err) == 0; /* warm-up, not shown */
        for (int i = 0; i < n_rows && ok; i++) {
            timing plain, no_ep;
            lm_cuda_backend_set_graphs(be, false);
            ok = run_batch(be, &w, rows[i], src_len, steps, rm.m.cfg.model.vocab_size, &plain, &err) == 0;
            lm_cuda_backend_set_graphs(be, true);
            lm_cuda_backend_set_epilogues(be, false);
            if (ok) ok = run_batch(be, &w, rows[i], src_len, steps, rm.m.cfg.model.vocab_size, &no_ep, &err) == 0;
            lm_cuda_backend_set_epilogues(be, true);
            if (ok) ok = run_batch(be, &w, rows[i], src_len, steps, rm.m.cfg.model.vocab_size, &t, &err) == 0;
            if (ok) {
                lm_sm_pred pred, pred_plain, pred_no_ep;
                lm_sm_decoder_step(shape, rows[i], steps / 2.0, src_len, es, LM_SM_GRAPHS | LM_SM_EPILOGUES, &pred);
                lm_sm_decoder_step(shape, rows[i], steps / 2.0, src_len, es, LM_SM_EPILOGUES, &pred_plain);
                lm_sm_decoder_step(shape, rows[i], steps / 2.0, src_len, es, LM_SM_GRAPHS, &pred_no_ep);
                double enc_ms = lm_sm_encoder_batch_us(shape, rows[i], src_len, es, LM_SM_EPILOGUES) / 1e3;
                double enc_no_ep_ms = lm_sm_encoder_batch_us(shape, rows[i], src_len, es, 0) / 1e3;
                printf("| %s | %d | %.2f | %.2f | %.3f | %.3f | %.3f | %.3f | %.2f | %.2f | %.3f | %.3f | %.3f | %.0f | %.0f |\n", name, rows[i],
                       t.encode_ms, enc_ms, t.step_ms, pred.total_us / 1e3, plain.step_ms, pred_plain.total_us / 1e3, no_ep.encode_ms, enc_no_ep_ms,
                       no_ep.step_ms, pred_no_ep.total_us / 1e3, t.step_wall_ms, t.tokens_per_s, rows[i] / pred.total_us * 1e6);
            }
            double adm[2] = {0}; /* in line, overlapped: the median of three, after one to size the buffers */
            for (int o = 0; o < 2 && ok; o++) {
                double runs[4];
                lm_cuda_backend_set_overlap(be, o);
                for (int k = 0; k < 4 && ok; k++) ok = run_admission(be, &w, rows[i], &runs[k], &err) == 0;
                if (ok) adm[o] = median3(runs[1], runs[2], runs[3]);
            }
            lm_cuda_backend_set_overlap(be, true);
            if (ok && adm_len < sizeof admissions) {
                adm_len += (size_t)snprintf(admissions + adm_len, sizeof admissions - adm_len, "| %s | %d | %.3f | %.3f | %.3f | %.3f |\n", name,
                                            rows[i], adm[0], lm_sm_admission_us(shape, rows[i], 1, src_len, es, 0) / 1e3, adm[1],
                                            lm_sm_admission_us(shape, rows[i], 1, src_len, es, 1) / 1e3);
            }
            fflush(stdout); /* each row as it is measured: a run cut short keeps what it did */
        }
        if (!ok) {
            fprintf(stderr, "cuda_steps: %s: %s\n", name, err.msg);
            status = 1;
        }
        be->ops->destroy(be);
    }
    printf("\nAn admission in flight: rows/8 sentences encoded while the others take a step, then every row a step (wall ms, median of "
           "three; benchmarks/step_model.h's lm_sm_admission_us)\n\n");
    printf("| precision | rows | encoder in line (ms) | predicted | encoder beside the step (ms) | predicted |\n|---|---:|---:|---:|---:|---:|\n%s",
           admissions);
    free_work(&w);
    lm_random_model_free(&rm);
    return status;
}
