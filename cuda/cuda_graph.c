/* cuda_graph: see cuda_graph.h. */
#include "cuda/cuda_graph.h"
#include "cuda/cuda_check.h"
#include "cuda/cuda_device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lm_cuda_graphs_init(lm_cuda_graphs *g) {
    *g = (lm_cuda_graphs){0};
    g->on = lm_cuda_switch("LYRICMT_CUDA_GRAPHS");
}

void lm_cuda_graphs_free(lm_cuda_graphs *g) {
    for (int i = 0; i < g->n; i++) cudaGraphExecDestroy(g->slot[i].exec);
    g->n = 0;
}

/* A capture this driver would not take: graphs off for good on this backend,
 * said once, and the step run as plain launches (the capture ran nothing). */
static int give_up(lm_cuda_graphs *g, const char *why, lm_cuda_graph_body body, void *ctx, lm_err *err) {
    fprintf(stderr, "lyricmt: cuda: CUDA graphs off (%s); each step's launches go one by one\n", why);
    cudaGetLastError(); /* a failed capture is not the next call's error */
    lm_cuda_graphs_free(g);
    g->on = false;
    return body(ctx, err);
}

/* The errors that say the capture failed, not the work: something in the
 * body a capture cannot hold. Any other (a sticky error from earlier work, a
 * bad argument) is the step's own and is returned as it would be without
 * graphs. */
static bool capture_error(cudaError_t e) {
    return (e >= cudaErrorStreamCaptureUnsupported && e <= cudaErrorStreamCaptureWrongThread) || e == cudaErrorNotSupported;
}

int lm_cuda_graph_run(lm_cuda_graphs *g, cudaStream_t s, const void *key, size_t key_bytes, lm_cuda_graph_body body, void *ctx, lm_err *err) {
    if (!g->on || key_bytes > LM_CUDA_GRAPH_KEY) return body(ctx, err);
    unsigned char k[LM_CUDA_GRAPH_KEY] = {0};
    memcpy(k, key, key_bytes);
    g->calls++;
    for (int i = 0; i < g->n; i++)
        if (!memcmp(g->slot[i].key, k, sizeof k)) {
            g->slot[i].used = g->calls;
            CUDA_TRY(cudaGraphLaunch(g->slot[i].exec, s));
            g->launched++;
            return 0;
        }
    bool again = g->calls > 1 && !memcmp(g->last, k, sizeof k);
    memcpy(g->last, k, sizeof k);
    if (!again) return body(ctx, err);

    cudaError_t e = cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
    if (capture_error(e)) return give_up(g, cudaGetErrorString(e), body, ctx, err);
    CUDA_TRY(e);
    lm_err during = {"the step failed while captured"};
    int rc = body(ctx, &during);
    cudaGraph_t graph = NULL;
    e = cudaStreamEndCapture(s, &graph); /* always: a failed body leaves the stream capturing otherwise */
    if (rc != 0 || e != cudaSuccess) {
        if (graph) cudaGraphDestroy(graph);
        if (capture_error(e)) return give_up(g, cudaGetErrorString(e), body, ctx, err);
        if (rc != 0) {
            *err = during;
            return -1;
        }
        CUDA_TRY(e);
    }
    cudaGraphExec_t exec = NULL;
    e = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) return give_up(g, cudaGetErrorString(e), body, ctx, err); /* this graph, not the work: any failure */

    int at = 0;
    if (g->n < LM_CUDA_GRAPHS) at = g->n++;
    else { /* full: the least recently launched goes */
        for (int i = 1; i < g->n; i++)
            if (g->slot[i].used < g->slot[at].used) at = i;
        cudaGraphExecDestroy(g->slot[at].exec);
    }
    memcpy(g->slot[at].key, k, sizeof k);
    g->slot[at].exec = exec;
    g->slot[at].used = g->calls;
    g->captured++;
    CUDA_TRY(cudaGraphLaunch(exec, s));
    g->launched++;
    return 0;
}
