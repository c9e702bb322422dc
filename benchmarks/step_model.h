/*
 * step_model: what a decoder step and an encoder batch of the CUDA backend
 * should cost on one H100, part by part, from the device's constants alone
 * (issue 23, benchmarks/NOTES.md attempt 25). Each part is the larger of its
 * arithmetic at a share of the tensor cores' peak and its bytes at a share of
 * HBM bandwidth, and never less than one launch: the host's (~4 us) when it
 * issues kernels one by one, the GPU's (~2 us) for a kernel inside a CUDA
 * graph, which is how the backend issues a decoder step's layers and output
 * projection (cuda/cuda_graph.c; the top-k and copies stay outside it).
 * With cuBLASLt epilogues (the default) the QKV and first FFN products add
 * their own bias (and ReLU), and the first FFN product writes its output in
 * the compute precision: two kernels a layer fewer, and no fp32 round trip
 * of the FFN's wide activations (NOTES attempt 27).
 * Written to be checked: benchmarks/cuda_steps.c
 * prints it beside each measurement, build/step_model prints the table at
 * 32, 256 and 1,280 rows. No GPU has run it yet; every figure is a prediction.
 */
#ifndef LM_STEP_MODEL_H
#define LM_STEP_MODEL_H

#include <stdio.h>

/* H100 SXM: ~800 TFLOP/s dense bf16 as the issue counts it (989 on paper),
 * ~60 TFLOP/s fp32 without tensor cores (GemmEx compute 32F, no TF32),
 * 3.35 TB/s HBM3; products reach 60% of peak, streams 80% of bandwidth; a
 * launch costs the host ~4 us and the GPU ~2 us at least; a graph's launch
 * ~8 us of the host's. */
#define LM_H100_FLOPS_16 800e12
#define LM_H100_FLOPS_32 60e12
#define LM_H100_BYTES 3.35e12
#define LM_SM_GEMM_EFF 0.6
#define LM_SM_BW_EFF 0.8
#define LM_SM_LAUNCH_US 4.0
#define LM_SM_NODE_US 2.0  /* a kernel in a graph: the GPU's own floor */
#define LM_SM_GRAPH_US 8.0 /* one graph launch */
#define LM_SM_COPY_US 8.0 /* a small host-device copy or a stream sync, round trip */

typedef struct {
    int d, ffn, vocab, enc_layers, dec_layers;
} lm_sm_shape;

#define LM_SM_SMALL100 ((lm_sm_shape){1024, 4096, 128112, 12, 3})

/* What the backend runs with (both by default). */
#define LM_SM_GRAPHS 1    /* the decoder step replayed from a CUDA graph */
#define LM_SM_EPILOGUES 2 /* biases and ReLU in the products' epilogues */
#define LM_SM_PARTS 16

typedef struct {
    const char *name[LM_SM_PARTS];
    double us[LM_SM_PARTS];
    int n, launches, host_launches, copies; /* kernels a step; of them (and graphs) what the host launches */
    double total_us;
} lm_sm_pred;

static inline double lm_sm_max(double a, double b) { return a > b ? a : b; }

/* One kernel or product: flops at peak x eff, bytes at bandwidth x eff, at
 * least `floor` (LM_SM_LAUNCH_US, or LM_SM_NODE_US inside a graph). */
static inline double lm_sm_kernel_us(double flops, double bytes, int es, double floor) {
    double peak = es == 4 ? LM_H100_FLOPS_32 : LM_H100_FLOPS_16;
    return lm_sm_max(lm_sm_max(flops / (peak * LM_SM_GEMM_EFF), bytes / (LM_H100_BYTES * LM_SM_BW_EFF)) * 1e6, floor);
}

/* y (rows, n; out_es bytes) = x (rows, k; es bytes) . W (n, k; es bytes)^T */
static inline double lm_sm_gemm_out_us(double rows, double k, double n, int es, int out_es, double floor) {
    return lm_sm_kernel_us(2 * rows * k * n, (rows * k + n * k) * es + rows * n * out_es, es, floor);
}

