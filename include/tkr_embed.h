/*
 * tkr_embed.h - public C API of tkr-embed, a multimodal embedding engine.
 *
 * Usage in brief:
 *
 *     tkr_model_params mp = tkr_model_default_params();
 *     tkr_model *model = NULL;
 *     tkr_error err;
 *     if (tkr_model_load("/models/Ops-MM-embedding-v1-2B", &mp, &model, &err) != TKR_OK) {
 *         fprintf(stderr, "%s\n", err.message);
 *         return 1;
 *     }
 *     tkr_item item = tkr_item_default();
 *     item.text = "a photo of a cat";
 *     float *vec = malloc(sizeof(float) * tkr_model_dim(model));
 *     tkr_result res;
 *     tkr_embed(model, &item, 1, vec, &res, &err);
 *     ...
 *     tkr_model_free(model);
 *
 * Ownership: every object returned through an out-pointer belongs to the caller and is released
 * with its paired *_free function. No function of the library exits or aborts on bad input: every
 * failure is a returned tkr_status plus a message in a tkr_error.
 *
 * Threads: a tkr_model is immutable after loading except for its compute scratch; calls that
 * compute (tkr_embed) must not run concurrently on one model. The tokenizer functions are safe to
 * call from many threads at once.
 */
#ifndef TKR_EMBED_H
#define TKR_EMBED_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TKR_VERSION "0.1.0"

/* ---- errors ------------------------------------------------------------------------------ */

typedef enum {
    TKR_OK = 0,
    TKR_ERR_INVALID_ARG,   /* a bad argument or request value                       */
    TKR_ERR_IO,            /* a file could not be opened, read or mapped             */
    TKR_ERR_FORMAT,        /* a file or payload is malformed or inconsistent         */
    TKR_ERR_UNSUPPORTED,   /* valid but not supported (dtype, model type, codec...)  */
    TKR_ERR_LIMIT,         /* a configured limit was exceeded                        */
    TKR_ERR_NOMEM,         /* an allocation failed                                   */
    TKR_ERR_IMAGE,         /* an image could not be decoded                          */
    TKR_ERR_INTERNAL       /* a bug: please report it                                */
} tkr_status;

#define TKR_ERROR_MESSAGE_MAX 512

typedef struct {
    tkr_status code;
    char message[TKR_ERROR_MESSAGE_MAX];
} tkr_error;

/* A short, static name for a status code ("invalid_argument", "format_error", ...). */
const char *tkr_status_name(tkr_status status);

/* ---- tokenizer --------------------------------------------------------------------------- */

typedef struct tkr_tokenizer tkr_tokenizer;

/* Loads the tokenizer of a Hugging Face model directory: tokenizer.json when present, else
 * vocab.json + merges.txt with added tokens from tokenizer_config.json / added_tokens.json. */
tkr_status tkr_tokenizer_load(const char *model_dir, tkr_tokenizer **out, tkr_error *err);
void tkr_tokenizer_free(tkr_tokenizer *tok);

/* Tokenizes raw text (no template). Special-token strings are matched literally first, as the
 * reference does. Invalid UTF-8 bytes are replaced by U+FFFD before normalisation.
 * On success *ids is malloc'ed (free with tkr_free) and holds *n_ids ids. */
tkr_status tkr_tokenize(const tkr_tokenizer *tok, const char *text, size_t len, int32_t **ids,
                        size_t *n_ids, tkr_error *err);

/* Number of ids (vocabulary plus added tokens); ids are in [0, size). */
int32_t tkr_tokenizer_vocab_size(const tkr_tokenizer *tok);

/* Build options compiled in, e.g. "cuda=no pdf=yes video=yes" (static string). */
const char *tkr_build_options(void);
/* The CPU kernels this machine selects by default and the CPU's name, e.g.
 * "avx512 vnni bf16 (AMD EPYC 9R45)". */
void tkr_describe_cpu(char *buf, size_t cap);

/* Releases memory returned by the library (token arrays, JSON strings). */
void tkr_free(void *ptr);

/* ---- media: images, videos, PDFs -------------------------------------------------------- */

/* One image: a file path, encoded bytes (JPEG/PNG/WebP) already in memory, or pixels already
 * decoded (rgb != NULL: packed 8-bit RGB, height rows of width*3 bytes, e.g. a video frame or a
 * rendered PDF page from tkr_video_decode / tkr_pdf_render), which skip decoding and go through
 * the same smart_resize, bicubic resize and patches. */
