/* zip_writer: see zip_writer.h. PKWARE APPNOTE 4.3: local headers with the
 * data, then the central directory and its end record; CRCs are left 0
 * because the loader never checks them. */
#include "zip_writer.h"

#include <stdlib.h>
#include <string.h>

static uint8_t *put16(uint8_t *p, unsigned v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); return p + 2; }
static uint8_t *put32(uint8_t *p, uint32_t v) { p = put16(p, v & 0xffff); return put16(p, v >> 16); }
static uint8_t *put_bytes(uint8_t *p, const void *d, size_t n) { if (n) memcpy(p, d, n); return p + n; }

uint8_t *lm_zip_build(const lm_zip_member *members, int n, size_t *size) {
    size_t total = 22;
    for (int i = 0; i < n; i++) total += 30 + 46 + 2 * strlen(members[i].name) + members[i].size;
    uint8_t *zip = malloc(total), *p = zip;
    uint32_t *offsets = malloc(((size_t)n + 1) * sizeof *offsets);
    if (!zip || !offsets) { free(zip); free(offsets); return NULL; }
    for (int i = 0; i < n; i++) {
        size_t nl = strlen(members[i].name);
        offsets[i] = (uint32_t)(p - zip);
        p = put32(p, 0x04034b50);
        p = put16(p, 20); p = put16(p, 0); p = put16(p, 0); /* version, flags, method stored */
        p = put32(p, 0); p = put32(p, 0);                   /* time/date, crc */
        p = put32(p, (uint32_t)members[i].size); p = put32(p, (uint32_t)members[i].size);
        p = put16(p, (unsigned)nl); p = put16(p, 0);
        p = put_bytes(p, members[i].name, nl);
        p = put_bytes(p, members[i].data, members[i].size);
    }
    uint8_t *cd = p;
    for (int i = 0; i < n; i++) {
        size_t nl = strlen(members[i].name);
        p = put32(p, 0x02014b50);
        p = put16(p, 20); p = put16(p, 20); p = put16(p, 0); p = put16(p, 0); /* made by, needed, flags, method */
        p = put32(p, 0); p = put32(p, 0);                                      /* time/date, crc */
        p = put32(p, (uint32_t)members[i].size); p = put32(p, (uint32_t)members[i].size);
        p = put16(p, (unsigned)nl); p = put16(p, 0); p = put16(p, 0);          /* name, extra, comment */
        p = put16(p, 0); p = put16(p, 0); p = put32(p, 0);                     /* disk, attributes */
        p = put32(p, offsets[i]);
        p = put_bytes(p, members[i].name, nl);
    }
    uint32_t cd_size = (uint32_t)(p - cd), cd_off = (uint32_t)(cd - zip);
    p = put32(p, 0x06054b50);
    p = put16(p, 0); p = put16(p, 0); p = put16(p, (unsigned)n); p = put16(p, (unsigned)n);
    p = put32(p, cd_size); p = put32(p, cd_off); p = put16(p, 0);
    free(offsets);
    *size = (size_t)(p - zip);
    return zip;
}
