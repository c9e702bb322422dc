/*
 * lyricmt: command-line entry point.
 *
 *   lyricmt translate --model DIR [options]   translate lines (stdin -> stdout)
 *   lyricmt info --model DIR                  describe a model directory
 *
 * Exit codes: 0 success; 1 a runtime failure (bad model, bad input file, I/O);
 * 2 a usage error (unknown flag, bad value, bad config file).
 */
#include "translator.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2
#define WINDOW_LINES 2048 /* lines read, sorted and translated together */

static const char *translate_help =
    "usage: lyricmt translate --model DIR [options]\n"
    "\n"
    "Translates one segment per input line; writes exactly one output line per\n"
    "input line, in order. Empty or whitespace-only lines give empty lines.\n"
    "\n"
    "  --model DIR          Hugging Face model directory (config.json, weights, tokenizer)\n"
    "  -i FILE              input (default: stdin)\n"
    "  -o FILE              output (default: stdout); written to FILE.tmp, renamed when complete\n"
    "  --src LANG           source language code (default: tokenizer_config.json, else en)\n"
    "  --tgt LANG           target language code (default: tokenizer_config.json, else ko)\n"
    "  --beam N             beam size (default: generation_config.json)\n"
    "  --max-length N       maximum output length in tokens, decoder start included\n"
    "  --convention C       auto | m2m100 (src tag, forced target tag) | small100 (target tag on the source)\n"
    "  --config FILE.yaml   engine settings (see configs/); flags override the file\n"
    "  --threads N          CPU threads (0 = all cores)\n"
    "  --device cpu         compute backend (cpu; cuda when built with it)\n"
    "  --set KEY=VALUE      any config key, e.g. --set decoding.no_repeat_ngram_size=3\n"
    "  -h, --help           this help\n"
    "\n"
    "Exit codes: 0 ok, 1 runtime error (model, input, I/O), 2 usage error.\n";

static const char *info_help =
    "usage: lyricmt info --model DIR\n"
    "\n"
    "Prints the architecture, parameter count, stored dtype, tokenizer convention\n"
    "and generation defaults of a model directory, after validating it fully.\n"
    "\n"
    "Exit codes: 0 ok, 1 the model does not load, 2 usage error.\n";

static const char *main_help =
    "usage: lyricmt <command> [options]\n"
    "\n"
    "commands:\n"
    "  translate   translate text lines with an M2M100 / SMaLL-100 model\n"
    "  info        describe and validate a model directory\n"
    "\n"
    "Run 'lyricmt <command> --help' for a command's options.\n";

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "lyricmt: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(see --help)\n");
    return EXIT_USAGE;
}

/* Replaces invalid UTF-8 sequences and NUL bytes with U+FFFD; returns how
 * many were replaced. *line is reallocated when needed. */
static int repair_utf8(char **line, size_t *len) {
    int fixed = 0;
    for (;;) {
        long bad = lm_utf8_invalid_at(*line, *len);
        size_t nul = strnlen(*line, *len);
        size_t at;
        if (bad < 0 && nul == *len) return fixed;
        at = bad >= 0 && (size_t)bad < nul ? (size_t)bad : nul;
        char *s = malloc(*len + 3);
        if (!s) return fixed;
        memcpy(s, *line, at);
        memcpy(s + at, "\xef\xbf\xbd", 3);
        memcpy(s + at + 3, *line + at + 1, *len - at - 1);
        *len += 2;
        s[*len] = '\0';
        free(*line);
        *line = s;
        fixed++;
    }
}

static int write_all(FILE *f, const char *s) { return fputs(s, f) < 0 || fputc('\n', f) == EOF ? -1 : 0; }

