/*
 * kernels: the CUDA kernels of the CUDA backend, one op per file, each behind
 * one launch function callable from C. Every launch function checks the launch
 * and returns 0, or -1 with the CUDA error text in *msg (static storage).
 *
 * Types: activations, caches and matrix-product outputs are float; weights and
 * matrix-product inputs are of the backend's dtype (LM_K_F32/F16/BF16),
 * passed as void pointers. Rows are row-major with the stride given.
 *
 * Each kernel, the CPU backend's body for the same op (its twin), and the
 * test that holds the kernel to a CPU reference (tests/test_cuda_kernels.c,
 * random inputs, odd sizes and limits; end to end, tests/test_cuda_backend.c
 * holds the whole backend to the CPU backend):
 *
 *   kernel            file              CPU twin                                   test
 *   lm_k_convert      convert.cu        lm_bf16_round (cpu/gemm_bf16.c): weights   test_convert_long, test_embed
 *                                       to 16 bits (fp16: the test's rounding)
 *   lm_k_embed        embed.cu          embed() in cpu/cpu_backend.c               test_embed
 *   lm_k_add_layernorm add_layernorm.cu add_norm() (cpu_backend.c) over            test_layernorm (ref_layernorm)
 *                                       lm_cpu_norm_row_* (cpu/cpu_norm.c)
 *   lm_k_bias_act     bias_act.cu       the bias and relu in the products' store   test_bias_act
 *                                       (cpu/cpu_weights.c), activate() for gelu
 *   lm_k_attention    attention.cu      lm_cpu_attention_* (cpu/cpu_attention.c)   test_attention (ref_attention)
 *   lm_k_gather_rows  gather_rows.cu    cpu_reorder() (cpu_backend.c)              test_gather_rows
 *   lm_k_append_kv    append_rows.cu    the cache writes of cpu_decode_step()      test_append_kv
 *   lm_k_logprob_topk logprob_topk.cu   lm_logprob_topk, lm_greedy_pick            test_logprob_topk (ref_topk, an
 *                                       (backend/logits.c)                         independent scan in double)
 *   lm_k_sample       sample.cu         lm_sample_row (backend/sample.c): the same  test_sample_kernel (the twin:
 *                                       tokens and draws, bit for bit; raw         tokens and draws exact,
 *                                       log-probs as its raw_logprob               log-probs within 2e-5)
 *   lm_k_logprob_topk_split             the same twins; ids identical to           test_logprob_topk (split), 
 *                     logprob_topk.cu   lm_k_logprob_topk's                        test_topk_split_ties
 */
#ifndef LM_KERNELS_H
#define LM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { LM_K_F32 = 0, LM_K_F16 = 1, LM_K_BF16 = 2 };
enum { LM_K_ACT_NONE = 0, LM_K_ACT_RELU = 1, LM_K_ACT_GELU = 2 };

/* Largest k logprob_topk takes on the device (callers fall back to the host). */
#define LM_K_TOPK_MAX 16

/* dst (n, dtype) = src (n, float): uploading weights in the compute precision. */
int lm_k_convert(const float *src, void *dst, int dtype, size_t n, cudaStream_t s, const char **msg);

/* x[i] = table[tokens[i]] * scale + positions[pos[i] + 2]: table (V, d) of dtype,
 * positions (P, d) float, x (n, d) float. */
int lm_k_embed(float *x, const void *table, int dtype, const float *positions, const int32_t *tokens,
               const int32_t *pos, int n, int d, float scale, cudaStream_t s, const char **msg);

/* For each of n rows: x += y + bias when y is given (bias may be NULL), then
 * out = layer_norm(x) * gamma + beta, stored as out_dtype. */
int lm_k_add_layernorm(float *x, const float *y, const float *bias, const float *gamma, const float *beta, void *out,
                       int out_dtype, int n, int d, cudaStream_t s, const char **msg);

/* out[i * ld_out + j] = act(y[i * cols + j] + bias[j]) * scale, stored as
 * out_dtype: matrix-product epilogues (bias, activation, query scaling) and
 * appends to the KV cache (ld_out = its row stride). */
int lm_k_bias_act(const float *y, const float *bias, void *out, int out_dtype, size_t ld_out, int n, int cols, int act,
                  float scale, cudaStream_t s, const char **msg);

/* Attention for `rows` query rows and `heads` heads of width hd: query row i
 * attends to key rows key_start[i] .. key_start[i] + key_len[i] - 1 of k and v
 * (kv_dtype, stride ld_kv), softmax in registers, no score matrix in memory.
 * q is multiplied by q_scale as it is loaded (the rounding of a scaled store:
 * the fused QKV product's q is used where it lies); out (rows, ld_out) of
 * out_dtype. A row with no keys
 * gives 0. Serves the encoder (packed sentences), decoder self-attention (the
 * row's cache slot, in the compute precision) and cross-attention (the row's
 * sentence, shared by its beams). */
