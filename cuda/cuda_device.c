/* cuda_device: see cuda_device.h. */
#include "cuda/cuda_device.h"
#include "cuda/cuda_check.h"

#include <stdio.h>

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

/* cuBLAS is column-major: y^T (out, rows) = W (out, in) . x^T, where W row-major
 * (out, in) is W^T column-major with leading dimension in, hence OP_T on it. */
int lm_cuda_linear(cublasHandle_t blas, cudaDataType_t type, int rows, const lm_dev_linear *l, const void *x, float *y,
                   lm_err *err) {
    const float one = 1.0f, zero = 0.0f;
    if (rows == 0) return 0;
    const lm_cublas_api *api = lm_cublas(err);
    if (!api) return -1;
    CUBLAS_TRY(api->gemm_ex(blas, CUBLAS_OP_T, CUBLAS_OP_N, l->out, rows, l->in, &one, l->w, type, l->in, x, type, l->in, &zero, y,
                            CUDA_R_32F, l->out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return 0;
}