typedef struct {
    const char *path;
    const uint8_t *data;
    size_t size;
    const uint8_t *rgb;          /* [height][width][3]; NULL = use path or data              */
    int width, height;
} tkr_image_input;

/* A video (any container and codec Debian's FFmpeg reads). Its sampled frames become images of
 * the item, after the item's own images and before its text, as MTEB's Ops-MM wrapper feeds
 * them (docs/media.md):
 *   fps mode (num_frames == 0): target = min(max(1, int(duration_s * fps)), max_frames),
 *   fixed mode (num_frames > 0): target = num_frames (a shorter video repeats cyclically);
 *   step = max(1, n_source // target); indices = range(0, n_source, step)[:target].
 * n_source counts the stream's packets and duration_s is the end of the last one (pts +
 * duration), both from a full demux of the file, so variable frame rate and containers without
 * a frame count work. Trailing frames that cannot be decoded are dropped, as the wrapper does. */
typedef struct {
    const char *path;            /* file path, file:// or data: URI (used when data is NULL)  */
    const uint8_t *data;         /* the encoded file in memory                                */
    size_t size;
    double fps;                  /* 0 = 2.0                                                   */
    int max_frames;              /* fps mode cap; 0 = 64                                      */
    int num_frames;              /* > 0: fixed-count mode                                     */
} tkr_video_input;

/* A PDF: one rendered RGB image per selected page; each page is embedded as its own image item
 * (one vector per page). Rendering runs in a child process with memory, CPU-time, output-size
 * and wall-clock limits (tkr_media_limits). */
typedef struct {
    const char *path;            /* file path, file:// or data: URI (used when data is NULL)  */
    const uint8_t *data;
    size_t size;
    const char *pages;           /* "1-3,7" (1-based, in that order); NULL or "" = all pages  */
    double dpi;                  /* 0 = TKR_PDF_DEFAULT_DPI                                   */
} tkr_pdf_input;

/* 101 dpi: a US Letter page renders 859x1111 (smart_resize: 868x1120 = 1240 tokens) and an A4
 * page 836x1181 (840x1176 = 1260 tokens), both near the 1280-token cap without a downscale. */
#define TKR_PDF_DEFAULT_DPI 101.0

/* Limits of video decoding and PDF rendering (tkr_model_params.media). */
typedef struct {
    size_t max_bytes;            /* encoded size of one video or PDF; default 512 MiB        */
    uint64_t max_pixels;         /* width*height of a frame or page; default 64 Mpx          */
    int max_frames;              /* frames of one video (caps max_frames/num_frames); 256    */
    int max_pages;               /* pages of one PDF; default 64                              */
    int64_t max_source_frames;   /* frames (packets) a video may have; default 4,194,304      */
    double timeout_s;            /* wall clock of one decode or render; default 120 s         */
    size_t pdf_memory;           /* renderer child: memory beyond the parent's; 1 GiB         */
    int pdf_cpu_s;               /* renderer child: CPU seconds; default 60                   */
} tkr_media_limits;

tkr_media_limits tkr_media_default_limits(void);

/* Frames of a video or pages of a PDF, as RGB. */
typedef struct {
    int width, height;
    uint8_t *rgb;                /* [height][width][3], malloc'ed                             */
    int64_t index;               /* video: source frame index (0-based); PDF: page number (1-based) */
    double time_s;               /* video: presentation time in seconds; PDF: 0               */
} tkr_media_frame;

typedef struct {
    tkr_media_frame *frames;
    int n;
    int64_t n_source;            /* video: frames in the stream; PDF: pages in the document    */
    double duration_s;           /* video: the duration the fps rule used; PDF: 0              */
    int dropped;                 /* video: undecodable trailing frames dropped                 */
} tkr_media_frames;

/* Decodes the frames the sampling rule picks, in order (repeats included). lim NULL = defaults. */
tkr_status tkr_video_decode(const tkr_video_input *video, const tkr_media_limits *lim,
                            tkr_media_frames *out, tkr_error *err);
/* Renders the selected pages, in the order the range lists them. TKR_ERR_UNSUPPORTED when the
 * library was built without PDF support (make PDF=0). */
