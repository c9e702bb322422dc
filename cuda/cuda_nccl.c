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
#include <nccl.h>

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
} nccl;

static int load_nccl(lm_err *err) {
    if (nccl.broadcast) return 0;
    void *lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!lib) lib = dlopen("libnccl.so", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return lm_fail(err, "cannot load NCCL (%s)", dlerror());
    *(void **)&nccl.comm_init_all = dlsym(lib, "ncclCommInitAll");
    *(void **)&nccl.group_start = dlsym(lib, "ncclGroupStart");
    *(void **)&nccl.group_end = dlsym(lib, "ncclGroupEnd");
    *(void **)&nccl.comm_destroy = dlsym(lib, "ncclCommDestroy");
    *(void **)&nccl.error_string = dlsym(lib, "ncclGetErrorString");
    *(void **)&nccl.broadcast = dlsym(lib, "ncclBroadcast");
    *(void **)&nccl.get_version = dlsym(lib, "ncclGetVersion");
    if (!nccl.get_version || !nccl.comm_init_all || !nccl.group_start || !nccl.group_end || !nccl.comm_destroy || !nccl.error_string || !nccl.broadcast) {
        nccl.broadcast = NULL;
        return lm_fail(err, "the NCCL found lacks ncclBroadcast and friends");
    }
    return 0;
}

const char *lm_cuda_nccl_describe(char *buf, size_t n) {
    lm_err e = {{0}};
    int v = 0;
    if (load_nccl(&e) != 0 || nccl.get_version(&v) != ncclSuccess) snprintf(buf, n, "built, not loadable here: %s", e.msg);
    else snprintf(buf, n, "built, NCCL %d.%d.%d opened at run time", v / 10000, v / 100 % 100, v % 100);
    return buf;
}

/* NCCL's failures as lm_err, in cuda_check.h's style; jumps to `done` so the
 * communicators are always destroyed. */
#define NCCL_TRY(call)                                                                                   \
    do {                                                                                                 \
        ncclResult_t r_ = (call);                                                                        \
        if (r_ != ncclSuccess) {                                                                         \
            rc = lm_fail(err, "%s:%d: %s: %s", __FILE__, __LINE__, #call, nccl.error_string(r_));        \
            goto done;                                                                                   \
        }                                                                                                \
    } while (0)

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
        for (int i = 0; i < n; i++)
            NCCL_TRY(nccl.broadcast(w[0].ptrs[t], w[i].ptrs[t], w[0].bytes[t], ncclChar, 0, comms[i], w[i].stream));
        NCCL_TRY(nccl.group_end());
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
