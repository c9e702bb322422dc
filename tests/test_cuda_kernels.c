/*
 * test_cuda_kernels: every CUDA kernel against a CPU reference on fresh random
 * inputs: odd sizes, rows with no keys, edits and ties, each precision with its
 * own tolerance. Skips with one line when there is no GPU.
 *
 * Tolerances (max |gpu - cpu| / (|cpu| + rms(cpu))): fp32 1e-5 (only the
 * summation order differs); results stored in fp16 1e-3 and in bf16 8e-3 (one
 * rounding of the stored value: 2^-11 and 2^-8 relative).
 */
#include "kernels/kernels.h"
#include "backend/logits.h"
#include "backend/sample.h"
#include "testing.h"
#include "cuda_testing.h"

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
static size_t dtype_size(int dtype) { return dtype == LM_K_F32 ? 4 : 2; }
static const char *dtype_name(int dtype) { return dtype == LM_K_F32 ? "fp32" : dtype == LM_K_F16 ? "fp16" : "bf16"; }

/* ---- device helpers ----
 * Everything runs as the backend runs it: on a non-blocking stream (not
 * ordered after the legacy default stream), copies with cudaMemcpyAsync from
 * pageable memory, no device-wide synchronisation; results are read after
 * waiting for that stream only. */

static cudaStream_t stream;

static void *to_device(const void *host, size_t bytes) {
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 4) != cudaSuccess) return NULL;
    if (bytes) cudaMemcpyAsync(p, host, bytes, cudaMemcpyHostToDevice, stream);
    return p;
}

static void *device_zeros(size_t bytes) {
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 4) != cudaSuccess) return NULL;
    cudaMemsetAsync(p, 0, bytes ? bytes : 4, stream);
    return p;
}

static void bytes_from_device(void *host, const void *dev, size_t bytes) {
    cudaMemcpyAsync(host, dev, bytes, cudaMemcpyDeviceToHost, stream);
    cudaStreamSynchronize(stream);
}

/* n floats from the device. */
static void from_device(float *host, const void *dev, size_t n) { bytes_from_device(host, dev, n * sizeof(float)); }

static void dtype_to_host(float *host, const void *dev, size_t n, int dtype) {
    if (dtype == LM_K_F32) { from_device(host, dev, n); return; }
    uint16_t *tmp = malloc(n * sizeof *tmp);
    bytes_from_device(tmp, dev, n * sizeof *tmp);
    for (size_t i = 0; i < n; i++) host[i] = lm_half_bits_to_float(tmp[i], dtype);
    free(tmp);
}

/* n floats onto the device as dtype (through lm_k_convert, tested in
 * test_embed); rounded gets the values the device holds. */
static void *to_device_as(const float *x, size_t n, int dtype, float *rounded) {
    const char *msg = "";
    float *d_src = to_device(x, sizeof(float) * n);
    void *d = device_zeros(dtype_size(dtype) * n);
    if (lm_k_convert(d_src, d, dtype, n, stream, &msg) != 0) return NULL;
    dtype_to_host(rounded, d, n, dtype);
    cudaFree(d_src);
    return d;
}

#define KCHECK(call, what) CHECK((call) == 0 && cudaStreamSynchronize(stream) == cudaSuccess, "%s: launch failed: %s (%s)", what, msg, \
                                 cudaGetErrorString(cudaGetLastError()))

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

static void test_embed(int dtype, int V, int d, int n) {
    const char *msg = "";
    int P = 40;
    float *table = malloc(sizeof(float) * V * d), *pos = malloc(sizeof(float) * P * d), *want = malloc(sizeof(float) * n * d),
          *got = malloc(sizeof(float) * n * d), *rounded = malloc(sizeof(float) * V * d);
    int32_t *tok = malloc(sizeof(int32_t) * n), *p = malloc(sizeof(int32_t) * n);
    fill(table, (size_t)V * d, 1);
    fill(pos, (size_t)P * d, 1);
    for (int i = 0; i < n; i++) { tok[i] = (int32_t)(((size_t)i * 7) % V); p[i] = (i * 3) % (P - 2); }
    float *d_src = to_device(table, sizeof(float) * V * d);
    void *d_table = device_zeros(dtype_size(dtype) * V * d);
    KCHECK(lm_k_convert(d_src, d_table, dtype, (size_t)V * d, stream, &msg), "convert");
    dtype_to_host(rounded, d_table, (size_t)V * d, dtype);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) want[(size_t)i * d + j] = rounded[(size_t)tok[i] * d + j] * 1.5f + pos[(size_t)(p[i] + 2) * d + j];
    float *d_pos = to_device(pos, sizeof(float) * P * d), *d_x = device_zeros(sizeof(float) * n * d);
    int32_t *d_tok = to_device(tok, sizeof(int32_t) * n), *d_p = to_device(p, sizeof(int32_t) * n);
    KCHECK(lm_k_embed(d_x, d_table, dtype, d_pos, d_tok, d_p, n, d, 1.5f, stream, &msg), "embed");
    from_device(got, d_x, (size_t)n * d);
    CHECK(lm_max_rel_err(got, want, (size_t)n * d) < 1e-6, "embed %s n=%d: differs from the reference", dtype_name(dtype), n);
    CHECK(lm_max_rel_err(rounded, table, (size_t)V * d) < tolerance(dtype), "convert %s: rounding beyond one ulp", dtype_name(dtype));
    cudaFree(d_src); cudaFree(d_table); cudaFree(d_pos); cudaFree(d_x); cudaFree(d_tok); cudaFree(d_p);
    free(table); free(pos); free(want); free(got); free(rounded); free(tok); free(p);
}

/* convert alone over more elements than 65,535 blocks x 256 threads cover in one pass */
static void test_convert_long(int dtype, size_t n) {
    const char *msg = "";
    float *x = malloc(sizeof(float) * n), *got = malloc(sizeof(float) * n);
    fill(x, n, 4);
    float *d_x = to_device(x, sizeof(float) * n);
    void *d_out = device_zeros(dtype_size(dtype) * n);
    KCHECK(lm_k_convert(d_x, d_out, dtype, n, stream, &msg), "convert");
    dtype_to_host(got, d_out, n, dtype);
    CHECK(lm_max_rel_err(got, x, n) < tolerance(dtype), "convert %s n=%zu: differs (grid-stride tail?)", dtype_name(dtype), n);
    cudaFree(d_x); cudaFree(d_out);
    free(x); free(got);
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
    void *d_out = device_zeros(sizeof(float) * nd);
    ref_layernorm(x, with_residual ? y : NULL, bias, g, b, want, n, d);
    KCHECK(lm_k_add_layernorm(d_x, with_residual ? d_y : NULL, d_bias, d_g, d_b, d_out, dtype, n, d, stream, &msg), "add_layernorm");
    dtype_to_host(got, d_out, nd, dtype);
    from_device(gx, d_x, nd);
    CHECK(lm_max_rel_err(got, want, nd) < tolerance(dtype) + 1e-5, "add_layernorm %s n=%d d=%d: output differs by %g", dtype_name(dtype), n,
          d, lm_max_rel_err(got, want, nd));
    CHECK(lm_max_rel_err(gx, x, nd) < 1e-6, "add_layernorm n=%d d=%d: residual stream differs", n, d);
    cudaFree(d_x); cudaFree(d_y); cudaFree(d_bias); cudaFree(d_g); cudaFree(d_b); cudaFree(d_out);
    free(x); free(y); free(bias); free(g); free(b); free(want); free(got); free(gx);
}

