/* hub.c - resolving "org/name[@rev][:QUANT]" to files in the shared Hugging Face cache: which
 * files a model needs, the cache layout, locks between processes, and the offline path. */
#define _GNU_SOURCE /* memmem */
#define _POSIX_C_SOURCE 200809L
#include "hub/hub.h"
#include "hub/hub_http.h"
#include "util/error.h"
#include "util/platform.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


/* snprintf for paths and messages: false when the result did not fit (the caller's buffers are
 * sized for real paths; a longer one is cut, never overflowed). */
static bool pathf(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool pathf(char *buf, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < cap;
}

enum { MAX_FILES = 4096 };

static void copy_env(char *dst, size_t cap, const char *name, const char *fallback) {
    const char *v = getenv(name);
    pathf(dst, cap, "%s", v && *v ? v : fallback);
}

/* The first of the variables that is set and not empty, else NULL. */
static const char *env_first(const char *a, const char *b) {
    const char *v = getenv(a);
    if (v && *v) return v;
    v = b ? getenv(b) : NULL;
    return v && *v ? v : NULL;
}

/* A path from the environment, "~" or "~/..." expanded as huggingface_hub expands it (a quoted
 * HF_HOME="~/x" reaches us unexpanded). */
static void env_path(char *dst, size_t cap, const char *v) {
    const char *h = getenv("HOME");
    if (v[0] == '~' && (v[1] == '/' || v[1] == '\0') && h && *h) pathf(dst, cap, "%s%s", h, v + 1);
    else pathf(dst, cap, "%s", v);
}

/* huggingface_hub's true values: 1, ON, YES, TRUE, any case. */
static bool env_true(const char *v) {
    return v && (!strcmp(v, "1") || !strcasecmp(v, "on") || !strcasecmp(v, "yes") || !strcasecmp(v, "true"));
}

/* The variables and precedence huggingface_hub 1.x uses (its constants.py), so that both find
 * the same cache and token: HF_HOME (else $XDG_CACHE_HOME/huggingface, else
 * ~/.cache/huggingface); HF_HUB_CACHE, else the legacy HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub;
 * HF_TOKEN, else the legacy HUGGING_FACE_HUB_TOKEN, else the file $HF_TOKEN_PATH or
 * $HF_HOME/token; HF_HUB_OFFLINE, else TRANSFORMERS_OFFLINE. */
void tkr_hub_params_init(tkr_hub_params *p) {
    memset(p, 0, sizeof *p);
    copy_env(p->endpoint, sizeof p->endpoint, "HF_ENDPOINT", "https://huggingface.co");
    size_t n = strlen(p->endpoint);
    while (n > 0 && p->endpoint[n - 1] == '/') p->endpoint[--n] = '\0';
    char home[2048];
    const char *hf_home = env_first("HF_HOME", NULL), *xdg = env_first("XDG_CACHE_HOME", NULL);
    const char *h = getenv("HOME");
    if (hf_home) env_path(home, sizeof home, hf_home);
    else if (xdg) pathf(home, sizeof home, "%s/huggingface", xdg);
    else pathf(home, sizeof home, "%s/.cache/huggingface", h && *h ? h : ".");
    const char *cache = env_first("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE");
    if (cache) env_path(p->cache_dir, sizeof p->cache_dir, cache);
    else pathf(p->cache_dir, sizeof p->cache_dir, "%s/hub", home);
    const char *tok = env_first("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN");
    if (tok) {
        pathf(p->token, sizeof p->token, "%s", tok);
    } else { /* the token file huggingface-cli login writes */
        char path[2100];
        const char *tp = env_first("HF_TOKEN_PATH", NULL);
        if (tp) env_path(path, sizeof path, tp);
        else pathf(path, sizeof path, "%s/token", home);
        FILE *f = fopen(path, "r");
        if (f) {
            if (fgets(p->token, sizeof p->token, f)) p->token[strcspn(p->token, "\r\n")] = '\0';
            fclose(f);
        }
    }
    /* cleaned as huggingface_hub cleans it (surrounding white space off); it goes into a header,
     * so one with any other control character or space is not used at all */
    size_t tn = strlen(p->token), t0 = 0;
    while (tn > 0 && isspace((unsigned char)p->token[tn - 1])) p->token[--tn] = '\0';
    while (t0 < tn && isspace((unsigned char)p->token[t0])) t0++;
    memmove(p->token, p->token + t0, tn - t0 + 1);
    for (char *q = p->token; *q; q++)
        if ((unsigned char)*q <= ' ' || (unsigned char)*q >= 0x7f) {
            p->token[0] = '\0';
            break;
        }
    p->offline = env_true(env_first("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"));
    p->progress = -1;
    p->connect_timeout_s = 10;
    p->stall_timeout_s = 30;
    p->max_redirects = 10;
    p->max_retries = 5;
    p->lock_timeout_s = 600;
    const char *stall = getenv("TKR_HUB_STALL_TIMEOUT_S"); /* tests, and very slow links */
    if (stall && atol(stall) > 0 && atol(stall) <= 86400) p->stall_timeout_s = atol(stall);
}

/* Repository names: letters, digits, '-', '_', '.', and one '/'; no "..". */
static bool valid_part(const char *s, size_t n) {
    if (n == 0 || n > 96 || s[0] == '.' || s[0] == '-') return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_' || s[i] == '.')) return false;
    return !(n >= 2 && memmem(s, n, "..", 2));
}

typedef struct {
    char repo[200], org[100], name[100], rev[256], quant[64];
} spec_parts;

static bool parse_spec(const char *s, spec_parts *o) {
    memset(o, 0, sizeof *o);
    const char *slash = strchr(s, '/');
    if (!slash || strchr(slash + 1, '/')) return false;
    size_t on = (size_t)(slash - s);
    const char *rest = slash + 1;
    size_t nn = strcspn(rest, "@:");
    if (!valid_part(s, on) || !valid_part(rest, nn) || on >= sizeof o->org || nn >= sizeof o->name) return false;
    memcpy(o->org, s, on);
    memcpy(o->name, rest, nn);
    pathf(o->repo, sizeof o->repo, "%s/%s", o->org, o->name);
    const char *p = rest + nn;
    pathf(o->rev, sizeof o->rev, "main");
    if (*p == '@') {
        size_t rn = strcspn(p + 1, ":");
        if (rn == 0 || rn >= sizeof o->rev) return false;
        memcpy(o->rev, p + 1, rn);
        o->rev[rn] = '\0';
        for (size_t i = 0; i < rn; i++) /* branch and tag names; '/' is encoded by the hub as %2F */
            if (!(isalnum((unsigned char)o->rev[i]) || strchr("-_.", o->rev[i]))) return false;
        p += 1 + rn;
    }
    if (*p == ':') {
        size_t qn = strlen(p + 1);
        if (qn == 0 || qn >= sizeof o->quant) return false;
        for (size_t i = 0; i < qn; i++)
            if (!(isalnum((unsigned char)p[1 + i]) || p[1 + i] == '_' || p[1 + i] == '-')) return false;
        memcpy(o->quant, p + 1, qn);
        p += 1 + qn;
    }
    return *p == '\0';
}

bool tkr_hub_is_spec(const char *s) {
    spec_parts sp;
    struct stat st;
    return s && stat(s, &st) != 0 && parse_spec(s, &sp);
}

static bool ends_with_ci(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcasecmp(s + n - k, suf);
}

static const char *base_name(const char *f) {
    const char *b = strrchr(f, '/');
    return b ? b + 1 : f;
}

static bool contains_ci(const char *s, const char *sub) {
    size_t k = strlen(sub);
    for (; *s; s++)
        if (!strncasecmp(s, sub, k)) return true;
    return false;
}

/* The files the model needs out of the repository's file list. With a quant: the model GGUF
 * whose name holds it (exactly one) and one mmproj (F16 preferred, else the first by name).
 * Without: config, tokenizer files, safetensors shards and their index. */
static tkr_status select_files(const spec_parts *sp, char **files, size_t n, bool *want, char *model_file,
                               size_t mcap, char *mmproj_file, size_t pcap, tkr_error *err) {
    model_file[0] = mmproj_file[0] = '\0';
    if (sp->quant[0]) {
        int found = 0, proj = -1;
        for (size_t i = 0; i < n; i++) {
            const char *b = base_name(files[i]);
            if (!ends_with_ci(b, ".gguf")) continue;
            if (!strncasecmp(b, "mmproj", 6)) {
                if (proj < 0 || (contains_ci(b, "f16") && !contains_ci(base_name(files[proj]), "f16")) ||
                    (contains_ci(b, "f16") == contains_ci(base_name(files[proj]), "f16") &&
                     strcmp(files[i], files[proj]) < 0))
                    proj = (int)i;
            } else if (contains_ci(b, sp->quant)) {
                if (found++) return tkr_fail(err, TKR_ERR_INVALID_ARG,
                                             "%s: several GGUF files match :%s (%s, %s): name one more precisely",
                                             sp->repo, sp->quant, model_file, files[i]);
                want[i] = true;
                pathf(model_file, mcap, "%s", files[i]);
            }
        }
        if (!found) return tkr_fail(err, TKR_ERR_INVALID_ARG, "%s has no GGUF file matching :%s", sp->repo, sp->quant);
        if (proj >= 0) {
            want[proj] = true;
            pathf(mmproj_file, pcap, "%s", files[proj]);
        }
        return TKR_OK;
    }
    static const char *const meta[] = {"config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json",
                                       "merges.txt", "added_tokens.json", "special_tokens_map.json",
                                       "preprocessor_config.json", "model.safetensors.index.json"};
    int st_files = 0, ggufs = 0;
    for (size_t i = 0; i < n; i++) {
        if (strchr(files[i], '/')) continue; /* the model lives at the top level */
        if (ends_with_ci(files[i], ".safetensors")) {
            want[i] = true;
            st_files++;
        }
        if (ends_with_ci(files[i], ".gguf")) ggufs++;
        for (size_t k = 0; k < sizeof meta / sizeof meta[0]; k++)
            if (!strcmp(files[i], meta[k])) want[i] = true;
    }
    if (st_files == 0)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, ggufs ? "%s holds GGUF files only: name a quantization, e.g. %s:Q4_K_M"
                                                        : "%s holds no safetensors or GGUF model",
                        sp->repo, sp->repo);
    return TKR_OK;
}

