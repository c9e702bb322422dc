/* cmd_split_pairs: `lyricmt split-pairs`, a pairs corpus as two line-aligned files. */
#include "cli/cli.h"
#include "tools/split_pairs.h"

#include <stdio.h>
#include <string.h>

static const char *split_help =
    "usage: lyricmt split-pairs -i PAIRS.jsonl -o PREFIX [--src en] [--tgt ko]\n"
    "\n"
    "Writes a pairs corpus (translate --output-format pairs) as two line-aligned\n"
    "files, PREFIX.SRC and PREFIX.TGT (default PREFIX.en and PREFIX.ko): line k of\n"
    "one translates line k of the other. Both are written as .partial files and\n"
    "renamed once both are complete. A line that is not a pair stops it, named\n"
    "by file and line.\n"
    "\n"
    "  --src-field NAME, --tgt-field NAME   JSONL fields (default source, target)\n"
    "\n"
    "Exit codes: 0 ok, 1 runtime error (input, I/O, a line that is not a pair), 2 usage error.\n";

int lm_cmd_split_pairs(int argc, char **argv) {
    const char *input = NULL, *prefix = NULL, *src = "en", *tgt = "ko";
    lm_engine_config engine;
    lm_engine_config_defaults(&engine);
    lm_err err = {{0}};
    lm_cli_seen seen = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(split_help, stdout); return 0; }
        if (i + 1 >= argc || !argv[i + 1][0]) return lm_cli_usage(NULL, "option '%s' needs a value or is unknown", a);
        const char *v = argv[++i];
        if (lm_cli_repeated(&seen, NULL, a, "")) return LM_EXIT_USAGE;
        if (!strcmp(a, "-i")) input = v;
        else if (!strcmp(a, "-o")) prefix = v;
        else if (!strcmp(a, "--src")) src = v;
        else if (!strcmp(a, "--tgt")) tgt = v;
        else if (!strcmp(a, "--src-field") || !strcmp(a, "--tgt-field")) {
            if (lm_engine_config_set(&engine, a[2] == 's' ? "input.source_field" : "input.target_field", v, a, &err) != 0) return lm_cli_fail(&err, LM_EXIT_USAGE);
        } else {
            return lm_cli_usage(NULL, "unknown option '%s'", a);
        }
    }
    if (!input || !prefix) return lm_cli_usage(NULL, "%s", "split-pairs needs -i PAIRS.jsonl and -o PREFIX");
    if (strchr(src, '/') || strchr(tgt, '/')) return lm_cli_usage(NULL, "%s", "--src and --tgt are file name endings, not paths");
    long pairs;
    if (lm_split_pairs(input, prefix, src, tgt, &engine, &pairs, &err) != 0) {
        fprintf(stderr, "lyricmt: %s\n", err.msg);
        return LM_EXIT_RUNTIME;
    }
    fprintf(stderr, "lyricmt: %ld pairs written to %s.%s and %s.%s\n", pairs, prefix, src, prefix, tgt);
    return 0;
}