static void test_bias_act(int dtype, int act, int n, int cols, int ld) {
    const char *msg = ""; /* written with a row stride ld >= cols, as into the KV cache */
    size_t nl = (size_t)n * ld;
    float *y = malloc(sizeof(float) * n * cols), *bias = malloc(sizeof(float) * cols), *want = calloc(nl, sizeof(float)),
          *got = malloc(sizeof(float) * nl);
    fill(y, (size_t)n * cols, 2);
    fill(bias, cols, 1);
    for (size_t i = 0; i < (size_t)n; i++)
        for (int j = 0; j < cols; j++) {
            float v = y[i * cols + j] + bias[j];
            if (act == LM_K_ACT_RELU) v = v > 0 ? v : 0;
            if (act == LM_K_ACT_GELU) v = 0.5f * v * (1.0f + erff(v * (float)M_SQRT1_2));
            want[i * ld + j] = v * 0.25f;
        }
    float *d_y = to_device(y, sizeof(float) * n * cols), *d_bias = to_device(bias, sizeof(float) * cols);
    void *d_out = device_zeros(sizeof(float) * nl);
    KCHECK(lm_k_bias_act(d_y, d_bias, d_out, dtype, (size_t)ld, n, cols, act, 0.25f, stream, &msg), "bias_act");
    dtype_to_host(got, d_out, nl, dtype);
    CHECK(lm_max_rel_err(got, want, nl) < tolerance(dtype) + 1e-6, "bias_act %s act=%d n=%d cols=%d differs", dtype_name(dtype), act, n, cols);
    cudaFree(d_y); cudaFree(d_bias); cudaFree(d_out);
    free(y); free(bias); free(want); free(got);
}

/* rows query rows over `keys` key rows: packed sentences of odd lengths, a
 * decoder-like row over a long span, and every 8th row with no keys. */
static void test_attention(int dtype, int kv_dtype, int heads, int hd, int rows, float q_scale) {
    const char *msg = "";
    int d = heads * hd, keys = 40;
    int32_t *start = malloc(sizeof(int32_t) * rows), *len = malloc(sizeof(int32_t) * rows);
    for (int i = 0; i < rows; i++) {
        start[i] = (i * 5) % 17;
        len[i] = i % 8 == 7 ? 0 : i % 8 == 6 ? 23 : 1 + (i * 3) % 7;
    }
    size_t rd = (size_t)rows * d;
    float *q = malloc(sizeof(float) * rd), *k = malloc(sizeof(float) * keys * d), *v = malloc(sizeof(float) * keys * d),
          *want = malloc(sizeof(float) * rd), *got = malloc(sizeof(float) * rd);
    fill(q, rd, 1); fill(k, (size_t)keys * d, 1); fill(v, (size_t)keys * d, 1);
    float *d_q = to_device(q, sizeof(float) * rd);
    for (size_t i = 0; i < rd; i++) q[i] *= q_scale; /* the reference gets q scaled, the kernel scales it */
    void *d_k = to_device_as(k, (size_t)keys * d, kv_dtype, k), *d_v = to_device_as(v, (size_t)keys * d, kv_dtype, v); /* k, v rounded */
    ref_attention(q, k, v, start, len, want, rows, heads, hd, d);
    int32_t *d_start = to_device(start, sizeof(int32_t) * rows), *d_len = to_device(len, sizeof(int32_t) * rows);
    void *d_out = device_zeros(sizeof(float) * rd);
    KCHECK(lm_k_attention(d_q, d, q_scale, d_k, d_v, kv_dtype, d, d_start, d_len, d_out, dtype, d, rows, heads, hd, stream, &msg), "attention");
    dtype_to_host(got, d_out, rd, dtype);
    CHECK(lm_max_rel_err(got, want, rd) < tolerance(dtype) + 1e-5, "attention %s (keys %s) heads=%d hd=%d rows=%d differs by %g",
          dtype_name(dtype), dtype_name(kv_dtype), heads, hd, rows, lm_max_rel_err(got, want, rd));
    bool zeros = true;
    for (int c = 0; c < d; c++) zeros &= got[7 * d + c] == 0.0f;
    CHECK(zeros, "attention: a row with no keys gives zeros");
    cudaFree(d_q); cudaFree(d_k); cudaFree(d_v); cudaFree(d_start); cudaFree(d_len); cudaFree(d_out);
    free(q); free(k); free(v); free(want); free(got); free(start); free(len);
}

/* The KV cache's reorder in place: a beam's forks copied from the slots
 * that stay into free ones (dst_row), each its parent's own length, in one
 * buffer; every other slot untouched. */
static void test_fork_rows(int slots, size_t stride, size_t width, int max_len) {
    const char *msg = "";
    int forks = slots / 3;
    int32_t *parent = malloc(sizeof(int32_t) * (forks + 1)), *dst = malloc(sizeof(int32_t) * (forks + 1)),
            *len = malloc(sizeof(int32_t) * (forks + 1));
    for (int f = 0; f < forks; f++) { /* parents in the first third (twice each where they can), forks into the last third */
        parent[f] = (int32_t)(((size_t)f / 2) % (size_t)(slots / 3 > 0 ? slots / 3 : 1));
        dst[f] = slots - 1 - f;
        len[f] = (f * 5 + 1) % (max_len + 1);
    }
    if (forks) len[0] = max_len;
    size_t n = (size_t)slots * stride;
    float *want = malloc(sizeof(float) * n), *got = malloc(sizeof(float) * n);
    fill(want, n, 1);
    float *d_cache = to_device(want, sizeof(float) * n);
    int32_t *d_parent = to_device(parent, sizeof(int32_t) * forks), *d_dst = to_device(dst, sizeof(int32_t) * forks),
            *d_len = to_device(len, sizeof(int32_t) * forks);
    for (int f = 0; f < forks; f++) memcpy(want + (size_t)dst[f] * stride, want + (size_t)parent[f] * stride, sizeof(float) * len[f] * width);
    KCHECK(lm_k_gather_rows(d_cache, d_cache, d_parent, d_dst, d_len, forks, stride, width, max_len, stream, &msg), "gather_rows (forks)");
    from_device(got, d_cache, n);
    CHECK(memcmp(got, want, sizeof(float) * n) == 0, "gather_rows in place, %d forks of %d slots: the cache differs from the reference", forks,
          slots);
    cudaFree(d_cache); cudaFree(d_parent); cudaFree(d_dst); cudaFree(d_len);
    free(parent); free(dst); free(len); free(want); free(got);
}

