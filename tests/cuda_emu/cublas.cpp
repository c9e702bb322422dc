/*
 * cublas: the part of cuBLAS and cuBLASLt lyricmt calls (a handle, its
 * stream and workspace, GemmEx; cuBLASLt's matmul with a bias or bias-and-ReLU
 * epilogue), over OpenBLAS's sgemm: 16-bit inputs widened exactly to float,
 * float accumulation, as compute type 32F promises (its tensor cores' own
 * rounding order is not modelled); the epilogue adds the bias to the float
 * sum, applies ReLU, and rounds to the output type to nearest even.
 *
 * A product queued while its stream is captured into a graph needs a
 * workspace the caller set (cublasSetWorkspace): without one cuBLAS takes
 * its workspace from a pool, an allocation inside the capture, and may pick
 * another algorithm there than outside; the stand-in refuses it and
 * invalidates the capture (stricter than cuBLAS, as allocations in captures are).
 *
 * cublasLtMatmulAlgoGetHeuristic answers with an "algorithm" naming the
 * problem it was asked for and the alignments its preferences allowed;
 * cublasLtMatmul refuses it for another problem or for operands less aligned
 * (with no algorithm, the default preferences' 256 bytes), as an algorithm
 * chosen for more alignment may not run on a GPU.
 *
 * CUDA_EMU_LT_EPILOGUES=0 makes the heuristic find nothing for an epilogue
 * (CUBLAS_STATUS_NOT_SUPPORTED, no result), as a cuBLASLt that serves none
 * would: the callers' way back to plain products is tested with it.
 *
 * cuBLAS picks its algorithm by the problem's shape, so on a GPU a row's low
 * bits can change with the number of rows beside it. So does this stand-in,
 * on purpose: the sum over k runs in 1, 2 or 4 parts by the row count, so a
 * check that wants bit-identical rows across batch sizes fails here as it
 * could on a GPU.
 */
#include "emu.h"

#include <cblas.h>
#include <cublasLt.h>
#include <cublas_v2.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include <memory>
#include <vector>

struct cublasContext {
    int device;
    cudaStream_t stream;
    void *workspace; /* cublasSetWorkspace's; setting a stream drops it, as cuBLAS does */
};

struct cublasLtContext {
    int device;
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

/* C (m, n; float, column-major) = al . op(A) op(B) + be . C, A and B of type t
 * (na, nb elements), the sum over k in k_parts parts. */
void product(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float al, const void *A, cudaDataType_t t, int lda, size_t na,
             const void *B, int ldb, size_t nb, float be, float *C, int ldc) {
    std::vector<float> abuf, bbuf;
    const float *a = widen(A, t, na, abuf), *b = widen(B, t, nb, bbuf);
    int parts = k_parts(n, k);
    for (int p = 0; p < parts; p++) {
        int k0 = (int)((long)k * p / parts), k1 = (int)((long)k * (p + 1) / parts);
        const float *ap = a + (ta == CUBLAS_OP_N ? (size_t)k0 * lda : (size_t)k0);
        const float *bp = b + (tb == CUBLAS_OP_N ? (size_t)k0 : (size_t)k0 * ldb);
        cblas_sgemm(CblasColMajor, ta == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, tb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, m, n, k1 - k0,
                    al, ap, lda, bp, ldb, p == 0 ? be : 1.0f, C, ldc);
    }
}

size_t type_size(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : 2; }

/* A cuBLAS or cuBLASLt handle on the current device; none without a device, as cuBLAS refuses. */
template <class T> cublasStatus_t new_handle(T **h, const T &v) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) return CUBLAS_STATUS_NOT_INITIALIZED;
    *h = new T(v);
    return CUBLAS_STATUS_SUCCESS;
}

template <class T> cublasStatus_t delete_handle(T *h) {
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}

/* cuBLASLt's descriptors are semi-opaque structs of the header's size: the
 * stand-in keeps its own fields in them. */
struct lt_desc {
    cublasComputeType_t compute;
    cudaDataType_t scale;
    int32_t ta, tb;
    uint32_t epilogue;
    const void *bias;
    int32_t bias_type; /* -1: the output's */
};
struct lt_layout {
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t ld;
};
static_assert(sizeof(lt_desc) <= sizeof(cublasLtMatmulDescOpaque_t), "lt_desc fits cuBLASLt's descriptor");
static_assert(sizeof(lt_layout) <= sizeof(cublasLtMatrixLayoutOpaque_t), "lt_layout fits cuBLASLt's layout");
struct lt_pref {
    uint64_t max_workspace;
    uint32_t align[4]; /* A, B, C, D */
};
/* What the stand-in's "algorithm" holds: the problem it was found for and the alignments it assumes. */
struct lt_algo {
    int m, n, k;
    cudaDataType_t in_type, out_type;
    uint32_t epilogue;
    uint32_t align[4];
};
static_assert(sizeof(lt_pref) <= sizeof(cublasLtMatmulPreferenceOpaque_t), "lt_pref fits cuBLASLt's preference");
static_assert(sizeof(lt_algo) <= sizeof(cublasLtMatmulAlgo_t), "lt_algo fits cuBLASLt's algorithm");
lt_desc *fields(cublasLtMatmulDesc_t d) { return (lt_desc *)d->data; }
lt_layout *fields(cublasLtMatrixLayout_t l) { return (lt_layout *)l->data; }
lt_pref *fields(cublasLtMatmulPreference_t p) { return (lt_pref *)p->data; }

