/* fuzz_shard_index.c - model.safetensors.index.json: the input is the index, beside two small
 * valid shards (model-00001-of-00002.safetensors with "a", -00002- with "b"), loaded through
 * tkr_weights_open_index_memory (the code tkr_weights_open_ex runs on a directory, with the
 * files in memory): weight_map parsing, shard names (no paths), tensors in the shard named. */
#include "io/weights.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A one-tensor safetensors file image: F32 [2], 8 data bytes; returns its size. */
static size_t make_shard(uint8_t *buf, const char *tensor) {
    char hdr[128];
    int n = snprintf(hdr, sizeof hdr, "{\"%s\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", tensor);
    while (n % 8) hdr[n++] = ' ';
    uint64_t len = (uint64_t)n;
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(len >> (8 * i));
    memcpy(buf + 8, hdr, (size_t)n);
    memset(buf + 8 + n, 0, 8);
    return 8 + (size_t)n + 8;
}

static uint8_t shard_a[256], shard_b[256];
static tkr_weights_shard_image shards[2] = {
    {"model-00001-of-00002.safetensors", shard_a, 0},
    {"model-00002-of-00002.safetensors", shard_b, 0},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!shards[0].size) {
        shards[0].size = make_shard(shard_a, "a");
        shards[1].size = make_shard(shard_b, "b");
    }
    tkr_weights_limits lim = tkr_weights_default_limits();
    lim.max_shards = 64;
    tkr_weights *w = NULL;
    tkr_error err;
    if (tkr_weights_open_index_memory((const char *)data, size, shards, 2, "fuzz", &lim, &w, &err) ==
        TKR_OK) {
        for (size_t i = 0; i < tkr_weights_count(w); i++)
            if (!tkr_weights_at(w, i)) abort();
        tkr_weights_free(w);
    }
    return 0;
}
