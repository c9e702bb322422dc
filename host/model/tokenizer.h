/*
 * tokenizer: text <-> token ids exactly as transformers' M2M100Tokenizer.
 *
 * Text is split around literal special-token strings (<s>, </s>, <pad>,
 * <unk>, __xx__), each chunk goes through SentencePiece, and every piece is
 * looked up in vocab.json (missing pieces become <unk> = 3). Language tokens
 * are id len(vocab.json) + index in the 100-code m2m100 list.
 */
#ifndef LM_TOKENIZER_H
#define LM_TOKENIZER_H

#include "base/util.h"

#define LM_NUM_LANGS 100

typedef struct lm_tokenizer lm_tokenizer;

/* model_vocab is the embedding size from config.json; the tokenizer's ids
 * (vocab.json + 100 languages + madeup words) must fit in it. */
int  lm_tokenizer_load(const char *dir, int model_vocab, lm_tokenizer **out, lm_err *err);
void lm_tokenizer_free(lm_tokenizer *tok);

/* Language code ("en", "ko", ...) to its token id; -1 if unknown. */
int lm_tokenizer_lang_id(const lm_tokenizer *tok, const char *code);
const char *lm_tokenizer_lang_code(int index);

/* The tokens of text without any prefix or suffix. *ids is malloc'd. */
int lm_tokenizer_encode(const lm_tokenizer *tok, const char *text, size_t len, int32_t **ids, int *n, lm_err *err);

/* Ids back to text as the translation pipeline does: special tokens skipped,
 * no clean-up of spaces. *out is malloc'd. */
int lm_tokenizer_decode(const lm_tokenizer *tok, const int32_t *ids, int n, char **out, lm_err *err);

int lm_tokenizer_vocab_size(const lm_tokenizer *tok); /* entries of vocab.json */

#endif
