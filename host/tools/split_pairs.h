/*
 * split_pairs: a pairs corpus (translate --output-format pairs, or any JSONL
 * with source and target fields) as two line-aligned files, PREFIX.SRC and
 * PREFIX.TGT (e.g. corpus.en and corpus.ko), the layout most MT training
 * tools read. Line k of one is the translation of line k of the other.
 *
 * It is a conversion of a finished file, fast and cheap to redo, so it has
 * no journal: both outputs are opened as every command's are (base/outfile.h)
 * and take their final names together or not at all; a failure or a stop
 * (Ctrl-C, SIGTERM) removes both partials. A record that is not a pair stops
 * it, naming the file and line, rather than shift the alignment; line breaks
 * (as Python's splitlines() finds them) and tabs inside a text become spaces.
 */
#ifndef LM_SPLIT_PAIRS_H
#define LM_SPLIT_PAIRS_H

#include "config/engine_config.h"

/* Writes prefix.src_ext and prefix.tgt_ext from input; *pairs counts them.
 * cfg gives the JSONL field names (input.source_field, input.target_field). */
int lm_split_pairs(const char *input, const char *prefix, const char *src_ext, const char *tgt_ext, const lm_engine_config *cfg,
                   long *pairs, lm_err *err);

#endif
