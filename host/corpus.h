/*
 * corpus: the input side of a bulk job. Expands the given paths (files, or
 * directories of song files taken recursively in name order) and reads them
 * as one stream of records, one per input line, in plain text, TSV
 * (id TAB text) or JSONL ({"id": ..., "text": ...}, field names configurable).
 *
 * A record is never dropped or merged: blank lines, bad JSON and lines
 * without a tab still come out as records (flagged), so the output keeps
 * exactly one record per input line. Invalid UTF-8 and NUL bytes are
 * replaced with U+FFFD here and counted; what to do about them is the job's
 * policy.
 */
#ifndef LM_CORPUS_H
#define LM_CORPUS_H

#include "engine_config.h"

#include <stdio.h>

typedef struct {
    char *path;       /* as opened */
    char *name;       /* relative to the directory it was found in, or the base name */
    uint64_t size;
    uint64_t hash;    /* of the contents (lm_corpus_scan) */
    long lines;       /* records it holds (lm_corpus_scan) */
} lm_corpus_file;

typedef struct {
    lm_corpus_file *files;
    int n_files;      /* 0: standard input */
    lm_format format;
    char id_field[64], text_field[64];
    /* reading position */
    int cur;
    FILE *f;
    long line_no;
    char *buf;
    size_t cap;
} lm_corpus;

typedef struct {
    int file;           /* index into files (0 for stdin) */
    long line;          /* 1-based line number in that file */
    char *id;           /* TSV/JSONL id; for text, the line number (with the file name when there are several) */
    bool id_is_number;  /* written back without quotes in JSONL */
    char *text;         /* UTF-8, NUL-terminated */
    size_t len;
    int bad_bytes;      /* invalid UTF-8 sequences or NULs replaced by U+FFFD */
    const char *malformed; /* non-NULL: why a TSV/JSONL line has no usable text */
} lm_record;

int  lm_corpus_open(lm_corpus *c, const char *const *paths, int n_paths, const lm_engine_config *cfg, lm_err *err);
void lm_corpus_close(lm_corpus *c);

/* Reads every file once: sizes, content hashes and record counts. */
int lm_corpus_scan(lm_corpus *c, lm_err *err);
long lm_corpus_total(const lm_corpus *c); /* -1 for stdin */

/* Next record: 1 when one was read, 0 at the end, -1 on a read error. */
int  lm_corpus_next(lm_corpus *c, lm_record *r, lm_err *err);
void lm_record_free(lm_record *r);

/* A file or stdin label for messages. */
const char *lm_corpus_file_label(const lm_corpus *c, int file);

/* Replaces invalid UTF-8 sequences and NUL bytes with U+FFFD; returns how
 * many were replaced (-1 if out of memory). *s is reallocated when needed. */
int lm_utf8_repair(char **s, size_t *len);

#endif
