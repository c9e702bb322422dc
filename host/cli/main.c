/*
 * lyricmt: command-line entry point.
 *
 *   lyricmt translate --model DIR [options]   translate lines (stdin -> stdout)
 *   lyricmt score --model DIR [options]       log-probabilities of (source, target) pairs
 *   lyricmt split-pairs -i PAIRS -o PREFIX    a pairs corpus as PREFIX.en + PREFIX.ko
 *   lyricmt info --model DIR                  describe a model directory
 *   lyricmt eval --hyp FILE --ref FILE        chrF and BLEU as sacreBLEU computes them
 *   lyricmt compare --model A --model B -i F  the same lines through several models, side by side
 *   lyricmt bench --model DIR                 how fast it runs here, and the fastest settings
 *
 * Exit codes: 0 success; 1 a runtime failure (bad model, bad input file, I/O);
 * 2 a usage error (unknown flag, bad value, bad config file).
 */
#include "cli/cli.h"
#include "cpu/cpu_backend.h"
#include "include/lyricmt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *main_help =
    "usage: lyricmt <command> [options]   (lyricmt --version)\n"
    "\n"
    "commands:\n"
    "  translate   translate text lines with an M2M100 / SMaLL-100 model\n"
    "  score       log-probabilities of given (source, target) pairs under the model\n"
    "  split-pairs a pairs corpus (translate --output-format pairs) as FILE.en + FILE.ko\n"
    "  info        describe and validate a model directory\n"
    "  eval        chrF and BLEU of translations against references (as sacreBLEU)\n"
    "  compare     the same lines through several models, side by side, with scores\n"
    "  bench       how fast the model runs here, and the fastest settings (a config file)\n"
    "\n"
    "Run 'lyricmt <command> --help' for a command's options.\n";

static int dispatch(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(main_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? LM_EXIT_USAGE : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("%s\n", lyricmt_version());
        return 0;
    }
    if (!strcmp(argv[1], "translate")) return lm_cmd_translate(argc - 1, argv + 1, false);
    if (!strcmp(argv[1], "score")) return lm_cmd_translate(argc - 1, argv + 1, true);
    if (!strcmp(argv[1], "info")) return lm_cmd_info(argc - 1, argv + 1);
    if (!strcmp(argv[1], "split-pairs")) return lm_cmd_split_pairs(argc - 1, argv + 1);
    if (!strcmp(argv[1], "eval")) return lm_cmd_eval(argc - 1, argv + 1);
    if (!strcmp(argv[1], "compare")) return lm_cmd_compare(argc - 1, argv + 1);
    if (!strcmp(argv[1], "bench")) return lm_cmd_bench(argc - 1, argv + 1);
    return lm_cli_usage(NULL, "unknown command '%s'", argv[1]);
}

/* Two runtime libraries read their settings only once, as they load, before
 * main runs, so the program restarts itself once with them set, unless the
 * user chose them:
 * - libgomp's idle workers spin (300,000 rounds by default) before they sleep.
 *   With other processes on the cores the spinning workers take the time the
 *   busy ones need: a 400-line job took 12.5 s instead of 0.5 s with a fuzzer
 *   beside it, 35 s with two busy loops. Passive waiting costs 2.6% when idle
 *   (benchmarks/NOTES.md, attempt 5).
 * - OpenBLAS falls back to SSE3 kernels on CPUs it does not recognise, even
 *   with AVX-512 there: twice slower (host/cpu/blas_core.c). */
static void prepare_runtime(char **argv) {
    bool again = false;
    if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT")) again |= setenv("OMP_WAIT_POLICY", "passive", 1) == 0;
    const char *core = getenv("OPENBLAS_CORETYPE") ? NULL : lm_blas_core_override();
    if (core) again |= setenv("OPENBLAS_CORETYPE", core, 1) == 0;
    if (again) execv("/proc/self/exe", argv); /* returns only on failure: then run as we are */
}

int main(int argc, char **argv) {
    prepare_runtime(argv);
    int rc = dispatch(argc, argv);
    /* a full disk or closed pipe on standard output must not end in "success" */
    if (fflush(stdout) != 0 || ferror(stdout) || fclose(stdout) != 0) {
        fprintf(stderr, "lyricmt: error writing standard output: %s\n", strerror(errno));
        if (rc == 0) rc = LM_EXIT_RUNTIME;
    }
    return rc;
}