/* CUDA_EMU_LT_EPILOGUES=0: the heuristic finds no algorithm for an epilogue
 * (asked, or implied by cublasLtMatmul without one), as where none is served. */
bool epilogues_refused(const char *who, cublasLtMatmulDesc_t desc) {
    const char *serve = getenv("CUDA_EMU_LT_EPILOGUES");
    if (fields(desc)->epilogue == CUBLASLT_EPILOGUE_DEFAULT || !serve || strcmp(serve, "0")) return false;
    lm_emu::report("%s: CUDA_EMU_LT_EPILOGUES=0: no algorithm serves an epilogue", who);
    return true;
}

bool has_bias(uint32_t ep) { return ep == CUBLASLT_EPILOGUE_BIAS || ep == CUBLASLT_EPILOGUE_RELU_BIAS; }
bool has_relu(uint32_t ep) { return ep == CUBLASLT_EPILOGUE_RELU || ep == CUBLASLT_EPILOGUE_RELU_BIAS; }

/* The problem the descriptors pose, checked as cuBLASLt would refuse it
 * (NOT_SUPPORTED: a configuration the stand-in does not serve;
 * INVALID_VALUE: shapes that do not fit), for `who` (the call) to report. */
cublasStatus_t problem_of(const char *who, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,
                          cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc, lt_algo *p) {
    const lt_desc f = *fields(desc);
    const lt_layout a = *fields(Adesc), b = *fields(Bdesc), d = *fields(Ddesc);
    bool bias = has_bias(f.epilogue), relu = has_relu(f.epilogue);
    cudaDataType_t bias_type = f.bias_type < 0 ? d.type : (cudaDataType_t)f.bias_type;
    if (f.compute != CUBLAS_COMPUTE_32F || f.scale != CUDA_R_32F || a.type != b.type ||
        (a.type != CUDA_R_32F && a.type != CUDA_R_16F && a.type != CUDA_R_16BF) || (d.type != CUDA_R_32F && d.type != a.type) ||
        (f.ta != CUBLAS_OP_N && f.ta != CUBLAS_OP_T) || (f.tb != CUBLAS_OP_N && f.tb != CUBLAS_OP_T) ||
        (f.epilogue != CUBLASLT_EPILOGUE_DEFAULT && !bias && !relu) || (bias && bias_type != d.type) || Cdesc != Ddesc) {
        lm_emu::report("%s: a configuration the stand-in does not serve (it serves float, half or bfloat16 inputs, output float or the inputs' "
               "type, compute and scale 32F, epilogues none, bias, ReLU and bias-ReLU with the bias of the output's type, C laid out as D)",
               who);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    memset(p, 0, sizeof *p);
    p->m = (int)(f.ta == CUBLAS_OP_N ? a.rows : a.cols), p->k = (int)(f.ta == CUBLAS_OP_N ? a.cols : a.rows);
    int kb = (int)(f.tb == CUBLAS_OP_N ? b.rows : b.cols);
    p->n = (int)(f.tb == CUBLAS_OP_N ? b.cols : b.rows);
    p->in_type = a.type, p->out_type = d.type, p->epilogue = f.epilogue;
    for (int i = 0; i < 4; i++) p->align[i] = 256; /* the default preferences' */
    if (p->k != kb || d.rows != (uint64_t)p->m || d.cols != (uint64_t)p->n) {
        lm_emu::report("%s: op(A) is %d x %d, op(B) %d x %d, D %llu x %llu", who, p->m, p->k, kb, p->n, (unsigned long long)d.rows,
               (unsigned long long)d.cols);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    return CUBLAS_STATUS_SUCCESS;
}


} /* namespace */

using namespace lm_emu;

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t *h) { return new_handle(h, cublasContext{current_device(), nullptr, nullptr}); }

cublasStatus_t cublasDestroy_v2(cublasHandle_t h) { return delete_handle(h); }

