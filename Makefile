# herald: one readable Makefile. Objects and the binary go to objs/.
#
#   make             build objs/herald
#   make deps        install the Debian packages the build and tests need
#   make run         build (installing deps when needed) and run on conf/herald.conf
#   make test        build, then run the whole suite (C unit tests + prove t/)
#   make test SANITIZE=1   the same suite under ASan+UBSan
#   make fakes       only the C fake providers (objs/fake/apns, objs/fake/fcm)
#   make bench       bench/ingest: herald vs nginx `return 202`

VERSION  := 0.1.0
CC       ?= cc
OBJS     := objs
PKGS     := libevent libevent_pthreads libevent_openssl libnghttp2 openssl \
            libcares jansson
DEB_BUILD := build-essential pkg-config libevent-dev libnghttp2-dev \
             libssl-dev liblmdb-dev libc-ares-dev libjansson-dev
DEB_TEST  := perl libio-socket-ssl-perl libjson-pp-perl curl wrk nginx-light \
             lmdb-utils nghttp2-client python3-aiosmtpd chromium nodejs \
             openssl

CFLAGS_PKG := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LIBS_PKG   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# LMDB ships no .pc file on Debian
LIBS_LMDB  := $(shell pkg-config --libs lmdb 2>/dev/null || echo -llmdb)

CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers \
           -Wshadow -Wpointer-arith -Wstrict-prototypes -fno-strict-aliasing \
           -pthread -D_GNU_SOURCE -Isrc $(CFLAGS_PKG)
LDLIBS  += $(LIBS_PKG) $(LIBS_LMDB) -pthread -lm

# The fake providers (t/fake/*.c) are test peers, built once without
# sanitizers into objs/fake whatever SANITIZE says (fast for bench/push).
FAKE_CFLAGS := $(filter-out -Isrc,$(CFLAGS))
FAKE_BIN := objs/fake/apns objs/fake/fcm

ifeq ($(SANITIZE),1)
OBJS    := objs/san
CFLAGS  += -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
           -fno-sanitize-recover=undefined -DHD_NO_FREELIST
LDFLAGS += -fsanitize=address,undefined
endif

BUILD_CFLAGS := $(strip $(filter-out -I% -D% -W%,$(CFLAGS)))
CFLAGS += -DHD_VERSION='"$(VERSION)"' -DHD_BUILD_CFLAGS='"$(BUILD_CFLAGS)"'

SRC  := $(wildcard src/*/*.c)
OBJ  := $(patsubst src/%.c,$(OBJS)/%.o,$(SRC))
LIB  := $(filter-out $(OBJS)/core/main.o,$(OBJ))
UNIT_SRC := $(wildcard t/unit/*/*.c)
UNIT_BIN := $(patsubst t/unit/%.c,$(OBJS)/unit/%,$(UNIT_SRC))

.PHONY: all fakes deps run test unit bench clean format check-deps fuzz

all: $(OBJS)/herald $(UNIT_BIN) $(FAKE_BIN)

fakes: $(FAKE_BIN)

objs/fake/%: t/fake/%.c t/fake/h2fake.c t/fake/h2fake.h Makefile
	@mkdir -p $(dir $@)
	@echo "  FAKE  $<"
	@$(CC) $(FAKE_CFLAGS) -o $@ $< t/fake/h2fake.c $(LIBS_PKG) -lm

$(OBJS)/herald: $(OBJ)
	@echo "  LINK  $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(OBJS)/%.o: src/%.c $(wildcard src/*/*.h) Makefile
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	@$(CC) $(CFLAGS) -c -o $@ $<

