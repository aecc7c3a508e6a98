/* main.c - the tkr-embed program: dispatches to the sub-commands. */
#include "cli/cli.h"
#include "tkr_embed.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "tkr-embed %s - multimodal embeddings (Ops-MM-embedding-v1 / Qwen2-VL)\n"
            "\n"
            "usage: tkr-embed <command> [options]\n"
            "\n"
            "commands:\n"
            "  embed      embed text, images or a JSONL file of items\n"
            "  tokenize   print the token ids of a text\n"
            "  serve      run the OpenAI-compatible HTTP server\n"
            "  pull       download a model by name into the Hugging Face cache\n"
            "  quantize   write a model as llama.cpp GGUF files (f16, q8_0, q4_k_m, ...)\n"
            "  render     write a video's sampled frames or a PDF's pages as PNG files\n"
            "\n"
            "Run 'tkr-embed <command> --help' for the options of a command.\n",
            TKR_VERSION);
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        char cpu[256];
        tkr_describe_cpu(cpu, sizeof cpu);
        printf("tkr-embed %s\nbuild: %s\nkernels: %s\n", TKR_VERSION, tkr_build_options(), cpu);
        return 0;
    }
    if (!strcmp(argv[1], "embed")) return tkr_cmd_embed(argc - 1, argv + 1);
    if (!strcmp(argv[1], "tokenize")) return tkr_cmd_tokenize(argc - 1, argv + 1);
    if (!strcmp(argv[1], "serve")) return tkr_cmd_serve(argc - 1, argv + 1);
    if (!strcmp(argv[1], "pull")) return tkr_cmd_pull(argc - 1, argv + 1);
    if (!strcmp(argv[1], "quantize")) return tkr_cmd_quantize(argc - 1, argv + 1);
    if (!strcmp(argv[1], "render")) return tkr_cmd_render(argc - 1, argv + 1);
    fprintf(stderr, "tkr-embed: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
