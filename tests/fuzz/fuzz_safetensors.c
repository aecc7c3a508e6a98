/* fuzz_safetensors.c - a whole .safetensors file from memory: the 8-byte length, the JSON header
 * (dtypes, shapes, offsets, metadata) and the data section checks. Every tensor handed out must
 * lie inside the input. */
#include "io/safetensors.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tkr_safetensors_limits lim = tkr_safetensors_default_limits();
    tkr_safetensors *st = NULL;
    tkr_error err;
    if (tkr_safetensors_from_memory(data, size, "fuzz", &lim, &st, &err) == TKR_OK) {
        size_t n = tkr_safetensors_count(st);
        for (size_t i = 0; i < n; i++) {
            const tkr_tensor *t = tkr_safetensors_at(st, i);
            if (!t || tkr_safetensors_find(st, t->name) == NULL) abort();
            const uint8_t *p = (const uint8_t *)t->data;
            if (t->nbytes && (p < data || p + t->nbytes > data + size)) abort();
            if (t->nbytes) (void)*(volatile const uint8_t *)(p + t->nbytes - 1);
        }
        tkr_safetensors_close(st);
    }
    return 0;
}
