/*
 * zip_writer: builds a stored (uncompressed) zip in memory, the layout
 * torch.save writes, so tests and fuzz targets can wrap chosen bytes (a
 * pickle, storages) in an archive the loader accepts up to its contents.
 */
#ifndef LM_ZIP_WRITER_H
#define LM_ZIP_WRITER_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *name;
    const void *data;
    size_t size;
} lm_zip_member;

/* Returns a malloc'd archive of the members in order (*size set), or NULL
 * when out of memory. */
uint8_t *lm_zip_build(const lm_zip_member *members, int n, size_t *size);

#endif