/* rows of `stride` floats, tokens of `width`: each row gets its parent's
 * first len tokens, where len is the row's own (per_row: 0 to max_len, as
 * the KV reorder passes) or max_len for all (the encoder's relayout), and
 * nothing past them. */
static void test_gather_rows(int rows, size_t stride, size_t width, int max_len, bool per_row) {
    const char *msg = "";
    if (per_row) test_fork_rows(rows, stride, width, max_len);
    int32_t *parent = malloc(sizeof(int32_t) * rows), *len = malloc(sizeof(int32_t) * rows);
    for (int r = 0; r < rows; r++) {
        parent[r] = (int32_t)(((size_t)r * 7 + 2) % rows); /* repeats and moves */
        len[r] = per_row ? (r * 5 + 1) % (max_len + 1) : max_len;
    }
    parent[0] = rows - 1; /* the last row reaches the first: a row index past 65,535 must land */
    if (rows > 2) parent[rows / 2] = -1; /* a fresh row (in-flight batching): left untouched */
    if (per_row) len[rows - 1] = max_len;
    size_t n = (size_t)rows * stride;
    float *src = malloc(sizeof(float) * n), *got = malloc(sizeof(float) * n);
    fill(src, n, 1);
    float *d_src = to_device(src, sizeof(float) * n), *d_dst = device_zeros(sizeof(float) * n);
    int32_t *d_parent = to_device(parent, sizeof(int32_t) * rows), *d_len = per_row ? to_device(len, sizeof(int32_t) * rows) : NULL;
    KCHECK(lm_k_gather_rows(d_dst, d_src, d_parent, NULL, d_len, rows, stride, width, max_len, stream, &msg), "gather_rows");
    from_device(got, d_dst, n);
    int bad = -1;
    for (int r = 0; r < rows && bad < 0; r++) {
        size_t used = parent[r] < 0 ? 0 : (size_t)len[r] * width;
        if (memcmp(got + r * stride, src + (size_t)(parent[r] < 0 ? 0 : parent[r]) * stride, used * sizeof(float)) != 0) bad = r;
        for (size_t j = used; j < stride && bad < 0; j++)
            if (got[r * stride + j] != 0.0f) bad = r; /* nothing past the row's own tokens written */
    }
    CHECK(bad < 0, "gather_rows rows=%d per_row=%d: row %d not exactly its parent's first %d tokens", rows, per_row, bad,
          bad < 0 ? 0 : len[bad]);
    cudaFree(d_src); cudaFree(d_dst); cudaFree(d_parent); cudaFree(d_len);
    free(src); free(got); free(parent); free(len);
}

/* Each row's new key and value (plus bias) land in dtype at its own
 * position of its own slot (start[r], not r: slots are permuted by the
 * reorder) and nowhere else; y holds K and V side by side (ld_y = 2 cols,
 * the fused product's layout). */
static void test_append_kv(int dtype, int n, int cols, int steps, bool with_bias) {
    const char *msg = "";
    size_t stride = (size_t)steps * cols, nc = (size_t)n * stride, ld = 2 * (size_t)cols;
    int32_t *pos = malloc(sizeof(int32_t) * n), *start = malloc(sizeof(int32_t) * n);
    float *y = malloc(sizeof(float) * n * ld), *bias = malloc(sizeof(float) * 2 * cols), *want_k = malloc(sizeof(float) * nc),
          *want_v = malloc(sizeof(float) * nc), *got = malloc(sizeof(float) * nc);
    fill(y, (size_t)n * ld, 2);
    fill(bias, 2 * (size_t)cols, 1);
    fill(want_k, nc, 1); /* the cache's earlier contents stay */
    fill(want_v, nc, 1);
    for (int r = 0; r < n; r++) { pos[r] = (r * 5 + 3) % steps; start[r] = (n - 1 - r) * steps; }
    void *d_k = to_device_as(want_k, nc, dtype, want_k), *d_v = to_device_as(want_v, nc, dtype, want_v);
    float *d_y = to_device(y, sizeof(float) * n * ld), *d_bias = with_bias ? to_device(bias, sizeof(float) * 2 * cols) : NULL;
    int32_t *d_pos = to_device(pos, sizeof(int32_t) * n), *d_start = to_device(start, sizeof(int32_t) * n);
    for (int r = 0; r < n; r++)
        for (int j = 0; j < cols; j++) {
            size_t at = ((size_t)start[r] + pos[r]) * cols + j;
            want_k[at] = y[r * ld + j] + (with_bias ? bias[j] : 0.0f);
            want_v[at] = y[r * ld + cols + j] + (with_bias ? bias[cols + j] : 0.0f);
        }
    KCHECK(lm_k_append_kv(d_k, d_v, dtype, d_start, d_pos, d_y, d_y + cols, ld, d_bias, with_bias ? d_bias + cols : NULL, n, cols, stream,
                          &msg), "append_kv");
    dtype_to_host(got, d_k, nc, dtype);
    double ek = lm_max_rel_err(got, want_k, nc);
    dtype_to_host(got, d_v, nc, dtype);
    double ev = lm_max_rel_err(got, want_v, nc);
    double tol = dtype == LM_K_F32 ? 0 : tolerance(dtype);
    CHECK(ek <= tol && ev <= tol, "append_kv %s n=%d cols=%d steps=%d: the cache differs from the reference (%g, %g)", dtype_name(dtype), n,
          cols, steps, ek, ev);
    cudaFree(d_k); cudaFree(d_v); cudaFree(d_y); cudaFree(d_bias); cudaFree(d_pos); cudaFree(d_start);
    free(pos); free(start); free(y); free(bias); free(want_k); free(want_v); free(got);
}

/* ---- logprob_topk against an independent reference ----
 * Double precision, the whole edited row, a full sort: it shares no code with
 * host/backend/logits.c or logit_rules.h (only the lm_edit layout the kernel reads). */

static const double *sort_keys;
static int by_value_then_id(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (sort_keys[i] != sort_keys[j]) return sort_keys[i] > sort_keys[j] ? -1 : 1;
    return i - j;
}

/* Row x's reference: value[t] for every token (greedy: the edited raw logit's
 * log-prob; otherwise the edited log-prob), and the k best (value, id); false
 * when the row is to be refused. */
