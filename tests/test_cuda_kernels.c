/*
 * test_cuda_kernels: every CUDA kernel against a CPU reference on fresh random
 * inputs: odd sizes, rows with no keys, edits and ties, each precision with its
 * own tolerance. Skips with one line when there is no GPU.
 *
 * Tolerances (max |gpu - cpu| / (|cpu| + rms(cpu))): fp32 1e-5 (only the
 * summation order differs); results stored in fp16 1e-3 and in bf16 8e-3 (one
 * rounding of the stored value: 2^-11 and 2^-8 relative).
 */
#include "kernels.h"
#include "logits.h"
#include "testing.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static unsigned rng_state = 12345;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 1103515245u + 12345u;
    return (float)((rng_state >> 8) & 0xffff) / 32768.0f - 1.0f;
}
static void fill(float *x, size_t n, float scale) { for (size_t i = 0; i < n; i++) x[i] = frand() * scale; }

static double tolerance(int dtype) { return dtype == LM_K_F32 ? 1e-5 : dtype == LM_K_F16 ? 1e-3 : 8e-3; }
static const char *dtype_name(int dtype) { return dtype == LM_K_F32 ? "fp32" : dtype == LM_K_F16 ? "fp16" : "bf16"; }

static double max_rel_err(const float *got, const float *want, size_t n) {
    double rms = 0, worst = 0;
    for (size_t i = 0; i < n; i++) rms += (double)want[i] * want[i];
    rms = sqrt(rms / (n ? n : 1)) + 1e-30;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]) / (fabs(want[i]) + rms);
        if (!(e <= worst)) worst = e; /* NaN counts as the worst */
    }
    return worst;
}

/* ---- device helpers ---- */

static void *to_device(const void *host, size_t bytes) {
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 4) != cudaSuccess) return NULL;
    if (bytes) cudaMemcpy(p, host, bytes, cudaMemcpyHostToDevice);
    return p;
}

/* n floats from the device. */
static void from_device(float *host, const void *dev, size_t n) { cudaMemcpy(host, dev, n * sizeof(float), cudaMemcpyDeviceToHost); }

/* One stored fp16 or bf16 value as a float. */
static float half_bits_to_float(uint16_t h, int dtype) {
    if (dtype == LM_K_BF16) {
        uint32_t u = (uint32_t)h << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    return lm_f16_to_f32(h);
}

static void dtype_to_host(float *host, const void *dev, size_t n, int dtype) {
    if (dtype == LM_K_F32) { from_device(host, dev, n); return; }
    uint16_t *tmp = malloc(n * sizeof *tmp);
    cudaMemcpy(tmp, dev, n * sizeof *tmp, cudaMemcpyDeviceToHost);
    for (size_t i = 0; i < n; i++) host[i] = half_bits_to_float(tmp[i], dtype);
    free(tmp);
}

#define KCHECK(call, what) CHECK((call) == 0 && cudaDeviceSynchronize() == cudaSuccess, "%s: launch failed: %s", what, msg)

/* ---- CPU references ---- */

static void ref_layernorm(float *x, const float *y, const float *bias, const float *g, const float *b, float *out, int n, int d) {
    for (int i = 0; i < n; i++) {
        float *xi = x + (size_t)i * d;
        if (y)
            for (int j = 0; j < d; j++) xi[j] += y[(size_t)i * d + j] + (bias ? bias[j] : 0);
        double mean = 0, var = 0;
        for (int j = 0; j < d; j++) mean += xi[j];
        mean /= d;
        for (int j = 0; j < d; j++) var += (xi[j] - mean) * (xi[j] - mean);
        var /= d;
        double rstd = 1.0 / sqrt(var + 1e-5);
        for (int j = 0; j < d; j++) out[(size_t)i * d + j] = (float)((xi[j] - mean) * rstd * g[j] + b[j]);
    }
}

static void ref_attention(const float *q, const float *k, const float *v, const int32_t *start, const int32_t *len, float *out,
                          int rows, int heads, int hd, int d) {
    double *s = malloc(sizeof(double) * 4096);
    for (int i = 0; i < rows; i++)
        for (int h = 0; h < heads; h++) {
            const float *qi = q + (size_t)i * d + h * hd;
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < len[i]; j++) {
                const float *kj = k + (size_t)(start[i] + j) * d + h * hd;
                double dot = 0;
                for (int c = 0; c < hd; c++) dot += (double)qi[c] * kj[c];
                s[j] = dot;
                mx = dot > mx ? dot : mx;
            }
            for (int j = 0; j < len[i]; j++) sum += (s[j] = exp(s[j] - mx));
            for (int c = 0; c < hd; c++) {
                double acc = 0;
                for (int j = 0; j < len[i]; j++) acc += s[j] * v[(size_t)(start[i] + j) * d + h * hd + c];
                out[(size_t)i * d + h * hd + c] = len[i] ? (float)(acc / sum) : 0.0f; /* no keys: zeros */
            }
        }
    free(s);
}

