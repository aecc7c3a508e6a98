/* fuzz_shard_index.c - model.safetensors.index.json: the input is the index, beside two small
 * valid shards (model-00001-of-00002.safetensors with "a", -00002- with "b"), loaded through
 * tkr_weights_open_ex: weight_map parsing, shard names (no paths), tensors in the shard named. */
#include "fuzz_util.h"
#include "io/weights.h"

#include <stdint.h>

/* A one-tensor safetensors file: F32 [2], 8 data bytes. */
static void write_shard(const char *file, const char *tensor) {
    char hdr[128];
    int n = snprintf(hdr, sizeof hdr, "{\"%s\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", tensor);
    while (n % 8) hdr[n++] = ' ';
    uint8_t buf[256];
    uint64_t len = (uint64_t)n;
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(len >> (8 * i));
    memcpy(buf + 8, hdr, (size_t)n);
    memset(buf + 8 + n, 0, 8);
    fz_write(file, buf, 8 + (size_t)n + 8);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    write_shard("model-00001-of-00002.safetensors", "a");
    write_shard("model-00002-of-00002.safetensors", "b");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_write("model.safetensors.index.json", data, size);
    tkr_weights_limits lim = tkr_weights_default_limits();
    lim.max_shards = 64;
    tkr_weights *w = NULL;
    tkr_error err;
    if (tkr_weights_open_ex(fz_dir(), 0, &lim, &w, &err) == TKR_OK) {
        for (size_t i = 0; i < tkr_weights_count(w); i++)
            if (!tkr_weights_at(w, i)) abort();
        tkr_weights_free(w);
    }
    return 0;
}
