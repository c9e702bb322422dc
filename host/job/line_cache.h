/*
 * line_cache: translations of recently seen source lines, keyed by their
 * token ids, so that a chorus repeated through an archive is translated
 * once. Output depends only on the ids (search is deterministic and
 * independent of batching), so a cached result is the result. Bounded:
 * past `capacity` entries the oldest is dropped (first in, first out).
 */
#ifndef LM_LINE_CACHE_H
#define LM_LINE_CACHE_H

#include "engine/translation.h"

typedef struct lm_line_cache lm_line_cache;

/* capacity 0 gives NULL: no cache, and the functions below accept NULL. */
lm_line_cache *lm_line_cache_create(int capacity, lm_err *err);
void lm_line_cache_free(lm_line_cache *c);

/* On a hit copies the translation into *out and returns 1; 0 on a miss, -1 out of memory. */
int lm_line_cache_get(lm_line_cache *c, const int32_t *ids, int n, lm_translation *out);

/* Stores a copy of tr for ids. */
int lm_line_cache_put(lm_line_cache *c, const int32_t *ids, int n, const lm_translation *tr);

#endif
