/* cuda_graph: see cuda_graph.h. */
#include "cuda/cuda_graph.h"
#include "cuda/cuda_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lm_cuda_graphs_init(lm_cuda_graphs *g) {
    const char *e = getenv("LYRICMT_CUDA_GRAPHS");
    *g = (lm_cuda_graphs){0};
    g->on = !(e && !strcmp(e, "0"));
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
    if (e != cudaSuccess) return give_up(g, cudaGetErrorString(e), body, ctx, err);
    lm_err during = {"the step failed while captured"};
    int rc = body(ctx, &during);
    cudaGraph_t graph = NULL;
    e = cudaStreamEndCapture(s, &graph); /* always: a failed body leaves the stream capturing otherwise */
    cudaGraphExec_t exec = NULL;
    if (rc == 0 && e == cudaSuccess) e = cudaGraphInstantiate(&exec, graph, 0);
    if (graph) cudaGraphDestroy(graph);
    if (rc != 0 || e != cudaSuccess) return give_up(g, rc != 0 ? during.msg : cudaGetErrorString(e), body, ctx, err);

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
