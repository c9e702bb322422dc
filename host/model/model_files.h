/*
 * model_files: the files of a model directory that lyricmt reads (or would
 * read, were they there): what the loader opens, what a job's journal
 * hashes, and what no command may ever write.
 */
#ifndef LM_MODEL_FILES_H
#define LM_MODEL_FILES_H

/* NULL ended. */
extern const char *const lm_model_files[];

#endif