static bool ref_topk(const float *x, int V, const lm_edit *e, int ne, float penalty, int k, bool greedy, double *value, int32_t *ids,
                     double *vals) {
    double mx = -INFINITY;
    bool finite = false;
    for (int t = 0; t < V; t++) {
        if (isnan(x[t]) || x[t] == INFINITY) return false;
        if (isfinite(x[t])) finite = true;
        value[t] = x[t];
        if (x[t] > mx) mx = x[t];
    }
    if (!finite) return false;
    if (!greedy) { /* log-softmax of the raw row, then the edits */
        double z = 0;
        for (int t = 0; t < V; t++) z += exp(value[t] - mx);
        for (int t = 0; t < V; t++) value[t] -= mx + log(z);
    }
    for (int i = 0; i < ne; i++) { /* in float, as transformers edits float32 scores */
        double *v = &value[e[i].token];
        float f = (float)*v;
        *v = e[i].kind == LM_EDIT_BAN ? -INFINITY : f < 0 ? f * penalty : f / penalty;
    }
    if (greedy) { /* log-softmax of the edited row */
        double m2 = -INFINITY, z = 0;
        for (int t = 0; t < V; t++) m2 = value[t] > m2 ? value[t] : m2;
        if (m2 == -INFINITY) return false; /* every token banned */
        for (int t = 0; t < V; t++) z += exp(value[t] - m2);
        for (int t = 0; t < V; t++) value[t] -= m2 + log(z);
    }
    int *order = malloc(sizeof(int) * V);
    for (int t = 0; t < V; t++) order[t] = t;
    sort_keys = value;
    qsort(order, (size_t)V, sizeof *order, by_value_then_id);
    for (int j = 0; j < k; j++) {
        ids[j] = j < V ? order[j] : 0;
        vals[j] = j < V ? value[order[j]] : -INFINITY;
    }
    free(order);
    return true;
}

static bool close_to(double got, double want) {
    return got == want || fabs(got - want) <= 2e-5 * (1 + fabs(want));
}

/* Rows follow a cycle of 8 kinds when `special`: 0 the dominant token (p ~ 1 - 1e-7)
 * banned, 1 the dominant token penalised, 2 -inf entries, 3 a +inf entry, 4 a
 * NaN, 5 every logit -inf; 6 and 7 coarse values (ties) with edits. Otherwise
 * all coarse, with edits. */
static void make_topk_rows(float *x, int rows, int V, bool special, lm_edit *edits, int32_t *start, int max_edits) {
    int n = 0;
    start[0] = 0;
    for (int r = 0; r < rows; r++) {
        float *row = x + (size_t)r * V;
        int kind = special ? r % 8 : 6;
        int dom = (r * 131 + 17) % V;
        for (int t = 0; t < V; t++) row[t] = kind <= 1 ? 0.0f : (float)((int)(frand() * 40)) * 0.25f;
        if (kind <= 1) row[dom] = 28.0f;
        if (kind == 2) for (int t = 0; t < V; t += 7) row[t] = -INFINITY;
        if (kind == 3) row[dom] = INFINITY;
        if (kind == 4) row[dom] = NAN;
        if (kind == 5) for (int t = 0; t < V; t++) row[t] = -INFINITY;
        if (kind == 0) edits[n++] = (lm_edit){dom, LM_EDIT_BAN};
        if (kind <= 1) edits[n++] = (lm_edit){dom, LM_EDIT_PENALIZE}; /* kind 0: penalised after its ban, still -inf */
        int extra = (r % 6) * 2 < max_edits - 3 ? (r % 6) * 2 : 0; /* penalties and bans, one token twice */
        for (int e = 0; e < extra; e++) edits[n++] = (lm_edit){(r * 31 + e * 17) % V, e % 3 == 2 ? LM_EDIT_BAN : LM_EDIT_PENALIZE};
        if (r % 6 == 5 && extra) edits[n++] = (lm_edit){(r * 31) % V, LM_EDIT_BAN};
        start[r + 1] = n;
    }
}

/* Rows x (rows, V) with their edits through the kernel, against ref_topk;
 * returns how many rows were refused (both agreeing), or -1 after a failure. */
static int check_topk_as(const float *x, int rows, int V, const lm_edit *edits, const int32_t *start, float penalty, int k, bool greedy,
                         const char *what, bool split);
static int check_topk(const float *x, int rows, int V, const lm_edit *edits, const int32_t *start, float penalty, int k, bool greedy,
                      const char *what) {
    int one = check_topk_as(x, rows, V, edits, start, penalty, k, greedy, what, false);
    int split = check_topk_as(x, rows, V, edits, start, penalty, k, greedy, what, true);
    return one < 0 || split < 0 ? -1 : one;
}

/* split: lm_k_logprob_topk_split, against ref_topk and against
 * lm_k_logprob_topk's ids (identical) and values (within rounding). */
