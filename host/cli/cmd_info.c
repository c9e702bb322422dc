/* cmd_info: `lyricmt info`, a model directory described after a full load. */
#include "cli/cli.h"
#include "model/model.h"
#include "model/tokenizer.h"

#include <stdio.h>
#include <string.h>

static const char *info_help =
    "usage: lyricmt info --model DIR\n"
    "\n"
    "Prints the architecture, parameter count, stored dtype, tokenizer convention\n"
    "and generation defaults of a model directory, after validating it fully.\n"
    "\n"
    "Exit codes: 0 ok, 1 the model does not load, 2 usage error.\n";

int lm_cmd_info(int argc, char **argv) {
    const char *model_dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { fputs(info_help, stdout); return 0; }
        if (!strcmp(argv[i], "--model") && model_dir) return lm_cli_usage(NULL, "option '%s' is given twice: give it once", argv[i]);
        if (!strcmp(argv[i], "--model") && i + 1 < argc && argv[i + 1][0]) model_dir = argv[++i];
        else if (!strcmp(argv[i], "--model")) return lm_cli_usage(NULL, "option '%s' needs a model directory", argv[i]);
        else return lm_cli_usage(NULL, "unknown option '%s'", argv[i]);
    }
    if (!model_dir) return lm_cli_usage(NULL, "%s", "info needs --model DIR");
    lm_model m;
    lm_tokenizer *tok = NULL;
    lm_err err = {{0}};
    if (lm_model_load(model_dir, &m, &err) != 0 || lm_tokenizer_load(model_dir, m.cfg.model.vocab_size, &tok, &err) != 0) {
        fprintf(stderr, "lyricmt: %s\n", err.msg);
        return LM_EXIT_RUNTIME;
    }
    const lm_model_config *c = &m.cfg.model;
    const lm_gen_config *g = &m.cfg.gen;
    const lm_tok_config *tc = &m.cfg.tok;
    printf("model:          %s\n", model_dir);
    printf("architecture:   M2M100 encoder-decoder (pre-LayerNorm), %s\n", c->activation == LM_ACT_RELU ? "relu" : "gelu");
    printf("encoder:        %d layers, %d heads, d_model %d, ffn %d\n", c->encoder_layers, c->encoder_heads, c->d_model, c->encoder_ffn);
    printf("decoder:        %d layers, %d heads, d_model %d, ffn %d\n", c->decoder_layers, c->decoder_heads, c->d_model, c->decoder_ffn);
    printf("vocabulary:     %d (vocab.json %d + 100 languages + %d madeup)\n", c->vocab_size, lm_tokenizer_vocab_size(tok), tc->num_madeup_words);
    printf("positions:      %d (sinusoidal, offset 2)\n", c->max_positions);
    printf("embeddings:     %s, scale %g\n", m.lm_head == m.embed ? "tied (encoder, decoder, output)" : "output head untied", m.embed_scale);
    printf("parameters:     %llu (%.1f M)\n", (unsigned long long)m.n_params, m.n_params / 1e6);
    printf("weights:        %s (stored %s, computed in f32)\n", m.weights_path, lm_dtype_name(m.stored_dtype));
    printf("tokenizer:      %s convention, src %s, tgt %s\n", tc->convention == LM_CONV_M2M100 ? "m2m100 (source tag __src__, forced __tgt__)" : "small100 (source tag __tgt__, nothing forced)",
           tc->src_lang[0] ? tc->src_lang : "-", tc->tgt_lang[0] ? tc->tgt_lang : "-");
    printf("generation:     num_beams %d, max_length %d, min_length %d, length_penalty %g, early_stopping %s,\n"
           "                no_repeat_ngram_size %d, repetition_penalty %g, do_sample %s\n",
           g->num_beams, g->max_length, g->min_length, g->length_penalty, g->early_stopping ? "true" : "false",
           g->no_repeat_ngram_size, g->repetition_penalty, g->do_sample ? "true" : "false");
    lm_tokenizer_free(tok);
    lm_model_free(&m);
    return 0;
}
