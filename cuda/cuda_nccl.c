/*
 * cuda_nccl: the model's weights copied from one GPU to the others of a
 * process with NCCL (ncclBroadcast over one communicator made by
 * ncclCommInitAll), instead of each GPU reading them from host memory.
 * Built with NCCL where the CUDA toolkit has it (LM_WITH_NCCL); without it
 * the broadcast says so and --weights-from disk remains.
 */
#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/cuda_device.h"

#include <stdio.h>
#include <stdlib.h>

#ifdef LM_WITH_NCCL
#include <dlfcn.h>
#include <glob.h>
#include <link.h>
#include <nccl.h>
#include <string.h>

/* The file NCCL is opened as; the emulated build (tests/cuda_emu) names its
 * stand-in here, so that it can never open the real one. */
#ifndef LM_NCCL_SONAME
#define LM_NCCL_SONAME "libnccl.so.2"
#endif

/* NCCL is opened when a broadcast is asked for, not linked: the program then
 * runs on machines whose CUDA has no NCCL (CTranslate2's nccl_stub does the
 * same), and only --weights-from broadcast needs it. The table is filled once,
 * from the main thread, before any worker starts. */
static struct {
    ncclResult_t (*get_version)(int *);
    ncclResult_t (*comm_init_all)(ncclComm_t *, int, const int *);
    ncclResult_t (*broadcast)(const void *, void *, size_t, ncclDataType_t, int, ncclComm_t, cudaStream_t);
    ncclResult_t (*group_start)(void);
    ncclResult_t (*group_end)(void);
    ncclResult_t (*comm_destroy)(ncclComm_t);
    const char *(*error_string)(ncclResult_t);
    char path[512]; /* the file opened */
} nccl;

/* Where PyTorch's wheels put their NCCL (pip's nvidia-nccl-cu* package),
 * under a Python prefix: the GPU machines' CUDA 13 toolkits ship none, but
 * their torch does. The prefixes: VIRTUAL_ENV, CONDA_PREFIX, then these
 * (%s is HOME). */
#define TORCH_NCCL "lib/python3*/site-packages/nvidia/nccl/lib/" LM_NCCL_SONAME
static const char *const torch_nccl[] = {
    "%s/.local/" TORCH_NCCL,
    "%s/.pyenv/versions/*/" TORCH_NCCL,
    "/usr/local/lib/python3*/dist-packages/nvidia/nccl/lib/" LM_NCCL_SONAME,
    "/usr/local/" TORCH_NCCL,
    "/usr/lib/python3/dist-packages/nvidia/nccl/lib/" LM_NCCL_SONAME,
    "/opt/conda/" TORCH_NCCL,
};

