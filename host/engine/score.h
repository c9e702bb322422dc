/*
 * score: how likely the model finds a given translation. A (source, target)
 * pair is force-decoded: the decoder is fed the target instead of its own
 * choices, and the log-probability of each target token is read off the
 * logits. This is what `lyricmt score` computes, and what translate's
 * --min-score filters on.
 *
 * It matches transformers' training loss exactly as the model was trained:
 *   labels   m2m100:   [__tgt__] + pieces + [</s>]   (tokenizer(text_target=...))
 *            small100: pieces + [</s>]               (no language token on the target)
 *   decoder input: [decoder_start] + labels[:-1]     (shift_tokens_right)
 *   sum      = sum over the labels of log p(label)   = -(loss x number of labels)
 *   normalised = sum / number of labels              (the language token and </s> counted)
 * Each pair is independent of the batch it is scored in: rows never mix,
 * and a finished pair leaves the batch.
 */
#ifndef LM_SCORE_H
#define LM_SCORE_H

#include "engine/translator.h"

/* The labels of a target text, cut to the model's positions (keeping the
 * language token and </s>, as the tokenizer's truncation does; *truncated
 * says so). *ids is malloc'd. */
int lm_score_labels(lm_translator *t, const char *text, size_t len, int32_t **ids, int *n, bool *truncated, lm_err *err);

/* One pair as a single token sequence, so that the bulk job's batching,
 * repeat detection and line cache handle pairs as they handle lines:
 *   [number of source ids, source ids..., labels...]
 * *truncated: the source or the target was cut to the model's positions. */
int lm_score_pair_ids(lm_translator *t, const char *src, size_t src_len, const char *tgt, size_t tgt_len, int32_t **ids, int *n,
                      bool *truncated, lm_err *err);

/* Scores batch b's packed pairs on backend be (a worker's). b->out[i]
 * receives one hypothesis with text "", scores[0] = the summed
 * log-probability, n_tokens = the number of labels; b->tokens_out = labels
 * scored. */
int lm_score_batch(lm_translator *t, lm_backend *be, lm_batch *b, lm_err *err);

/* Makes t's batches scoring batches (lm_score_batch, one backend row a
 * pair): its sources are then packed pairs. */
void lm_score_attach(lm_translator *t);

/* Teacher-forced log-probabilities, the engine under lm_score_batch: n_src
 * sources of src_lens[s] tokens back to back in src, encoded once; pair i
 * scores labels[i] (n_labels[i] > 0) given source pair_src[i] (NULL: source i).
 * sums[i] = sum of log p(labels[i][t]), summed in label order in double.
 * Through lm_backend_decode_forced: the backend's one pass in groups of
 * pairs, or the contract's step loop over every pair at once. */
int lm_score_forced(lm_backend *be, int decoder_start_id, int vocab_size, const int32_t *src, const int32_t *src_lens, int n_src,
                    const int32_t *pair_src, const int32_t *const *labels, const int *n_labels, int n, double *sums, lm_err *err);

#endif
