/*
 * test_units: small pieces checked on their own: UTF-8 validation, half
 * floats, the sinusoidal table, log-softmax, engine config keys.
 */
#include "testing.h"
#include "engine_config.h"
#include "model.h"
#include "search.h"

#include <math.h>
#include <string.h>

int main(void) {
    CHECK(lm_utf8_invalid_at("abc", 3) == -1, "ascii is valid");
    CHECK(lm_utf8_invalid_at("\xea\xb0\x80", 3) == -1, "hangul is valid");
    CHECK(lm_utf8_invalid_at("a\xff", 2) == 1, "0xff is invalid");
    CHECK(lm_utf8_invalid_at("\xea\xb0", 2) == 0, "truncated sequence");
    CHECK(lm_utf8_invalid_at("\xc0\x80", 2) == 0, "overlong NUL");
    CHECK(lm_utf8_invalid_at("\xed\xa0\x80", 3) == 0, "surrogate");
    CHECK(lm_f16_to_f32(0x3c00) == 1.0f && lm_f16_to_f32(0xc000) == -2.0f, "f16 normals");
    CHECK(lm_f16_to_f32(0x0001) == ldexpf(1, -24), "f16 subnormal");
    CHECK(isinf(lm_f16_to_f32(0x7c00)), "f16 inf");
    CHECK(lm_bf16_to_f32(0x3f80) == 1.0f, "bf16");

    float tab[6 * 8];
    lm_sinusoidal_table(tab, 6, 8, 1);
    CHECK(tab[8 + 3] == 0 && tab[8 + 7] == 0, "padding row is zero");
    CHECK(tab[0] == 0 && tab[4] == 1, "row 0 is sin 0 then cos 0");
    CHECK(fabsf(tab[2 * 8 + 0] - sinf(2)) < 1e-6, "row 2 col 0 is sin(2)");

    float x[4] = {1, 2, 3, 4};
    lm_log_softmax(x, 4);
    float s = 0;
    for (int i = 0; i < 4; i++) s += expf(x[i]);
    CHECK(fabsf(s - 1) < 1e-6, "log_softmax normalises");

    lm_engine_config c;
    lm_err err;
    lm_engine_config_defaults(&c);
    CHECK(lm_engine_config_set(&c, "num_beams", "4", "t", &err) == 0, "set num_beams");
    CHECK(lm_engine_config_set(&c, "decoding.top_p", "1.5", "t", &err) != 0 && strstr(err.msg, "top_p"), "top_p range");
    CHECK(lm_engine_config_set(&c, "decoding.max_length", "3.5", "t", &err) != 0, "integer required");
    CHECK(lm_engine_config_set(&c, "nonsense", "1", "t", &err) != 0 && strstr(err.msg, "unknown key 'nonsense'"), "unknown key");
    lm_gen_config g;
    lm_gen_config_defaults(&g);
    lm_engine_config_apply(&c, &g);
    CHECK(g.num_beams == 4, "override applied");
    CHECK(lm_engine_config_load_yaml(&c, "configs/default.yaml", &err) == 0, "default.yaml loads: %s", err.msg);
    CHECK(lm_engine_config_load_yaml(&c, "configs/augment.yaml", &err) == 0 && c.seed == 1234, "augment.yaml loads");
    return lm_test_summary("test_units");
}
