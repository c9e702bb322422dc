/*
 * launch: a bulk job from an opened model to its exit status, alone or as
 * one rank of an MPI job (engine/mpi_link.h): rank 0 runs the job (job.h)
 * and the other ranks serve its batches. The ranks open the model and set
 * its batch runner alike, so a batch runs the same wherever it goes.
 */
#ifndef LM_LAUNCH_H
#define LM_LAUNCH_H

#include "job/job.h"

/* Opens the model in model_dir with engine's settings and runs the job.
 * Returns the process exit status: 0 done, LM_EXIT_RUNTIME, LM_EXIT_USAGE
 * (settings the model cannot honour), or 128 + the signal that stopped it. */
int lm_job_launch(const char *model_dir, const lm_engine_config *engine, const lm_job_opts *job);

#endif
