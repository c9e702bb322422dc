/*
 * util: error reporting, checked arithmetic, allocation and file helpers
 * shared by every host module.
 *
 * Errors are values, not aborts: a function that can fail takes an
 * `lm_err *` and returns -1 after writing a one-line message into it.
 * The loader in particular must survive any file thrown at it, so nothing
 * below ever calls exit() or abort().
 */
#ifndef LM_UTIL_H
#define LM_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>

#define LM_ERR_LEN 512

/* The program's exit statuses besides 0 (and 128 + a signal's number):
 * a runtime failure (model, input, I/O) and a usage error (flags, config,
 * settings the model cannot honour). */
#define LM_EXIT_RUNTIME 1
#define LM_EXIT_USAGE 2

typedef struct {
    char msg[LM_ERR_LEN];
} lm_err;

/* Writes a printf-style message into err (if non-NULL); always returns -1 so
 * callers can `return lm_fail(err, ...)`. */
int lm_fail(lm_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes an existing message, e.g. with the file it concerns. */
int lm_fail_prefix(lm_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Overflow-checked arithmetic; return false when the result would not fit. */
static inline bool lm_mul_u64(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool lm_add_u64(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

/* malloc/calloc that report instead of returning NULL silently. */
void *lm_malloc(size_t n, lm_err *err);
void *lm_calloc(size_t count, size_t size, lm_err *err);

/* Reads a whole (small) file into a NUL-terminated buffer. Refuses anything
 * but a regular file (opened without blocking, so a FIFO cannot hang us), and
 * files larger than max_bytes, so a hostile or sparse file cannot exhaust
 * memory. */
int lm_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len, lm_err *err);

/* The same refusals without opening the file: *exists says whether path
 * exists (links followed); an absent file is not an error here. */
int lm_file_check(const char *path, uint64_t max_bytes, bool *exists, lm_err *err);

/* A read-only memory map of a whole file. */
typedef struct {
    const uint8_t *data;
    size_t size;
} lm_mmap;

/* Maps a non-empty regular file of at most max_bytes (lm_read_file's refusals). */
int  lm_mmap_open(const char *path, uint64_t max_bytes, lm_mmap *m, lm_err *err);
void lm_mmap_close(lm_mmap *m);
/* Tells the kernel that bytes [p, p + n) of the map are not needed for now
 * (whole pages inside it only; nothing if p is outside). Reading them again
 * faults them back in from the file. */
void lm_mmap_release(const lm_mmap *m, const void *p, size_t n);

bool lm_file_exists(const char *path);

/* Opens path for writing with open(2) flags (O_WRONLY is added). A FIFO
 * with no reader yet is waited for (said once on stderr) until one comes or
 * *cancel becomes non-zero, instead of blocking in open(). Returns a stream,
 * or NULL with err set. */
FILE *lm_open_for_writing(const char *path, int flags, const volatile int *cancel, lm_err *err);

/* A growable byte string, always NUL-terminated after its len bytes. */
typedef struct {
    char *data;
    size_t len, cap;
} lm_strbuf;
/* Appends n bytes; -1 when out of memory. */
int lm_strbuf_add(lm_strbuf *b, const char *s, size_t n);

/* Joins dir and name into buf; fails if it does not fit. */
int lm_path_join(char *buf, size_t cap, const char *dir, const char *name, lm_err *err);

/* IEEE half and bfloat16 to float. */
float lm_f16_to_f32(uint16_t h);
float lm_bf16_to_f32(uint16_t b);

/* Monotonic wall clock in seconds. */
double lm_now(void);

/* 64-bit FNV-1a, chainable: pass the previous result as h (start with
 * LM_HASH_INIT). For fingerprints and hash tables, not for security. */
#define LM_HASH_INIT 0xcbf29ce484222325ull
uint64_t lm_hash64(const void *data, size_t len, uint64_t h);

/* True when s holds only ASCII whitespace: such lines never reach the model. */
bool lm_is_blank(const char *s, size_t len);

/* Validates UTF-8: returns the byte offset of the first bad sequence, or -1. */
long lm_utf8_invalid_at(const char *s, size_t len);
/* Length of the valid UTF-8 sequence at s[i] (1 to 4), or 0 when the bytes
 * there are not one (NUL counts as valid here). */
size_t lm_utf8_seq_len(const char *s, size_t len, size_t i);

/* A file's identity (device and inode, links followed): two paths name the
 * same file exactly when these agree, whatever their spelling. */
typedef struct {
    uint64_t dev, ino;
} lm_file_id;
/* false when path does not exist (or cannot be looked at). */
bool lm_file_id_get(const char *path, lm_file_id *id);
static inline bool lm_file_id_eq(lm_file_id a, lm_file_id b) { return a.dev == b.dev && a.ino == b.ino; }

#endif