int lm_k_attention(const float *q, int ld_q, float q_scale, const void *k, const void *v, int kv_dtype, int ld_kv, const int32_t *key_start,
                   const int32_t *key_len, void *out, int out_dtype, int ld_out, int rows, int heads, int hd,
                   cudaStream_t s, const char **msg);

/* dst row dst_row[r] (NULL: r) = the first len(r) x width floats of src row
 * parent[r], where len(r) is row_len[r] (the row's own tokens) or, with
 * row_len NULL, max_len, which bounds every row_len[r]; rows of `stride`
 * floats (16-bit rows count as half as many floats). A row with parent -1 is
 * left as it is. dst and src may be one buffer when no dst row is a parent. */
int lm_k_gather_rows(float *dst, const float *src, const int32_t *parent, const int32_t *dst_row, const int32_t *row_len, int rows,
                     size_t stride, size_t width, int max_len, cudaStream_t s, const char **msg);

/* k_cache and v_cache (dtype) row start[r] + pos[r] = y_k / y_v row r (fp32,
 * rows ld_y apart) + b_k / b_v (may be NULL), cols wide, for n rows: each
 * decoder row's new key and value appended in its slot at its own position,
 * in one launch. */
int lm_k_append_kv(void *k_cache, void *v_cache, int dtype, const int32_t *start, const int32_t *pos, const float *y_k,
                   const float *y_v, size_t ld_y, const float *b_k, const float *b_v, int n, int cols, cudaStream_t s,
                   const char **msg);

/* Per row of logits (rows, V): the k best candidates after the row's edits
 * (edits[edit_start[r] .. edit_start[r + 1]) of {token, kind} int pairs), as
 * lm_logprob_topk, or with greedy != 0 the best token of the edited raw logits
 * and its log-prob, as lm_greedy_pick. k <= LM_K_TOPK_MAX. A row that those
 * refuse (NaN or +inf logits, no finite logit, greedy with every token
 * banned) gets ids LM_K_BAD_ROW and values NaN. */
#define LM_K_BAD_ROW (-1)
int lm_k_logprob_topk(const float *logits, int rows, int V, const int32_t *edits, const int32_t *edit_start,
                      float penalty, int k, int greedy, int32_t *ids, float *vals, cudaStream_t s, const char **msg);

/* Per row of logits (rows, V): its log-softmax at token labels[r] (0 <=
 * labels[r] < V, the caller's check) into out[r], as lm_label_logprob; NaN
 * where that gives NaN (a NaN or +inf logit, nothing above -inf). */
int lm_k_label_logprob(const float *logits, int rows, int V, const int32_t *labels, float *out, cudaStream_t s, const char **msg);

/* Sampling's step per row of logits (rows, V), as lm_sample_row: applies the
 * row's edits (as lm_k_logprob_topk's) to the logits in place, then draws with
 * the row's stream (keys[r], draws[r]), temperature, top-k (0: none) and
 * top-p, and writes the token to ids[r], its log-prob under the edited row to
 * logprobs[r] and the draws taken so far to draws[r]. A row with skip[r] non-zero
 * is left alone (id 0, log-prob 0, draws unchanged); a refused row (NaN or
 * +inf logits, nothing above -inf) gets LM_K_BAD_ROW and NaN. scratch:
 * lm_k_sample_scratch(rows, V) bytes of device memory.
 * raw_logprobs (rows, or NULL: not wanted), as lm_sample_row's raw_logprob:
 * a drawn row's token's log-prob under the row as given, before the edits;
 * a skipped row's skip_label[r]'s (left alone when skip_label is NULL); NaN
 * for a refused row. edit_raw: device room for one float per edit
 * (edit_start[rows]), the edited tokens' values before the edits; needed
 * when raw_logprobs is given, else may be NULL. */
size_t lm_k_sample_scratch(int rows, int V);
int lm_k_sample(float *logits, int rows, int V, const int32_t *edits, const int32_t *edit_start, const uint8_t *skip, float penalty,
                float temperature, int top_k, float top_p, const uint64_t *keys, uint64_t *draws, void *scratch, int32_t *ids,
                float *logprobs, float *raw_logprobs, const int32_t *skip_label, float *edit_raw, cudaStream_t s, const char **msg);

/* The same results with many blocks a row (slices of 4,096 tokens) and one
 * read of the logits: ids identical to lm_k_logprob_topk's, values within
 * the rounding of another summation order. scratch: a device buffer of
 * lm_k_logprob_topk_split_scratch(rows, V) bytes (the slices' partials). */
size_t lm_k_logprob_topk_split_scratch(int rows, int V);
int lm_k_logprob_topk_split(const float *logits, int rows, int V, const int32_t *edits, const int32_t *edit_start, float penalty,
                            int k, int greedy, int32_t *ids, float *vals, void *scratch, cudaStream_t s, const char **msg);

#ifdef __cplusplus
}
#endif

#endif
