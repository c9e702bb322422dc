/* launch: see launch.h. */
#include "job/launch.h"

#include "engine/mpi_link.h"

#include <stdio.h>

/* The model stage waits for a window's last batch before the next window's
 * batches are queued: a window of fewer batches than workers leaves some idle.
 * (Other ranks are assumed to run as many workers as this one.) */
static void advise_window(const lm_engine_config *e, int workers, const lm_job_opts *job) {
    if (!job->summary || workers < 2 || e->window_lines >= 2 * workers * e->max_batch_sentences) return;
    fprintf(stderr, "lyricmt: note: a window of %d lines is about %d batches for %d workers; "
            "--set batch.window_lines=%d or more keeps them all busy\n",
            e->window_lines, (e->window_lines + e->max_batch_sentences - 1) / e->max_batch_sentences, workers,
            4 * workers * e->max_batch_sentences);
}

int lm_job_launch(const char *model_dir, const lm_engine_config *engine, const lm_job_opts *job) {
    lm_err err = {{0}};
    lm_mpi mpi;
    if (lm_mpi_init(&mpi, &err) != 0) {
        fprintf(stderr, "lyricmt: %s\n", err.msg);
        lm_mpi_finish(&mpi, true, LM_EXIT_RUNTIME);
        return LM_EXIT_RUNTIME;
    }
    bool linked = mpi.size > 1;
    lm_translator t;
    int opened = lm_translator_open(&t, model_dir, engine, &err);
    if (opened != 0) {
        if (linked) fprintf(stderr, "lyricmt: rank %d: %s\n", mpi.rank, err.msg);
        else fprintf(stderr, "lyricmt: %s\n", err.msg);
        lm_mpi_finish(&mpi, linked, opened == -2 ? LM_EXIT_USAGE : LM_EXIT_RUNTIME); /* a rank that cannot work ends them all */
        return opened == -2 ? LM_EXIT_USAGE : LM_EXIT_RUNTIME;
    }
    if (mpi.rank == 0) lm_translator_describe_limits(&t, engine, stderr); /* once, by the rank that writes */
    lm_job_attach(&t, job);
    int rc;
    if (mpi.rank > 0) {
        bool served = lm_mpi_serve(&mpi, &t, &err) == 0;
        if (!served) fprintf(stderr, "lyricmt: rank %d: %s\n", mpi.rank, err.msg);
        lm_translator_close(&t);
        lm_mpi_finish(&mpi, !served, LM_EXIT_RUNTIME);
        return served ? 0 : LM_EXIT_RUNTIME;
    }
    if (linked && (lm_translator_start_pool(&t, engine->rank0_translates, &err) != 0 || lm_mpi_feed_start(&mpi, &t, &err) != 0)) {
        fprintf(stderr, "lyricmt: %s\n", err.msg);
        lm_mpi_feed_stop(&mpi, false);
        lm_translator_close(&t);
        lm_mpi_finish(&mpi, true, LM_EXIT_RUNTIME);
        return LM_EXIT_RUNTIME;
    }
    advise_window(&t.engine, t.n_backends * (mpi.size - (linked && !engine->rank0_translates)), job);
    int ran = lm_job_run(&t, job, &err);
    if (ran < 0) fprintf(stderr, "lyricmt: %s\n", err.msg);
    rc = ran == 0 ? 0 : ran > 0 ? 128 + ran : LM_EXIT_RUNTIME;
    /* batches still out on other ranks (a stopped or failed job): they are ended, not waited for */
    bool dirty = lm_mpi_feed_stop(&mpi, job->summary && ran == 0) != 0;
    lm_translator_close(&t);
    lm_mpi_finish(&mpi, dirty, rc);
    return rc;
}
