/*
 * mpi_link: one bulk job over several processes and machines, started by
 * `mpirun -np N lyricmt translate ...` or Slurm's `srun`.
 *
 * Rank 0 runs the job as a single process would (reader, line cache, writer,
 * journal) with a worker pool; its link thread hands the pool's queued
 * batches (token ids) to the other ranks as they ask for work, one request
 * per free worker, and puts their translations back in the pool as finished
 * batches. So the batches go to whichever worker of whichever rank is free
 * (no static split), and rank 0 keeps input order, repeats and the journal
 * exactly as alone. Every other rank loads the model, runs its own pool and
 * serves. All MPI calls of a rank come from one thread (MPI_THREAD_SERIALIZED).
 *
 * A rank that dies stops the job: the launcher ends the others, and rank 0's
 * journal on disk is always consistent (written per window, renamed into
 * place), so the same command resumes, with any number of ranks. A rank that
 * stops answering without dying is caught by rank 0 itself: a batch out longer
 * than mpi.timeout_s, or no answer to the end of the job in that time, ends
 * the job (MPI_Abort) with the journal kept.
 *
 * Built where mpicc was found (LM_WITH_MPI). A program started without a
 * launcher never calls MPI_Init and runs exactly as a single process.
 */
#ifndef LM_MPI_LINK_H
#define LM_MPI_LINK_H

#include "engine/translator.h"

typedef struct {
    int rank, size; /* 0 and 1 when not under an MPI launcher */
    bool active;    /* MPI_Init was called */
    struct lm_mpi_feed *feed; /* rank 0's link thread, while it runs */
} lm_mpi;

/* MPI_Init_thread when a launcher started this process (OMPI_COMM_WORLD_SIZE,
 * PMI_SIZE or PMIX_RANK in the environment); otherwise rank 0 of 1. */
int lm_mpi_init(lm_mpi *m, lm_err *err);

/* Ranks > 0: serve rank 0's batches until it says the job is over. */
int lm_mpi_serve(lm_mpi *m, lm_translator *t, lm_err *err);

/* Rank 0: starts the link thread that feeds t's pool to the other ranks
 * (t's pool must be running). */
int lm_mpi_feed_start(lm_mpi *m, lm_translator *t, lm_err *err);

/* Rank 0: stops the link thread, and tells the other ranks the job is over;
 * with summary, prints how many batches each rank ran. Returns -1 when
 * batches were still out on other ranks (a stopped or failed job): then the
 * ranks cannot end in order. */
int lm_mpi_feed_stop(lm_mpi *m, bool summary);

/* MPI_Finalize, or MPI_Abort with `code` when the ranks cannot end in order. */
void lm_mpi_finish(lm_mpi *m, bool abort_all, int code);

/* "built (Open MPI ...)" or "not built", for --version. */
const char *lm_mpi_build(void);

#endif
