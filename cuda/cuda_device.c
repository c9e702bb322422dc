/* cuda_device: see cuda_device.h. */
#include "cuda/cuda_device.h"
#include "cuda/cuda_check.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "13.0" from the runtime's 13000; "none" for 0 (no driver installed). */
static void version_text(int v, char *out, size_t n) {
    if (v == 0) snprintf(out, n, "none");
    else snprintf(out, n, "%d.%d", v / 1000, v % 1000 / 10);
}

lm_cuda_state lm_cuda_classify(cudaError_t e, int devices, int driver, int runtime, char *why, size_t n) {
    if (e == cudaSuccess && devices > 0) return LM_CUDA_READY;
    char dv[16], rv[16];
    version_text(driver, dv, sizeof dv);
    version_text(runtime, rv, sizeof rv);
    if (e == cudaSuccess || e == cudaErrorNoDevice) {
        snprintf(why, n, "the NVIDIA driver %s sees no CUDA device", dv);
        return LM_CUDA_ABSENT;
    }
    /* the driver version is 0 when no NVIDIA driver (libcuda) is installed: then
     * the runtime's "driver version is insufficient" only means "no GPU here" */
    if (driver == 0) {
        snprintf(why, n, "no NVIDIA driver on this machine; CUDA runtime %s", rv);
        return LM_CUDA_ABSENT;
    }
    snprintf(why, n, "CUDA fails: %s (%s); the driver supports CUDA %s, the runtime is CUDA %s", cudaGetErrorName(e), cudaGetErrorString(e),
             dv, rv);
    return LM_CUDA_BROKEN;
}

lm_cuda_state lm_cuda_probe(char *why, size_t n) {
    int devices = 0, driver = 0, runtime = 0;
    cudaError_t e = cudaGetDeviceCount(&devices);
    if (e != cudaSuccess || devices == 0) {
        cudaDriverGetVersion(&driver);
        cudaRuntimeGetVersion(&runtime);
        cudaGetLastError(); /* the probe's error is reported through `why`, not left for the next call */
    }
    return lm_cuda_classify(e, devices, driver, runtime, why, n);
}

#define MB_UP(bytes) (((bytes) + ((size_t)1 << 20) - 1) >> 20)

int lm_cuda_out_of_memory(lm_err *err, size_t need, size_t free_bytes, size_t total_bytes, const char *cuda_msg) {
    return lm_fail(err,
                   "GPU out of memory: this batch needs a %zu MB buffer and %zu MB of the GPU's %zu MB are free (%s); "
                   "lower batch.max_tokens",
                   MB_UP(need), free_bytes >> 20, total_bytes >> 20, cuda_msg);
}

#define WORKSPACE_HOPPER ((size_t)32 << 20)
#define WORKSPACE_BEFORE ((size_t)4 << 20)

int lm_cuda_gemm_open(lm_cuda_gemm *g, cudaStream_t stream, lm_err *err) {
    *g = (lm_cuda_gemm){.stream = stream};
    const lm_cublas_api *api = lm_cublas(err);
    if (!api) return -1;
    int dev;
    struct cudaDeviceProp prop;
    CUDA_TRY(cudaGetDevice(&dev));
    CUDA_TRY(cudaGetDeviceProperties(&prop, dev));
    g->workspace_bytes = prop.major >= 9 ? WORKSPACE_HOPPER : WORKSPACE_BEFORE;
    if (lm_cuda_malloc(&g->workspace, g->workspace_bytes, err) != 0) return -1;
    CUBLAS_TRY(api->create(&g->blas));
    CUBLAS_TRY(api->set_stream(g->blas, stream)); /* before the workspace: setting a stream drops a workspace set earlier */
    CUBLAS_TRY(api->set_workspace(g->blas, g->workspace, g->workspace_bytes));
    CUBLAS_TRY(api->lt_create(&g->lt));
    return 0;
}