/* mkdir -p */
static int make_dirs(const char *path) {
    char tmp[4096];
    pathf(tmp, sizeof tmp, "%s", path);
    for (char *q = tmp + 1; *q; q++) {
        if (*q != '/') continue;
        *q = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
        *q = '/';
    }
    return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* snapshots/<commit>/<file> -> ../../blobs/<etag> (one more "../" per directory level of file). */
static tkr_status link_snapshot(const char *repo_dir, const char *commit, const char *file, const char *etag,
                                tkr_error *err) {
    char link[4096], dir[4096], target[4096] = "../../";
    pathf(link, sizeof link, "%s/snapshots/%s/%s", repo_dir, commit, file);
    pathf(dir, sizeof dir, "%s", link);
    *strrchr(dir, '/') = '\0';
    if (make_dirs(dir) != 0) return tkr_fail(err, TKR_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    for (const char *q = file; (q = strchr(q, '/')); q++) strncat(target, "../", sizeof target - strlen(target) - 1);
    strncat(target, "blobs/", sizeof target - strlen(target) - 1);
    strncat(target, etag, sizeof target - strlen(target) - 1);
    /* a temporary link renamed over the final name: two processes may link the same file */
    char tmp[4200];
    pathf(tmp, sizeof tmp, "%s.tmp.%ld", link, (long)getpid());
    unlink(tmp);
    if (symlink(target, tmp) != 0 || rename(tmp, link) != 0) {
        unlink(tmp);
        return tkr_fail(err, TKR_ERR_IO, "cannot link %s: %s", link, strerror(errno));
    }
    return TKR_OK;
}

/* Writes refs/<rev> = commit atomically (a temporary file renamed over it). */
static tkr_status write_ref(const char *repo_dir, const char *rev, const char *commit, tkr_error *err) {
    char dir[4096], path[4200], tmp[4300];
    pathf(dir, sizeof dir, "%s/refs", repo_dir);
    pathf(path, sizeof path, "%s/%s", dir, rev);
    pathf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (make_dirs(dir) != 0) return tkr_fail(err, TKR_ERR_IO, "cannot create %s", dir);
    FILE *f = fopen(tmp, "w");
    if (!f || fputs(commit, f) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
        if (f) unlink(tmp);
        return tkr_fail(err, TKR_ERR_IO, "cannot write %s", path);
    }
    return TKR_OK;
}

/* Takes the per-blob lock that huggingface_hub also uses, waiting for another process. */
static int lock_blob(const tkr_hub_params *p, const char *repo_folder, const char *etag, tkr_error *err) {
    char dir[4600], path[4900];
    pathf(dir, sizeof dir, "%s/.locks/%s", p->cache_dir, repo_folder);
    pathf(path, sizeof path, "%s/%s.lock", dir, etag);
    if (make_dirs(dir) != 0) {
        tkr_fail(err, TKR_ERR_IO, "cannot create %s", dir);
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT, 0664); /* group-writable, as huggingface_hub makes it: a shared cache */
    if (fd < 0) {
        tkr_fail(err, TKR_ERR_IO, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    double t0 = tkr_now_seconds();
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (tkr_now_seconds() - t0 > (double)p->lock_timeout_s) {
            close(fd);
            tkr_fail(err, TKR_ERR_IO, "another process holds %s for more than %ld s", path, p->lock_timeout_s);
            return -1;
        }
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return fd;
}

/* Tags the cache folder for backup tools (the CACHEDIR.TAG convention, bford.info/cachedir), as
 * huggingface_hub does on its first download; an existing tag is left as it is, and a failure
 * only loses the tag. */
static void tag_cache_dir(const char *cache_dir) {
    char path[4200];
    if (!pathf(path, sizeof path, "%s/CACHEDIR.TAG", cache_dir)) return;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) return;
    static const char tag[] = "Signature: 8a477f597d28d172789f06886806bc55\n"
                              "# This is the Hugging Face Hub cache; tkr-embed tagged it.\n"
                              "# See https://bford.info/cachedir/\n";
    ssize_t w = write(fd, tag, sizeof tag - 1);
    close(fd);
    if (w != (ssize_t)(sizeof tag - 1)) unlink(path);
}

static bool is_commit(const char *s) {
    if (strlen(s) != 40) return false;
    for (int i = 0; i < 40; i++)
        if (!isxdigit((unsigned char)s[i])) return false;
    return true;
}

/* True when the directory holds an entry whose name ends with suffix (case-insensitive). */
static bool dir_has_suffix(const char *dir, const char *suffix) {
    DIR *d = opendir(dir);
    if (!d) return false;
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d)))
        if (e->d_name[0] != '.' && ends_with_ci(e->d_name, suffix)) found = true;
    closedir(d);
    return found;
}

