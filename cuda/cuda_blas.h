/*
 * cuda_blas: cuBLAS opened when the first CUDA backend is made, not linked.
 * A program linked with cuBLAS maps libcublasLt into every run: a CPU job
 * then carries about 146 MB of its pages and relocated data for nothing
 * (measured, benchmarks/NOTES.md "Peak memory on 2 threads, traced"), more
 * than the margin below CTranslate2's peak. The calls go through this table.
 */
#ifndef LM_CUDA_BLAS_H
#define LM_CUDA_BLAS_H

#include "base/util.h"

#include <cublasLt.h>
#include <cublas_v2.h>

typedef struct {
    cublasStatus_t (*create)(cublasHandle_t *);
    cublasStatus_t (*destroy)(cublasHandle_t);
    cublasStatus_t (*set_stream)(cublasHandle_t, cudaStream_t);
    cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void *, const void *,
                              cudaDataType, int, const void *, cudaDataType, int, const void *, void *, cudaDataType, int,
                              cublasComputeType_t, cublasGemmAlgo_t);
    cublasStatus_t (*set_workspace)(cublasHandle_t, void *, size_t);
    const char *(*status_string)(cublasStatus_t);
    /* cuBLASLt, which libcublas itself loads: the products with an epilogue (cuda_device.h) */
    cublasStatus_t (*lt_create)(cublasLtHandle_t *);
    cublasStatus_t (*lt_destroy)(cublasLtHandle_t);
    cublasStatus_t (*lt_desc_create)(cublasLtMatmulDesc_t *, cublasComputeType_t, cudaDataType_t);
    cublasStatus_t (*lt_desc_destroy)(cublasLtMatmulDesc_t);
    cublasStatus_t (*lt_desc_set)(cublasLtMatmulDesc_t, cublasLtMatmulDescAttributes_t, const void *, size_t);
    cublasStatus_t (*lt_layout_create)(cublasLtMatrixLayout_t *, cudaDataType, uint64_t, uint64_t, int64_t);
    cublasStatus_t (*lt_layout_destroy)(cublasLtMatrixLayout_t);
    cublasStatus_t (*lt_pref_create)(cublasLtMatmulPreference_t *);
    cublasStatus_t (*lt_pref_destroy)(cublasLtMatmulPreference_t);
    cublasStatus_t (*lt_pref_set)(cublasLtMatmulPreference_t, cublasLtMatmulPreferenceAttributes_t, const void *, size_t);
    cublasStatus_t (*lt_heuristic)(cublasLtHandle_t, cublasLtMatmulDesc_t, cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                                   cublasLtMatrixLayout_t, cublasLtMatrixLayout_t, cublasLtMatmulPreference_t, int,
                                   cublasLtMatmulHeuristicResult_t *, int *);
    cublasStatus_t (*lt_matmul)(cublasLtHandle_t, cublasLtMatmulDesc_t, const void *, const void *, cublasLtMatrixLayout_t, const void *,
                                cublasLtMatrixLayout_t, const void *, const void *, cublasLtMatrixLayout_t, void *, cublasLtMatrixLayout_t,
                                const cublasLtMatmulAlgo_t *, void *, size_t, cudaStream_t);
    char path[512]; /* the file opened */
} lm_cublas_api;

/* The table, opened on the first call (any thread; once per process):
 * LYRICMT_CUBLAS (a file) when set, else the loader's search for the
 * toolkit's soname (LD_LIBRARY_PATH, then the program's run path, which names
 * the toolkit it was built with). NULL, with err naming the file and why,
 * when it cannot be opened or lacks a function. */
const lm_cublas_api *lm_cublas(lm_err *err);

/* "cuBLAS opened at run time from PATH", or why not, for --version. */
const char *lm_cuda_cublas_describe(char *buf, size_t n);

/* A status's name for messages: cuBLAS's own when the table is open. */
const char *lm_cublas_status(cublasStatus_t s);

#endif
