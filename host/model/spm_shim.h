/*
 * spm_shim: the few SentencePiece calls we need, as C. libsentencepiece is a
 * C++ library; this is the only C++ in the project (spm_shim.cc).
 */
#ifndef LM_SPM_SHIM_H
#define LM_SPM_SHIM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lm_spm lm_spm;

/* Loads a model from its serialized bytes (path names it in messages).
 * Returns NULL and writes a message into err on failure. */
lm_spm *lm_spm_load(const char *path, const char *data, size_t len, char *err, size_t err_cap);
void    lm_spm_free(lm_spm *spm);

/* Splits text into piece strings; calls emit once per piece. Returns 0, or -1 on error. */
int lm_spm_encode(const lm_spm *spm, const char *text, size_t len,
                  void (*emit)(void *ctx, const char *piece, size_t piece_len), void *ctx);

/* Joins pieces back into text ("▁" becomes a space, the leading one is dropped).
 * Returns a malloc'd NUL-terminated string, or NULL. */
char *lm_spm_decode_pieces(const lm_spm *spm, const char *const *pieces, int n);

#ifdef __cplusplus
}
#endif
#endif
