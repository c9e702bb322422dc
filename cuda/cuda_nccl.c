/* cuda_nccl: see cuda_nccl.h. */
#include "cuda_nccl.h"
#include "cuda_check.h"

#include <stdlib.h>

#ifdef LM_WITH_NCCL
#include <nccl.h>

/* NCCL's failures as lm_err, in cuda_check.h's style; jumps to `done` so the
 * communicators are always destroyed. */
#define NCCL_TRY(call)                                                                                   \
    do {                                                                                                 \
        ncclResult_t r_ = (call);                                                                        \
        if (r_ != ncclSuccess) {                                                                         \
            rc = lm_fail(err, "%s:%d: %s: %s", __FILE__, __LINE__, #call, ncclGetErrorString(r_));       \
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
    ncclComm_t *comms = lm_calloc((size_t)n, sizeof *comms, err);
    int *devs = lm_calloc((size_t)n, sizeof *devs, err);
    lm_cuda_weights *w = lm_calloc((size_t)n, sizeof *w, err);
    int rc = 0, made = 0;
    if (!comms || !devs || !w) { rc = -1; goto done; }
    for (int i = 0; i < n; i++) {
        w[i] = lm_cuda_backend_weights(backends[i]);
        devs[i] = w[i].device;
        if (w[i].n != w[0].n) { rc = lm_fail(err, "broadcast: backend %d holds %d weights, the first %d", i, w[i].n, w[0].n); goto done; }
    }
    /* rank i is backends[i]'s device; rank 0 holds the weights */
    NCCL_TRY(ncclCommInitAll(comms, n, devs));
    made = 1;
    /* one group per tensor: one thread drives every device, so each device's
     * call must be queued before any of them can block (NCCL "group calls") */
    for (int t = 0; t < w[0].n; t++) {
        NCCL_TRY(ncclGroupStart());
        for (int i = 0; i < n; i++)
            NCCL_TRY(ncclBroadcast(w[0].ptrs[t], w[i].ptrs[t], w[0].bytes[t], ncclChar, 0, comms[i], w[i].stream));
        NCCL_TRY(ncclGroupEnd());
    }
    for (int i = 0; i < n; i++) {
        CUDA_OR_DONE(cudaSetDevice(devs[i]));
        CUDA_OR_DONE(cudaStreamSynchronize(w[i].stream));
    }
done:
    /* streams synchronised (or failed) first, then the communicators go */
    for (int i = 0; made && i < n; i++)
        if (comms[i]) ncclCommDestroy(comms[i]);
    free(comms); free(devs); free(w);
    return rc;
}

#else

int lm_cuda_broadcast_weights(lm_backend *const *backends, int n, lm_err *err) {
    (void)backends;
    (void)n;
    return lm_fail(err, "--weights-from broadcast: this lyricmt was built without NCCL (nccl.h was not found at build time): use --weights-from disk");
}

#endif
