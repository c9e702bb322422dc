/* label_logprob: each row's log-softmax at one given token (its label): what
 * teacher-forced scoring reads of a decoder step, so that the rows' 128k
 * logits no longer cross to the host each step (82 MB at 160 rows). The
 * host's twin is lm_label_logprob (host/backend/logits.c): x[label] - max -
 * log(sum of exp(x - max)), NaN for a row holding a NaN or +inf, or nothing
 * above -inf, as lm_row_max_sum's sum is then (and log of NaN is NaN). One
 * block a row. */
#include "common.cuh"

#define THREADS 256

__global__ void label_logprob_kernel(const float *logits, int V, const int32_t *labels, float *out) {
    const float *x = logits + (size_t)blockIdx.x * V;
    float mx, sum;
    lm_row_max_sum(x, V, &mx, &sum);
    if (threadIdx.x == 0) out[blockIdx.x] = x[labels[blockIdx.x]] - mx - logf(sum);
}

extern "C" int lm_k_label_logprob(const float *logits, int rows, int V, const int32_t *labels, float *out, cudaStream_t s,
                                  const char **msg) {
    if (rows == 0) return 0;
    LM_LAUNCH(label_logprob_kernel, rows, THREADS, 0, s)(logits, V, labels, out);
    return lm_k_launched(msg);
}
