/*
 * special_tokens: which tokens a model directory's tokenizer files declare,
 * read as transformers 5.x's from_pretrained reads them.
 *
 * transformers skips, in decode(skip_special_tokens=True), the named tokens
 * (<s>, </s>, <pad>, <unk>) and the "extra" special tokens, and splits text
 * on its added tokens before SentencePiece. The extra list is
 * tokenizer_config.json's extra_special_tokens when not empty, else its
 * additional_special_tokens; when that file has no added_tokens_decoder,
 * special_tokens_map.json's list is used if the config gave none. The real
 * checkpoints (saved by transformers 4.x) list the 100 language tokens
 * there; a directory written by 5.x's save_pretrained from a tokenizer built
 * from its vocabulary files lists none, so transformers keeps "__ko__" in
 * decoded text. added_tokens_decoder, when present, gives added tokens with
 * their ids.
 */
#ifndef LM_SPECIAL_TOKENS_H
#define LM_SPECIAL_TOKENS_H

#include "base/util.h"

#define LM_SPECIAL_MAX 4096      /* entries read from either list */
#define LM_SPECIAL_MAX_LEN 256   /* bytes of one token */

typedef struct {
    char *text;
    int32_t id; /* from added_tokens_decoder; -1 for extra-list entries */
} lm_special_entry;

typedef struct {
    lm_special_entry *extra;   /* the extra special tokens, in file order */
    int n_extra;
    lm_special_entry *decoder; /* added_tokens_decoder entries */
    int n_decoder;
    bool has_decoder;
} lm_special_tokens;

/* Missing files are not errors (an empty declaration); malformed ones are. */
int  lm_special_tokens_load(const char *dir, lm_special_tokens *st, lm_err *err);
void lm_special_tokens_free(lm_special_tokens *st);

#endif
