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
/* The flags a command has seen: one that takes a single value may be given
 * once (the second would silently win); those listed in `repeatable`
 * (space separated, e.g. "-i --set --config") may come again. */
typedef struct {
    const char *flags[64];
    int n;
} lm_cli_seen;
/* Records flag; when it was seen before and is not repeatable, prints the
 * usage error for `cmd` (NULL: the command's own) and returns true. */
bool lm_cli_repeated(lm_cli_seen *s, const char *cmd, const char *flag, const char *repeatable);

/* err's message as one line; returns code. */
int lm_cli_fail(const lm_err *err, int code);

#endif