/* ... written in fp32 */
static inline double lm_sm_gemm_us(double rows, double k, double n, int es, double floor) { return lm_sm_gemm_out_us(rows, k, n, es, 4, floor); }

static inline void lm_sm_add(lm_sm_pred *p, const char *name, double us, int launches) {
    for (int i = 0; i < p->n; i++)
        if (p->name[i] == name) { p->us[i] += us; p->launches += launches; p->total_us += us; return; }
    p->name[p->n] = name;
    p->us[p->n++] = us;
    p->launches += launches;
    p->total_us += us;
}

/* A greedy decoder step of `rows` rows, `cached` tokens already in each
 * row's cache, `src` source tokens a sentence; es: the compute precision's
 * bytes (2: bf16/fp16, 4: fp32). Today's backend: fused QKV product, fused
 * K/V append, KV cache in the compute precision, cross K/V fp32, logits
 * written in fp32 and read once by the split top-k; graphs: the layers and
 * the output projection replayed from a CUDA graph (the default), or each
 * kernel launched by the host; flags: LM_SM_GRAPHS, LM_SM_EPILOGUES. */
static inline void lm_sm_decoder_step(lm_sm_shape m, double rows, double cached, double src, int es, int flags, lm_sm_pred *p) {
    int graphs = flags & LM_SM_GRAPHS, ep = flags & LM_SM_EPILOGUES;
    double R = rows, D = m.d, F = m.ffn, V = m.vocab, L = cached + 1, fl = graphs ? LM_SM_NODE_US : LM_SM_LAUNCH_US;
    *p = (lm_sm_pred){0};
    lm_sm_add(p, "embed + norm", 2 * lm_sm_kernel_us(0, R * D * (4 + 4 + es), es, fl), 2);
    for (int l = 0; l < m.dec_layers; l++) {
        lm_sm_add(p, "QKV product", lm_sm_gemm_us(R, D, 3 * D, es, fl), 1);
        if (!ep) lm_sm_add(p, "QKV bias", lm_sm_kernel_us(0, R * 3 * D * 8, es, fl), 1);
        lm_sm_add(p, "K/V append", lm_sm_kernel_us(0, R * 2 * D * (4 + es), es, fl), 1);
        lm_sm_add(p, "self-attention", lm_sm_kernel_us(4 * R * L * D, R * L * 2 * D * es + R * D * (4 + es), es, fl), 1);
        lm_sm_add(p, "cross-attention", lm_sm_kernel_us(4 * R * src * D, R * src * 2 * D * 4 + R * D * (4 + es), es, fl), 1);
        lm_sm_add(p, "O, cQ, cO products", 3 * lm_sm_gemm_us(R, D, D, es, fl) + lm_sm_kernel_us(0, R * D * 8, es, fl), 4);
        lm_sm_add(p, "FFN products", /* without epilogues fc1 writes fp32, and a kernel adds its bias and ReLU */
                  lm_sm_gemm_out_us(R, D, F, es, ep ? es : 4, fl) + lm_sm_gemm_us(R, F, D, es, fl) +
                      (ep ? 0 : lm_sm_kernel_us(0, R * F * (4 + es), es, fl)),
                  ep ? 2 : 3);
        lm_sm_add(p, "add + norm", 3 * lm_sm_kernel_us(0, R * D * (4 + 4 + 4 + es), es, fl), 3);
    }
    lm_sm_add(p, "output projection", lm_sm_gemm_us(R, D, V, es, fl), 1);
    lm_sm_add(p, "top-k (split)", lm_sm_kernel_us(0, R * V * 4, es, LM_SM_LAUNCH_US) + LM_SM_LAUNCH_US, 2); /* outside the graph */
    if (graphs) lm_sm_add(p, "graph launch", LM_SM_GRAPH_US, 0);
    p->host_launches = graphs ? 2 + 1 : p->launches; /* with graphs: the top-k's two and the graph */
    p->copies = 5; /* indices and edits up, ids and values down, one sync */
    lm_sm_add(p, "copies + sync", p->copies * LM_SM_COPY_US, 0);
}

