/*
 * sink: where a bulk job's records go: standard output, one file, or one
 * file per input file under an output directory.
 *
 * A file output is written as NAME.partial and renamed to NAME only when
 * complete, so a final output is never seen half-written nor truncated in
 * place; the job's journal says how much of a .partial is good. Devices and
 * FIFOs cannot be renamed over: they are written directly, and never
 * replaced by a regular file.
 */
#ifndef LM_SINK_H
#define LM_SINK_H

#include "job/corpus.h"

typedef struct {
    int n_outputs;       /* 1, or one per input file */
    char **paths;        /* final paths, symbolic links resolved; NULL for standard output */
    bool direct;         /* the one output is a character device or FIFO: written in place, never renamed */
    const volatile int *cancel; /* ends a wait for a FIFO's reader; may be NULL */
    int cur;             /* output open now, -1 if none */
    FILE *f;
    bool made_partial;   /* the open output is a .partial this sink created */
    uint64_t bytes;      /* bytes in the open output */
} lm_sink;

/* out NULL: standard output. per_file: out is a directory that receives one
 * output per input file, under the input's relative name. An output that
 * is a symbolic link is written through to its target (a link to nothing is
 * refused); one that is a character device or FIFO is written directly
 * (single output only); any other non-regular file is refused. */
int  lm_sink_init(lm_sink *s, const char *out, bool per_file, const lm_corpus *c, lm_err *err);
void lm_sink_free(lm_sink *s);

/* Opens output `index` (its .partial), keeping its first keep_bytes: 0 starts
 * it afresh, more resumes it and needs a .partial at least that long. */
int lm_sink_open(lm_sink *s, int index, uint64_t keep_bytes, lm_err *err);
int lm_sink_write(lm_sink *s, const char *data, size_t len, lm_err *err);
/* Flushes and fsyncs what was written: after this it survives a crash. */
int lm_sink_sync(lm_sink *s, lm_err *err);
/* Syncs and closes the open output and renames its .partial into place. */
int lm_sink_publish(lm_sink *s, lm_err *err);
/* For a resumed job: output `index` was complete when the job stopped; puts
 * its .partial into place if the rename had not happened yet. */
int lm_sink_republish(lm_sink *s, int index, lm_err *err);
/* Closes the open output and removes its .partial, if this sink made one:
 * for a job that cannot be resumed, so nothing half-done stays behind. */
void lm_sink_abandon(lm_sink *s);

/* The .partial path of an output (for messages and tests). */
void lm_sink_partial_path(const lm_sink *s, int index, char *buf, size_t cap);

#endif
