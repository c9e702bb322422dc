/* line_cache: see line_cache.h. Chained hash table over a ring of entries. */
#include "job/line_cache.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t hash;
    int32_t *ids;      /* NULL: slot unused */
    int n;
    lm_translation tr;
    int next;          /* next entry in the bucket chain, -1 at the end */
} entry;

struct lm_line_cache {
    entry *entries;
    int capacity, oldest; /* oldest: the next slot to fill, evicting what it holds */
    int *buckets;      /* head entry per bucket, -1 when empty */
    int n_buckets;     /* a power of two, >= 2 x capacity */
};

lm_line_cache *lm_line_cache_create(int capacity, lm_err *err) {
    if (capacity <= 0) return NULL;
    lm_line_cache *c = lm_calloc(1, sizeof *c, err);
    if (!c) return NULL;
    c->capacity = capacity;
    for (c->n_buckets = 16; c->n_buckets < 2 * capacity; c->n_buckets *= 2) {}
    c->entries = lm_calloc((size_t)capacity, sizeof *c->entries, err);
    c->buckets = lm_malloc((size_t)c->n_buckets * sizeof *c->buckets, err);
    if (!c->entries || !c->buckets) { lm_line_cache_free(c); return NULL; }
    for (int i = 0; i < c->n_buckets; i++) c->buckets[i] = -1;
    return c;
}

void lm_line_cache_free(lm_line_cache *c) {
    if (!c) return;
    for (int i = 0; c->entries && i < c->capacity; i++) {
        free(c->entries[i].ids);
        lm_translation_free(&c->entries[i].tr);
    }
    free(c->entries);
    free(c->buckets);
    free(c);
}

static uint64_t key_hash(const int32_t *ids, int n) { return lm_hash64(ids, (size_t)n * sizeof *ids, LM_HASH_INIT); }

static int find(const lm_line_cache *c, uint64_t h, const int32_t *ids, int n) {
    for (int e = c->buckets[h & (uint64_t)(c->n_buckets - 1)]; e >= 0; e = c->entries[e].next) {
        const entry *x = &c->entries[e];
        if (x->hash == h && x->n == n && memcmp(x->ids, ids, (size_t)n * sizeof *ids) == 0) return e;
    }
    return -1;
}

int lm_line_cache_get(lm_line_cache *c, const int32_t *ids, int n, lm_translation *out) {
    if (!c) return 0;
    int e = find(c, key_hash(ids, n), ids, n);
    if (e < 0) return 0;
    return lm_translation_copy(out, &c->entries[e].tr) == 0 ? 1 : -1;
}

/* Unlinks and clears the oldest entry so its slot can be reused. */
static void evict_oldest(lm_line_cache *c) {
    int e = c->oldest;
    entry *x = &c->entries[e];
    int *link = &c->buckets[x->hash & (uint64_t)(c->n_buckets - 1)];
    while (*link != e) link = &c->entries[*link].next;
    *link = x->next;
    free(x->ids);
    lm_translation_free(&x->tr);
    memset(x, 0, sizeof *x);
}

int lm_line_cache_put(lm_line_cache *c, const int32_t *ids, int n, const lm_translation *tr) {
    if (!c) return 0;
    uint64_t h = key_hash(ids, n);
    if (find(c, h, ids, n) >= 0) return 0;
    int e = c->oldest;
    if (c->entries[e].ids) evict_oldest(c);
    c->oldest = (c->oldest + 1) % c->capacity;
    entry *x = &c->entries[e];
    x->ids = malloc((size_t)n * sizeof *ids);
    if (!x->ids || lm_translation_copy(&x->tr, tr) != 0) {
        free(x->ids);
        memset(x, 0, sizeof *x);
        return -1;
    }
    memcpy(x->ids, ids, (size_t)n * sizeof *ids);
    x->n = n;
    x->hash = h;
    int *head = &c->buckets[h & (uint64_t)(c->n_buckets - 1)];
    x->next = *head;
    *head = e;
    return 0;
}
