/* cli: see cli.h. */
#include "cli/cli.h"

#include <stdio.h>

int lm_cli_usage(const char *cmd, const char *fmt, const char *arg) {
    if (cmd) fprintf(stderr, "lyricmt: %s: ", cmd);
    else fprintf(stderr, "lyricmt: ");
    fprintf(stderr, fmt, arg);
    if (cmd) fprintf(stderr, "\n(see lyricmt %s --help)\n", cmd);
    else fprintf(stderr, "\n(see --help)\n");
    return LM_EXIT_USAGE;
}

int lm_cli_fail(const lm_err *err, int code) {
    fprintf(stderr, "lyricmt: %s\n", err->msg);
    return code;
}
