/* ui.h - the playground page (/ui): static files compiled into the binary. */
#ifndef TKR_SERVER_UI_H
#define TKR_SERVER_UI_H

#include <stdbool.h>
#include <stddef.h>

/* The asset for a URL path ("/ui", "/ui/", "/ui/index.html"): its bytes and content type.
 * Returns false for any other path. */
bool tkr_ui_lookup(const char *path, const char **body, size_t *len, const char **content_type);

#endif
