/* platform.c - POSIX implementation of platform.h (Linux and macOS). */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE  /* glibc: madvise, MADV_DONTNEED (posix_madvise's DONTNEED is a no-op) */
#define _DARWIN_C_SOURCE /* macOS: madvise */
#include "util/platform.h"
#include "util/error.h"

#include <errno.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Reads exactly n bytes unless the file ends or fails: short reads from pipes and signals are retried. */
static int read_full(int fd, uint8_t *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return 0;
        got += (size_t)r;
    }
    return 1;
}

tkr_status tkr_file_view_open(const char *path, int use_mmap, size_t max_size, tkr_file_view *out,
                              tkr_error *err) {
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return tkr_fail(err, TKR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return tkr_fail(err, TKR_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > (uint64_t)SIZE_MAX ||
        (max_size && (size_t)st.st_size > max_size)) {
        close(fd);
        return tkr_fail(err, TKR_ERR_LIMIT, "%s: file too large (%lld bytes)", path,
                        (long long)st.st_size);
    }
    size_t size = (size_t)st.st_size;
    if (size == 0) {
        close(fd);
        return TKR_OK; /* an empty view: data NULL, size 0 */
    }
    if (use_mmap) {
        void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p != MAP_FAILED) {
            close(fd);
            out->data = p;
            out->size = size;
            out->mapped = 1;
            return TKR_OK;
        }
    }
    uint8_t *buf = malloc(size);
    if (!buf) {
        close(fd);
        return tkr_fail(err, TKR_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, size);
    }
    if (!read_full(fd, buf, size)) {
        free(buf);
        close(fd);
        return tkr_fail(err, TKR_ERR_IO, "%s: read failed", path);
    }
    close(fd);
    out->data = buf;
    out->size = size;
    out->mapped = 0;
    return TKR_OK;
}

void tkr_pages_release(const void *p, size_t n) {
    long page = sysconf(_SC_PAGESIZE);
    if (!p || page <= 0) return;
    uintptr_t lo = ((uintptr_t)p + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    uintptr_t hi = ((uintptr_t)p + n) & ~((uintptr_t)page - 1);
    if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

void tkr_pages_hint_huge(void *p, size_t n) {
#ifdef MADV_HUGEPAGE
    if (p && n) (void)madvise(p, n, MADV_HUGEPAGE);
#else
    (void)p;
    (void)n;
#endif
}

void tkr_file_view_close(tkr_file_view *view) {
    if (!view || !view->data) return;
    if (view->mapped)
        munmap((void *)view->data, view->size);
    else
        free((void *)view->data);
    memset(view, 0, sizeof *view);
}

tkr_status tkr_read_file(const char *path, size_t max_size, char **out, size_t *out_len,
                         tkr_error *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    tkr_file_view v;
    tkr_status st = tkr_file_view_open(path, 0, max_size, &v, err);
    if (st != TKR_OK) return st;
    char *buf = malloc(v.size + 1);
    if (!buf) {
        tkr_file_view_close(&v);
        return tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory", path);
    }
    if (v.size) memcpy(buf, v.data, v.size);
    buf[v.size] = '\0';
    if (out_len) *out_len = v.size;
    tkr_file_view_close(&v);
    *out = buf;
    return TKR_OK;
}

int tkr_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int tkr_path_join(char *buf, size_t cap, const char *dir, const char *name) {
    size_t dl = strlen(dir);
    int sep = dl > 0 && dir[dl - 1] != '/';
    int n = snprintf(buf, cap, "%s%s%s", dir, sep ? "/" : "", name);
    return n >= 0 && (size_t)n < cap;
}

int tkr_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)(n > 1024 ? 1024 : n) : 1;
}

double tkr_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int tkr_send_flags(void) {
#ifdef MSG_NOSIGNAL
    return MSG_NOSIGNAL;
#else
    return 0;
#endif
}

void tkr_socket_nosigpipe(int fd) {
#ifdef SO_NOSIGPIPE
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#else
    (void)fd;
#endif
}

void tkr_malloc_limit_arenas(int n) {
#if defined(__GLIBC__)
    if (n > 0 && !getenv("MALLOC_ARENA_MAX")) mallopt(M_ARENA_MAX, n);
#else
    (void)n;
#endif
}

void tkr_malloc_trim(void) {
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}
