/* platform.h - the thin layer over the operating system: file mapping, whole-file reads, core
 * count and a monotonic clock. Everything OS-specific in the library goes through here so that
 * Linux and macOS (x86-64 and ARM64) share all other code. */
#ifndef TKR_UTIL_PLATFORM_H
#define TKR_UTIL_PLATFORM_H

#include "tkr_embed.h"
#include <stddef.h>
#include <stdint.h>

/* A read-only view of a whole file: mapped when possible, else read into memory. */
typedef struct {
    const uint8_t *data;
    size_t size;
    int mapped;      /* 1: munmap on close; 0: free on close */
} tkr_file_view;

/* Opens path read-only. use_mmap = 0 forces a heap copy. max_size = 0 means no cap. */
tkr_status tkr_file_view_open(const char *path, int use_mmap, size_t max_size, tkr_file_view *out,
                              tkr_error *err);
void tkr_file_view_close(tkr_file_view *view);

/* Drops the whole pages inside [p, p + n) of a read-only FILE MAPPING (a view with mapped = 1)
 * from the resident set: the next touch maps them again from the page cache (or reads the
 * file), with the same bytes. Partial pages at the ends stay. Never call it on heap memory:
 * anonymous pages would come back as zeros. A hint: errors are ignored. */
void tkr_pages_release(const void *p, size_t n);

/* Asks for large pages (Linux transparent huge pages) behind [p, p + n) of anonymous memory not
 * yet touched: fewer page faults when it is first written, fewer TLB misses when it is
 * streamed. A hint: a no-op where unsupported. */
void tkr_pages_hint_huge(void *p, size_t n);

/* Reads a whole (small) file into a NUL-terminated malloc'ed buffer, refusing files over max_size. */
tkr_status tkr_read_file(const char *path, size_t max_size, char **out, size_t *out_len,
                         tkr_error *err);

int tkr_file_exists(const char *path);

/* Joins dir and name into buf; returns 0 if it does not fit. */
int tkr_path_join(char *buf, size_t cap, const char *dir, const char *name);

int tkr_cpu_count(void);

/* Bounds the C library's malloc arenas (glibc keeps up to 8 per core, each growing to the peak
 * of the threads that used it: a thread-per-connection server's RSS ratchets up). n <= 0 or an
 * explicit MALLOC_ARENA_MAX in the environment leaves the default. No-op outside glibc. */
void tkr_malloc_limit_arenas(int n);

/* Gives freed heap memory back to the system (glibc malloc_trim); no-op elsewhere. */
void tkr_malloc_trim(void);
double tkr_now_seconds(void);   /* monotonic */

/* Writing to a socket whose peer has gone must fail with EPIPE, not kill the process: Linux has
 * the send() flag MSG_NOSIGNAL (tkr_send_flags returns it); macOS has no such flag (0 there) and
 * sets SO_NOSIGPIPE on the socket instead (tkr_socket_nosigpipe; a no-op on Linux). */
int tkr_send_flags(void);
void tkr_socket_nosigpipe(int fd);

#endif
