/* name_index: see name_index.h. Open addressing with linear probing, kept
 * at most half full. */
#include "model/name_index.h"

#include <stdlib.h>
#include <string.h>

static const char *name_at(const void *base, size_t stride, int pos) {
    return (const char *)base + (size_t)pos * stride;
}

static uint32_t slot_of(const lm_name_index *ix, const char *name) {
    return (uint32_t)lm_hash64(name, strlen(name), LM_HASH_INIT) & (ix->cap - 1);
}

int lm_name_index_find(const lm_name_index *ix, const void *base, size_t stride, const char *name) {
    if (ix->cap == 0) return -1;
    for (uint32_t i = slot_of(ix, name);; i = (i + 1) & (ix->cap - 1)) {
        int32_t s = ix->slots[i];
        if (s == 0) return -1;
        if (strcmp(name_at(base, stride, s - 1), name) == 0) return s - 1;
    }
}

static void place(lm_name_index *ix, const void *base, size_t stride, int pos) {
    uint32_t i = slot_of(ix, name_at(base, stride, pos));
    while (ix->slots[i]) i = (i + 1) & (ix->cap - 1);
    ix->slots[i] = pos + 1;
}

int lm_name_index_add(lm_name_index *ix, const void *base, size_t stride, int pos, lm_err *err) {
    if ((uint64_t)(ix->n + 1) * 2 > ix->cap) {
        lm_name_index bigger = {.cap = ix->cap ? ix->cap * 2 : 64, .n = ix->n};
        bigger.slots = lm_calloc(bigger.cap, sizeof *bigger.slots, err);
        if (!bigger.slots) return -1;
        for (uint32_t i = 0; i < ix->cap; i++)
            if (ix->slots[i]) place(&bigger, base, stride, ix->slots[i] - 1);
        free(ix->slots);
        *ix = bigger;
    }
    place(ix, base, stride, pos);
    ix->n++;
    return 0;
}

void lm_name_index_free(lm_name_index *ix) {
    free(ix->slots);
    memset(ix, 0, sizeof *ix);
}