void lm_cuda_gemm_close(lm_cuda_gemm *g) {
    const lm_cublas_api *api = g->blas || g->lt ? lm_cublas(NULL) : NULL; /* a handle means the table is open */
    if (g->lt) api->lt_destroy(g->lt);
    if (g->blas) api->destroy(g->blas);
    if (g->workspace) cudaFree(g->workspace);
    *g = (lm_cuda_gemm){0};
}

int lm_cuda_malloc(void **p, size_t bytes, lm_err *err) {
    cudaError_t e = cudaMalloc(p, bytes);
    if (e == cudaSuccess) return 0;
    *p = NULL;
    size_t free_b = 0, total_b = 0;
    cudaGetLastError(); /* reported below */
    cudaMemGetInfo(&free_b, &total_b);
    return lm_cuda_out_of_memory(err, bytes, free_b, total_b, cudaGetErrorString(e));
}

/* cuBLAS is column-major: y^T (out, rows) = W (out, in) . x^T, where W row-major
 * (out, in) is W^T column-major with leading dimension in, hence OP_T on it. */
int lm_cuda_linear(const lm_cuda_gemm *g, cudaDataType_t type, int rows, const lm_dev_linear *l, const void *x, float *y, lm_err *err) {
    const float one = 1.0f, zero = 0.0f;
    if (rows == 0) return 0;
    const lm_cublas_api *api = lm_cublas(err);
    if (!api) return -1;
    CUBLAS_TRY(api->gemm_ex(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, l->out, rows, l->in, &one, l->w, type, l->in, x, type, l->in, &zero, y,
                            CUDA_R_32F, l->out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return 0;
}

/* The largest power of two up to 256 dividing p's address: the alignment
 * cuBLASLt's heuristic is told (it assumes 256 unless told less, and an
 * algorithm chosen for 256 may not run on less). */
static int alignment(const void *p) {
    int a = 256;
    while (a > 1 && (uintptr_t)p % (uintptr_t)a) a /= 2;
    return a;
}

/* The plan for key k, asked of the heuristic when not held yet. */
static cublasStatus_t find_plan(lm_cuda_gemm *g, const lm_cublas_api *api, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a,
                                cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t d, const lm_cuda_lt_plan *k, const lm_cuda_lt_plan **out) {
    for (int i = 0; i < g->n_plans; i++)
        if (!memcmp(&g->plans[i], k, offsetof(lm_cuda_lt_plan, found))) {
            *out = &g->plans[i];
            return CUBLAS_STATUS_SUCCESS;
        }
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t res;
    int n = 0;
    uint64_t ws = g->workspace_bytes;
    uint32_t al[4] = {(uint32_t)k->align[0], (uint32_t)k->align[1], (uint32_t)k->align[2], (uint32_t)k->align[2]}; /* A, B, C (= D), D */
    cublasStatus_t s = api->lt_pref_create(&pref);
    if (s == CUBLAS_STATUS_SUCCESS) s = api->lt_pref_set(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    for (int i = 0; i < 4 && s == CUBLAS_STATUS_SUCCESS; i++)
        s = api->lt_pref_set(pref, (cublasLtMatmulPreferenceAttributes_t)(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES + i), &al[i], sizeof al[i]);
    if (s != CUBLAS_STATUS_SUCCESS) { /* the preference itself failed: that is an error, not an answer */
        if (pref) api->lt_pref_destroy(pref);
        return s;
    }
    s = api->lt_heuristic(g->lt, desc, a, b, d, d, pref, 1, &res, &n); /* any failure: no algorithm, the plain path serves */
    api->lt_pref_destroy(pref);
    int at = g->n_plans < LM_CUDA_LT_PLANS ? g->n_plans++ : g->next_plan++ % LM_CUDA_LT_PLANS;
    g->plans[at] = *k;
    g->plans[at].found = s == CUBLAS_STATUS_SUCCESS && n > 0 && res.state == CUBLAS_STATUS_SUCCESS;
    if (g->plans[at].found) g->plans[at].algo = res.algo;
    *out = &g->plans[at];
    return CUBLAS_STATUS_SUCCESS;
}

/* The same product as lm_cuda_linear, described to cuBLASLt: A is W stored
 * (in, out) column-major, transposed; B is x^T (in, rows); D is y^T (out,
 * rows), the bias running down its columns. The descriptors are made each
 * call (host work of microseconds: a decoder step's are made once, when its
 * graph is captured). */
int lm_cuda_linear_epilogue(lm_cuda_gemm *g, cudaDataType_t type, int rows, const lm_dev_linear *l, const void *bias, int ep,
                            const void *x, void *y, cudaDataType_t out_type, lm_err *err) {
    if (rows == 0) return 0;
    const lm_cublas_api *api = lm_cublas(err);
    if (!api) return -1;
    const float one = 1.0f, zero = 0.0f;
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasLtEpilogue_t e = ep == LM_CUDA_EP_RELU_BIAS ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
    cublasLtMatmulDesc_t desc = NULL;
    cublasLtMatrixLayout_t a = NULL, b = NULL, d = NULL;
    lm_cuda_lt_plan key;
    memset(&key, 0, sizeof key); /* padding too: keys are compared as bytes */
    key.rows = rows, key.in = l->in, key.out = l->out, key.type = type, key.out_type = out_type, key.ep = ep;
    key.align[0] = alignment(l->w), key.align[1] = alignment(x), key.align[2] = alignment(y);
    const lm_cuda_lt_plan *plan = NULL;
    cublasStatus_t s = api->lt_desc_create(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    if (s == CUBLAS_STATUS_SUCCESS) s = api->lt_desc_set(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    if (s == CUBLAS_STATUS_SUCCESS) s = api->lt_desc_set(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    if (s == CUBLAS_STATUS_SUCCESS) s = api->lt_desc_set(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof e);
    if (s == CUBLAS_STATUS_SUCCESS) s = api->lt_desc_set(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    if (s == CUBLAS_STATUS_SUCCESS) s = api->lt_layout_create(&a, type, (uint64_t)l->in, (uint64_t)l->out, l->in);
    if (s == CUBLAS_STATUS_SUCCESS) s = api->lt_layout_create(&b, type, (uint64_t)l->in, (uint64_t)rows, l->in);
    if (s == CUBLAS_STATUS_SUCCESS) s = api->lt_layout_create(&d, out_type, (uint64_t)l->out, (uint64_t)rows, l->out);
    if (s == CUBLAS_STATUS_SUCCESS) s = find_plan(g, api, desc, a, b, d, &key, &plan);
    if (s == CUBLAS_STATUS_SUCCESS && !plan->found) s = CUBLAS_STATUS_NOT_SUPPORTED;
    if (s == CUBLAS_STATUS_SUCCESS)
        s = api->lt_matmul(g->lt, desc, &one, l->w, a, x, b, &zero, y, d, y, d, &plan->algo, g->workspace, g->workspace_bytes, g->stream);
    if (d) api->lt_layout_destroy(d);
    if (b) api->lt_layout_destroy(b);
    if (a) api->lt_layout_destroy(a);
    if (desc) api->lt_desc_destroy(desc);
    if (s == CUBLAS_STATUS_NOT_SUPPORTED) return 1;
    if (s != CUBLAS_STATUS_SUCCESS)
        return lm_fail(err, "cublasLtMatmul (%d rows, %d in, %d out, %s epilogue): %s", rows, l->in, l->out,
                       ep == LM_CUDA_EP_RELU_BIAS ? "bias and ReLU" : "bias", lm_cublas_status(s));
    return 0;
}

bool lm_cuda_switch(const char *name) {
    const char *e = getenv(name);
    return !(e && !strcmp(e, "0"));
}