static int check_topk_as(const float *x, int rows, int V, const lm_edit *edits, const int32_t *start, float penalty, int k, bool greedy,
                         const char *what, bool split) {
    const char *msg = "";
    size_t rv = (size_t)rows * V;
    int32_t *got_ids = malloc(sizeof(int32_t) * rows * k), *want_ids = malloc(sizeof(int32_t) * k);
    float *got_vals = malloc(sizeof(float) * rows * k);
    double *want_vals = malloc(sizeof(double) * k), *value = malloc(sizeof(double) * V);
    float *d_x = to_device(x, sizeof(float) * rv), *d_vals = device_zeros(sizeof(float) * rows * k);
    int32_t *d_edits = to_device(edits, sizeof(lm_edit) * start[rows]), *d_start = to_device(start, sizeof(int32_t) * (rows + 1)),
            *d_ids = device_zeros(sizeof(int32_t) * rows * k);
    KCHECK(lm_k_logprob_topk(d_x, rows, V, d_edits, d_start, penalty, k, greedy, d_ids, d_vals, stream, &msg), "logprob_topk");
    bytes_from_device(got_ids, d_ids, sizeof(int32_t) * rows * k);
    from_device(got_vals, d_vals, (size_t)rows * k);
    int bad_row = -1, refused = 0;
    const char *why = "";
    if (split) { /* the one-block kernel's results are what the split ones must equal */
        int32_t *one_ids = got_ids;
        float *one_vals = got_vals;
        got_ids = malloc(sizeof(int32_t) * rows * k);
        got_vals = malloc(sizeof(float) * rows * k);
        void *d_scratch = device_zeros(lm_k_logprob_topk_split_scratch(rows, V));
        KCHECK(lm_k_logprob_topk_split(d_x, rows, V, d_edits, d_start, penalty, k, greedy, d_ids, d_vals, d_scratch, stream, &msg),
               "logprob_topk_split");
        bytes_from_device(got_ids, d_ids, sizeof(int32_t) * rows * k);
        from_device(got_vals, d_vals, (size_t)rows * k);
        cudaFree(d_scratch);
        for (size_t i = 0; i < (size_t)rows * k && bad_row < 0; i++)
            if (got_ids[i] != one_ids[i] || !(close_to(got_vals[i], one_vals[i]) || (isnan(got_vals[i]) && isnan(one_vals[i])))) {
                bad_row = (int)(i / k);
                why = got_ids[i] != one_ids[i] ? "split: ids differ from the one-block kernel's" : "split: values differ from the one-block kernel's";
            }
        free(one_ids);
        free(one_vals);
    }
    for (int r = 0; r < rows && bad_row < 0; r++) {
        const int32_t *gi = got_ids + (size_t)r * k;
        const float *gv = got_vals + (size_t)r * k;
        bool ok = ref_topk(x + (size_t)r * V, V, edits + start[r], start[r + 1] - start[r], penalty, k, greedy, value, want_ids, want_vals);
        if (!ok) {
            refused++;
            if (gi[0] != LM_K_BAD_ROW) { bad_row = r; why = "a row to refuse was not refused"; }
            continue;
        }
        for (int j = 0; j < k && bad_row < 0; j++) {
            /* the same token, or one whose reference value ties the reference's at this rank (rounding may order near-ties) */
            bool same_token = gi[j] == want_ids[j] || (gi[j] >= 0 && gi[j] < V && close_to(value[gi[j]], want_vals[j]));
            for (int i = 0; i < j; i++) same_token &= gi[i] != gi[j] || j >= V;
            if (!same_token) { bad_row = r; why = "tokens differ"; }
            else if (!close_to(gv[j], want_vals[j])) { bad_row = r; why = "values differ"; }
        }
    }
    CHECK(bad_row < 0, "logprob_topk%s %s V=%d k=%d greedy=%d rows=%d: row %d: %s (got %d %g, want %d %g)", split ? "_split" : "", what, V, k,
          greedy, rows, bad_row,
          why, bad_row < 0 ? 0 : got_ids[(size_t)bad_row * k], bad_row < 0 ? 0 : got_vals[(size_t)bad_row * k], want_ids[0], want_vals[0]);
    cudaFree(d_x); cudaFree(d_vals); cudaFree(d_edits); cudaFree(d_start); cudaFree(d_ids);
    free(got_ids); free(want_ids); free(got_vals); free(want_vals); free(value);
    return bad_row < 0 ? refused : -1;
}

static void test_logprob_topk(int V, int k, bool greedy, int rows, bool special) {
    const int max_edits = 16;
    float *x = malloc(sizeof(float) * (size_t)rows * V);
    lm_edit *edits = malloc(sizeof(lm_edit) * rows * max_edits);
    int32_t *start = malloc(sizeof(int32_t) * (rows + 1));
    make_topk_rows(x, rows, V, special, edits, start, max_edits);
    char what[32];
    snprintf(what, sizeof what, "%s rows", special ? "special" : "coarse");
    int refused = check_topk(x, rows, V, edits, start, 1.3f, k, greedy, what);
    if (special && refused >= 0)
        CHECK(refused >= rows / 8 * 3, "logprob_topk: %d rows refused, expected the NaN, +inf and all -inf ones", refused);
    free(x); free(edits); free(start);
}

/* label_logprob against its host twin lm_label_logprob on make_topk_rows'
 * rows (the special ones: -inf entries, a +inf, a NaN, all -inf), every
 * other row lifted by `lift` (values near 300: exp without the max taken
 * off overflows), labels at the row's first, last, dominant and some other
 * token: the same NaN rows, values within 2e-5. */
static void test_label_logprob(int V, int rows, float lift) {
    const char *msg = "";
    float *x = malloc(sizeof(float) * (size_t)rows * V), *got = malloc(sizeof(float) * rows);
    lm_edit *edits = malloc(sizeof(lm_edit) * rows * 16);
    int32_t *start = malloc(sizeof(int32_t) * (rows + 1)), *labels = malloc(sizeof(int32_t) * rows);
    make_topk_rows(x, rows, V, true, edits, start, 16);
    for (int r = 0; r < rows; r++) {
        int dom = (r * 131 + 17) % V, pick[4] = {0, V - 1, dom, (r * 7919 + 3) % V};
        labels[r] = pick[r % 4];
        for (int t = 0; r % 2 && t < V; t++) x[(size_t)r * V + t] += lift;
    }
    float *d_x = to_device(x, sizeof(float) * (size_t)rows * V), *d_out = device_zeros(sizeof(float) * rows);
    int32_t *d_labels = to_device(labels, sizeof(int32_t) * rows);
    KCHECK(lm_k_label_logprob(d_x, rows, V, d_labels, d_out, stream, &msg), "label_logprob");
    from_device(got, d_out, (size_t)rows);
    int bad = -1, nans = 0;
    float want = 0;
    for (int r = 0; r < rows && bad < 0; r++) {
        want = lm_label_logprob(x + (size_t)r * V, V, labels[r]);
        nans += isnan(want);
        if (isnan(want) ? !isnan(got[r]) : !close_to(got[r], want)) bad = r;
    }
    CHECK(bad < 0, "label_logprob V=%d rows=%d lift %g: row %d (label %d): %g, the host's %g", V, rows, lift, bad, bad < 0 ? 0 : labels[bad],
          bad < 0 ? 0 : got[bad], want);
    CHECK(bad >= 0 || nans >= rows / 8 * 3, "label_logprob: %d NaN rows, expected the NaN, +inf and all -inf ones", nans);
    cudaFree(d_x); cudaFree(d_out); cudaFree(d_labels);
    free(x); free(got); free(edits); free(start); free(labels);
}

/* Greedy rows whose top logit an edit moves far from the raw max: a penalty
 * of 1.2 on logits near 700 moves them down by more than 104 (below which
 * exp is 0 in float), one of 0.8 on logits near 500 up by more than 88
 * (above which it is inf). Row 0 keeps the penalised token on top, row 1
 * another token takes the top, row 2 the top is banned as well, row 3
 * several penalised tokens stay near each other, row 4 three untouched
 * tokens hold the raw max and a penalised one 20 below (a penalty below 1
 * lifts it over them: the untouched sum, taken from the raw one, must be
 * shifted to the new top). Every log-prob is finite, within 2e-5 of the
 * double reference. */