static int cmd_translate(int argc, char **argv) {
    const char *model_dir = NULL, *in_path = NULL, *out_path = NULL;
    lm_engine_config engine;
    lm_engine_config_defaults(&engine);
    lm_err err = {{0}};
    /* the config file is read first so that flags override it, wherever they stand */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            if (lm_engine_config_load_yaml(&engine, argv[i + 1], &err) != 0) {
                fprintf(stderr, "lyricmt: %s\n", err.msg);
                return EXIT_USAGE;
            }
        }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(translate_help, stdout); return 0; }
        if (i + 1 >= argc) return usage_error("option '%s' needs a value or is unknown", a);
        const char *v = argv[++i];
        static const struct { const char *flag, *key; } aliases[] = {
            {"--src", "tokenizer.src"}, {"--tgt", "tokenizer.tgt"}, {"--beam", "num_beams"},
            {"--max-length", "max_length"}, {"--convention", "tokenizer.convention"}, {"--threads", "threads"},
        };
        bool done = false;
        for (size_t k = 0; k < sizeof aliases / sizeof *aliases && !done; k++)
            if (!strcmp(a, aliases[k].flag)) {
                if (lm_engine_config_set(&engine, aliases[k].key, v, a, &err) != 0) {
                    fprintf(stderr, "lyricmt: %s\n", err.msg);
                    return EXIT_USAGE;
                }
                done = true;
            }
        if (done || !strcmp(a, "--config")) continue;
        if (!strcmp(a, "--model")) model_dir = v;
        else if (!strcmp(a, "-i")) in_path = v;
        else if (!strcmp(a, "-o")) out_path = v;
        else if (!strcmp(a, "--device")) {
            if (strcmp(v, "cpu") != 0) return usage_error("device '%s' is not available in this build (cpu)", v);
        } else if (!strcmp(a, "--set")) {
            char key[128];
            const char *eq = strchr(v, '=');
            if (!eq || (size_t)(eq - v) >= sizeof key) return usage_error("--set needs KEY=VALUE, got '%s'", v);
            memcpy(key, v, (size_t)(eq - v));
            key[eq - v] = '\0';
            if (lm_engine_config_set(&engine, key, eq + 1, "--set", &err) != 0) {
                fprintf(stderr, "lyricmt: %s\n", err.msg);
                return EXIT_USAGE;
            }
        } else {
            return usage_error("unknown option '%s'", a);
        }
    }
    if (!model_dir) return usage_error("%s", "translate needs --model DIR");

    FILE *in = stdin, *out = stdout;
    if (in_path && !(in = fopen(in_path, "rb"))) {
        fprintf(stderr, "lyricmt: %s: cannot open: %s\n", in_path, strerror(errno));
        return EXIT_RUNTIME;
    }
    lm_translator t;
    if (lm_translator_open(&t, model_dir, &engine, &err) != 0) {
        fprintf(stderr, "lyricmt: %s\n", err.msg);
        if (in != stdin) fclose(in);
        return EXIT_RUNTIME;
    }
    char tmp_path[4096];
    if (out_path) {
        snprintf(tmp_path, sizeof tmp_path, "%s.tmp", out_path);
        if (!(out = fopen(tmp_path, "wb"))) {
            fprintf(stderr, "lyricmt: %s: cannot create: %s\n", tmp_path, strerror(errno));
            lm_translator_close(&t);
            if (in != stdin) fclose(in);
            return EXIT_RUNTIME;
        }
    }
    const char *name = in_path ? in_path : "<stdin>";
    char **lines = calloc(WINDOW_LINES, sizeof *lines), **res = calloc(WINDOW_LINES, sizeof *res);
    int rc = lines && res ? 0 : EXIT_RUNTIME;
    long line_no = 0, repaired = 0;
    bool eof = false;
    while (!rc && !eof) {
        int n = 0;
        while (n < WINDOW_LINES) {
            char *line = NULL;
            size_t cap = 0;
            ssize_t got = getline(&line, &cap, in);
            if (got < 0) { free(line); eof = true; break; }
            size_t len = (size_t)got;
            line_no++;
            if (len && line[len - 1] == '\n') line[--len] = '\0';
            if (len && line[len - 1] == '\r') line[--len] = '\0';
            int fixed = repair_utf8(&line, &len);
            if (fixed) {
                fprintf(stderr, "lyricmt: warning: %s:%ld: %d invalid UTF-8 or NUL byte(s) replaced with U+FFFD\n", name, line_no, fixed);
                repaired++;
            }
            lines[n++] = line;
        }
        if (ferror(in)) { fprintf(stderr, "lyricmt: %s: read error\n", name); rc = EXIT_RUNTIME; }
        long truncated_before = t.n_truncated;
        if (!rc && n > 0 && lm_translator_translate(&t, (const char *const *)lines, n, res, NULL, &err) != 0) {
            fprintf(stderr, "lyricmt: %s: %s\n", name, err.msg);
            rc = EXIT_RUNTIME;
        }
        if (t.n_truncated > truncated_before)
            fprintf(stderr, "lyricmt: warning: %s: %ld line(s) between lines %ld and %ld exceeded the model's %d positions and were truncated\n",
                    name, t.n_truncated - truncated_before, line_no - n + 1, line_no, t.model.cfg.model.max_positions);
        for (int i = 0; i < n; i++) {
            if (!rc && write_all(out, res[i]) != 0) { fprintf(stderr, "lyricmt: write error: %s\n", strerror(errno)); rc = EXIT_RUNTIME; }
            free(lines[i]);
            free(res[i]);
            lines[i] = res[i] = NULL;
        }
    }
    if (fflush(out) != 0 || ferror(out)) { if (!rc) fprintf(stderr, "lyricmt: write error\n"); rc = EXIT_RUNTIME; }
    if (out_path) {
        if (!rc && fsync(fileno(out)) != 0) rc = EXIT_RUNTIME;
        fclose(out);
        if (!rc && rename(tmp_path, out_path) != 0) {
            fprintf(stderr, "lyricmt: cannot rename %s to %s: %s\n", tmp_path, out_path, strerror(errno));
            rc = EXIT_RUNTIME;
        }
        if (rc) unlink(tmp_path);
    }
    free(lines);
    free(res);
    lm_translator_close(&t);
    if (in != stdin) fclose(in);
    return rc;
}

static int cmd_info(int argc, char **argv) {
    const char *model_dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { fputs(info_help, stdout); return 0; }
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model_dir = argv[++i];
        else return usage_error("unknown option '%s'", argv[i]);
    }
    if (!model_dir) return usage_error("%s", "info needs --model DIR");
    lm_model m;
    lm_tokenizer *tok = NULL;
    lm_err err = {{0}};
    if (lm_model_load(model_dir, &m, &err) != 0 || lm_tokenizer_load(model_dir, m.cfg.model.vocab_size, &tok, &err) != 0) {
        fprintf(stderr, "lyricmt: %s\n", err.msg);
        return EXIT_RUNTIME;
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

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(main_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    if (!strcmp(argv[1], "translate")) return cmd_translate(argc - 1, argv + 1);
    if (!strcmp(argv[1], "info")) return cmd_info(argc - 1, argv + 1);
    return usage_error("unknown command '%s'", argv[1]);
}
