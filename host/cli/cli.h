/*
 * cli: the command line. main.c dispatches to one function per command
 * (cmd_*.c); each parses its own flags (the engine's through
 * config/engine_flags.h) and returns the process exit status: 0, or
 * LM_EXIT_RUNTIME, LM_EXIT_USAGE, 128 + a signal.
 */
#ifndef LM_CLI_H
#define LM_CLI_H

#include "base/util.h"

int lm_cmd_translate(int argc, char **argv, bool score); /* translate, and score */
int lm_cmd_split_pairs(int argc, char **argv);
int lm_cmd_info(int argc, char **argv);
int lm_cmd_eval(int argc, char **argv);
int lm_cmd_compare(int argc, char **argv);
int lm_cmd_bench(int argc, char **argv);

/* A usage error, printed as one line and a pointer to the help of `cmd`
 * (NULL: the command's own --help); returns LM_EXIT_USAGE. fmt takes arg. */
int lm_cli_usage(const char *cmd, const char *fmt, const char *arg);
/* err's message as one line; returns code. */
int lm_cli_fail(const lm_err *err, int code);

#endif