static void test_greedy_far_edits(float penalty, float high) {
    enum { ROWS_ = 5, V_ = 3001 };
    float *x = malloc(sizeof(float) * ROWS_ * V_);
    lm_edit edits[16];
    int32_t start[ROWS_ + 1];
    int n = 0;
    for (int r = 0; r < ROWS_; r++) {
        float *row = x + (size_t)r * V_;
        for (int t = 0; t < V_; t++) row[t] = frand() * 4;
        start[r] = n;
        int top = 17 + r * 101;
        row[top] = high;
        edits[n++] = (lm_edit){top, LM_EDIT_PENALIZE};
        if (r == 1) row[top + 1] = high * 0.9f; /* untouched, above the penalised top when the penalty is > 1 */
        if (r == 2) edits[n++] = (lm_edit){top, LM_EDIT_BAN};
        if (r == 2) row[top + 2] = high * 0.5f;
        if (r == 3)
            for (int j = 1; j <= 3; j++) {
                row[top + j] = high - (float)j;
                edits[n++] = (lm_edit){top + j, LM_EDIT_PENALIZE};
            }
        if (r == 4) {
            row[top] = high - 20;
            for (int j = 1; j <= 3; j++) row[top + j] = high;
        }
    }
    start[ROWS_] = n;
    char what[64];
    snprintf(what, sizeof what, "greedy, penalty %g on logits near %g", penalty, high);
    check_topk(x, ROWS_, V_, edits, start, penalty, 1, true, what);
    free(x);
}

/* ---- sampling: lm_k_sample against its twin lm_sample_row ---- */

