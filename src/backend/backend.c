/* backend.c - choosing the compute device at load time (see backend.h). */
#include "backend/backend.h"
#include "model/model.h"
#include "util/error.h"

#ifdef TKR_HAVE_CUDA
#include "backend/cuda/cuda.h"
#endif

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int tkr_backend_have_cuda(void) {
#ifdef TKR_HAVE_CUDA
    return 1;
#else
    return 0;
#endif
}

/* "cuda" -> 0, "cuda:N" -> N (0..255); -1 when the string is not of that form. */
static int parse_cuda_ordinal(const char *s) {
    if (strncmp(s, "cuda", 4) != 0) return -1;
    if (s[4] == '\0') return 0;
    if (s[4] != ':' || s[5] < '0' || s[5] > '9') return -1;
    char *end = NULL;
    long n = strtol(s + 5, &end, 10);
    if (*end != '\0' || n < 0 || n > 255) return -1;
    return (int)n;
}

tkr_status tkr_backend_open(tkr_model *m, tkr_backend **out, tkr_error *err) {
    *out = NULL;
    const char *dev = m->params.device;
    const char *env = getenv("TKR_DEVICE");
    if (env && *env) dev = env;
    const char *prec = m->params.precision;
    const char *penv = getenv("TKR_PRECISION");
    if (penv && *penv) prec = penv;
    bool fp32 = false;
    if (prec && *prec) {
        if (!strcmp(prec, "fp32")) fp32 = true;
        else if (strcmp(prec, "bf16") != 0)
            return tkr_fail(err, TKR_ERR_INVALID_ARG, "unknown precision '%.40s' (bf16, fp32)", prec);
    }
    bool automatic = !dev || !*dev || !strcmp(dev, "auto");
    if (!automatic && !strcmp(dev, "cpu")) return TKR_OK;
    int ordinal = automatic ? 0 : parse_cuda_ordinal(dev);
    if (ordinal < 0)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "unknown device '%.40s' (cpu, cuda, cuda:N)", dev);
#ifdef TKR_HAVE_CUDA
    return tkr_cuda_open(m, ordinal, !automatic, fp32, out, err);
#else
    (void)fp32;
    if (automatic) return TKR_OK;
    return tkr_fail(err, TKR_ERR_UNSUPPORTED,
                    "device '%.40s': this build has no CUDA support (build with make CUDA=1)", dev);
#endif
}

void tkr_model_device_memory(const tkr_model *m, tkr_device_memory *out) {
    memset(out, 0, sizeof *out);
    /* the CPU: the server's budgets of old (docs/server.md) */
    out->batch_tokens = 8192;
    out->batch_image_tokens = 5120;
    out->batch_items = 64;
    if (m && m->backend && m->backend->ops->memory) {
        out->on_gpu = true;
        m->backend->ops->memory(m->backend, out);
    }
}

void tkr_backend_free(tkr_backend *be) {
    if (be) be->ops->free(be);
}