/* ---- tests ---- */

static void test_embed(int dtype) {
    const char *msg = "";
    int V = 37, d = 24, n = 13, P = 40;
    float *table = malloc(sizeof(float) * V * d), *pos = malloc(sizeof(float) * P * d), *want = malloc(sizeof(float) * n * d),
          *got = malloc(sizeof(float) * n * d), *rounded = malloc(sizeof(float) * V * d);
    int32_t tok[13], p[13];
    fill(table, (size_t)V * d, 1);
    fill(pos, (size_t)P * d, 1);
    for (int i = 0; i < n; i++) { tok[i] = (i * 7) % V; p[i] = (i * 3) % (P - 2); }
    float *d_src = to_device(table, sizeof(float) * V * d);
    void *d_table = NULL;
    cudaMalloc(&d_table, sizeof(float) * V * d);
    KCHECK(lm_k_convert(d_src, d_table, dtype, (size_t)V * d, 0, &msg), "convert");
    dtype_to_host(rounded, d_table, (size_t)V * d, dtype);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) want[i * d + j] = rounded[tok[i] * d + j] * 1.5f + pos[(p[i] + 2) * d + j];
    float *d_pos = to_device(pos, sizeof(float) * P * d), *d_x = NULL;
    int32_t *d_tok = to_device(tok, sizeof tok), *d_p = to_device(p, sizeof p);
    cudaMalloc((void **)&d_x, sizeof(float) * n * d);
    KCHECK(lm_k_embed(d_x, d_table, dtype, d_pos, d_tok, d_p, n, d, 1.5f, 0, &msg), "embed");
    from_device(got, d_x, (size_t)n * d);
    CHECK(max_rel_err(got, want, (size_t)n * d) < 1e-6, "embed %s: differs from the reference", dtype_name(dtype));
    CHECK(max_rel_err(rounded, table, (size_t)V * d) < tolerance(dtype), "convert %s: rounding beyond one ulp", dtype_name(dtype));
    cudaFree(d_src); cudaFree(d_table); cudaFree(d_pos); cudaFree(d_x); cudaFree(d_tok); cudaFree(d_p);
    free(table); free(pos); free(want); free(got); free(rounded);
}

static void test_layernorm(int dtype, int n, int d, bool with_residual) {
    const char *msg = "";
    size_t nd = (size_t)n * d;
    float *x = malloc(sizeof(float) * nd), *y = malloc(sizeof(float) * nd), *bias = malloc(sizeof(float) * d),
          *g = malloc(sizeof(float) * d), *b = malloc(sizeof(float) * d), *want = malloc(sizeof(float) * nd),
          *got = malloc(sizeof(float) * nd), *gx = malloc(sizeof(float) * nd);
    fill(x, nd, 3); fill(y, nd, 1); fill(bias, d, 1); fill(g, d, 1); fill(b, d, 1);
    float *d_x = to_device(x, sizeof(float) * nd), *d_y = to_device(y, sizeof(float) * nd), *d_bias = to_device(bias, sizeof(float) * d),
          *d_g = to_device(g, sizeof(float) * d), *d_b = to_device(b, sizeof(float) * d);
    void *d_out = NULL;
    cudaMalloc(&d_out, sizeof(float) * nd);
    ref_layernorm(x, with_residual ? y : NULL, bias, g, b, want, n, d);
    KCHECK(lm_k_add_layernorm(d_x, with_residual ? d_y : NULL, d_bias, d_g, d_b, d_out, dtype, n, d, 0, &msg), "add_layernorm");
    dtype_to_host(got, d_out, nd, dtype);
    from_device(gx, d_x, nd);
    CHECK(max_rel_err(got, want, nd) < tolerance(dtype) + 1e-5, "add_layernorm %s n=%d d=%d: output differs by %g", dtype_name(dtype), n,
          d, max_rel_err(got, want, nd));
    CHECK(max_rel_err(gx, x, nd) < 1e-6, "add_layernorm n=%d d=%d: residual stream differs", n, d);
    cudaFree(d_x); cudaFree(d_y); cudaFree(d_bias); cudaFree(d_g); cudaFree(d_b); cudaFree(d_out);
    free(x); free(y); free(bias); free(g); free(b); free(want); free(got); free(gx);
}