tkr_status tkr_pdf_render(const tkr_pdf_input *pdf, const tkr_media_limits *lim,
                          tkr_media_frames *out, tkr_error *err);
bool tkr_pdf_supported(void);
void tkr_media_frames_free(tkr_media_frames *frames);

/* ---- model ------------------------------------------------------------------------------- */

typedef struct tkr_model tkr_model;

typedef struct {
    int n_threads;               /* compute threads; 0 = all cores                         */
    int min_image_tokens;        /* Ops-MM: 256 (min_pixels = 256*28*28)                    */
    int max_image_tokens;        /* Ops-MM: 1280 (max_pixels = 1280*28*28)                  */
    int max_images_per_item;     /* default 64 (a default video gives up to 64 frames)      */
    size_t max_image_bytes;      /* encoded bytes per image; default 32 MiB                 */
    uint64_t max_image_pixels;   /* decoded width*height, checked from the header; 64 Mpx  */
    int max_tokens_per_item;     /* prompt tokens incl. image tokens; default 131072        */
    int max_batch_tokens;        /* tokens per model call when batching; default 8192      */
    bool truncate;               /* over-long text: truncate every item (see tkr_item)      */
    bool use_mmap;               /* map weights in place where possible; default true       */
    const char *mmproj;          /* GGUF models: the vision tower (mmproj) file; NULL = the
                                    mmproj*.gguf beside the model file, if any              */
    const char *kernels;         /* CPU kernel set: NULL/"auto" (best for this CPU),
                                    "generic", "avx2", "avx2-vnni", "avx512", "neon",
                                    "neon-dot" (tests, benchmarks)                          */
    bool fast_bf16;              /* opt-in: BF16 weights with activations rounded to bf16
                                    (AVX-512 BF16 dot products); default false = exact      */
    size_t max_scratch_bytes;    /* activations of the MLPs, norms and attention queries (the
                                    buffers that grow with tokens x intermediate size): rows
                                    are processed in chunks that fit; default 256 MiB; any
                                    value >= 1 gives the same bits (rows are independent)   */
    bool release_vision_weights; /* opt-in: after each CPU vision pass, drop the vision
                                    tower's mapped weight pages from memory (they come back
                                    from the page cache at the next image, which costs time),
                                    so the peak is the larger of tower and decoder, not both;
                                    default false; ignored when weights are not mapped. A
                                    caller that knows when its last image comes uses
                                    tkr_model_hint_no_more_images instead (no cost)         */
    bool repack_weights;         /* CPU: copy the 16-bit decoder matrices at load into the
                                    tile layout the AVX-512 kernels read (src/kernels/
                                    linear_pack.c): faster per token, but the load writes a
                                    copy of them (seconds on some VMs); default true; a
                                    one-shot command of one item turns it off              */
    const char *device;          /* "cpu", "cuda", "cuda:N"; NULL = the GPU when the build
                                    has CUDA and one is present, else the CPU               */
    tkr_media_limits media;      /* video decoding limits (frames per video, time, bytes)   */
    const char *precision;       /* GPU only: "bf16" (NULL: default) or "fp32" (exact, no
                                    TF32); the CPU always computes in float32               */
} tkr_model_params;

tkr_model_params tkr_model_default_params(void);

/* Loads a Hugging Face Qwen2-VL / Ops-MM-embedding directory (config.json, safetensors,
 * tokenizer files), or GGUF files as llama.cpp writes them: a .gguf text model (its vision tower
 * from params.mmproj, else none), or a directory of one model .gguf and at most one
 * mmproj*.gguf (docs/gguf.md). */
tkr_status tkr_model_load(const char *model_dir, const tkr_model_params *params, tkr_model **out,
                          tkr_error *err);
void tkr_model_free(tkr_model *model);

int tkr_model_dim(const tkr_model *model);                      /* embedding size (1536 for 2B) */
const tkr_tokenizer *tkr_model_tokenizer(const tkr_model *model);
const char *tkr_model_name(const tkr_model *model);             /* directory base name          */
bool tkr_model_has_vision(const tkr_model *model);
/* A hint from a caller that knows its input (a one-shot command, the end of an input file):
 * true says no image item follows the next embed calls. Each later tkr_embed /
 * tkr_embed_prepared call with images then drops the vision tower's mapped weight pages after
 * its last vision pass, before its decoder pass, so the peak memory is the larger of tower and
 * decoder instead of their sum, at no cost. An image that comes anyway still embeds the same
 * vector (its pages are read back from the file, which costs time). false (the default) keeps
 * them, as a server should. No effect on a GPU or with weights read into memory. Not to be
 * called while the model computes. */
