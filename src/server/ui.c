/* ui.c - the playground's files, compiled into the binary with the assembler's .incbin, so the
 * page is edited as a plain HTML file (src/server/ui/index.html), nothing is generated in the
 * source tree, and the binary needs no files beside it. The Makefile makes this object depend on
 * the HTML file, and runs the compiler from the repository root (the .incbin path). */
#include "server/ui.h"

#include <string.h>

#if defined(__APPLE__)
#define UI_SYM(name) "_" #name
#define UI_SECTION ".const_data"
#define UI_HIDDEN(name) ".private_extern " UI_SYM(name) "\n"
#else
#define UI_SYM(name) #name
#define UI_SECTION ".section .rodata"
#define UI_HIDDEN(name) ".hidden " UI_SYM(name) "\n"
#endif

__asm__(UI_SECTION "\n"
        ".globl " UI_SYM(tkr_ui_index_html) "\n" UI_HIDDEN(tkr_ui_index_html)
        ".balign 16\n" UI_SYM(tkr_ui_index_html) ":\n"
        ".incbin \"src/server/ui/index.html\"\n"
        ".globl " UI_SYM(tkr_ui_index_html_end) "\n" UI_HIDDEN(tkr_ui_index_html_end)
        UI_SYM(tkr_ui_index_html_end) ":\n"
        ".byte 0\n"
        ".text\n");

extern const char tkr_ui_index_html[];
extern const char tkr_ui_index_html_end[];

bool tkr_ui_lookup(const char *path, const char **body, size_t *len, const char **content_type) {
    if (strcmp(path, "/ui") && strcmp(path, "/ui/") && strcmp(path, "/ui/index.html")) return false;
    *body = tkr_ui_index_html;
    *len = (size_t)(tkr_ui_index_html_end - tkr_ui_index_html);
    *content_type = "text/html; charset=utf-8";
    return true;
}
