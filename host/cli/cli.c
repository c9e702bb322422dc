/* cli: see cli.h. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

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

bool lm_cli_repeated(lm_cli_seen *s, const char *cmd, const char *flag, const char *repeatable) {
    size_t n = strlen(flag);
    for (const char *p = repeatable; (p = strstr(p, flag)); p += n)
        if ((p == repeatable || p[-1] == ' ') && (p[n] == ' ' || !p[n])) return false;
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->flags[i], flag)) {
            lm_cli_usage(cmd, "option '%s' is given twice: give it once", flag);
            return true;
        }
    if (s->n < (int)(sizeof s->flags / sizeof *s->flags)) s->flags[s->n++] = flag;
    return false;
}