void tkr_model_hint_no_more_images(tkr_model *model, bool no_more);
/* Which kernels compute, e.g. "avx512 vnni bf16 (AMD EPYC 9R45)": say it with every figure. */
void tkr_model_describe_kernels(const tkr_model *model, char *buf, size_t cap);

/* The compute device's memory held for the model, and batch budgets sized for that device. */
typedef struct {
    bool on_gpu;                 /* false: the CPU computes; every byte count below is 0     */
    uint64_t weight_bytes;       /* weights on the device (quantized ones as stored)         */
    uint64_t activation_bytes;   /* activation scratch, dequantization tile, GEMM workspace  */
    uint64_t pinned_host_bytes;  /* page-locked host buffers for the copies                  */
    uint64_t total_bytes;        /* the device's memory                                      */
    int batch_tokens;            /* prompt tokens per model call this device takes well      */
    int batch_image_tokens;      /* image tokens per model call                              */
    int batch_items;             /* items per model call                                     */
} tkr_device_memory;
/* Fills *out (the CPU: on_gpu false, the CPU budgets 8192 / 5120 / 64). The scratch only grows,
 * during tkr_embed: call this from the thread that embeds, or while no call runs. */
void tkr_model_device_memory(const tkr_model *model, tkr_device_memory *out);

/* ---- embedding --------------------------------------------------------------------------- */


/* One item to embed. text and token_ids are exclusive (token_ids are the text's ids, wrapped in
 * the same prompt). instruction NULL means "You are a helpful assistant.". */
typedef struct {
    const char *text;
    size_t text_len;             /* 0 = strlen(text)                                       */
    const int32_t *token_ids;
    size_t n_token_ids;
    const char *instruction;
    const tkr_image_input *images;
    int n_images;
    bool truncate;               /* over max_tokens_per_item: cut the end of the text (keeping
                                    the template and images) instead of failing the item     */
    const tkr_video_input *video;/* NULL = none; its frames count as images but are limited
                                    by media.max_frames, not max_images_per_item            */
} tkr_item;

tkr_item tkr_item_default(void);

typedef struct {
    tkr_status status;           /* per item: TKR_OK or why this item failed               */
    int prompt_tokens;           /* tokens fed to the decoder, image tokens included       */
    int image_tokens;
    int truncated_tokens;        /* text tokens dropped by truncation (0 if none)          */
    char message[TKR_ERROR_MESSAGE_MAX];
} tkr_result;

/* Embeds n items. out is n * tkr_model_dim() floats, L2-normalised, in item order. Items are
 * validated and prepared in parallel on the model's threads: a bad item gets its own status in
 * results[i] (its vector is zeroed) while the others are still embedded. Returns TKR_OK when the
 * call itself worked, even if some items failed; a vector never depends on the other items of
 * the batch. */
tkr_status tkr_embed(tkr_model *model, const tkr_item *items, int n_items, float *out,
                     tkr_result *results, tkr_error *err);

/* ---- two-step embedding (servers) --------------------------------------------------------
 * tkr_prepare does everything that needs no weights: reading and decoding images, resizing,
 * patches, the prompt's tokens and positions. It only reads the model, so many threads may
 * prepare items while one thread computes with tkr_embed_prepared. tkr_embed is the two steps
 * in one. */

typedef struct tkr_prepared tkr_prepared;

tkr_status tkr_prepare(const tkr_model *model, const tkr_item *item, tkr_prepared **out,
                       tkr_error *err);
void tkr_prepared_free(tkr_prepared *prepared);
int tkr_prepared_tokens(const tkr_prepared *prepared);        /* prompt tokens, images included */
int tkr_prepared_image_tokens(const tkr_prepared *prepared);

/* Embeds prepared items (which stay owned by the caller); same contract as tkr_embed. */
tkr_status tkr_embed_prepared(tkr_model *model, tkr_prepared *const *prepared, int n_items,
                              float *out, tkr_result *results, tkr_error *err);

#ifdef __cplusplus
}
#endif

#endif /* TKR_EMBED_H */
