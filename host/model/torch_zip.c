/* torch_zip: see torch_zip.h. Reference: PKWARE APPNOTE 6.3 sections 4.3. */
#include "model/torch_zip.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define ZIP_MAX_ENTRIES 20000 /* a model has hundreds */

_Static_assert(offsetof(lm_zip_entry, name) == 0, "name_index finds the name at offset 0");

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

typedef struct {
    uint64_t begin, end;
} range;

static int range_cmp(const void *a, const void *b) {
    const range *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* Locates the end-of-central-directory record and returns the directory's
 * offset, size and entry count, following the zip64 locator when present. */
static int find_directory(const uint8_t *d, uint64_t size, uint64_t *cd_off, uint64_t *cd_size,
                          uint64_t *count, lm_err *err) {
    if (size < 22) return lm_fail(err, "too small to be a zip archive");
    uint64_t lowest = size > 22 + 65535 ? size - 22 - 65535 : 0;
    uint64_t eocd = UINT64_MAX;
    for (uint64_t p = size - 22;; p--) {
        if (rd32(d + p) == 0x06054b50 && p + 22 + rd16(d + p + 20) == size) { eocd = p; break; }
        if (p == lowest) break;
    }
    if (eocd == UINT64_MAX) return lm_fail(err, "no zip end-of-directory record (truncated or not a zip archive)");
    *count = rd16(d + eocd + 10);
    *cd_size = rd32(d + eocd + 12);
    *cd_off = rd32(d + eocd + 16);
    if (*count == 0xffff || *cd_size == 0xffffffffu || *cd_off == 0xffffffffu) {
        if (eocd < 20 || rd32(d + eocd - 20) != 0x07064b50) return lm_fail(err, "zip64 locator missing");
        uint64_t z64 = rd64(d + eocd - 20 + 8);
        /* size first: size - 56 wraps for archives under 56 bytes */
        if (size < 56 || z64 > size - 56 || rd32(d + z64) != 0x06064b50) return lm_fail(err, "bad zip64 end-of-directory record");
        *count = rd64(d + z64 + 32);
        *cd_size = rd64(d + z64 + 40);
        *cd_off = rd64(d + z64 + 48);
    }
    uint64_t end;
    if (!lm_add_u64(*cd_off, *cd_size, &end) || end > size)
        return lm_fail(err, "zip central directory lies outside the file (truncated?)");
    if (*count > ZIP_MAX_ENTRIES) return lm_fail(err, "zip claims %llu entries", (unsigned long long)*count);
    return 0;
}

/* Sizes of 0xffffffff live in the zip64 extra field (id 1), in order. */
static int zip64_extra(const uint8_t *extra, uint32_t len, uint64_t *usize, uint64_t *csize, uint64_t *lho) {
    uint32_t p = 0;
    while (p + 4 <= len) {
        uint16_t id = rd16(extra + p), sz = rd16(extra + p + 2);
        if (p + 4 + sz > len) return -1;
        if (id == 1) {
            const uint8_t *f = extra + p + 4;
            uint32_t used = 0;
            uint64_t *fields[3] = {usize, csize, lho};
            for (int i = 0; i < 3; i++) {
                if (*fields[i] != 0xffffffffu) continue;
                if (used + 8 > sz) return -1;
                *fields[i] = rd64(f + used);
                used += 8;
            }
            return 0;
        }
        p += 4 + sz;
    }
    return 0;
}

int lm_zip_open(const uint8_t *d, uint64_t size, lm_zip *z, lm_err *err) {
    memset(z, 0, sizeof *z);
    uint64_t cd_off = 0, cd_size = 0, count = 0;
    if (find_directory(d, size, &cd_off, &cd_size, &count, err) != 0) return -1;
    z->entries = lm_calloc(count ? count : 1, sizeof *z->entries, err);
    range *ranges = lm_calloc(count ? count : 1, sizeof *ranges, err);
    if (!z->entries || !ranges) goto fail;
    uint64_t p = cd_off, cd_end = cd_off + cd_size;
    for (uint64_t i = 0; i < count; i++) {
        if (p + 46 > cd_end || rd32(d + p) != 0x02014b50) { lm_fail(err, "corrupt zip directory entry %llu", (unsigned long long)i); goto fail; }
        uint16_t method = rd16(d + p + 10);
        uint64_t csize = rd32(d + p + 20), usize = rd32(d + p + 24);
        uint32_t nlen = rd16(d + p + 28), xlen = rd16(d + p + 30), clen = rd16(d + p + 32);
        uint64_t lho = rd32(d + p + 42);
        if (p + 46 + nlen + xlen + clen > cd_end) { lm_fail(err, "zip directory entry %llu runs past the directory", (unsigned long long)i); goto fail; }
        if (nlen == 0 || nlen >= LM_ZIP_MAX_NAME) { lm_fail(err, "zip entry %llu has a bad name length %u", (unsigned long long)i, nlen); goto fail; }
        lm_zip_entry *e = &z->entries[z->n];
        memcpy(e->name, d + p + 46, nlen);
        e->name[nlen] = '\0';
        if (strlen(e->name) != nlen) { lm_fail(err, "zip entry name contains NUL"); goto fail; }
        if (zip64_extra(d + p + 46 + nlen, xlen, &usize, &csize, &lho) != 0) { lm_fail(err, "zip entry '%s': bad zip64 extra field", e->name); goto fail; }
        if (method != 0 || csize != usize) { lm_fail(err, "zip entry '%s' is compressed (method %u); PyTorch archives are stored uncompressed", e->name, method); goto fail; }
        if (size < 30 || lho > size - 30 || rd32(d + lho) != 0x04034b50) { lm_fail(err, "zip entry '%s': local header outside the file or corrupt", e->name); goto fail; }
        uint64_t data_off = lho + 30 + rd16(d + lho + 26) + rd16(d + lho + 28), data_end;
        if (!lm_add_u64(data_off, usize, &data_end) || data_end > size) {
            lm_fail(err, "zip entry '%s': data [%llu, +%llu) runs past the end of the %llu-byte file (truncated?)", e->name,
                    (unsigned long long)data_off, (unsigned long long)usize, (unsigned long long)size);
            goto fail;
        }
        if (lm_zip_find(z, e->name)) { lm_fail(err, "duplicate zip entry '%s'", e->name); goto fail; }
        e->offset = data_off;
        e->size = usize;
        if (lm_name_index_add(&z->index, z->entries, sizeof *z->entries, z->n, err) != 0) goto fail;
        ranges[z->n] = (range){lho, data_end};
        z->n++;
        p += 46 + nlen + xlen + clen;
    }
    qsort(ranges, (size_t)z->n, sizeof *ranges, range_cmp);
    for (int i = 1; i < z->n; i++)
        if (ranges[i].begin < ranges[i - 1].end) { lm_fail(err, "zip members overlap"); goto fail; }
    free(ranges);
    return 0;
fail:
    free(ranges);
    lm_zip_free(z);
    return -1;
}

const lm_zip_entry *lm_zip_find(const lm_zip *z, const char *name) {
    int i = lm_name_index_find(&z->index, z->entries, sizeof *z->entries, name);
    return i < 0 ? NULL : &z->entries[i];
}

void lm_zip_free(lm_zip *z) {
    free(z->entries);
    lm_name_index_free(&z->index);
    z->entries = NULL;
    z->n = 0;
}