cublasStatus_t cublasSetStream_v2(cublasHandle_t h, cudaStream_t s) {
    h->stream = s;
    h->workspace = nullptr;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t h, void *workspace, size_t bytes) {
    if (bytes && device_of(workspace, bytes) != h->device) {
        report("cublasSetWorkspace: %zu bytes at %p are not (wholly) in device %d's memory", bytes, workspace, h->device);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    h->workspace = bytes ? workspace : nullptr;
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
    size_t es = type_size(at), na = span(a_rows, a_cols, lda), nb = span(b_rows, b_cols, ldb), nc = span(m, n, ldc);
    if ((na && device_of(A, na * es) != dev) || (nb && device_of(B, nb * es) != dev) || device_of(C, nc * 4) != dev) {
        report("cublasGemmEx (m %d, n %d, k %d): A, B or C is not (wholly) in device %d's memory", m, n, k, dev);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (!h->workspace && refuse_in_capture("cublasGemmEx on a handle with no workspace set (cuBLAS would allocate one in the capture)"))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    float al = *(const float *)alpha, be = *(const float *)beta; /* host pointers (the default pointer mode), read now */
    enqueue(h->stream, [=] {
        count(dev, STAT_GEMMS, 1);
        product(ta, tb, m, n, k, al, A, at, lda, na, B, ldb, nb, be, (float *)C, ldc);
        return cudaSuccess;
    });
    return CUBLAS_STATUS_SUCCESS;
}

/* ---- cuBLASLt ---- */

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) { return new_handle(h, cublasLtContext{current_device()}); }

cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) { return delete_handle(h); }

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t compute, cudaDataType_t scale) {
    *d = new cublasLtMatmulDescOpaque_t{};
    *fields(*d) = lt_desc{compute, scale, CUBLAS_OP_N, CUBLAS_OP_N, CUBLASLT_EPILOGUE_DEFAULT, nullptr, -1};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) { return delete_handle(d); }

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, const void *buf, size_t size) {
    lt_desc *f = fields(d);
    switch (attr) { /* each attribute's size as cublasLt.h gives it */
    case CUBLASLT_MATMUL_DESC_TRANSA: if (size != 4) break; memcpy(&f->ta, buf, 4); return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_TRANSB: if (size != 4) break; memcpy(&f->tb, buf, 4); return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_EPILOGUE: if (size != 4) break; memcpy(&f->epilogue, buf, 4); return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: if (size != sizeof(void *)) break; memcpy(&f->bias, buf, size); return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: if (size != 4) break; memcpy(&f->bias_type, buf, 4); return CUBLAS_STATUS_SUCCESS;
    default: report("cublasLtMatmulDescSetAttribute: attribute %d is not one the stand-in serves", (int)attr); return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    report("cublasLtMatmulDescSetAttribute: attribute %d given %zu bytes", (int)attr, size);
    return CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType type, uint64_t rows, uint64_t cols, int64_t ld) {
    if (ld < (int64_t)(rows > 1 ? rows : 1)) {
        report("cublasLtMatrixLayoutCreate: %llu rows with leading dimension %lld", (unsigned long long)rows, (long long)ld);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    *l = new cublasLtMatrixLayoutOpaque_t{};
    *fields(*l) = lt_layout{type, rows, cols, ld};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) { return delete_handle(l); }

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) {
    *p = new cublasLtMatmulPreferenceOpaque_t{};
    *fields(*p) = lt_pref{0, {256, 256, 256, 256}};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) { return delete_handle(p); }

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t attr, const void *buf,
                                                    size_t size) {
    lt_pref *f = fields(p);
    if (attr == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES && size == 8) memcpy(&f->max_workspace, buf, 8);
    else if (attr >= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES && attr <= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES && size == 4)
        memcpy(&f->align[attr - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES], buf, 4);
    else {
        report("cublasLtMatmulPreferenceSetAttribute: attribute %d with %zu bytes is not one the stand-in serves", (int)attr, size);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    return CUBLAS_STATUS_SUCCESS;
}

/* An algorithm for this problem under pref's alignments: the stand-in's
 * algorithms are its one loop, so the answer is which problem it was asked
 * for; cublasLtMatmul refuses it for another or for operands less aligned. */
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t Adesc,
                                              cublasLtMatrixLayout_t Bdesc, cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
                                              cublasLtMatmulPreference_t pref, int requested, cublasLtMatmulHeuristicResult_t *results,
                                              int *returned) {
    *returned = 0;
    if (requested <= 0) return CUBLAS_STATUS_INVALID_VALUE;
    (void)h;
    lt_algo p;
    cublasStatus_t s = problem_of("cublasLtMatmulAlgoGetHeuristic", desc, Adesc, Bdesc, Cdesc, Ddesc, &p);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    if (epilogues_refused("cublasLtMatmulAlgoGetHeuristic", desc)) return CUBLAS_STATUS_NOT_SUPPORTED;
    memcpy(p.align, fields(pref)->align, sizeof p.align);
    memset(&results[0], 0, sizeof results[0]);
    memcpy(results[0].algo.data, &p, sizeof p);
    results[0].state = CUBLAS_STATUS_SUCCESS;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}

