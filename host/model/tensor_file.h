/*
 * tensor_file: the tensors of one weight file, read without trusting it.
 *
 * Two formats are understood, both memory-mapped, never copied here:
 *   - model.safetensors (safetensors.c)
 *   - pytorch_model.bin, a zip of a pickle plus raw storages (torch_zip.c,
 *     torch_pickle.c); the pickle is replayed by a restricted machine that
 *     only rebuilds tensors and never executes anything.
 * Every offset, size and shape is checked against the real file size before
 * any byte of tensor data is touched.
 */
#ifndef LM_TENSOR_FILE_H
#define LM_TENSOR_FILE_H

#include "model/name_index.h"
#include "base/util.h"

#define LM_MAX_DIMS 4
#define LM_MAX_NAME 160
#define LM_MAX_TENSORS 100000

typedef enum { LM_F32 = 0, LM_F16 = 1, LM_BF16 = 2 } lm_dtype;

const char *lm_dtype_name(lm_dtype t);
size_t      lm_dtype_size(lm_dtype t);

typedef struct {
    char name[LM_MAX_NAME];
    lm_dtype dtype;
    int ndim;
    int64_t shape[LM_MAX_DIMS];
    const uint8_t *data;   /* inside the mapping */
    uint64_t nbytes;
    int storage_id;        /* tensors with the same id share bytes (tied weights) */
    const uint8_t *storage;   /* the whole storage this tensor is a view of */
    uint64_t storage_nbytes;
} lm_tensor_info;

typedef struct {
    char path[1024];
    lm_mmap map;
    lm_tensor_info *tensors;
    int n;
    lm_name_index index;   /* by name */
} lm_tensor_file;

int  lm_safetensors_open(const char *path, lm_tensor_file *tf, lm_err *err);
int  lm_torchbin_open(const char *path, lm_tensor_file *tf, lm_err *err);
void lm_tensor_file_close(lm_tensor_file *tf);

const lm_tensor_info *lm_tensor_file_find(const lm_tensor_file *tf, const char *name);
uint64_t lm_tensor_numel(const lm_tensor_info *t);

/* Appends a tensor (used by both parsers); rejects duplicate names. */
int lm_tensor_file_add(lm_tensor_file *tf, const lm_tensor_info *t, lm_err *err);

#endif
