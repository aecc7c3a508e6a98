/* weights_internal.h - the tkr_weights layout shared by weights.c (safetensors directories) and
 * weights_gguf.c (llama.cpp GGUF files). Not part of the io API: only those two include it. */
#ifndef TKR_IO_WEIGHTS_INTERNAL_H
#define TKR_IO_WEIGHTS_INTERNAL_H

#include "io/gguf.h"
#include "io/weights.h"

typedef struct {
    const tkr_tensor *t;
    size_t shard;               /* safetensors: shard index; GGUF: 0 model, 1 mmproj */
} tkr_weights_entry;

struct tkr_weights {
    char *dir;                  /* the model directory, or the model GGUF's path      */
    tkr_safetensors **shards;   /* [n_shards]; none for GGUF                           */
    size_t n_shards;
    tkr_weights_entry *all;     /* [n_all], shard order then offset order             */
    tkr_weights_entry *by_name; /* [n_all], sorted by tensor name                      */
    size_t n_all;
    tkr_gguf *gguf[2];          /* GGUF: model, mmproj (NULL when absent)              */
    tkr_tensor *renamed;        /* GGUF: [n_all] views under their canonical names    */
    char *renamed_names;        /* GGUF: arena of those names                          */
};

/* Sorts w->all into w->by_name and fails on a name present twice (naming both files). */
tkr_status tkr_weights_sort_index(tkr_weights *w, tkr_error *err);

#endif
