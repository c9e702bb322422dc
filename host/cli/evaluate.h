/*
 * evaluate: the `lyricmt eval` and `lyricmt compare` commands (argument
 * parsing and reporting; the metrics are metrics.c, the tables compare.c).
 * Each returns the process exit status: 0 ok, 1 runtime error, 2 usage error.
 */
#ifndef LM_EVALUATE_H
#define LM_EVALUATE_H

int lm_eval_main(int argc, char **argv);
int lm_compare_main(int argc, char **argv);

#endif
