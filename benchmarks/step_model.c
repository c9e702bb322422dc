/* step_model: prints benchmarks/step_model.h's predicted table (no GPU needed).
 *   build/step_model [CACHED_TOKENS [SOURCE_TOKENS]]   (default 32 and 24) */
#include "benchmarks/step_model.h"

#include <stdlib.h>

int main(int argc, char **argv) {
    double cached = argc > 1 ? atof(argv[1]) : 32, src = argc > 2 ? atof(argv[2]) : 24;
    printf("Predicted on one H100 (benchmarks/step_model.h's constants), SMaLL-100, greedy; no GPU measured this.\n");
    lm_sm_print_table(stdout, cached, src);
    return 0;
}
