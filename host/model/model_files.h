/*
 * model_files: the files of a Hugging Face model directory that lyricmt
 * reads, each with the most bytes it may hold. This list is the one rule for
 * "what is part of the model": the loader reads each file under its cap, and
 * other code uses the list to keep the model's files from being overwritten
 * and to fingerprint them for a job's journal.
 *
 * Every file is checked before any of it is read: a regular file (links
 * followed; a FIFO or device would block or never end) no larger than its
 * cap (a sparse 4 GB file would otherwise be read into memory). The caps are
 * generous for every real M2M100-family checkpoint; model_files.c says why
 * each is what it is.
 */
#ifndef LM_MODEL_FILES_H
#define LM_MODEL_FILES_H

#include "base/outfile.h"
#include "base/util.h"

typedef enum {
    LM_MF_CONFIG,             /* config.json (required) */
    LM_MF_GENERATION_CONFIG,  /* generation_config.json */
    LM_MF_TOKENIZER_CONFIG,   /* tokenizer_config.json */
    LM_MF_SPECIAL_TOKENS_MAP, /* special_tokens_map.json */
    LM_MF_VOCAB,              /* vocab.json (required) */
    LM_MF_SENTENCEPIECE,      /* sentencepiece.bpe.model (required) */
    LM_MF_SAFETENSORS,        /* model.safetensors (this or pytorch_model.bin) */
    LM_MF_TORCHBIN,           /* pytorch_model.bin */
    LM_N_MODEL_FILES
} lm_model_file_id;

typedef struct {
    const char *name;   /* the file's name in the model directory */
    uint64_t max_bytes; /* a larger file is refused before any of it is read */
    bool weights;       /* memory-mapped, not read: too big to hash whole at every start */
} lm_model_file;

/* Indexed by lm_model_file_id. */
extern const lm_model_file lm_model_files[LM_N_MODEL_FILES];

/* Checks every listed file that dir holds (absent ones are the loader's
 * business) without opening any: each must be a regular file within its cap.
 * The readers check again on the file they open; this pass makes the
 * refusal the same whichever files a directory's loading path reads. */
int lm_model_dir_check(const char *dir, lm_err *err);

/* Adds the model in dir to p (base/outfile.h): every file there, and each
 * listed name whether it exists or not, so that no command writes over the
 * model or creates a file that would change what loads next. */
int lm_model_protect(lm_protect *p, const char *dir, lm_err *err);

#endif
