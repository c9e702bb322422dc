/*
 * output: one output record per input record, formatted for the writer of a
 * bulk job (job.c): a translation as text, TSV, JSONL or corpus pairs, and a
 * pair's scores as `lyricmt score` writes them. Newlines (and tabs, in TSV)
 * inside a text become spaces, so a record is always one line.
 */
#ifndef LM_OUTPUT_H
#define LM_OUTPUT_H

#include "engine/translation.h"
#include "job/corpus.h"

/* Appends one record and its newline. tr NULL: no translation (blank or
 * skipped line); `warning` (may be NULL) names why, in TSV/JSONL only.
 * n_best: the hypotheses asked for a line; above 1, every JSONL record has
 * a `hypotheses` list, however many survived --dedup-hypotheses and
 * --min-score (none, for a line without a translation), so that a record's
 * shape follows the settings, not the data. */
int lm_output_format(lm_format fmt, int n_best, const lm_record *r, const lm_translation *tr, const char *warning, lm_strbuf *b);

/* One record of `lyricmt score`: TSV "id, sum, normalised, tokens" or JSONL
 * {"id", "score", "normalized", "tokens"} (r's id as the input wrote it), from
 * a scored pair (engine/score.h: scores[0] the sum, n_tokens the labels;
 * n_best is not used: a pair has one score).
 * tr NULL: the pair was not scored (blank, skipped, malformed): empty fields
 * (JSONL nulls), with `warning` naming why. */
int lm_output_score(lm_format fmt, int n_best, const lm_record *r, const lm_translation *tr, const char *warning, lm_strbuf *b);

#endif
