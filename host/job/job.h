/*
 * job: a bulk translation job over files, directories or stdin, the way
 * users run whole lyric archives through the engine.
 *
 * Three threads in a pipeline joined by bounded queues of windows:
 *   reader  reads a window of records, applies the bad-input policies and
 *           tokenises (corpus.c);
 *   model   (the calling thread) answers repeated lines from the line cache,
 *           translates the rest in length-sorted batches (translator.c);
 *   writer  formats records in input order, writes them, syncs, and saves
 *           the journal (output.c, journal.c).
 * Memory is bounded by the window size and queue depth, whatever the size
 * of the corpus. Written to files, a job is resumable: started again with
 * the same command after a kill it continues from its journal and ends with
 * output byte-identical to an uninterrupted run.
 */
#ifndef LM_JOB_H
#define LM_JOB_H

#include "job/progress.h"
#include "engine/translator.h"

typedef struct {
    const char *const *inputs; /* files or directories; none = stdin */
    int n_inputs;
    const char *output;        /* NULL = stdout */
    bool per_file;             /* output is a directory: one output per input file */
    const char *report;        /* bad-input report (TSV), or NULL */
    const char *model_dir;     /* for the job's identity in the journal */
    lm_progress_mode progress;
    bool summary;
    bool restart;              /* discard an existing journal and start over */
    bool score;                /* lyricmt score: records are (source, target) pairs, force-decoded
                                * (score.h) */
} lm_job_opts;

/* Sets how t runs its batches for this job (translator.h): scoring pairs
 * (score.h), the search with augmentation (augment.h), or the search alone.
 * lm_job_run does it; ranks that only serve batches call it themselves. */
void lm_job_attach(lm_translator *t, const lm_job_opts *o);

/* 0: done. A signal number (SIGINT, SIGTERM): stopped on request after
 * writing and journaling what was finished. -1: failed, err says why (what
 * was finished is journaled too, when the output is a file). */
int lm_job_run(lm_translator *t, const lm_job_opts *o, lm_err *err);

#endif
