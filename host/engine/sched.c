/* sched: see sched.h. */
#include "engine/sched.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

bool lm_budget_admits(const lm_budget *b, int count, int *longest, int len) {
    if (count >= b->max_sentences) return false;
    int l = len > *longest ? len : *longest;
    if (count > 0 && (long)l * (count + 1) * b->rows > b->max_tokens) return false;
    *longest = l;
    return true;
}

int lm_budget_most(const lm_budget *b, int shortest) {
    long by_tokens = b->max_tokens / ((long)(shortest > 0 ? shortest : 1) * b->rows);
    int most = b->max_sentences;
    if (by_tokens < most) most = by_tokens > 1 ? (int)by_tokens : 1;
    return most;
}

void lm_budget_for_memory(size_t free_bytes, size_t row_bytes, size_t token_bytes, int beams, lm_batch_limits *out) {
    if (beams < 1) beams = 1;
    /* a sentence: its beams' rows and its source; the other half of free
     * memory is for cuBLAS's workspace, the encoder state's second half while
     * it is regathered, and fragmentation */
    double per_sentence = (double)beams * row_bytes + (double)LM_GPU_SOURCE_TOKENS * token_bytes;
    double by_memory = per_sentence > 0 ? (double)(free_bytes / 2) / per_sentence : 0;
    int by_rows = LM_GPU_ROWS / beams > 1 ? LM_GPU_ROWS / beams : 1;
    int sentences = by_memory < by_rows ? (int)by_memory : by_rows;
    if (sentences < 1) sentences = 1;
    long tokens = (long)sentences * beams * LM_GPU_SOURCE_TOKENS;
    out->max_sentences = sentences;
    out->max_tokens = tokens < (1L << 30) ? (int)tokens : 1 << 30;
    /* several batches read ahead: the length sort then has lines to group,
     * and the next batch is ready when one finishes */
    long window = 4L * sentences;
    out->window_lines = window < (1L << 24) ? (int)window : 1 << 24;
}

int lm_sched_init(lm_sched *q, lm_backend *be, int beams, int max_length, const int32_t *tokens, const int32_t *lens, int n,
                  const lm_budget *limit, const volatile int *cancel, lm_err *err) {
    memset(q, 0, sizeof *q);
    q->be = be; q->beams = beams; q->max_length = max_length; q->tokens = tokens; q->lens = lens; q->n = n; q->cancel = cancel;
    /* live sentences at once: no more than the budget could ever admit
     * together (the shortest source counted for all), which sizes the rows */
    q->cap = n;
    if (limit) {
        q->limited = true;
        q->ahead = be->ops->encode_async;
        q->limit = *limit;
        q->limit.rows = beams;
        int shortest = lens[0];
        for (int s = 1; s < n; s++) shortest = lens[s] < shortest ? lens[s] : shortest;
        int most = lm_budget_most(&q->limit, shortest);
        if (most < q->cap) q->cap = most;
    }
    q->src = lm_malloc((size_t)n * sizeof *q->src, err);
    q->live = lm_malloc((size_t)q->cap * sizeof *q->live, err);
    if (!q->src || !q->live) return -1;
    for (int s = 0, at = 0; s < n; at += lens[s], s++) q->src[s] = (size_t)at;
    return 0;
}

void lm_sched_free(lm_sched *q) { free(q->src); free(q->live); }

/* Encodes the next sentences the budget admits beside the live ones, as
 * the pending group (none is pending: a group joins before the next). */
static int encode_next(lm_sched *q, lm_err *err) {
    if (q->next == q->n || (q->cancel && *q->cancel)) return 0;
    /* wait until an eighth of the room is free (the batch stays at least 7/8
     * full), so that an encode call serves a group of sentences rather than
     * one: one-sentence encodes cost more CPU time on the tiny fixtures
     * (benchmarks/NOTES.md) */
    int min_free = q->cap / 8 > 1 ? q->cap / 8 : 1;
    if (q->n_live > 0 && q->cap - q->n_live < min_free) return 0;
    lm_budget budget = {q->cap, q->limited ? q->limit.max_tokens : LONG_MAX, q->beams};
    int longest = 0, n = 0;
    for (int i = 0; i < q->n_live; i++) longest = q->lens[q->live[i]] > longest ? q->lens[q->live[i]] : longest;
    while (q->next + n < q->n && lm_budget_admits(&budget, q->n_live + n, &longest, q->lens[q->next + n])) n++;
    if (n == 0) return 0;
    const int32_t *tok = q->tokens + q->src[q->next], *len = q->lens + q->next;
    int rc = q->encoded ? q->be->ops->encode_more(q->be, tok, len, n, err) : q->be->ops->encode(q->be, tok, len, n, err);
    if (rc != 0) return -1;
    q->encoded = true;
    q->next += n;
    q->n_pending = n;
    return 0;
}

int lm_sched_admit(lm_sched *q, int *first, int *count, lm_err *err) {
    if (q->n_pending > 0 && q->cancel && *q->cancel) { /* stopped: encoded ahead, never started (the job says so) */
        q->next -= q->n_pending;
        q->n_pending = 0;
    }
    if (q->n_pending == 0 && (!q->ahead || q->n_live == 0) && encode_next(q, err) != 0) return -1;
    *first = q->next - q->n_pending;
    *count = q->n_pending;
    for (int s = *first; s < q->next; s++) q->live[q->n_live++] = s;
    q->n_pending = 0;
    return 0;
}

int lm_sched_prefetch(lm_sched *q, lm_err *err) {
    return q->ahead && q->n_live > 0 && q->n_pending == 0 ? encode_next(q, err) : 0;
}

void lm_sched_done(lm_sched *q, int s) {
    int i = 0;
    while (q->live[i] != s) i++;
    memmove(q->live + i, q->live + i + 1, (size_t)(q->n_live - i - 1) * sizeof *q->live);
    q->n_live--;
}

int lm_sched_start_rows(lm_sched *q, int32_t *sent, int rows, int cap_rows, int32_t *parent, lm_err *err) {
    for (int r = rows; r < cap_rows; r++) sent[r] = sent[rows - 1];
    if (q->be->ops->decode_start(q->be, sent, cap_rows, q->max_length, err) != 0) return -1;
    if (rows == cap_rows) return 0;
    for (int r = 0; r < rows; r++) parent[r] = r;
    return q->be->ops->reorder(q->be, parent, sent, rows, err);
}