static uint64_t rng64 = 0x243f6a8885a308d3ull;
static uint64_t next64(void) {
    rng64 += 0x9e3779b97f4a7c15ull;
    uint64_t z = rng64;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Row r of a sampling batch: continuous values, coarse ones (ties, -0 and
 * +0), mostly banned (-inf), all banned but one; with special, the rows the
 * host refuses (a NaN, a +inf, every token -inf) and a skipped row. */
static void make_sample_row(float *x, int V, int r, bool special) {
    int kind = r % 8;
    for (int t = 0; t < V; t++) {
        float v = frand();
        x[t] = kind == 1 || kind == 5 ? (float)(int)(v * 4) : v * 8;
        if (kind == 1 && t % 7 == 3) x[t] = -0.0f;
        if (kind == 2 && t % 10) x[t] = -INFINITY;
        if (kind == 3) x[t] = t == V / 2 ? v : -INFINITY;
    }
    if (special && kind == 4) x[(r * 13) % V] = NAN;
    if (special && kind == 6) x[(r * 17) % V] = INFINITY;
    if (special && kind == 7)
        for (int t = 0; t < V; t++) x[t] = -INFINITY;
}

typedef struct {
    float T;
    int top_k;
    float top_p;
} sample_setting;

/* Rows whose drawn token is one the row's edits changed, over every
 * test_sample_kernel: raw_logprobs must then use the value kept before the
 * edits, which only these rows show. */
static int sample_edited_drawn;

/* Log-probs within the rounding of the row's sum (the one part summed in
 * another order: 2e-5 relative, beside 1); NaN where the host gives NaN. */
static bool sample_lp_close(float got, float want) {
    return isnan(want) ? isnan(got) : fabsf(got - want) <= 2e-5f * (1 + fabsf(want));
}

/* One launch over `rows` rows of V against lm_sample_row row by row: the same
 * token and draw count on every row, bit for bit, and log-probs (under the
 * edited row, and the raw ones rescoring reads: under the row as given)
 * within sample_lp_close; skipped rows untouched but for their label's raw
 * log-prob (lm_label_logprob, as lm_sample_rows gives it); then each row
 * alone (a batch of one) gives the same bits, log-probs included: nothing a
 * row draws depends on its batch, nor on whether raw log-probs are wanted. */
static void test_sample_kernel(int V, int rows, sample_setting st, bool special) {
    enum { MAX_EDITS = 4 + 64 + 32 };
    size_t n = (size_t)rows * V;
    float *x = calloc(n, sizeof(float)), *row = malloc(sizeof(float) * V);
    lm_edit *edits = malloc(sizeof(lm_edit) * rows * MAX_EDITS);
    int32_t *start = malloc(sizeof(int32_t) * (rows + 1)), *ids = malloc(sizeof(int32_t) * rows), *labels = malloc(sizeof(int32_t) * rows);
    uint8_t *skip = calloc((size_t)rows, 1);
    uint64_t *keys = malloc(sizeof(uint64_t) * rows), *draws = malloc(sizeof(uint64_t) * rows), *got_draws = malloc(sizeof(uint64_t) * rows);
    float *lps = malloc(sizeof(float) * rows), *raws = malloc(sizeof(float) * rows);
    int ne = 0;
    for (int r = 0; r < rows; r++) {
        make_sample_row(x + (size_t)r * V, V, r, special);
        start[r] = ne;
        if (r % 3 == 0) { /* a penalty twice on one token (applied in order), another, a ban */
            int a = (r * 31) % V, b = (r * 7 + 1) % V;
            edits[ne++] = (lm_edit){a, LM_EDIT_PENALIZE};
            edits[ne++] = (lm_edit){b, LM_EDIT_PENALIZE};
            edits[ne++] = (lm_edit){a, LM_EDIT_PENALIZE};
            edits[ne++] = (lm_edit){(r * 5 + 2) % V, LM_EDIT_BAN};
        } else if (r % 3 == 1) { /* every other token penalised (up to 64 of them), so that the drawn one often is; every fourth twice */
            for (int t = 0; t < V && t < 128; t += 2) edits[ne++] = (lm_edit){t, LM_EDIT_PENALIZE};
            for (int t = 0; t < V && t < 128; t += 4) edits[ne++] = (lm_edit){t, LM_EDIT_PENALIZE};
        }
        keys[r] = next64();
        draws[r] = next64() % 1000;
        skip[r] = special && r % 8 == 0 && r > 0;
        labels[r] = (int32_t)(next64() % (uint64_t)V);
    }
    start[rows] = ne;
    const float penalty = 1.3f;
    float *d_x = to_device(x, sizeof(float) * n);
    int32_t *d_edits = to_device(edits, sizeof(lm_edit) * (ne ? ne : 1)), *d_start = to_device(start, sizeof(int32_t) * (rows + 1));
    int32_t *d_labels = to_device(labels, sizeof(int32_t) * rows);
    uint8_t *d_skip = to_device(skip, (size_t)rows);
    uint64_t *d_keys = to_device(keys, sizeof(uint64_t) * rows), *d_draws = to_device(draws, sizeof(uint64_t) * rows);
    int32_t *d_ids = device_zeros(sizeof(int32_t) * rows);
    float *d_lps = device_zeros(sizeof(float) * rows), *d_raws = device_zeros(sizeof(float) * rows);
    float *d_edit_raw = device_zeros(sizeof(float) * (ne ? ne : 1));
    void *scratch = NULL;
    CHECK(cudaMalloc(&scratch, lm_k_sample_scratch(rows, V)) == cudaSuccess, "sample scratch");
    const char *msg = "";
    CHECK(lm_k_sample(d_x, rows, V, d_edits, d_start, d_skip, penalty, st.T, st.top_k, st.top_p, d_keys, d_draws, scratch, d_ids, d_lps, d_raws,
                      d_labels, d_edit_raw, stream, &msg) == 0,
          "lm_k_sample: %s", msg);
    bytes_from_device(ids, d_ids, sizeof(int32_t) * rows);
    bytes_from_device(lps, d_lps, sizeof(float) * rows);
    bytes_from_device(raws, d_raws, sizeof(float) * rows);
    bytes_from_device(got_draws, d_draws, sizeof(uint64_t) * rows);

    lm_gen_config g = {0}; /* what lm_sample_row reads: */
    g.temperature = st.T;
    g.top_k = st.top_k;
    g.top_p = st.top_p;
    g.repetition_penalty = penalty;
    lm_sampler sp = {0};
    int bad = -1, refused = 0;
    for (int r = 0; r < rows && bad < 0; r++) {
        memcpy(row, x + (size_t)r * V, sizeof(float) * V);
        uint64_t d = draws[r];
        int32_t want = 0;
        float lp = 0, raw = 0;
        if (skip[r]) {
            if (ids[r] != 0 || got_draws[r] != draws[r] || !sample_lp_close(raws[r], lm_label_logprob(row, V, labels[r]))) bad = r;
            continue;
        }
        int rc = lm_sample_row(row, V, edits + start[r], start[r + 1] - start[r], &g, keys[r], &d, &sp, &want, &lp, &raw);
        CHECK(rc != -2, "lm_sample_row: out of memory");
        if (rc == -1) {
            refused++;
            if (ids[r] != LM_K_BAD_ROW || !isnan(lps[r]) || got_draws[r] != draws[r]) bad = r;
            continue;
        }
        for (int i = start[r]; i < start[r + 1] && V > 1; i++) /* V = 1 draws its one token, edited or not */
            if (edits[i].token == want) { sample_edited_drawn++; break; }
        if (ids[r] != want || got_draws[r] != d || !sample_lp_close(lps[r], lp) || !sample_lp_close(raws[r], raw)) bad = r;
    }
    CHECK(bad < 0, "sample V=%d T=%g k=%d p=%g: row %d: device token %d (log-prob %g, raw %g, draws %llu) against the host's", V, st.T,
          st.top_k, st.top_p, bad, bad >= 0 ? ids[bad] : 0, bad >= 0 ? lps[bad] : 0, bad >= 0 ? raws[bad] : 0,
          bad >= 0 ? (unsigned long long)got_draws[bad] : 0ull);
    if (special) CHECK(refused >= rows / 8 * 3 - 1, "sample: %d rows refused, expected the NaN, +inf and all -inf ones", refused);

    /* each row alone: its own launch, the same bits; every other one without
     * raw log-probs (NULL, no labels, no room for raw values) */
    int moved = -1;
    for (int r = 0; r < rows && moved < 0; r++) {
        int32_t one_start[2] = {0, start[r + 1] - start[r]};
        bool raw = r % 2 == 0;
        cudaMemcpyAsync(d_x, x + (size_t)r * V, sizeof(float) * V, cudaMemcpyHostToDevice, stream);
        if (one_start[1]) cudaMemcpyAsync(d_edits, edits + start[r], sizeof(lm_edit) * one_start[1], cudaMemcpyHostToDevice, stream);
        cudaMemcpyAsync(d_start, one_start, sizeof one_start, cudaMemcpyHostToDevice, stream);
        cudaMemcpyAsync(d_skip, skip + r, 1, cudaMemcpyHostToDevice, stream);
        cudaMemcpyAsync(d_keys, keys + r, 8, cudaMemcpyHostToDevice, stream);
        cudaMemcpyAsync(d_draws, draws + r, 8, cudaMemcpyHostToDevice, stream);
        cudaMemcpyAsync(d_labels, labels + r, 4, cudaMemcpyHostToDevice, stream);
        CHECK(lm_k_sample(d_x, 1, V, d_edits, d_start, d_skip, penalty, st.T, st.top_k, st.top_p, d_keys, d_draws, scratch, d_ids, d_lps,
                          raw ? d_raws : NULL, raw ? d_labels : NULL, raw ? d_edit_raw : NULL, stream, &msg) == 0,
              "lm_k_sample alone: %s", msg);
        int32_t id;
        float lp, rlp;
        uint64_t d;
        bytes_from_device(&id, d_ids, 4);
        bytes_from_device(&lp, d_lps, 4);
        bytes_from_device(&rlp, d_raws, 4);
        bytes_from_device(&d, d_draws, 8);
        if (id != ids[r] || d != got_draws[r] || memcmp(&lp, &lps[r], 4) != 0 || (raw && memcmp(&rlp, &raws[r], 4) != 0)) moved = r;
        if (V * rows > 200000) break; /* one row is enough at the real vocabulary's size */
    }
    CHECK(moved < 0, "sample V=%d T=%g k=%d p=%g: row %d alone draws otherwise than in its batch", V, st.T, st.top_k, st.top_p, moved);
    lm_sampler_free(&sp);
    cudaFree(d_x); cudaFree(d_edits); cudaFree(d_start); cudaFree(d_skip); cudaFree(d_keys); cudaFree(d_draws); cudaFree(d_ids); cudaFree(d_lps);
    cudaFree(d_raws); cudaFree(d_labels); cudaFree(d_edit_raw); cudaFree(scratch);
    free(x); free(row); free(edits); free(start); free(ids); free(labels); free(skip); free(keys); free(draws); free(got_draws); free(lps);
    free(raws);
}

/* test_sample's settings (configs/augment.yaml's recipe, the plain
 * distribution, top-k 1, V and past it, a nucleus of one token, p 0, the
 * temperatures at the config's bounds) on odd vocabulary sizes. */
static void test_sample_settings(void) {
    const sample_setting S[] = {{0.9f, 50, 0.95f}, {1.0f, 0, 1.0f}, {1.5f, 5, 1.0f}, {1.3f, 0, 0.8f}, {1.0f, 1, 1.0f},
                                {1.0f, 100000, 0.9f}, {1.0f, 0, 1e-4f}, {0.7f, 20, 0.0f}, {1e-6f, 0, 1.0f}, {2.5f, 0, 0.98f},
                                {1e6f, 0, 1.0f}, {1e6f, 3, 0.5f}};
    const int sizes[] = {1, 7, 333, 1001, 4099};
    for (size_t i = 0; i < sizeof S / sizeof *S; i++)
        for (size_t j = 0; j < sizeof sizes / sizeof *sizes; j++) test_sample_kernel(sizes[j], 16, S[i], sizes[j] > 1);
    for (int V = 7; V <= 333; V += 326) { /* k of V - 1, V and V + 1 */
        test_sample_kernel(V, 16, (sample_setting){1.0f, V - 1, 1.0f}, false);
        test_sample_kernel(V, 16, (sample_setting){1.0f, V, 1.0f}, false);
        test_sample_kernel(V, 16, (sample_setting){1.0f, V + 1, 0.5f}, false);
    }
    test_sample_kernel(128112, 4, S[0], false);
    test_sample_kernel(128112, 2, S[1], false);
    test_sample_kernel(128112, 9, S[4], true); /* top-k 1 on the real vocabulary: the drawn token is often a penalised one */
    for (int i = 0; i < 3; i++) /* odd sizes drawn at random */
        test_sample_kernel(2 * (int)(next64() % 3000) + 3, 16, S[next64() % (sizeof S / sizeof *S)], true);
    printf("test_cuda_kernels: sampling: %d rows drew a token their edits changed\n", sample_edited_drawn);
    CHECK(sample_edited_drawn >= 30, "sample: only %d rows drew a token their edits changed (its raw value then counts)", sample_edited_drawn);
}

/* Rows whose log-probs collide although their logits differ: logits within
 * 1e-4 of each other, so x - max - lse (lse near log V) keeps only a few
 * hundred distinct values and ties are broken by token. The split kernel's
 * slices rank raw logits, so a token dropped by its slice can tie the k-th
 * log-prob: these rows take its full reselection, and must still give the
 * one-block kernel's ids. Some rows spread wider (no collisions), some
 * carry edits. */
static void test_topk_split_ties(int V, int k, int rows) {
    float *x = malloc(sizeof(float) * (size_t)rows * V);
    lm_edit edits[64];
    int32_t *start = malloc(sizeof(int32_t) * (rows + 1));
    int n = 0;
    for (int r = 0; r < rows; r++) {
        float spread = r % 3 == 2 ? 1.0f : 1e-4f;
        for (int t = 0; t < V; t++) x[(size_t)r * V + t] = frand() * spread;
        start[r] = n;
        if (r % 2 == 1 && n < 60) {
            edits[n++] = (lm_edit){(r * 97) % V, LM_EDIT_BAN};
            edits[n++] = (lm_edit){(r * 89 + 5) % V, LM_EDIT_PENALIZE};
        }
    }
    start[rows] = n;
    char what[48];
    snprintf(what, sizeof what, "log-prob collisions, V=%d", V);
    check_topk(x, rows, V, edits, start, 1.3f, k, false, what);
    free(x);
    free(start);
}

int main(void) {
    if (!lm_cuda_gate("test_cuda_kernels")) return lm_test_summary("test_cuda_kernels");
    CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess, "a non-blocking stream");
    for (int dtype = LM_K_F32; dtype <= LM_K_BF16; dtype++) {
        test_embed(dtype, 37, 24, 13);
        test_layernorm(dtype, 5, 1024, true);
        test_layernorm(dtype, 3, 37, false);
        test_layernorm(dtype, 1, 1, true);
        for (int act = LM_K_ACT_NONE; act <= LM_K_ACT_GELU; act++) test_bias_act(dtype, act, 7, 45, 61);
        test_attention(dtype, LM_K_F32, 16, 64, 9, 1.0f);
        test_attention(dtype, LM_K_F32, 3, 40, 9, 0.125f);
        test_attention(dtype, LM_K_F32, 1, 7, 9, 1.0f);
        test_attention(LM_K_F32, dtype, 3, 40, 9, 0.3f); /* the decoder's cache in the compute precision */
        test_append_kv(dtype, 7, 45, 6, true);
        test_append_kv(dtype, 3, 64, 17, false);
    }
    test_gather_rows(5, 33, 4, 5, true);
    test_gather_rows(9, 40, 3, 13, true);
    test_gather_rows(6, 33, 20, 1, false);
    test_append_kv(LM_K_F32, 3, 1024, 17, false);
    test_logprob_topk(128112, 10, false, 16, true);
    test_logprob_topk(128112, 1, true, 16, true);
    test_logprob_topk(1001, 16, false, 6, false);
    test_logprob_topk(7, 3, false, 6, false);
    test_logprob_topk(5, 16, false, 6, false); /* fewer tokens than k: padded with token 0 at -inf */
    test_logprob_topk(333, 1, true, 8, true);
    test_logprob_topk(4097, 5, false, 5, true);  /* a slice of one token */
    test_logprob_topk(12289, 1, true, 9, true);  /* three slices and one token */
    test_logprob_topk(4096 * 3, 16, false, 4, false); /* slices exactly full, k at its limit */
    test_topk_split_ties(128112, 5, 6);
    test_topk_split_ties(9000, 16, 4);
    test_topk_split_ties(300, 3, 3);
    test_label_logprob(128112, 16, 300.0f);
    test_label_logprob(1001, 24, 0.0f);
    test_label_logprob(1, 8, 0.0f);
    test_label_logprob(257, 9, -200.0f);
    test_greedy_far_edits(1.2f, 700.0f);
    test_greedy_far_edits(0.8f, 500.0f);
    test_sample_settings();

    /* past the grid limits: more rows than gridDim.y/z's limit (65,535 on
     * every GPU; the emulator lowers it with CUDA_EMU_MAX_GRID_YZ to stay
     * quick) and element-wise work beyond 65,535 blocks x 256 threads
     * (grid-stride tails); LYRICMT_CUDA_QUICK=1 leaves them out (the slower
     * compute-sanitizer tools) */
    const char *quick = getenv("LYRICMT_CUDA_QUICK");
    if (quick && *quick && strcmp(quick, "0") != 0) {
        printf("test_cuda_kernels: sizes past the grid limits left out (LYRICMT_CUDA_QUICK)\n");
        cudaStreamDestroy(stream);
        return lm_test_summary("test_cuda_kernels");
    }
    struct cudaDeviceProp prop;
    CHECK(cudaGetDeviceProperties(&prop, 0) == cudaSuccess, "device properties");
    int big = prop.maxGridSize[1] + 4466;            /* 70,001 on a GPU */
    int wide = 65535 * 256 / 257 + 7;                /* rows of 257: past 65,535 x 256 elements */
    test_convert_long(LM_K_BF16, (size_t)65535 * 256 * 2 + 77);
    test_embed(LM_K_F16, 37, 8, big);
    test_layernorm(LM_K_F32, big, 8, true);
    test_bias_act(LM_K_F32, LM_K_ACT_GELU, wide, 257, 300);
    test_attention(LM_K_F32, LM_K_F32, 2, 8, big, 1.0f);
    test_gather_rows(big, 9, 2, 4, true);
    test_append_kv(LM_K_BF16, big, 13, 3, true);
    test_logprob_topk(8, 3, false, big, true);
    test_logprob_topk(8, 1, true, big, true);
    test_label_logprob(8, big, 0.0f);
    cudaStreamDestroy(stream);
    return lm_test_summary("test_cuda_kernels");
}
