/* tensor_file: the format-independent half; see tensor_file.h. */
#include "model/tensor_file.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(offsetof(lm_tensor_info, name) == 0, "name_index finds the name at offset 0");

const char *lm_dtype_name(lm_dtype t) {
    switch (t) {
    case LM_F32: return "f32";
    case LM_F16: return "f16";
    case LM_BF16: return "bf16";
    }
    return "?";
}

size_t lm_dtype_size(lm_dtype t) { return t == LM_F32 ? 4 : 2; }

uint64_t lm_tensor_numel(const lm_tensor_info *t) {
    uint64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (uint64_t)t->shape[i]; /* checked when added */
    return n;
}

int lm_tensor_file_add(lm_tensor_file *tf, const lm_tensor_info *t, lm_err *err) {
    if (tf->n >= LM_MAX_TENSORS) return lm_fail(err, "more than %d tensors", LM_MAX_TENSORS);
    if (lm_tensor_file_find(tf, t->name)) return lm_fail(err, "duplicate tensor '%s'", t->name);
    /* grow by doubling; n is bounded above so this cannot overflow */
    if ((tf->n & (tf->n - 1)) == 0) {
        size_t cap = tf->n ? (size_t)tf->n * 2 : 16;
        lm_tensor_info *p = realloc(tf->tensors, cap * sizeof *p);
        if (!p) return lm_fail(err, "out of memory for the tensor table");
        tf->tensors = p;
    }
    tf->tensors[tf->n] = *t;
    if (lm_name_index_add(&tf->index, tf->tensors, sizeof *tf->tensors, tf->n, err) != 0) return -1;
    tf->n++;
    return 0;
}

const lm_tensor_info *lm_tensor_file_find(const lm_tensor_file *tf, const char *name) {
    int i = lm_name_index_find(&tf->index, tf->tensors, sizeof *tf->tensors, name);
    return i < 0 ? NULL : &tf->tensors[i];
}

void lm_tensor_file_close(lm_tensor_file *tf) {
    free(tf->tensors);
    lm_name_index_free(&tf->index);
    lm_mmap_close(&tf->map);
    memset(tf, 0, sizeof *tf);
}