/* Offline: refs/<rev> (or the commit itself) -> the snapshot, which must hold the model. */
static tkr_status resolve_offline(const tkr_hub_params *p, const spec_parts *sp, const char *repo_dir,
                                  tkr_hub_result *out, tkr_error *err) {
    char commit[64] = "";
    if (is_commit(sp->rev)) {
        pathf(commit, sizeof commit, "%s", sp->rev);
    } else {
        char ref[4400];
        pathf(ref, sizeof ref, "%s/refs/%s", repo_dir, sp->rev);
        FILE *f = fopen(ref, "r");
        if (!f || !fgets(commit, sizeof commit, f)) {
            if (f) fclose(f);
            return tkr_fail(err, TKR_ERR_IO, "%s@%s is not in the cache (%s) and HF_HUB_OFFLINE is set", sp->repo,
                            sp->rev, p->cache_dir);
        }
        fclose(f);
        commit[strcspn(commit, "\r\n")] = '\0';
    }
    pathf(out->commit, sizeof out->commit, "%s", commit);
    pathf(out->path, sizeof out->path, "%s/snapshots/%s", repo_dir, commit);
    char probe[4400];
    if (!sp->quant[0]) {
        /* a snapshot may hold only part of the repository (huggingface_hub fetches file by file):
         * name what is missing rather than fail later on a file the loader does not find */
        const char *missing = NULL;
        pathf(probe, sizeof probe, "%s/config.json", out->path);
        if (!tkr_file_exists(probe)) missing = "config.json";
        else if (!dir_has_suffix(out->path, ".safetensors")) missing = "the safetensors weights";
        if (missing)
            return tkr_fail(err, TKR_ERR_IO,
                            "the cached snapshot %s is incomplete (no %s) and HF_HUB_OFFLINE is set: pull %s once "
                            "online",
                            out->path, missing, sp->repo);
        return TKR_OK;
    }
    /* the GGUF of that quant in the snapshot (top level) */
    char dir[4096];
    pathf(dir, sizeof dir, "%s", out->path);
    DIR *d = opendir(dir);
    if (!d) return tkr_fail(err, TKR_ERR_IO, "cannot read the cached snapshot %s", dir);
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    tkr_status st = TKR_OK;
    while (st == TKR_OK && (e = readdir(d)) && n < MAX_FILES) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn) st = tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
            else names = nn;
        }
        if (st == TKR_OK && !(names[n++] = strdup(e->d_name))) st = tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    }
    closedir(d);
    bool *want = st == TKR_OK ? calloc(n ? n : 1, sizeof *want) : NULL;
    char model_file[1024], mmproj_file[1024];
    if (st == TKR_OK && !want) st = tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    if (st == TKR_OK)
        st = select_files(sp, names, n, want, model_file, sizeof model_file, mmproj_file, sizeof mmproj_file, err);
    if (st == TKR_OK) {
        pathf(out->path, sizeof out->path, "%s/%s", dir, model_file);
        if (mmproj_file[0]) pathf(out->mmproj, sizeof out->mmproj, "%s/%s", dir, mmproj_file);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    free(want);
    if (st != TKR_OK) tkr_error_prefix(err, "offline (HF_HUB_OFFLINE): ");
    return st;
}

