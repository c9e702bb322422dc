/*
 * lines: a small text file as an array of lines, for `lyricmt eval` and
 * `lyricmt compare` (hypotheses, references, sources). Lines end at "\n"
 * (a CR before it is dropped; a lone CR is part of the line), as sacreBLEU's
 * command line reads files; the last line needs no terminator. Invalid UTF-8 and NUL bytes are errors that
 * name the file and line: a metric over repaired text would not be
 * sacreBLEU's.
 */
#ifndef LM_LINES_H
#define LM_LINES_H

#include "base/util.h"

#define LM_LINES_MAX_BYTES (256u << 20)

typedef struct {
    char *buf;    /* the file, lines NUL-terminated in place */
    char **line;  /* n pointers into buf */
    int n;
} lm_lines;

/* rstrip: drop trailing whitespace from each line (Python's str.rstrip(), as
 * sacreBLEU's command line does to every line it reads). */
int  lm_lines_load(const char *path, bool rstrip, lm_lines *out, lm_err *err);
void lm_lines_free(lm_lines *l);

#endif