/* An encoder batch of `sentences` sentences of `src` tokens: 12 layers and
 * the decoder's cross-attention keys and values, attention within a
 * sentence; flags: LM_SM_EPILOGUES (graphs play no part: the host launches
 * the encoder's kernels, each at least `floor`). *launches: its kernels and
 * products. */
static inline double lm_sm_encoder_us(lm_sm_shape m, double sentences, double src, int es, int flags, double floor, int *launches) {
    int ep = flags & LM_SM_EPILOGUES;
    double N = sentences * src, D = m.d, F = m.ffn, us = 0, fl = floor;
    *launches = 3 + (es == 2); /* the embedding, the first norm, the copy up; the 16-bit copy of the output */
    for (int l = 0; l < m.enc_layers; l++) {
        us += 4 * lm_sm_gemm_us(N, D, D, es, fl) + lm_sm_gemm_out_us(N, D, F, es, ep ? es : 4, fl) + lm_sm_gemm_us(N, F, D, es, fl);
        us += lm_sm_kernel_us(4 * N * src * D, N * D * 4 * 3, es, fl); /* attention */
        us += 4 * lm_sm_kernel_us(0, N * D * 12, es, fl);             /* norms, their adds, the embedding's share */
        if (!ep) us += lm_sm_kernel_us(0, N * 3 * D * 8, es, fl) + lm_sm_kernel_us(0, N * F * (4 + es), es, fl); /* QKV bias, FFN bias + ReLU */
        *launches += 7 + (ep ? 0 : 2);
    }
    us += 2 * m.dec_layers * (lm_sm_gemm_us(N, D, D, es, fl) + (ep ? 0 : lm_sm_kernel_us(0, N * D * 8, es, fl)));
    *launches += 2 * m.dec_layers * (ep ? 1 : 2);
    return us;
}

/* ... with the host launching each kernel, and its copies and wait. */
static inline double lm_sm_encoder_batch_us(lm_sm_shape m, double sentences, double src, int es, int flags) {
    int launches;
    return lm_sm_encoder_us(m, sentences, src, es, flags, LM_SM_LAUNCH_US, &launches) + 2 * LM_SM_COPY_US;
}

/* An admission in flight, as benchmarks/cuda_steps.c times one: rows/8
 * sentences encoded while the other rows take a step, then a step of every
 * row (`cached` tokens in each row's cache). In line (overlap 0, before
 * NOTES attempt 29): the encoder, the host's wait for it, then the steps.
 * Overlapped (the default): the host issues the encoder's launches while
 * the GPU runs the first step, and the GPU runs the encoder's kernels as
 * they come; assumed to share no SMs with the step (the pessimistic case),
 * they run after it, each at its own GPU floor rather than the host's. */
static inline double lm_sm_admission_us(lm_sm_shape m, double rows, double cached, double src, int es, int overlap) {
    double group = rows / 8 > 1 ? rows / 8 : 1;
    int launches;
    lm_sm_pred first, second;
    lm_sm_decoder_step(m, rows - group, cached, src, es, LM_SM_GRAPHS | LM_SM_EPILOGUES, &first);
    lm_sm_decoder_step(m, rows, cached, src, es, LM_SM_GRAPHS | LM_SM_EPILOGUES, &second);
    if (!overlap) return lm_sm_encoder_batch_us(m, group, src, es, LM_SM_EPILOGUES) + first.total_us + second.total_us;
    double gpu = lm_sm_encoder_us(m, group, src, es, LM_SM_EPILOGUES, LM_SM_NODE_US, &launches);
    double host = launches * LM_SM_LAUNCH_US + LM_SM_COPY_US;
    return lm_sm_max(first.total_us + gpu, LM_SM_GRAPH_US + host) + second.total_us;
}

