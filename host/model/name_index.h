/*
 * name_index: a hash index over a growing array of named records, so that
 * looking a name up (and refusing duplicates) costs O(1) instead of a scan.
 * Weight files may list up to LM_MAX_TENSORS names; a linear search per
 * name made a hostile header quadratic.
 *
 * The index stores positions, not names: each record's name is a
 * NUL-terminated char array at offset 0 of the record, records are `stride`
 * bytes apart from `base`, and the caller passes base again on every call
 * because the array may have been reallocated since.
 */
#ifndef LM_NAME_INDEX_H
#define LM_NAME_INDEX_H

#include "base/util.h"

typedef struct {
    int32_t *slots;   /* record position + 1; 0 = empty */
    uint32_t cap;     /* power of two, or 0 before the first insert */
    int n;
} lm_name_index;

/* Position of the record named name, or -1. */
int  lm_name_index_find(const lm_name_index *ix, const void *base, size_t stride, const char *name);
/* Indexes record pos (its name must not be indexed yet). */
int  lm_name_index_add(lm_name_index *ix, const void *base, size_t stride, int pos, lm_err *err);
void lm_name_index_free(lm_name_index *ix);

#endif
