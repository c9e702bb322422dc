/*
 * outfile: how every command opens a file it writes (translate's and score's
 * outputs and reports, compare's tables, split-pairs' two files, bench's
 * results), so that none of them destroys what it did not create:
 *   - "-" is standard output;
 *   - a symbolic link is written through to its target; a link to nothing
 *     is refused;
 *   - a character device or a FIFO is written in place, never replaced by a
 *     regular file;
 *   - a regular file is written as PATH.partial, created exclusively under
 *     a lock, and renamed over PATH only when complete, so a final name never
 *     holds half a file; several outputs of one command take their final
 *     names together or not at all;
 *   - block devices, directories and sockets are refused;
 *   - a protected file (the command's inputs, the model's files) is never an
 *     output nor a .partial, however it is spelled (links, "..", hard links),
 *     and a protected name in a protected directory is never created.
 * The bulk job (job/sink.c) applies the same rules through the same calls,
 * with its journal deciding when a .partial is complete.
 */
#ifndef LM_OUTFILE_H
#define LM_OUTFILE_H

#include "base/util.h"

/* Files no output may be, and names no output may take. */
typedef struct {
    struct lm_protected {
        lm_file_id id;   /* an existing file; or, with name, the directory of `name` */
        char *name;      /* NULL, or a base name that is protected in directory id */
        char *label;     /* how messages name it: "the input lyrics.txt" */
    } *items;
    int n, cap;
} lm_protect;

void lm_protect_free(lm_protect *p);
/* Protects the file at path (nothing when it does not exist). */
int lm_protect_path(lm_protect *p, const char *path, const char *label, lm_err *err);
/* Protects an open file (standard input redirected from a file). */
int lm_protect_id(lm_protect *p, lm_file_id id, const char *label, lm_err *err);
/* Protects every regular file directly in dir, and each of names (NULL
 * ended) there whether it exists or not: a model directory. */
int lm_protect_dir(lm_protect *p, const char *dir, const char *const *names, const char *label, lm_err *err);
/* -1 naming what path would destroy, 0 when it is free to write. path is
 * checked as it would be written: through links. */
int lm_protect_check(const lm_protect *p, const char *path, lm_err *err);

/* What writing to `path` means: *final is the path really written (links
 * followed; malloc'd), *direct says a device or FIFO is written in place.
 * "-" gives *final NULL (standard output). Refuses links to nothing, block
 * devices, directories and sockets. */
int lm_outfile_resolve(const char *path, char **final, bool *direct, lm_err *err);

/* One output of a one-shot command, written whole and then committed. */
typedef struct {
    char *path;     /* final path; NULL: standard output */
    char *partial;  /* PATH.partial while open; NULL when written in place */
    bool direct;
    FILE *f;        /* write with stdio; commit checks every error */
    int slot;       /* in the signal handler's list, or -1 */
} lm_outfile;

/* Opens path for writing under the rules above (p may be NULL). */
int  lm_outfile_open(lm_outfile *o, const char *path, const lm_protect *p, lm_err *err);
/* Flushes, syncs, closes and renames each of o[0..n) into place: all of them
 * or none (a rename that fails puts back the files already replaced). On
 * failure the partials are removed. */
int  lm_outfile_commit(lm_outfile *o, int n, lm_err *err);
/* Closes o and removes its partial: the command failed. */
void lm_outfile_abandon(lm_outfile *o);
/* From now on SIGINT and SIGTERM remove the open partials before the
 * process ends with the signal's status (130, 143). For commands without a
 * journal to stop cleanly into. */
void lm_outfile_on_signals(void);

#endif
