/* job_rules: see job_rules.h. */
#include "job/job_rules.h"

#include <string.h>
#include <sys/stat.h>

void lm_job_defaults(lm_engine_config *e, bool score) {
    if (score) e->input_format = e->output_format = LM_FORMAT_TSV;
}

static bool is_directory(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Why e cannot be the settings of a job of o's kind, or NULL. */
static const char *unfit(const lm_engine_config *e, const lm_job_opts *o) {
    if (!o->score) return NULL;
    if (e->input_format == LM_FORMAT_TEXT || e->output_format == LM_FORMAT_TEXT)
        return "score reads and writes tsv or jsonl (--format, --output-format), not text";
    if (e->has_min_score || e->dedup_hypotheses)
        return "--min-score and --dedup-hypotheses are for translate (score writes every pair's score)";
    if (e->output_format == LM_FORMAT_PAIRS) return "score writes tsv or jsonl, not pairs";
    return NULL;
}

int lm_job_settle(lm_engine_config *e, lm_job_opts *o, lm_err *err) {
    const char *why = unfit(e, o);
    if (why) {
        lm_fail(err, "%s", why);
        return -2;
    }
    /* a repeat's score is taken from its twin in the same window only: the
     * earlier windows' batches could round its last bit differently, and a
     * resumed job must write the bytes an uninterrupted one would; the same
     * for translations rescored by augmentation (augment.h) */
    if (o->score || e->has_min_score || e->output_format == LM_FORMAT_PAIRS) e->cache_lines = 0;
    if (o->output) {
        size_t n = strlen(o->output);
        o->per_file = (n && o->output[n - 1] == '/') || is_directory(o->output);
        if (o->per_file && o->n_inputs == 0) {
            lm_fail(err, "output %s is a directory, which needs input files (-i)", o->output);
            return -2;
        }
    }
    return 0;
}