/* D = epilogue(alpha op(A) op(B)), C the same matrix as D and beta 0 (what
 * lyricmt asks); algo the heuristic's for this problem, or NULL (cuBLASLt's
 * own heuristic, under the default preferences: operands 256-aligned). */
cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t desc, const void *alpha, const void *A, cublasLtMatrixLayout_t Adesc,
                              const void *B, cublasLtMatrixLayout_t Bdesc, const void *beta, const void *C, cublasLtMatrixLayout_t Cdesc, void *D,
                              cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t *algo, void *workspace, size_t workspace_bytes,
                              cudaStream_t stream) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    int dev = current_device();
    if (h->device != dev || stream_device(stream) != dev) {
        report("cublasLtMatmul: the handle belongs to device %d, the stream to device %d, and device %d is current", h->device,
               stream_device(stream), dev);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    lt_algo p;
    cublasStatus_t st = problem_of("cublasLtMatmul", desc, Adesc, Bdesc, Cdesc, Ddesc, &p);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    if (!algo && epilogues_refused("cublasLtMatmul", desc)) return CUBLAS_STATUS_NOT_SUPPORTED;
    const lt_desc f = *fields(desc);
    const lt_layout a = *fields(Adesc), b = *fields(Bdesc), d = *fields(Ddesc);
    float al = *(const float *)alpha, be = *(const float *)beta;
    bool bias = has_bias(f.epilogue), relu = has_relu(f.epilogue);
    if (C != D || be != 0.0f) {
        report("cublasLtMatmul: the stand-in serves C the same matrix as D and beta 0");
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    lt_algo chosen = p;
    if (algo) memcpy(&chosen, algo->data, sizeof chosen);
    if (memcmp(&chosen, &p, offsetof(lt_algo, align))) {
        report("cublasLtMatmul: the algorithm given was found for another problem (%d x %d x %d, epilogue %u; this is %d x %d x %d, epilogue %u)",
               chosen.m, chosen.n, chosen.k, chosen.epilogue, p.m, p.n, p.k, p.epilogue);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    const void *operand[4] = {A, B, C, D};
    for (int i = 0; i < 4; i++)
        if ((uintptr_t)operand[i] % chosen.align[i]) {
            report("cublasLtMatmul: operand %c at %p is not %u-byte aligned, as the algorithm %s assumes", "ABCD"[i], operand[i], chosen.align[i],
                   algo ? "found under these preferences" : "of the default preferences");
            return CUBLAS_STATUS_INVALID_VALUE;
        }
    int m = p.m, n = p.n, k = p.k;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    size_t na = span((int)a.rows, (int)a.cols, (int)a.ld), nb = span((int)b.rows, (int)b.cols, (int)b.ld), nd = span(m, n, (int)d.ld);
    size_t es = type_size(a.type), ds = type_size(d.type);
    if ((na && device_of(A, na * es) != dev) || (nb && device_of(B, nb * es) != dev) || device_of(D, nd * ds) != dev ||
        (bias && device_of(f.bias, (size_t)m * ds) != dev) || (workspace_bytes && device_of(workspace, workspace_bytes) != dev)) {
        report("cublasLtMatmul (m %d, n %d, k %d): A, B, D, the bias or the workspace is not (wholly) in device %d's memory", m, n, k, dev);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    cublasOperation_t ta = (cublasOperation_t)f.ta, tb = (cublasOperation_t)f.tb;
    cudaDataType_t at = a.type, dt = d.type;
    int lda = (int)a.ld, ldb = (int)b.ld, ldd = (int)d.ld;
    const void *bias_p = f.bias;
    enqueue(stream, [=] {
        count(dev, STAT_GEMMS, 1);
        std::vector<float> acc((size_t)m * n), bb;
        product(ta, tb, m, n, k, al, A, at, lda, na, B, ldb, nb, 0.0f, acc.data(), m);
        const float *bv = bias ? widen(bias_p, dt, (size_t)m, bb) : nullptr;
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                float v = acc[(size_t)j * m + i] + (bv ? bv[i] : 0.0f);
                if (relu) v = v > 0.0f ? v : 0.0f;
                size_t at_d = (size_t)j * ldd + i;
                if (dt == CUDA_R_32F) ((float *)D)[at_d] = v;
                else if (dt == CUDA_R_16F) ((__half *)D)[at_d] = __float2half_rn(v);
                else ((__nv_bfloat16 *)D)[at_d] = __float2bfloat16_rn(v);
            }
        return cudaSuccess;
    });
    return CUBLAS_STATUS_SUCCESS;
}

} /* extern "C" */
