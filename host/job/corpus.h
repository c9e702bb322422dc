/*
 * corpus: the input side of a bulk job. Expands the given paths (files, or
 * directories of song files taken recursively in name order) and reads them
 * as one stream of records, one per input line, in plain text, TSV
 * (id TAB text) or JSONL ({"id": ..., "text": ...}, field names configurable).
 *
 * A record is never dropped or merged: blank lines, bad JSON and lines
 * without a tab still come out as records (flagged), so the output keeps
 * exactly one record per input line. Invalid UTF-8 and NUL bytes are
 * counted and replaced with U+FFFD here, in one pass; what to do about
 * them is the job's policy.
 *
 * Inputs a user hands us are not always files. A pipe, FIFO, character
 * device or standard input ("-") is a stream: read once, never scanned
 * ahead, waited on with poll() so a stop request is honoured even while no
 * writer has come. A regular file is scanned first (size, hash, records);
 * while it is read, its size, identity and content hash are checked against
 * that scan, so a file that changes under the job fails it rather than
 * yielding a silently short output.
 *
 * Memory per line is bounded: at most line_cap bytes of a line are kept
 * (cut at a space or character boundary), or of each side of a TSV pair;
 * the rest is read, hashed and dropped, and the record is flagged too long.
 */
#ifndef LM_CORPUS_H
#define LM_CORPUS_H

#include "config/engine_config.h"

#include <stdio.h>

typedef struct {
    char *path;       /* as opened; "-" for standard input */
    char *name;       /* relative to the directory it was found in, or the base name */
    bool stream;      /* read once, never scanned: no size, hash or count */
    lm_file_id id;
    uint64_t size;    /* lm_corpus_scan, for regular files */
    int64_t mtime_ns;
    uint64_t hash;
    long lines;
} lm_corpus_file;

typedef struct {
    lm_corpus_file *files;
    int n_files;       /* at least one: standard input is "-" */
    bool streamed;     /* some input is a stream: no total, no resume */
    lm_format format;
    char id_field[64], text_field[64];
    bool pairs;        /* records are (source, target) pairs: TSV source<TAB>target, or JSONL
                        * source_field and text_field (the target); set after open */
    char source_field[64];
    size_t line_cap;   /* bytes of a line kept (LM_CORPUS_LINE_CAP unless set after open) */
    const volatile int *cancel; /* polled while waiting on a stream; may be NULL */
    struct lm_corpus_skip { char *path; const char *why; } *skipped; /* entries a directory walk passed over */
    int n_skipped;
    /* reading position */
    int cur;
    int fd;            /* -1 when no file is open */
    long line_no;
    bool tab_seen;     /* a TSV pair line: its first tab has been read... */
    bool extra_tab;    /* ...and so has another after it */
    size_t side_at;    /* where the side being read starts in line (0, or past the first tab) */
    uint64_t got_bytes, got_hash; /* of the open file so far */
    char *rbuf;
    size_t rpos, rlen;
    bool eof;
    lm_strbuf line;    /* the line being read, at most its kept bytes */
} lm_corpus;

#define LM_CORPUS_LINE_CAP ((size_t)1 << 20)

typedef struct {
    int file;           /* index into files */
    long line;          /* 1-based line number in that file */
    char *id;           /* TSV/JSONL id as text; for text input, a pair without an id, a bad record and a JSONL
                         * record without the id field, the line number (with the file name when there are
                         * several); "" for a blank TSV/JSONL line */
    char *id_json;      /* the id as raw JSON to write back verbatim, or NULL: write id as a JSON string */
    char *text;         /* UTF-8, NUL-terminated */
    size_t len;
    int bad_bytes;      /* invalid UTF-8 sequences or NULs replaced by U+FFFD */
    bool overlong;      /* longer than line_cap: only its start was kept */
    const char *malformed; /* non-NULL: why a TSV/JSONL line has no usable text */
    char *note;         /* non-NULL: a doubt about a record that is still used (a JSONL key given twice) */
    char *src;          /* pairs: the source (UTF-8, repaired, NUL-terminated; text is the
                         * target); NULL for a blank line or a malformed record */
    size_t src_len;
} lm_record;

/* skip: files and directories (by identity) a directory walk must pass
 * over, such as the job's own outputs; naming one of them explicitly is an
 * error. Dangling links, link loops and non-regular files met in a walk are
 * skipped and listed in c->skipped. */
int  lm_corpus_open(lm_corpus *c, const char *const *paths, int n_paths, const lm_engine_config *cfg, const lm_file_id *skip,
                    int n_skip, lm_err *err);
void lm_corpus_close(lm_corpus *c);

/* Reads every regular file once: sizes, content hashes and record counts. */
int lm_corpus_scan(lm_corpus *c, lm_err *err);
long lm_corpus_total(const lm_corpus *c); /* -1 when an input is a stream */

/* Next record: 1 when one was read, 0 at the end, -1 on a read error, a
 * file that changed since the scan, or a stop request while waiting. */
int  lm_corpus_next(lm_corpus *c, lm_record *r, lm_err *err);
void lm_record_free(lm_record *r);

/* Fails if the file being read has changed size or identity since the scan. */
int lm_corpus_check(const lm_corpus *c, lm_err *err);

/* A file or "<stdin>" label for messages. */
const char *lm_corpus_file_label(const lm_corpus *c, int file);

/* Replaces invalid UTF-8 sequences and NUL bytes with U+FFFD in one pass;
 * returns how many were replaced (-1 if out of memory). *s is reallocated. */
int lm_utf8_repair(char **s, size_t *len);
/* Counts them without changing anything. */
int lm_utf8_count_bad(const char *s, size_t len);

#endif