static void test_bias_act(int dtype, int act) {
    const char *msg = "";
    int n = 7, cols = 45, ld = 61; /* written with a row stride, as into the KV cache */
    float *y = malloc(sizeof(float) * n * cols), *bias = malloc(sizeof(float) * cols), *want = calloc((size_t)n * ld, sizeof(float)),
          *got = malloc(sizeof(float) * n * ld);
    fill(y, (size_t)n * cols, 2);
    fill(bias, cols, 1);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < cols; j++) {
            float v = y[i * cols + j] + bias[j];
            if (act == LM_K_ACT_RELU) v = v > 0 ? v : 0;
            if (act == LM_K_ACT_GELU) v = 0.5f * v * (1.0f + erff(v * (float)M_SQRT1_2));
            want[i * ld + j] = v * 0.25f;
        }
    float *d_y = to_device(y, sizeof(float) * n * cols), *d_bias = to_device(bias, sizeof(float) * cols);
    void *d_out = NULL;
    cudaMalloc(&d_out, sizeof(float) * n * ld);
    cudaMemset(d_out, 0, sizeof(float) * n * ld);
    KCHECK(lm_k_bias_act(d_y, d_bias, d_out, dtype, (size_t)ld, n, cols, act, 0.25f, 0, &msg), "bias_act");
    dtype_to_host(got, d_out, (size_t)n * ld, dtype);
    CHECK(max_rel_err(got, want, (size_t)n * ld) < tolerance(dtype) + 1e-6, "bias_act %s act=%d differs", dtype_name(dtype), act);
    cudaFree(d_y); cudaFree(d_bias); cudaFree(d_out);
    free(y); free(bias); free(want); free(got);
}

static void test_attention(int dtype, int heads, int hd) {
    const char *msg = "";
    int d = heads * hd, rows = 9, keys = 40;
    /* packed sentences of odd lengths, a decoder-like row over a long cache, and a row with no keys */
    int32_t start[9] = {0, 0, 0, 3, 3, 10, 17, 0, 5}, len[9] = {3, 3, 3, 7, 7, 7, 23, 0, 1};
    float *q = malloc(sizeof(float) * rows * d), *k = malloc(sizeof(float) * keys * d), *v = malloc(sizeof(float) * keys * d),
          *want = malloc(sizeof(float) * rows * d), *got = malloc(sizeof(float) * rows * d);
    fill(q, (size_t)rows * d, 1); fill(k, (size_t)keys * d, 1); fill(v, (size_t)keys * d, 1);
    ref_attention(q, k, v, start, len, want, rows, heads, hd, d);
    float *d_q = to_device(q, sizeof(float) * rows * d), *d_k = to_device(k, sizeof(float) * keys * d),
          *d_v = to_device(v, sizeof(float) * keys * d);
    int32_t *d_start = to_device(start, sizeof start), *d_len = to_device(len, sizeof len);
    void *d_out = NULL;
    cudaMalloc(&d_out, sizeof(float) * rows * d);
    KCHECK(lm_k_attention(d_q, d, d_k, d_v, d, d_start, d_len, d_out, dtype, d, rows, heads, hd, 0, &msg), "attention");
    dtype_to_host(got, d_out, (size_t)rows * d, dtype);
    CHECK(max_rel_err(got, want, (size_t)rows * d) < tolerance(dtype) + 1e-5, "attention %s heads=%d hd=%d differs by %g", dtype_name(dtype),
          heads, hd, max_rel_err(got, want, (size_t)rows * d));
    bool zeros = true;
    for (int c = 0; c < d; c++) zeros &= got[7 * d + c] == 0.0f;
    CHECK(zeros, "attention: a row with no keys gives zeros");
    cudaFree(d_q); cudaFree(d_k); cudaFree(d_v); cudaFree(d_start); cudaFree(d_len); cudaFree(d_out);
    free(q); free(k); free(v); free(want); free(got);
}

static void test_gather_rows(void) {
    const char *msg = "";
    int rows = 5;
    size_t stride = 33, used = 20;
    int32_t parent[5] = {2, 2, 0, 4, 1};
    float *src = malloc(sizeof(float) * rows * stride), *got = malloc(sizeof(float) * rows * stride);
    fill(src, rows * stride, 1);
    float *d_src = to_device(src, sizeof(float) * rows * stride), *d_dst = NULL;
    cudaMalloc((void **)&d_dst, sizeof(float) * rows * stride);
    int32_t *d_parent = to_device(parent, sizeof parent);
    KCHECK(lm_k_gather_rows(d_dst, d_src, d_parent, rows, stride, used, 0, &msg), "gather_rows");
    from_device(got, d_dst, rows * stride);
    bool same = true;
    for (int r = 0; r < rows; r++) same &= memcmp(got + r * stride, src + parent[r] * stride, used * sizeof(float)) == 0;
    CHECK(same, "gather_rows: rows copied from their parents");
    cudaFree(d_src); cudaFree(d_dst); cudaFree(d_parent);
    free(src); free(got);
}

