/* util: see util.h. */
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int lm_fail(lm_err *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int lm_fail_prefix(lm_err *err, const char *fmt, ...) {
    if (!err) return -1;
    char old[LM_ERR_LEN];
    memcpy(old, err->msg, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    /* append ": <old message>", cut to fit */
    size_t at = n < 0 ? 0 : (size_t)n < sizeof err->msg ? (size_t)n : sizeof err->msg - 1;
    const char *parts[2] = {": ", old};
    for (int i = 0; i < 2; i++)
        for (const char *p = parts[i]; *p && at + 1 < sizeof err->msg; p++) err->msg[at++] = *p;
    err->msg[at] = '\0';
    return -1;
}

void *lm_malloc(size_t n, lm_err *err) {
    void *p = malloc(n ? n : 1);
    if (!p) lm_fail(err, "out of memory allocating %zu bytes", n);
    return p;
}

void *lm_calloc(size_t count, size_t size, lm_err *err) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) lm_fail(err, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

/* The one check of a file the program is about to read whole or map: a
 * regular file (a FIFO or device would block or never end) within max_bytes
 * (so a hostile or sparse file cannot exhaust memory). */
static int check_stat(const char *path, const struct stat *st, uint64_t max_bytes, lm_err *err) {
    if (!S_ISREG(st->st_mode)) return lm_fail(err, "%s: not a regular file", path);
    if ((uint64_t)st->st_size > max_bytes)
        return lm_fail(err, "%s: file is %llu bytes, more than the %llu allowed", path, (unsigned long long)st->st_size,
                       (unsigned long long)max_bytes);
    return 0;
}

int lm_file_check(const char *path, uint64_t max_bytes, bool *exists, lm_err *err) {
    struct stat st;
    *exists = stat(path, &st) == 0;
    /* a directory that is not one (a file given as --model) holds nothing: absent */
    if (!*exists) return errno == ENOENT || errno == ENOTDIR ? 0 : lm_fail(err, "%s: cannot open: %s", path, strerror(errno));
    return check_stat(path, &st, max_bytes, err);
}

/* Opens path for reading without blocking (open() on a FIFO with no writer
 * would wait forever) and checks what it is on the open descriptor, so the
 * file checked is the file read. */
static int open_checked(const char *path, uint64_t max_bytes, struct stat *st, lm_err *err) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return lm_fail(err, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, st) != 0) {
        lm_fail(err, "%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (check_stat(path, st, max_bytes, err) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int lm_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len, lm_err *err) {
    *out = NULL;
    struct stat st;
    int fd = open_checked(path, max_bytes, &st, err);
    if (fd < 0) return -1;
    size_t n = (size_t)st.st_size, got = 0;
    char *buf = lm_malloc(n + 1, err);
    if (!buf) { close(fd); return -1; }
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got != n) {
        free(buf);
        return lm_fail(err, "%s: short read (%zu of %zu bytes)", path, got, n);
    }
    buf[n] = '\0';
    *out = buf;
    if (out_len) *out_len = n;
    return 0;
}

int lm_mmap_open(const char *path, uint64_t max_bytes, lm_mmap *m, lm_err *err) {
    m->data = NULL;
    m->size = 0;
    struct stat st;
    int fd = open_checked(path, max_bytes, &st, err);
    if (fd < 0) return -1;
    if (st.st_size == 0) {
        close(fd);
        return lm_fail(err, "%s: file is empty", path);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return lm_fail(err, "%s: mmap failed: %s", path, strerror(errno));
    m->data = p;
    m->size = (size_t)st.st_size;
    return 0;
}

void lm_mmap_release(const lm_mmap *m, const void *p, size_t n) {
    const uint8_t *b = p;
    if (!m->data || b < m->data || b + n > m->data + m->size) return;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)b + page - 1) / page * page, hi = (uintptr_t)(b + n) / page * page;
    if (lo < hi) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

void lm_mmap_close(lm_mmap *m) {
    if (m->data) munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

bool lm_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int lm_path_join(char *buf, size_t cap, const char *dir, const char *name, lm_err *err) {
    int n = snprintf(buf, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap) return lm_fail(err, "path too long: %s/%s", dir, name);
    return 0;
}

float lm_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) { mant <<= 1; exp--; }
            mant &= 0x3ff;
            bits = sign | (exp << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float lm_bf16_to_f32(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

double lm_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

size_t lm_utf8_seq_len(const char *str, size_t len, size_t i) {
    const unsigned char *s = (const unsigned char *)str;
    unsigned c = s[i];
    size_t n;
    uint32_t cp;
    if (c < 0x80) return 1;
    else if ((c & 0xe0) == 0xc0) { n = 1; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { n = 2; cp = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { n = 3; cp = c & 0x07; }
    else return 0;
    if (i + n >= len) return 0; /* truncated sequence */
    for (size_t k = 1; k <= n; k++) {
        if ((s[i + k] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    /* overlong forms, surrogates and out-of-range code points */
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return n + 1;
}

long lm_utf8_invalid_at(const char *s, size_t len) {
    for (size_t i = 0, n; i < len; i += n)
        if (!(n = lm_utf8_seq_len(s, len, i))) return (long)i;
    return -1;
}

FILE *lm_open_for_writing(const char *path, int flags, const volatile int *cancel, lm_err *err) {
    bool told = false;
    int fd;
    while ((fd = open(path, flags | O_WRONLY | O_NONBLOCK | O_CLOEXEC, 0666)) < 0 && errno == ENXIO) {
        if (cancel && *cancel) { lm_fail(err, "%s: stopped while waiting for a reader", path); return NULL; }
        if (!told) fprintf(stderr, "lyricmt: waiting for a reader on %s\n", path);
        told = true;
        usleep(100 * 1000);
    }
    if (fd < 0) { lm_fail(err, "%s: cannot open for writing: %s", path, strerror(errno)); return NULL; }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK); /* once open, writes may wait for the reader */
    FILE *f = fdopen(fd, (flags & O_APPEND) ? "ab" : "wb");
    if (!f) { lm_fail(err, "%s: cannot open: %s", path, strerror(errno)); close(fd); }
    return f;
}

int lm_strbuf_add(lm_strbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) return -1;
        b->data = grown;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

bool lm_file_id_get(const char *path, lm_file_id *id) {
    struct stat st;
    if (stat(path, &st) != 0) return false;
    id->dev = (uint64_t)st.st_dev;
    id->ino = (uint64_t)st.st_ino;
    return true;
}

uint64_t lm_hash64(const void *data, size_t len, uint64_t h) {
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

bool lm_is_blank(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n' && s[i] != '\v' && s[i] != '\f') return false;
    return true;
}
