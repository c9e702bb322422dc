/*
 * engine_flags: the command-line flags that set engine settings, one table
 * for every command that runs the model (translate, score, compare):
 * --config FILE.yaml (read before any flag, wherever it stands, so that the
 * flags override it), --set KEY=VALUE for any key, and the short names
 * (--beam is num_beams, --precision is precision, ...). A flag and its
 * config key are range-checked by the same code (engine_config.c).
 */
#ifndef LM_ENGINE_FLAGS_H
#define LM_ENGINE_FLAGS_H

#include "config/engine_config.h"

/* The commands a short name is offered to. */
enum { LM_FLAGS_TRANSLATE = 1, LM_FLAGS_SCORE = 2, LM_FLAGS_COMPARE = 4 };

/* Reads every non-empty --config FILE of argv into c, in order. */
int lm_engine_flags_config(lm_engine_config *c, int argc, char *const *argv, lm_err *err);

/* Applies flag (with its value) if it is an engine flag of `command`:
 * 1 when applied (--config too: lm_engine_flags_config read it), 0 when it
 * is not one, -1 for a bad value (err: the config error), -2 for a
 * malformed --set (err: the usage error). */
int lm_engine_flag(lm_engine_config *c, int command, const char *flag, const char *value, lm_err *err);

#endif