/* Device top-k against the host's lm_logprob_topk / lm_greedy_pick: the same
 * tokens, values within fp32 rounding (the sums run in another order). */
static void test_logprob_topk(int V, int k, bool greedy) {
    const char *msg = "";
    int rows = 6;
    float *x = malloc(sizeof(float) * rows * V), *row = malloc(sizeof(float) * V);
    for (int i = 0; i < rows * V; i++) x[i] = (float)((int)(frand() * 40)) * 0.25f; /* coarse values: ties */
    lm_edit edits[64];
    int32_t start[7] = {0};
    int n = 0;
    for (int r = 0; r < rows; r++) { /* row 0 no edits; others penalties and bans, one token twice */
        for (int e = 0; e < r * 2; e++) edits[n++] = (lm_edit){(r * 31 + e * 17) % V, e % 3 == 2 ? LM_EDIT_BAN : LM_EDIT_PENALIZE};
        if (r == 5) edits[n++] = (lm_edit){(r * 31) % V, LM_EDIT_BAN};
        start[r + 1] = n;
    }
    int32_t *want_ids = malloc(sizeof(int32_t) * rows * k), *got_ids = malloc(sizeof(int32_t) * rows * k);
    float *want_vals = malloc(sizeof(float) * rows * k), *got_vals = malloc(sizeof(float) * rows * k);
    for (int r = 0; r < rows; r++) {
        memcpy(row, x + (size_t)r * V, sizeof(float) * V);
        if (greedy) lm_greedy_pick(row, V, edits + start[r], start[r + 1] - start[r], 1.3f, &want_ids[r], &want_vals[r]);
        else lm_logprob_topk(row, V, edits + start[r], start[r + 1] - start[r], 1.3f, k, want_ids + r * k, want_vals + r * k);
    }
    float *d_x = to_device(x, sizeof(float) * rows * V), *d_vals = NULL;
    int32_t *d_edits = to_device(edits, sizeof(lm_edit) * n), *d_start = to_device(start, sizeof start), *d_ids = NULL;
    cudaMalloc((void **)&d_ids, sizeof(int32_t) * rows * k);
    cudaMalloc((void **)&d_vals, sizeof(float) * rows * k);
    KCHECK(lm_k_logprob_topk(d_x, rows, V, d_edits, d_start, 1.3f, k, greedy, d_ids, d_vals, 0, &msg), "logprob_topk");
    cudaMemcpy(got_ids, d_ids, sizeof(int32_t) * rows * k, cudaMemcpyDeviceToHost);
    from_device(got_vals, d_vals, (size_t)rows * k);
    /* -inf entries compare equal; finite ones within 1e-5 */
    bool same_ids = memcmp(got_ids, want_ids, sizeof(int32_t) * rows * k) == 0, close = true;
    for (int i = 0; i < rows * k; i++)
        if (!(got_vals[i] == want_vals[i]) && !(fabsf(got_vals[i] - want_vals[i]) <= 1e-5f * (1 + fabsf(want_vals[i])))) close = false;
    CHECK(same_ids, "logprob_topk V=%d k=%d greedy=%d: tokens differ from the host's", V, k, greedy);
    CHECK(close, "logprob_topk V=%d k=%d greedy=%d: values differ from the host's", V, k, greedy);
    cudaFree(d_x); cudaFree(d_vals); cudaFree(d_edits); cudaFree(d_start); cudaFree(d_ids);
    free(x); free(row); free(want_ids); free(got_ids); free(want_vals); free(got_vals);
}

int main(void) {
    int devices = 0;
    cudaError_t e = cudaGetDeviceCount(&devices);
    if (e != cudaSuccess || devices == 0) {
        printf("test_cuda_kernels: skipped, no CUDA GPU (%s)\n", e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        return lm_test_summary("test_cuda_kernels");
    }
    for (int dtype = LM_K_F32; dtype <= LM_K_BF16; dtype++) {
        test_embed(dtype);
        test_layernorm(dtype, 5, 1024, true);
        test_layernorm(dtype, 3, 37, false);
        test_layernorm(dtype, 1, 1, true);
        for (int act = LM_K_ACT_NONE; act <= LM_K_ACT_GELU; act++) test_bias_act(dtype, act);
        test_attention(dtype, 16, 64);
        test_attention(dtype, 3, 40);
        test_attention(dtype, 1, 7);
    }
    test_gather_rows();
    test_logprob_topk(128112, 10, false);
    test_logprob_topk(1001, 16, false);
    test_logprob_topk(7, 3, false);
    test_logprob_topk(5, 16, false); /* fewer tokens than k: padding like the host */
    test_logprob_topk(128112, 1, true);
    test_logprob_topk(333, 1, true);
    return lm_test_summary("test_cuda_kernels");
}