/* The table build/step_model prints (and NOTES attempt 25 quotes). */
static inline void lm_sm_print_table(FILE *f, double cached, double src) {
    const double rows[3] = {32, 256, 1280};
    const int es[2] = {2, 4};
    for (int e = 0; e < 2; e++) {
        lm_sm_pred p[3], plain[3], no_ep[3];
        for (int i = 0; i < 3; i++) {
            lm_sm_decoder_step(LM_SM_SMALL100, rows[i], cached, src, es[e], LM_SM_GRAPHS | LM_SM_EPILOGUES, &p[i]);
            lm_sm_decoder_step(LM_SM_SMALL100, rows[i], cached, src, es[e], LM_SM_EPILOGUES, &plain[i]);
            lm_sm_decoder_step(LM_SM_SMALL100, rows[i], cached, src, es[e], LM_SM_GRAPHS, &no_ep[i]);
        }
        fprintf(f, "\n%s, decoder step (us; %g cached tokens, %g source tokens a row)\n\n", es[e] == 2 ? "bf16" : "fp32", cached, src);
        fprintf(f, "| part | 32 rows | 256 rows | 1280 rows |\n|---|---:|---:|---:|\n");
        for (int j = 0; j < p[0].n; j++) fprintf(f, "| %s | %.0f | %.0f | %.0f |\n", p[0].name[j], p[0].us[j], p[1].us[j], p[2].us[j]);
        fprintf(f, "| **step** | **%.0f** | **%.0f** | **%.0f** |\n", p[0].total_us, p[1].total_us, p[2].total_us);
        fprintf(f, "| step without graphs (each kernel launched by the host) | %.0f | %.0f | %.0f |\n", plain[0].total_us, plain[1].total_us,
                plain[2].total_us);
        fprintf(f, "| step without epilogues (biases and ReLU as kernels) | %.0f | %.0f | %.0f |\n", no_ep[0].total_us, no_ep[1].total_us,
                no_ep[2].total_us);
        fprintf(f, "| kernels (launched by the host with graphs) | %d (%d) | %d (%d) | %d (%d) |\n", p[0].launches, p[0].host_launches,
                p[1].launches, p[1].host_launches, p[2].launches, p[2].host_launches);
        fprintf(f, "| generated tokens/s (decoder alone) | %.0f | %.0f | %.0f |\n", rows[0] / p[0].total_us * 1e6,
                rows[1] / p[1].total_us * 1e6, rows[2] / p[2].total_us * 1e6);
        double enc[3];
        for (int i = 0; i < 3; i++) enc[i] = lm_sm_encoder_batch_us(LM_SM_SMALL100, rows[i], src, es[e], LM_SM_EPILOGUES);
        fprintf(f, "| encoder batch, as many sentences (us) | %.0f | %.0f | %.0f |\n", enc[0], enc[1], enc[2]);
        /* a sentence of ~src target tokens: the encoder's share spread over its steps */
        fprintf(f, "| greedy tokens/s with the encoder | %.0f | %.0f | %.0f |\n", rows[0] * src / (src * p[0].total_us + enc[0]) * 1e6,
                rows[1] * src / (src * p[1].total_us + enc[1]) * 1e6, rows[2] * src / (src * p[2].total_us + enc[2]) * 1e6);
        double adm[2][3];
        for (int o = 0; o < 2; o++)
            for (int i = 0; i < 3; i++) adm[o][i] = lm_sm_admission_us(LM_SM_SMALL100, rows[i], cached, src, es[e], o);
        fprintf(f, "| admission in flight (rows/8 encoded, two steps), in line | %.0f | %.0f | %.0f |\n", adm[0][0], adm[0][1], adm[0][2]);
        fprintf(f, "| admission in flight, encoder beside the first step (the default) | %.0f | %.0f | %.0f |\n", adm[1][0], adm[1][1],
                adm[1][2]);
    }
}

#endif
