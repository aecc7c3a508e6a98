# tkr-embed build. Plain make, no generated sources.
#   make                 release build in build/        (library, tkr-embed, tests, benches)
#   make SAN=1           ASan+UBSan build in build-san/
#   make test            build and run the test suite (tests/run.sh)
#   make CUDA=1          also the CUDA backend (src/backend/cuda/*.cu via nvcc; cudart + cuBLAS),
#                        in build-cuda/ (NVCC=..., CUDA_ARCH=... to override; see docs/backends.md)
# Sources are picked up by directory: every src/<area>/*.c goes into libtkr.a, except src/cli.
# Files named *_avx2.c are compiled with AVX2/FMA/F16C enabled, *_avx512.c with AVX-512
# (F/BW/VL/DQ/VNNI/BF16) and AVX-VNNI; both only on x86-64, and chosen at run time (src/kernels/cpu.c).
# Files named *_neon.c are built only for aarch64 (NEON is baseline there), *_neondot.c with the
# dot-product extension (-march=armv8.2-a+dotprod), chosen at run time as well.
# The target comes from the compiler ($(CC) -dumpmachine), so a cross build is
#   make BUILD=build-arm64 CC=aarch64-linux-gnu-gcc AR=aarch64-linux-gnu-ar \
#        PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig   (tests/arm64/run.sh)

CC       ?= cc
V        ?= 0
Q        := $(if $(filter 1,$(V)),,@)
UNAME_S  := $(shell uname -s)
# macOS: Homebrew's libraries are not on pkg-config's default path (keg-only ones like curl, jpeg).
ifeq ($(UNAME_S),Darwin)
  # with _POSIX_C_SOURCE alone, macOS hides BSD names its own headers need (sys/sysctl.h)
  DARWIN_CFLAGS := -D_DARWIN_C_SOURCE
  BREW_PREFIX := $(shell brew --prefix 2>/dev/null)
  ifneq ($(BREW_PREFIX),)
    export PKG_CONFIG_PATH := $(PKG_CONFIG_PATH):$(BREW_PREFIX)/lib/pkgconfig:$(BREW_PREFIX)/opt/curl/lib/pkgconfig:$(BREW_PREFIX)/opt/jpeg-turbo/lib/pkgconfig:$(BREW_PREFIX)/opt/libjpeg-turbo/lib/pkgconfig
  endif
endif
PKGS     := jansson libutf8proc libpng libwebp libjpeg libcurl
# video items: FFmpeg's demuxers, decoders and swscale (LGPL; Debian's libav*-dev).
# make VIDEO=0 leaves them out (video items then get a clear error; the ARM64 CI leg does this)
VIDEO    ?= 1
ifeq ($(VIDEO),1)
  PKGS   += libavformat libavcodec libswscale libavutil
else
  VIDEO_DEF := -DTKR_NO_VIDEO=1
endif
# PDF items (make PDF=0 leaves them out): Poppler's GLib API + cairo. Poppler is GPL: a binary
# built with PDF=1 is distributed under the GPL's terms (docs/media.md).
PDF      ?= 1
ifeq ($(PDF),1)
  PKGS   += poppler-glib cairo
  PDF_DEF := -DTKR_HAVE_PDF=1
endif
# -isystem: warnings inside GLib/FFmpeg headers are not ours to fix under -Werror
PKG_CFLAGS := $(patsubst -I%,-isystem %,$(shell pkg-config --cflags $(PKGS) 2>/dev/null))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -ljansson -lutf8proc -lpng16 -lwebp -ljpeg -lcurl)

# make fuzz: clang with libFuzzer, ASan and UBSan, in build-fuzz/ (see tests/fuzz/run.sh)
ifeq ($(FUZZ),1)
  CC     := clang
  BUILD  ?= build-fuzz
  SAN    := 1
  CFLAGS += -fsanitize=fuzzer-no-link
endif

WARN     := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wvla
CSTD     := -std=c11 -D_POSIX_C_SOURCE=200809L $(DARWIN_CFLAGS)
ifeq ($(CUDA),1)
  BUILD  ?= build-cuda
endif
ifeq ($(SAN),1)
  BUILD  ?= build-san
  OPT    := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDSAN  := -fsanitize=address,undefined
else
  BUILD  ?= build
  OPT    := -O2 -g
  LDSAN  :=
endif

# the architecture the compiler targets: x86_64, aarch64 (Linux) or arm64 (macOS)
TARGET_ARCH_CC := $(firstword $(subst -, ,$(shell $(CC) -dumpmachine)))
ifneq ($(filter aarch64 arm64,$(TARGET_ARCH_CC)),)
  TARGET_ARM64 := 1
endif
NEONDOT_FLAGS := -march=armv8.2-a+dotprod
ifeq ($(TARGET_ARCH_CC),x86_64)
  AVX2_FLAGS := -mavx2 -mfma -mf16c
  AVX512_FLAGS := $(AVX2_FLAGS) -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16 -mavxvnni
else
  AVX2_FLAGS :=
  AVX512_FLAGS :=