/* The first of pattern's matches that dlopen takes, or NULL. */
static void *open_first(const char *pattern) {
    glob_t g;
    void *lib = NULL;
    if (glob(pattern, 0, NULL, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc && !lib; i++) lib = dlopen(g.gl_pathv[i], RTLD_NOW | RTLD_LOCAL);
    globfree(&g);
    return lib;
}

/* LYRICMT_NCCL (a file) when set; else the loader's search (LD_LIBRARY_PATH,
 * the system's libraries, the CUDA toolkit's through the binary's rpath);
 * else PyTorch's copy. */
static void *open_nccl(lm_err *err) {
    const char *given = getenv("LYRICMT_NCCL");
    if (given && *given) {
        void *lib = dlopen(given, RTLD_NOW | RTLD_LOCAL);
        if (!lib) lm_fail(err, "cannot load NCCL from LYRICMT_NCCL=%s (%s)", given, dlerror());
        return lib;
    }
    void *lib = dlopen(LM_NCCL_SONAME, RTLD_NOW | RTLD_LOCAL);
    const char *home = getenv("HOME"), *prefixes[] = {getenv("VIRTUAL_ENV"), getenv("CONDA_PREFIX")};
    char pattern[512];
    for (size_t p = 0; p < sizeof prefixes / sizeof *prefixes && !lib; p++)
        if (prefixes[p] && *prefixes[p]) {
            snprintf(pattern, sizeof pattern, "%s/" TORCH_NCCL, prefixes[p]);
            lib = open_first(pattern);
        }
    for (size_t i = 0; i < sizeof torch_nccl / sizeof *torch_nccl && !lib; i++) {
        snprintf(pattern, sizeof pattern, torch_nccl[i], home && *home ? home : "/nonexistent");
        lib = open_first(pattern);
    }
    if (!lib)
        lm_fail(err, "cannot load NCCL: no %s on the library path, and no PyTorch copy (site-packages/nvidia/nccl/lib); "
                     "set LYRICMT_NCCL to the file",
                LM_NCCL_SONAME);
    return lib;
}

static int load_nccl(lm_err *err) {
    if (nccl.broadcast) return 0;
    void *lib = open_nccl(err);
    if (!lib) return -1;
    struct link_map *map = NULL;
    snprintf(nccl.path, sizeof nccl.path, "%s", dlinfo(lib, RTLD_DI_LINKMAP, &map) == 0 && map ? map->l_name : "?");
    *(void **)&nccl.comm_init_all = dlsym(lib, "ncclCommInitAll");
    *(void **)&nccl.group_start = dlsym(lib, "ncclGroupStart");
    *(void **)&nccl.group_end = dlsym(lib, "ncclGroupEnd");
    *(void **)&nccl.comm_destroy = dlsym(lib, "ncclCommDestroy");
    *(void **)&nccl.error_string = dlsym(lib, "ncclGetErrorString");
    *(void **)&nccl.broadcast = dlsym(lib, "ncclBroadcast");
    *(void **)&nccl.get_version = dlsym(lib, "ncclGetVersion");
    if (!nccl.get_version || !nccl.comm_init_all || !nccl.group_start || !nccl.group_end || !nccl.comm_destroy || !nccl.error_string || !nccl.broadcast) {
        nccl.broadcast = NULL;
        return lm_fail(err, "the NCCL found (%s) lacks ncclBroadcast and friends", nccl.path);
    }
    return 0;
}

const char *lm_cuda_nccl_describe(char *buf, size_t n) {
    lm_err e = {{0}};
    int v = 0;
    if (load_nccl(&e) != 0) snprintf(buf, n, "built, not loadable here: %s", e.msg);
    else if (nccl.get_version(&v) != ncclSuccess) snprintf(buf, n, "built, %s opened but ncclGetVersion fails", nccl.path);
    else snprintf(buf, n, "built, NCCL %d.%d.%d opened at run time from %s", v / 10000, v / 100 % 100, v % 100, nccl.path);
    return buf;
}

/* NCCL's failures as lm_err, in cuda_check.h's style; jumps to `done` so the
 * communicators are always destroyed. NCCL_CHECK takes a result already
 * had and names the call that gave it. */
#define NCCL_CHECK(result, what)                                                                         \
    do {                                                                                                 \
        ncclResult_t r_ = (result);                                                                      \
        if (r_ != ncclSuccess) {                                                                         \
            rc = lm_fail(err, "%s:%d: %s: %s", __FILE__, __LINE__, what, nccl.error_string(r_));         \
            goto done;                                                                                   \
        }                                                                                                \
    } while (0)
#define NCCL_TRY(call) NCCL_CHECK(call, #call)

#define CUDA_OR_DONE(call)                                                                               \
    do {                                                                                                 \
        cudaError_t e_ = (call);                                                                         \
        if (e_ != cudaSuccess) {                                                                         \
            rc = lm_fail(err, "%s:%d: %s: %s", __FILE__, __LINE__, #call, cudaGetErrorString(e_));       \
            goto done;                                                                                   \
        }                                                                                                \
    } while (0)

int lm_cuda_broadcast_weights(lm_backend *const *backends, int n, lm_err *err) {
    /* one device is a communicator too: the broadcast is then in place, which
     * lets a one-GPU machine run this path */
    if (load_nccl(err) != 0) return lm_fail_prefix(err, "--weights-from broadcast (use --weights-from disk)");
    ncclComm_t *comms = lm_calloc((size_t)n, sizeof *comms, err);
    int *devs = lm_calloc((size_t)n, sizeof *devs, err);
    lm_cuda_weights *w = lm_calloc((size_t)n, sizeof *w, err);
    int rc = 0, made = 0;
    if (!comms || !devs || !w) { rc = -1; goto done; }
    for (int i = 0; i < n; i++) {
        w[i] = lm_cuda_backend_weights(backends[i]);
        devs[i] = w[i].device;
        if (w[i].n != w[0].n) { rc = lm_fail(err, "broadcast: backend %d holds %d weights, the first %d", i, w[i].n, w[0].n); goto done; }
        for (int t = 0; t < w[0].n; t++)
            if (w[i].bytes[t] != w[0].bytes[t]) { rc = lm_fail(err, "broadcast: weight %d is %zu bytes on backend %d, %zu on the first", t, w[i].bytes[t], i, w[0].bytes[t]); goto done; }
    }
    /* rank i is backends[i]'s device; rank 0 holds the weights */
    NCCL_TRY(nccl.comm_init_all(comms, n, devs));
    made = 1;
    /* one group per tensor: one thread drives every device, so each device's
     * call must be queued before any of them can block (NCCL "group calls") */
    for (int t = 0; t < w[0].n; t++) {
        NCCL_TRY(nccl.group_start());
        ncclResult_t r = ncclSuccess;
        for (int i = 0; i < n && r == ncclSuccess; i++)
            r = nccl.broadcast(w[0].ptrs[t], w[i].ptrs[t], w[0].bytes[t], ncclChar, 0, comms[i], w[i].stream);
        /* the group is closed even after a failed call: destroying a
         * communicator inside an open group may hang */
        ncclResult_t end = nccl.group_end();
        NCCL_CHECK(r, "ncclBroadcast");
        NCCL_CHECK(end, "ncclGroupEnd");
    }
    for (int i = 0; i < n; i++) {
        CUDA_OR_DONE(cudaSetDevice(devs[i]));
        CUDA_OR_DONE(cudaStreamSynchronize(w[i].stream));
    }
done:
    /* streams synchronised (or failed) first, then the communicators go */
    for (int i = 0; made && i < n; i++)
        if (comms[i]) nccl.comm_destroy(comms[i]);
    free(comms); free(devs); free(w);
    return rc;
}

#else

const char *lm_cuda_nccl_describe(char *buf, size_t n) {
    snprintf(buf, n, "not built (nccl.h was not found)");
    return buf;
}

int lm_cuda_broadcast_weights(lm_backend *const *backends, int n, lm_err *err) {
    (void)backends;
    (void)n;
    return lm_fail(err, "--weights-from broadcast: this lyricmt was built without NCCL (nccl.h was not found at build time): use --weights-from disk");
}

#endif
