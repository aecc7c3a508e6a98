/* test_hub.c - the Hub client's environment (the variables and precedence huggingface_hub uses,
 * so that both find one cache and one token) and model-name parsing. */
#define _POSIX_C_SOURCE 200809L
#include "test.h"
#include "hub/hub.h"

#include <unistd.h>

static const char *const VARS[] = {"HF_HOME", "XDG_CACHE_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_TOKEN",
                                   "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HUB_OFFLINE",
                                   "TRANSFORMERS_OFFLINE", "HF_ENDPOINT"};

static void clear_env(void) {
    for (size_t i = 0; i < sizeof VARS / sizeof VARS[0]; i++) unsetenv(VARS[i]);
    setenv("HOME", "/home/u", 1);
}

static void test_cache_dir_precedence(void) {
    tkr_hub_params p;
    clear_env();
    tkr_hub_params_init(&p);
    CHECK(!strcmp(p.cache_dir, "/home/u/.cache/huggingface/hub"), "default: %s", p.cache_dir);
    CHECK(!strcmp(p.endpoint, "https://huggingface.co") && !p.offline && !p.token[0], "defaults");
    setenv("XDG_CACHE_HOME", "/xdg", 1);
    tkr_hub_params_init(&p);
    CHECK(!strcmp(p.cache_dir, "/xdg/huggingface/hub"), "XDG_CACHE_HOME: %s", p.cache_dir);
    setenv("HF_HOME", "~/hf", 1); /* quoted in a shell: huggingface_hub expands it, so do we */
    tkr_hub_params_init(&p);
    CHECK(!strcmp(p.cache_dir, "/home/u/hf/hub"), "HF_HOME=~/hf: %s", p.cache_dir);
    setenv("HUGGINGFACE_HUB_CACHE", "/legacy", 1);
    tkr_hub_params_init(&p);
    CHECK(!strcmp(p.cache_dir, "/legacy"), "legacy HUGGINGFACE_HUB_CACHE: %s", p.cache_dir);
    setenv("HF_HUB_CACHE", "/new", 1);
    tkr_hub_params_init(&p);
    CHECK(!strcmp(p.cache_dir, "/new"), "HF_HUB_CACHE wins over the legacy name: %s", p.cache_dir);
    setenv("HF_ENDPOINT", "http://mirror.example//", 1);
    tkr_hub_params_init(&p);
    CHECK(!strcmp(p.endpoint, "http://mirror.example"), "endpoint without trailing '/': %s", p.endpoint);
}

static void test_offline_values(void) {
    static const char *const on[] = {"1", "ON", "on", "YES", "yes", "TRUE", "True"};
    static const char *const off[] = {"0", "off", "no", "false", "2", ""};
    tkr_hub_params p;
    for (size_t i = 0; i < sizeof on / sizeof on[0]; i++) {
        clear_env();
        setenv("HF_HUB_OFFLINE", on[i], 1);
        tkr_hub_params_init(&p);
        CHECK(p.offline, "HF_HUB_OFFLINE=%s", on[i]);
    }
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) {
        clear_env();
        setenv("HF_HUB_OFFLINE", off[i], 1);
        tkr_hub_params_init(&p);
        CHECK(!p.offline, "HF_HUB_OFFLINE=%s", off[i]);
    }
    clear_env();
    setenv("TRANSFORMERS_OFFLINE", "1", 1);
    tkr_hub_params_init(&p);
    CHECK(p.offline, "TRANSFORMERS_OFFLINE=1 alone");
    setenv("HF_HUB_OFFLINE", "0", 1);
    tkr_hub_params_init(&p);
    CHECK(!p.offline, "HF_HUB_OFFLINE=0 set: it decides, as in huggingface_hub");
}

static void test_token_sources(void) {
    char dir[] = "/tmp/tkr_hub_tokXXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char file[256];
    snprintf(file, sizeof file, "%s/token", dir);
    FILE *f = fopen(file, "w");
    CHECK(f != NULL, "token file");
    if (f) {
        fputs("  hf_file \n", f);
        fclose(f);
    }
    tkr_hub_params p;
    clear_env();
    setenv("HF_HOME", dir, 1);
    tkr_hub_params_init(&p);
    CHECK(!strcmp(p.token, "hf_file"), "$HF_HOME/token, white space off: '%s'", p.token);
    setenv("HUGGING_FACE_HUB_TOKEN", "hf_legacy", 1);
    tkr_hub_params_init(&p);
    CHECK(!strcmp(p.token, "hf_legacy"), "legacy HUGGING_FACE_HUB_TOKEN over the file: '%s'", p.token);
    setenv("HF_TOKEN", "hf_env", 1);
    tkr_hub_params_init(&p);
    CHECK(!strcmp(p.token, "hf_env"), "HF_TOKEN first: '%s'", p.token);
    setenv("HF_TOKEN", "hf_a\r\nX-Injected: 1", 1);
    tkr_hub_params_init(&p);
    CHECK(!p.token[0], "a token with a line break is not sent: '%s'", p.token);
    unlink(file);
    rmdir(dir);
}

static void test_spec_names(void) {
    CHECK(tkr_hub_is_spec("org/name"), "org/name");
    CHECK(tkr_hub_is_spec("org/name@v2:Q4_K_M"), "revision and quant");
    CHECK(tkr_hub_is_spec("org/name@0123456789abcdef0123456789abcdef01234567"), "a commit");
    CHECK(!tkr_hub_is_spec("../etc"), "..");
    CHECK(!tkr_hub_is_spec("org/na..me"), "'..' inside");
    CHECK(!tkr_hub_is_spec("org/name/extra"), "two slashes");
    CHECK(!tkr_hub_is_spec("org/name@"), "empty revision");
    CHECK(!tkr_hub_is_spec("org/name@a/b"), "'/' in the revision");
    CHECK(!tkr_hub_is_spec("org/name:"), "empty quant");
    CHECK(!tkr_hub_is_spec("/tmp"), "an existing path is a path");
}

int main(void) {
    RUN(test_cache_dir_precedence);
    RUN(test_offline_values);
    RUN(test_token_sources);
    RUN(test_spec_names);
    return test_summary();
}
