/* engine_flags: see engine_flags.h. */
#include "config/engine_flags.h"

#include <string.h>

#define ALL (LM_FLAGS_TRANSLATE | LM_FLAGS_SCORE | LM_FLAGS_COMPARE)
#define JOB (LM_FLAGS_TRANSLATE | LM_FLAGS_SCORE)

static const struct {
    const char *flag, *key;
    int commands;
} aliases[] = {
    {"--src", "tokenizer.src", ALL},
    {"--tgt", "tokenizer.tgt", ALL},
    {"--beam", "num_beams", ALL},
    {"--n-best", "num_return_sequences", JOB},
    {"--max-length", "max_length", ALL},
    {"--convention", "tokenizer.convention", ALL},
    {"--threads", "threads", ALL},
    {"--format", "input.format", JOB},
    {"--output-format", "output.format", JOB},
    {"--id-field", "input.id_field", JOB},
    {"--text-field", "input.text_field", JOB},
    {"--bad-utf8", "input.bad_utf8", JOB},
    {"--too-long", "input.too_long", JOB},
    {"--device", "device", ALL},
    {"--precision", "precision", ALL},
    {"--src-field", "input.source_field", JOB},
    {"--tgt-field", "input.target_field", JOB},
    {"--min-score", "output.min_score", JOB},
    {"--inflight", "batch.inflight", JOB},
    {"--workers", "workers", JOB},
    {"--devices", "devices", JOB},
    {"--weights-from", "weights_from", JOB},
};

int lm_engine_flags_config(lm_engine_config *c, int argc, char *const *argv, lm_err *err) {
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--config") && argv[i + 1][0] && lm_engine_config_load_yaml(c, argv[i + 1], err) != 0) return -1;
    return 0;
}

int lm_engine_flag(lm_engine_config *c, int command, const char *flag, const char *value, lm_err *err) {
    if (!strcmp(flag, "--config")) return 1;
    if (!strcmp(flag, "--set")) {
        char key[128];
        const char *eq = strchr(value, '=');
        if (!eq || (size_t)(eq - value) >= sizeof key) { lm_fail(err, "--set needs KEY=VALUE, got '%s'", value); return -2; }
        memcpy(key, value, (size_t)(eq - value));
        key[eq - value] = '\0';
        return lm_engine_config_set(c, key, eq + 1, "--set", err) != 0 ? -1 : 1;
    }
    for (size_t k = 0; k < sizeof aliases / sizeof *aliases; k++)
        if ((aliases[k].commands & command) && !strcmp(flag, aliases[k].flag))
            return lm_engine_config_set(c, aliases[k].key, value, flag, err) != 0 ? -1 : 1;
    return 0;
}