endif

# -fPIC: the same objects make the static and the shared library
CFLAGS_ALL := $(CSTD) $(OPT) $(WARN) -fPIC -Iinclude -Isrc $(PKG_CFLAGS) $(PDF_DEF) $(VIDEO_DEF) -MMD -MP $(CFLAGS)
LDLIBS_ALL := $(PKG_LIBS) -lpthread -lm $(LDLIBS)

LIB_SRC  := $(filter-out src/cli/%,$(wildcard src/*/*.c))
ifneq ($(TARGET_ARCH_CC),x86_64)
  LIB_SRC := $(filter-out %_avx2.c %_avx512.c,$(LIB_SRC))
endif
ifneq ($(TARGET_ARM64),1)
  LIB_SRC := $(filter-out %_neon.c %_neondot.c,$(LIB_SRC))
endif
ifeq ($(FUZZ),1)
  # the harnesses need no compute kernels or model (and clang 14 rejects cpu.c's newer
  # __builtin_cpu_supports names): the parsers and loaders only
  LIB_SRC := $(filter-out src/kernels/% src/model/%,$(LIB_SRC))
endif
CLI_SRC  := $(wildcard src/cli/*.c)
TEST_SRC := $(wildcard tests/unit/test_*.c)
BENCH_SRC:= $(wildcard bench/*.c)
TOOL_SRC := $(wildcard tools/*.c)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CU_OBJ   :=
ifeq ($(CUDA),1)
  NVCC      ?= $(or $(shell command -v nvcc 2>/dev/null),/usr/local/cuda/bin/nvcc)
  CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
  # sm_80 code for Ampere and Ada (8.x: A100, A10, L4, L40S, RTX 30/40); sm_90a for Hopper, with
  # its wgmma (cuda_flash_wg.cu); compute_90 PTX, JIT-compiled for newer GPUs (without wgmma)
  CUDA_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90a,code=sm_90a \
               -gencode arch=compute_90,code=compute_90
  CU_SRC    := $(wildcard src/backend/cuda/*.cu)
  CU_OBJ    := $(CU_SRC:%.cu=$(BUILD)/%.o)
  CFLAGS_ALL += -DTKR_HAVE_CUDA
  LDLIBS_ALL += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcublasLt -lcudart -lstdc++ -ldl -lrt
endif
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
LIB      := $(BUILD)/libtkr.a
BIN      := $(BUILD)/tkr-embed
TESTS    := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
BENCHES  := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
TOOLS    := $(TOOL_SRC:tools/%.c=$(BUILD)/tools/%)
FUZZERS  := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
REPLAYS  := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz-replay/%)

.PHONY: all test clean install shared
all: $(BIN) $(TESTS) $(BENCHES) $(TOOLS) $(REPLAYS)

$(BUILD)/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) $(AVX2_FLAGS) -c $< -o $@

$(BUILD)/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) $(AVX512_FLAGS) -c $< -o $@

$(BUILD)/%_neondot.o: %_neondot.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) $(NEONDOT_FLAGS) -c $< -o $@

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) -c $< -o $@

# the playground page is assembled into ui.o (.incbin)
$(BUILD)/src/server/ui.o: src/server/ui/index.html

$(BUILD)/%.o: %.cu
	@mkdir -p $(dir $@)
	@echo "  NVCC    $<"
	$(Q)$(NVCC) -std=c++17 -O3 $(CUDA_ARCH) -Iinclude -Isrc -DTKR_HAVE_CUDA -MMD -MP \
	  -Xcompiler -fPIC,-Wall,-Wextra,-Werror,-Wno-unused-parameter -c $< -o $@

$(LIB): $(LIB_OBJ) $(CU_OBJ)
	@mkdir -p $(dir $@)
	@rm -f $@
	$(Q)$(AR) rcs $@ $^

$(BIN): $(CLI_OBJ) $(LIB)
	@echo "  LD      $@"
	$(Q)$(CC) $(OPT) $(LDSAN) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS_ALL)

$(BUILD)/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(LIB)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS_ALL) -Itests/unit -o $@ $< $(LIB) $(LDLIBS_ALL) $(LDSAN)

$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS_ALL) -o $@ $< $(LIB) $(LDLIBS_ALL) $(LDSAN)

$(BUILD)/tools/%: tools/%.c $(LIB)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS_ALL) -o $@ $< $(LIB) $(LDLIBS_ALL) $(LDSAN)

# the flash attention kernels and the fused gate|up + SiLU-gate GEMM against CPU references, on
# the GPU (tests/gpu/run.sh); bench_gemm_swiglu: that GEMM against cuBLAS + the separate kernel
$(BUILD)/tests/gpu/test_flash $(BUILD)/tests/gpu/test_swiglu $(BUILD)/bench/bench_gemm_swiglu: %: %.o $(LIB)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(OPT) -o $@ $< $(LIB) $(LDLIBS_ALL)

# cuBLASLt's candidate algorithms on the model's GEMM shapes, timed (bench/bench_gemm_algos.cu)
$(BUILD)/bench/bench_gemm_algos: bench/bench_gemm_algos.cu
	@mkdir -p $(dir $@)
	@echo "  NVCC    $<"
	$(Q)$(NVCC) -std=c++17 -O3 $(CUDA_ARCH) -Xcompiler -Wall,-Wextra,-Werror -o $@ $< -L$(CUDA_HOME)/lib64 \
	  -Xlinker -rpath,$(CUDA_HOME)/lib64 -lcublasLt

# gcc-aarch64-linux-gnu 12.2 has an internal compiler error vectorising a reduction in this test
ifeq ($(TARGET_ARM64),1)
$(BUILD)/tests/test_kernels: CFLAGS_ALL += -fno-tree-vectorize
endif

# the allocation-failure sweep sees every allocation of the library through --wrap (GNU ld)
ALLOC_WRAP := -Wl,--wrap=malloc -Wl,--wrap=calloc -Wl,--wrap=realloc -Wl,--wrap=strdup -Wl,--wrap=posix_memalign
ifeq ($(shell uname -s),Linux)
$(BUILD)/tests/test_alloc_fail: LDLIBS_ALL += $(ALLOC_WRAP)
endif

# libFuzzer harnesses (FUZZ=1 builds) and, in every build, the same harnesses with a main() that
# replays the committed corpora and crash inputs (tests/cli/test_fuzz_regress.sh)
$(BUILD)/fuzz/%: tests/fuzz/%.c $(wildcard tests/fuzz/*.h) $(wildcard tests/unit/*.h) $(LIB)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS_ALL) -Itests/unit -Itests/fuzz -fsanitize=fuzzer -o $@ $< $(LIB) $(LDLIBS_ALL) $(LDSAN)

$(BUILD)/fuzz-replay/%: tests/fuzz/%.c tests/fuzz/replay_main.c $(wildcard tests/fuzz/*.h) $(wildcard tests/unit/*.h) $(LIB)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS_ALL) -Itests/unit -Itests/fuzz -o $@ $< tests/fuzz/replay_main.c $(LIB) $(LDLIBS_ALL) $(LDSAN)

.PHONY: fuzz fuzzers
fuzzers: $(FUZZERS)

# FUZZ_SECONDS per harness (default 20)
fuzz:
	$(MAKE) FUZZ=1 fuzzers
	bash tests/fuzz/run.sh $(FUZZ_SECONDS)

test:
	bash tests/run.sh

# ---- install: make install PREFIX=/usr/local DESTDIR= -------------------------------------------
# The binary, libtkr-embed.so.$(SOMAJOR) (versioned soname) and libtkr-embed.a, the public header,
# a pkg-config file and the man page.
PREFIX   ?= /usr/local
DESTDIR  ?=
LIBDIR   ?= $(PREFIX)/lib
VERSION  := $(shell sed -n 's/^\#define TKR_VERSION "\(.*\)"/\1/p' include/tkr_embed.h)
SOMAJOR  := 0
UNAME_S  := $(shell uname -s)
ifeq ($(UNAME_S),Darwin)
  SHLIB      := libtkr-embed.$(SOMAJOR).dylib
  SHLIB_LINK := libtkr-embed.dylib
  SHLIB_FLAGS = -dynamiclib -install_name $(LIBDIR)/$(SHLIB)
else
  SHLIB      := libtkr-embed.so.$(SOMAJOR)
  SHLIB_LINK := libtkr-embed.so
  SHLIB_FLAGS = -shared -Wl,-soname,$(SHLIB)
endif
shared: $(BUILD)/$(SHLIB)
$(BUILD)/$(SHLIB): $(LIB_OBJ) $(CU_OBJ)
	@echo "  LD      $@"
	$(Q)$(CC) $(OPT) $(LDSAN) $(SHLIB_FLAGS) -o $@ $(LIB_OBJ) $(CU_OBJ) $(LDLIBS_ALL)

install: $(BIN) $(LIB) $(BUILD)/$(SHLIB)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(PREFIX)/include \
	  $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/tkr-embed
	install -m 644 $(LIB) $(DESTDIR)$(LIBDIR)/libtkr-embed.a
	install -m 755 $(BUILD)/$(SHLIB) $(DESTDIR)$(LIBDIR)/$(SHLIB)
	ln -sf $(SHLIB) $(DESTDIR)$(LIBDIR)/$(SHLIB_LINK)
	install -m 644 include/tkr_embed.h $(DESTDIR)$(PREFIX)/include/tkr_embed.h
	install -m 644 docs/tkr-embed.1 $(DESTDIR)$(PREFIX)/share/man/man1/tkr-embed.1
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@VERSION@|$(VERSION)|; s|@PKGS@|$(PKGS)|' \
	  tkr-embed.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/tkr-embed.pc

clean:
	rm -rf build build-san build-arm64 build-fuzz build-cuda

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(CU_OBJ:.o=.d) \
  $(wildcard $(BUILD)/tests/gpu/*.d $(BUILD)/bench/*.d)
