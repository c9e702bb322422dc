/*
 * torch_zip: the directory of a PyTorch zip archive (torch.save's format).
 *
 * PyTorch stores every member uncompressed ("stored"), so member bytes can be
 * used in place from the memory map. Compressed members are refused rather
 * than inflated, which also keeps zip bombs out. Zip64 records are followed
 * because checkpoints over 4 GiB use them.
 */
#ifndef LM_TORCH_ZIP_H
#define LM_TORCH_ZIP_H

#include "model/name_index.h"
#include "base/util.h"

#define LM_ZIP_MAX_NAME 512

typedef struct {
    char name[LM_ZIP_MAX_NAME];
    uint64_t offset; /* of the member's data in the file */
    uint64_t size;
} lm_zip_entry;

typedef struct {
    lm_zip_entry *entries;
    int n;
    lm_name_index index;   /* by name */
} lm_zip;

int  lm_zip_open(const uint8_t *data, uint64_t size, lm_zip *z, lm_err *err);
const lm_zip_entry *lm_zip_find(const lm_zip *z, const char *name);
void lm_zip_free(lm_zip *z);

#endif
