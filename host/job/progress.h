/*
 * progress: what a bulk job tells its user on stderr while it runs and when
 * it ends. A live bar on a terminal, a plain line every few seconds
 * otherwise (lines/s, target tokens/s, done/total, ETA); warnings about bad
 * input, each counted by kind and, when asked, written with its file and
 * line to a report file; a summary at the end. Safe to call from the job's
 * threads.
 */
#ifndef LM_PROGRESS_H
#define LM_PROGRESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>

#include "base/util.h"

/* SKIPPED_PATH: a directory entry that was passed over (a dangling link, a
 * link loop, a FIFO); its line is 0. */
typedef enum { LM_EVENT_BAD_UTF8, LM_EVENT_TOO_LONG, LM_EVENT_BAD_RECORD, LM_EVENT_SKIPPED_PATH, LM_EVENT_KINDS } lm_event_kind;
typedef enum { LM_PROGRESS_NONE, LM_PROGRESS_PLAIN, LM_PROGRESS_BAR } lm_progress_mode;

typedef struct {
    pthread_mutex_t lock;
    lm_progress_mode mode;
    bool summary;            /* print the summary at the end */
    double start, last_print, interval;
    long total;              /* records in the job, -1 when unknown (stdin) */
    long resumed;            /* records an earlier run had written */
    long done;               /* records finished this run */
    long translated;         /* lines the model translated */
    long reused;             /* repeated lines answered from earlier translations */
    long empty;              /* blank or skipped lines: empty output, model not called */
    long tokens;             /* target tokens generated (scored, for lyricmt score) */
    const char *model_verb;  /* what the model did to a line, for the summary: "translated" (or "scored") */
    long events[LM_EVENT_KINDS];
    FILE *report;
    const char *report_path;
    const volatile int *cancel; /* ends a wait for a FIFO report's reader */
    bool bar_shown;
} lm_progress;

void lm_progress_init(lm_progress *p, lm_progress_mode mode, bool summary, long total, long resumed);
void lm_progress_free(lm_progress *p);

/* Writes every event to path as TSV: file, line, kind, detail. */
int  lm_progress_open_report(lm_progress *p, const char *path, lm_err *err);
/* Closes the report, failing if any of it could not be written. */
int  lm_progress_close_report(lm_progress *p, lm_err *err);

/* A warning about one input line: counted, reported, and (the first few of
 * each kind) printed. */
void lm_progress_event(lm_progress *p, lm_event_kind kind, const char *file, long line, const char *detail);

/* Records finished; redraws the progress display when it is due. */
void lm_progress_add(lm_progress *p, long lines, long translated, long reused, long empty, long tokens);

/* The closing summary; `how` says how the job ended ("done", "interrupted"). */
void lm_progress_finish(lm_progress *p, const char *how);

const char *lm_event_name(lm_event_kind kind);

#endif