tkr_status tkr_hub_fetch(const tkr_hub_params *params, const char *spec, tkr_hub_result *out, tkr_error *err) {
    memset(out, 0, sizeof *out);
    tkr_hub_params pp = *params;
    if (pp.progress < 0) pp.progress = isatty(STDERR_FILENO) ? 1 : 0;
    const tkr_hub_params *p = &pp;
    spec_parts sp;
    if (!parse_spec(spec, &sp))
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "'%.200s' is not a model name of the form org/name[@revision][:QUANT]",
                        spec);
    char folder[256], repo_dir[4400];
    pathf(folder, sizeof folder, "models--%s--%s", sp.org, sp.name);
    pathf(repo_dir, sizeof repo_dir, "%s/%s", p->cache_dir, folder);
    if (p->offline) return resolve_offline(p, &sp, repo_dir, out, err);

    char *body = NULL;
    tkr_status st = tkr_hub_get_info(p, sp.repo, sp.rev, &body, err);
    if (st != TKR_OK) return st;
    json_error_t je;
    json_t *info = json_loads(body, 0, &je);
    free(body);
    json_t *sha = info ? json_object_get(info, "sha") : NULL, *sib = info ? json_object_get(info, "siblings") : NULL;
    if (!json_is_string(sha) || !is_commit(json_string_value(sha)) || !json_is_array(sib) ||
        json_array_size(sib) > MAX_FILES) {
        json_decref(info);
        return tkr_fail(err, TKR_ERR_FORMAT, "%s@%s: the hub's model info lacks a commit or a file list", sp.repo, sp.rev);
    }
    pathf(out->commit, sizeof out->commit, "%s", json_string_value(sha));
    size_t n = json_array_size(sib);
    char **files = calloc(n ? n : 1, sizeof *files);
    bool *want = calloc(n ? n : 1, sizeof *want);
    if (!files || !want) {
        free(files);
        free(want);
        json_decref(info);
        return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        json_t *f = json_object_get(json_array_get(sib, i), "rfilename");
        const char *name = json_is_string(f) ? json_string_value(f) : "";
        /* file names become paths in the cache: no absolute paths, no "..", no empty parts */
        if (!*name || name[0] == '/' || strstr(name, "..") || strstr(name, "//") || strlen(name) > 1000) name = "";
        files[i] = (char *)name;
    }
    char model_file[1024], mmproj_file[1024];
    st = select_files(&sp, files, n, want, model_file, sizeof model_file, mmproj_file, sizeof mmproj_file, err);
    char blobs[4500];
    pathf(blobs, sizeof blobs, "%s/blobs", repo_dir);
    if (st == TKR_OK && make_dirs(blobs) != 0) st = tkr_fail(err, TKR_ERR_IO, "cannot create %s: %s", blobs, strerror(errno));
    if (st == TKR_OK) tag_cache_dir(p->cache_dir);
    for (size_t i = 0; st == TKR_OK && i < n; i++) {
        if (!want[i] || !files[i][0]) continue;
        tkr_hub_file_meta meta;
        if ((st = tkr_hub_head(p, sp.repo, out->commit, files[i], &meta, err)) != TKR_OK) break;
        char blob[4800], partial[4900];
        pathf(blob, sizeof blob, "%s/%s", blobs, meta.etag);
        pathf(partial, sizeof partial, "%s.incomplete", blob);
        struct stat sb, pb;
        if (stat(blob, &sb) != 0 || (meta.size >= 0 && (int64_t)sb.st_size != meta.size) || stat(partial, &pb) == 0) {
            int lk = lock_blob(p, folder, meta.etag, err);
            if (lk < 0) {
                st = err->code;
                break;
            }
            if (stat(blob, &sb) != 0) { /* another process may have finished it meanwhile */
                st = tkr_hub_download(p, sp.repo, out->commit, files[i], &meta, partial, err);
                if (st == TKR_OK && rename(partial, blob) != 0)
                    st = tkr_fail(err, TKR_ERR_IO, "cannot move %s into place: %s", partial, strerror(errno));
                if (st == TKR_OK) out->files_downloaded++;
            } else {
                /* a partial file beside a finished blob: ours, left by a crash before another tool
                 * finished the blob (huggingface_hub 1.x downloads to its own per-process name and
                 * neither resumes nor removes ours). Nobody writes it while we hold the lock. */
                unlink(partial);
            }
            close(lk);
        }
        if (st == TKR_OK) st = link_snapshot(repo_dir, out->commit, files[i], meta.etag, err);
    }
    if (st == TKR_OK && strcmp(sp.rev, out->commit)) st = write_ref(repo_dir, sp.rev, out->commit, err);
    if (st == TKR_OK) {
        if (model_file[0]) pathf(out->path, sizeof out->path, "%s/snapshots/%s/%s", repo_dir, out->commit, model_file);
        else pathf(out->path, sizeof out->path, "%s/snapshots/%s", repo_dir, out->commit);
        if (mmproj_file[0])
            pathf(out->mmproj, sizeof out->mmproj, "%s/snapshots/%s/%s", repo_dir, out->commit, mmproj_file);
    }
    free(files);
    free(want);
    json_decref(info);
    return st;
}

tkr_status tkr_hub_resolve_model(const char *path_or_spec, tkr_hub_result *out, tkr_error *err) {
    memset(out, 0, sizeof *out);
    if (!path_or_spec || !tkr_hub_is_spec(path_or_spec)) {
        if (path_or_spec && !pathf(out->path, sizeof out->path, "%s", path_or_spec))
            return tkr_fail(err, TKR_ERR_INVALID_ARG, "model path too long");
        return TKR_OK;
    }
    tkr_hub_params p;
    tkr_hub_params_init(&p);
    p.progress = isatty(STDERR_FILENO) ? 1 : 0;
    tkr_status st = tkr_hub_fetch(&p, path_or_spec, out, err);
    if (st == TKR_OK) {
        spec_parts sp;
        parse_spec(path_or_spec, &sp);
        pathf(out->repo, sizeof out->repo, "%s", sp.repo);
    }
    return st;
}
