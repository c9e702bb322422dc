/*
 * journal: what a resumable bulk job has safely written, kept beside its
 * output. It holds the job's identity (its input files' sizes and hashes,
 * the model files' hashes, every setting that changes the output) and one
 * progress mark: how many records are written, which output is being
 * written, and how many of its bytes are good.
 *
 * The job syncs its output before saving the journal, and a save replaces
 * the file atomically (write, fsync, rename), so after a kill at any
 * instant the journal on disk describes output that is on disk.
 */
#ifndef LM_JOURNAL_H
#define LM_JOURNAL_H

#include "base/util.h"

typedef struct {
    char **lines;     /* identity: "kind\tkey\tvalue" */
    int n;
    long records;     /* records written, in input order */
    int output;       /* outputs before this one are complete */
    uint64_t bytes;   /* good bytes of output `output` */
} lm_journal;

/* Adds one identity line; tabs and newlines in key or value become spaces. */
int  lm_journal_add(lm_journal *j, const char *kind, const char *key, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void lm_journal_free(lm_journal *j);

int lm_journal_save(const char *path, const lm_journal *j, lm_err *err);
/* 1 when loaded, 0 when there is no journal, -1 when it is unreadable. */
int lm_journal_load(const char *path, lm_journal *j, lm_err *err);

/* Fails, naming the first difference in words, unless both identities agree. */
int lm_journal_compare(const lm_journal *saved, const lm_journal *now, lm_err *err);

#endif
