/*
 * job_rules: what the kind of a bulk job implies for its settings, for every
 * caller that starts one (the command line, the library): scoring reads and
 * writes TSV unless told otherwise, never reuses a repeat's score across
 * windows, and takes no augmentation; an output directory needs input files.
 */
#ifndef LM_JOB_RULES_H
#define LM_JOB_RULES_H

#include "job/job.h"

/* The settings a job of this kind starts from, before any file or flag. */
void lm_job_defaults(lm_engine_config *e, bool score);

/* Checks e against the job o (o->score, o->output, o->n_inputs) and applies
 * what they imply (e->cache_lines, o->per_file). 0, or -2 with a usage error
 * in err. */
int lm_job_settle(lm_engine_config *e, lm_job_opts *o, lm_err *err);

#endif
