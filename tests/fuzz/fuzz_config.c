/* fuzz_config.c - config.json (Qwen2-VL text and vision configs) through tkr_config_parse. */
#include "io/config.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tkr_model_config cfg;
    tkr_error err;
    (void)tkr_config_parse((const char *)data, size, &cfg, &err);
    return 0;
}
