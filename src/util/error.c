/* error.c - the library's one way of reporting failures: a status code plus a message. */
#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *tkr_status_name(tkr_status status) {
    switch (status) {
    case TKR_OK: return "ok";
    case TKR_ERR_INVALID_ARG: return "invalid_argument";
    case TKR_ERR_IO: return "io_error";
    case TKR_ERR_FORMAT: return "format_error";
    case TKR_ERR_UNSUPPORTED: return "unsupported";
    case TKR_ERR_LIMIT: return "limit_exceeded";
    case TKR_ERR_NOMEM: return "out_of_memory";
    case TKR_ERR_IMAGE: return "image_error";
    case TKR_ERR_INTERNAL: return "internal_error";
    }
    return "unknown";
}

tkr_status tkr_fail(tkr_error *err, tkr_status code, const char *fmt, ...) {
    if (err) {
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Context is added on the way up (file name, tensor name) so the lowest level need not know it. */
void tkr_error_prefix(tkr_error *err, const char *fmt, ...) {
    if (!err) return;
    char prefix[TKR_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[TKR_ERROR_MESSAGE_MAX];
    memcpy(old, err->message, sizeof old);
    old[sizeof old - 1] = '\0';
    size_t pl = strlen(prefix);
    if (pl >= sizeof err->message) pl = sizeof err->message - 1;
    memcpy(err->message, prefix, pl);
    size_t room = sizeof err->message - 1 - pl;
    size_t ol = strlen(old);
    if (ol > room) ol = room;
    memcpy(err->message + pl, old, ol);
    err->message[pl + ol] = '\0';
}

void tkr_error_clear(tkr_error *err) {
    if (!err) return;
    err->code = TKR_OK;
    err->message[0] = '\0';
}

void tkr_free(void *ptr) { free(ptr); }