# Unit tests may #include the .c they test; they link everything else.
$(OBJS)/unit/%: t/unit/%.c $(LIB) $(wildcard src/*/*.h) t/unit/tap.h
	@mkdir -p $(dir $@)
	@echo "  UNIT  $<"
	@$(CC) $(CFLAGS) -It/unit $(LDFLAGS) -o $@ $< \
	    $(filter-out $(OBJS)/$*.o,$(LIB)) $(LDLIBS)

check-deps:
	@pkg-config --exists $(PKGS) && test -f /usr/include/lmdb.h \
	    && command -v prove >/dev/null && command -v wrk >/dev/null \
	    && command -v nginx >/dev/null && command -v curl >/dev/null \
	    || $(MAKE) --no-print-directory deps

deps:
	@if [ "$$(id -u)" = 0 ]; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && \
	    apt-get install -y -qq --no-install-recommends $(DEB_BUILD) $(DEB_TEST) \
	        >/dev/null && \
	    { systemctl disable --now nginx >/dev/null 2>&1 || \
	      service nginx stop >/dev/null 2>&1 || true; }; \
	else \
	    echo "run as root: apt-get install -y $(DEB_BUILD) $(DEB_TEST)"; \
	    exit 1; \
	fi

run: check-deps
	@$(MAKE) --no-print-directory $(OBJS)/herald
	@mkdir -p var
	$(OBJS)/herald -c conf/herald.conf

test: check-deps
	@$(MAKE) --no-print-directory all
	HERALD_TEST_BINARY=$(CURDIR)/$(OBJS)/herald HERALD_UNIT_DIR=$(CURDIR)/$(OBJS)/unit \
	    prove -j$$(nproc) -I t/lib t/

bench: check-deps
	@$(MAKE) --no-print-directory $(OBJS)/herald
	HERALD_BINARY=$(CURDIR)/$(OBJS)/herald bench/ingest

format:
	clang-format -i src/*/*.[ch] t/unit/*.h t/unit/*/*.c t/fake/*.[ch]

clean:
	rm -rf objs

# Fuzzing (clang + libFuzzer, Debian's libclang-rt-14-dev): each target in
# t/fuzz/ runs FUZZ_SECONDS with its corpus in t/fuzz/corpus/NAME (kept:
# crashes found are fixed and their inputs stay there as regressions, seeds
# are named seed-*). `make fuzz FUZZ_TARGETS="a b"` runs only those.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := $(patsubst t/fuzz/%.c,%,$(wildcard t/fuzz/*.c))

# Per target t: FUZZ_INCL_t are the sources t/fuzz/t.c #includes and
# FUZZ_SRC_t those built beside it, both instrumented for the fuzzer;
# FUZZ_LINK_t = 1 links the rest of herald from objs/ (uninstrumented).
FUZZ_LINK_http := 1
FUZZ_INCL_http := http/server
FUZZ_LINK_json_request := 1
FUZZ_INCL_json_request := http/api_send http/api_users http/validate
FUZZ_LINK_provider_response := 1
FUZZ_INCL_provider_response := provider/http1
FUZZ_SRC_provider_response := provider/apns provider/fcm provider/twilio \
    provider/vonage provider/sendgrid provider/smtp provider/h2client \
    provider/rest

FUZZ_LINK_jtext := 1
FUZZ_INCL_jtext := core/jtext

fuzz_links = $(if $(FUZZ_LINK_$(1)),$(filter-out \
    $(patsubst %,$(OBJS)/%.o,$(FUZZ_INCL_$(1)) $(FUZZ_SRC_$(1))),$(LIB)))
fuzz_one = echo "  FUZZ  $(1) ($(FUZZ_SECONDS) s)" && \
    clang -g -O1 -std=gnu11 -D_GNU_SOURCE -Isrc $(CFLAGS_PKG) \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -o objs/fuzz/$(1) t/fuzz/$(1).c \
        $(patsubst %,src/%.c,$(FUZZ_SRC_$(1))) $(call fuzz_links,$(1)) \
        $(LIBS_PKG) $(LIBS_LMDB) -pthread -lm && \
    mkdir -p t/fuzz/corpus/$(1) && \
    { objs/fuzz/$(1) -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
        -artifact_prefix=t/fuzz/corpus/$(1)/ t/fuzz/corpus/$(1) \
        > objs/fuzz/$(1).log 2>&1 || { tail -40 objs/fuzz/$(1).log; exit 1; }; } && \
    tail -1 objs/fuzz/$(1).log

fuzz:
	@command -v clang >/dev/null && test -n "$$(ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a 2>/dev/null)" \
	    || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang libclang-rt-14-dev >/dev/null; } \
	    || { echo "run as root: apt-get install -y clang libclang-rt-14-dev"; exit 1; }
	@$(MAKE) --no-print-directory $(OBJS)/herald
	@mkdir -p objs/fuzz
	@$(foreach t,$(FUZZ_TARGETS),$(call fuzz_one,$(t)) && ) true
