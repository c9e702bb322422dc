/*
 * cublas: the part of cuBLAS lyricmt calls (a handle, its stream, GemmEx),
 * over OpenBLAS's sgemm: 16-bit inputs widened exactly to float, float
 * accumulation and output, as cuBLAS's compute type 32F promises (its
 * tensor cores' own rounding order is not modelled).
 *
 * cuBLAS picks its algorithm by the problem's shape, so on a GPU a row's low
 * bits can change with the number of rows beside it. So does this stand-in,
 * on purpose: the sum over k runs in 1, 2 or 4 parts by the row count, so a
 * check that wants bit-identical rows across batch sizes fails here as it
 * could on a GPU.
 */
#include "emu.h"

#include <cblas.h>
#include <cublas_v2.h>

#include <memory>
#include <vector>

struct cublasContext {
    int device;
    cudaStream_t stream;
};

namespace {

/* The number of parts the sum over k runs in, by the row count (n of the product). */
int k_parts(int n, int k) {
    int parts = n < 16 ? 1 : n < 128 ? 2 : 4;
    while (parts > 1 && k / parts < 8) parts /= 2;
    return parts;
}

/* `count` elements of type t from p, as float (a view when already float). */
const float *widen(const void *p, cudaDataType_t t, size_t count, std::vector<float> &buf) {
    if (t == CUDA_R_32F) return (const float *)p;
    buf.resize(count);
    for (size_t i = 0; i < count; i++)
        buf[i] = t == CUDA_R_16F ? __half2float(((const __half *)p)[i]) : __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    return buf.data();
}

/* Elements a column-major matrix of `rows` x `cols` with leading dimension ld spans. */
size_t span(int rows, int cols, int ld) { return rows && cols ? (size_t)ld * (cols - 1) + rows : 0; }

} /* namespace */

using namespace lm_emu;

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t *h) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) return CUBLAS_STATUS_NOT_INITIALIZED;
    *h = new cublasContext{current_device(), nullptr};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t h) {
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t h, cudaStream_t s) {
    h->stream = s;
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusString(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE (cuda-emu: see its message above)";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED (cuda-emu: see its message above)";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    default: return "CUBLAS_STATUS_(other)";
    }
}

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void *alpha,
                            const void *A, cudaDataType_t at, int lda, const void *B, cudaDataType_t bt, int ldb, const void *beta, void *C,
                            cudaDataType_t ct, int ldc, cublasComputeType_t compute, cublasGemmAlgo_t) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    int dev = current_device();
    if (h->device != dev || stream_device(h->stream) != dev) {
        report("cublasGemmEx: the handle belongs to device %d, its stream to device %d, and device %d is current", h->device,
               stream_device(h->stream), dev);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (ct != CUDA_R_32F || at != bt || (at != CUDA_R_32F && at != CUDA_R_16F && at != CUDA_R_16BF) || compute != CUBLAS_COMPUTE_32F ||
        (ta != CUBLAS_OP_N && ta != CUBLAS_OP_T) || (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T)) {
        report("cublasGemmEx: types or operations the stand-in does not serve (it serves float, half or bfloat16 inputs, float output, "
               "compute 32F)");
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    int a_rows = ta == CUBLAS_OP_N ? m : k, a_cols = ta == CUBLAS_OP_N ? k : m;
    int b_rows = tb == CUBLAS_OP_N ? k : n, b_cols = tb == CUBLAS_OP_N ? n : k;
    if (m < 0 || n < 0 || k < 0 || lda < (a_rows > 1 ? a_rows : 1) || ldb < (b_rows > 1 ? b_rows : 1) || ldc < (m > 1 ? m : 1)) {
        report("cublasGemmEx: m %d, n %d, k %d with leading dimensions %d, %d, %d", m, n, k, lda, ldb, ldc);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    size_t es = at == CUDA_R_32F ? 4 : 2, na = span(a_rows, a_cols, lda), nb = span(b_rows, b_cols, ldb), nc = span(m, n, ldc);
    if ((na && device_of(A, na * es) != dev) || (nb && device_of(B, nb * es) != dev) || device_of(C, nc * 4) != dev) {
        report("cublasGemmEx (m %d, n %d, k %d): A, B or C is not (wholly) in device %d's memory", m, n, k, dev);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    float al = *(const float *)alpha, be = *(const float *)beta; /* host pointers (the default pointer mode), read now */
    enqueue(h->stream, [=] {
        count(dev, STAT_GEMMS, 1);
        std::vector<float> abuf, bbuf;
        const float *a = widen(A, at, na, abuf), *b = widen(B, bt, nb, bbuf);
        int parts = k_parts(n, k);
        for (int p = 0; p < parts; p++) {
            int k0 = (int)((long)k * p / parts), k1 = (int)((long)k * (p + 1) / parts);
            const float *ap = a + (ta == CUBLAS_OP_N ? (size_t)k0 * lda : (size_t)k0);
            const float *bp = b + (tb == CUBLAS_OP_N ? (size_t)k0 : (size_t)k0 * ldb);
            cblas_sgemm(CblasColMajor, ta == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, tb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, m, n,
                        k1 - k0, al, ap, lda, bp, ldb, p == 0 ? be : 1.0f, (float *)C, ldc);
        }
        return cudaSuccess;
    });
    return CUBLAS_STATUS_SUCCESS;
}

} /* extern "C" */
