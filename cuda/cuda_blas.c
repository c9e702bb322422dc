/*
 * cuda_blas: the cuBLAS table (cuda_blas.h).
 */
#include "cuda/cuda_blas.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

/* The toolkit's soname, from the headers the program was built with. The
 * emulated build (tests/cuda_emu) links its stand-in into the program and
 * names no file: dlopen(NULL) is the program, whose exported symbols hold it. */
#define LM_STR_(x) #x
#define LM_STR(x) LM_STR_(x)
#ifndef LM_CUBLAS_SONAME
#define LM_CUBLAS_SONAME "libcublas.so." LM_STR(CUBLAS_VER_MAJOR)
#define LM_CUBLASLT_SONAME "libcublasLt.so." LM_STR(CUBLAS_VER_MAJOR)
#else
#define LM_CUBLASLT_SONAME LM_CUBLAS_SONAME
#endif

static lm_cublas_api api;
static char why[600];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void open_cublas(void) {
    const char *given = getenv("LYRICMT_CUBLAS"), *file = given && *given ? given : LM_CUBLAS_SONAME;
    void *lib = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(why, sizeof why, "cannot load cuBLAS %s (%s)%s", file ? file : "from the program", dlerror(),
                 given && *given ? "" : ": install the CUDA toolkit's cuBLAS, or set LYRICMT_CUBLAS to the file");
        return;
    }
    struct link_map *map = NULL;
    snprintf(api.path, sizeof api.path, "%s", dlinfo(lib, RTLD_DI_LINKMAP, &map) == 0 && map && *map->l_name ? map->l_name : "the program");
    /* libcublas has loaded its libcublasLt by now: the loader finds it by soname */
    void *lt = dlopen(LM_CUBLASLT_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!lt) {
        snprintf(why, sizeof why, "the cuBLAS found (%s) came without its cuBLASLt (%s)", api.path, dlerror());
        return;
    }
    /* the names after cublas_v2.h's macros (cublasCreate is cublasCreate_v2) */
    struct { void *lib; void **fn; const char *name; } want[] = {
        {lib, (void **)&api.create, LM_STR(cublasCreate)},         {lib, (void **)&api.destroy, LM_STR(cublasDestroy)},
        {lib, (void **)&api.set_stream, LM_STR(cublasSetStream)},  {lib, (void **)&api.gemm_ex, LM_STR(cublasGemmEx)},
        {lib, (void **)&api.set_workspace, LM_STR(cublasSetWorkspace)},
        {lib, (void **)&api.status_string, LM_STR(cublasGetStatusString)},
        {lt, (void **)&api.lt_create, "cublasLtCreate"},           {lt, (void **)&api.lt_destroy, "cublasLtDestroy"},
        {lt, (void **)&api.lt_desc_create, "cublasLtMatmulDescCreate"}, {lt, (void **)&api.lt_desc_destroy, "cublasLtMatmulDescDestroy"},
        {lt, (void **)&api.lt_desc_set, "cublasLtMatmulDescSetAttribute"},
        {lt, (void **)&api.lt_layout_create, "cublasLtMatrixLayoutCreate"}, {lt, (void **)&api.lt_layout_destroy, "cublasLtMatrixLayoutDestroy"},
        {lt, (void **)&api.lt_pref_create, "cublasLtMatmulPreferenceCreate"},
        {lt, (void **)&api.lt_pref_destroy, "cublasLtMatmulPreferenceDestroy"},
        {lt, (void **)&api.lt_pref_set, "cublasLtMatmulPreferenceSetAttribute"},
        {lt, (void **)&api.lt_heuristic, "cublasLtMatmulAlgoGetHeuristic"},
        {lt, (void **)&api.lt_matmul, "cublasLtMatmul"},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        if (!(*want[i].fn = dlsym(want[i].lib, want[i].name))) {
            snprintf(why, sizeof why, "the cuBLAS found (%s) lacks %s", api.path, want[i].name);
            api.create = NULL; /* the mark of a usable table */
            return;
        }
}

const lm_cublas_api *lm_cublas(lm_err *err) {
    pthread_once(&once, open_cublas);
    if (api.create) return &api;
    if (err) lm_fail(err, "%s", why);
    return NULL;
}

const char *lm_cublas_status(cublasStatus_t s) {
    pthread_once(&once, open_cublas);
    return api.create ? api.status_string(s) : "cuBLAS status (library not loaded)";
}

const char *lm_cuda_cublas_describe(char *buf, size_t n) {
    lm_err e = {{0}};
    if (lm_cublas(&e)) snprintf(buf, n, "cuBLAS opened at run time from %s", api.path);
    else snprintf(buf, n, "cuBLAS not loadable here: %s", e.msg);
    return buf;
}
