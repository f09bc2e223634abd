# owlsync — build, dependencies, tests, install.
# `make` builds ./owlsync; `make test` runs unit and end-to-end tests.

PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
MANDIR    ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
DESTDIR   ?=

CC        ?= cc
PKGS      := libpq libarchive libsodium inih jansson
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN      := -Wall -Wextra -Wformat=2 -Wvla -Wmissing-prototypes \
             -Wstrict-prototypes -Wshadow -Wpointer-arith -Wcast-qual \
             -Wundef -Wconversion -Wno-unused-parameter -Werror
CFLAGS    ?= -O2 -g
CPPFLAGS  += -Iinclude -D_GNU_SOURCE
ALL_CFLAGS = -std=c11 -pthread $(WARN) $(CFLAGS) $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDLIBS    += $(PKG_LIBS) -pthread

BUILD     ?= build
SRCS      := $(wildcard agent/*.c)
LIB_SRCS  := $(filter-out agent/main.c,$(SRCS))
OBJS      := $(SRCS:agent/%.c=$(BUILD)/agent/%.o)
LIB_OBJS  := $(LIB_SRCS:agent/%.c=$(BUILD)/agent/%.o)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_SRCS := $(wildcard tests/tools/*.c)
TOOL_BINS := $(TOOL_SRCS:tests/tools/%.c=$(BUILD)/tests/tools/%)

# Fuzzing (libFuzzer, clang): one harness per tests/fuzz/fuzz_NAME.c, built
# against the agent/ modules with AddressSanitizer and UBSan in FUZZ_BUILD.
FUZZ_CC      ?= clang-14
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 3
LONG_FUZZ_SECONDS ?= 300
FUZZ_SRCS    := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES   := $(FUZZ_SRCS:tests/fuzz/fuzz_%.c=%)
FUZZ_BINS    := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz/fuzz_%)
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all
# clang's -Wconversion also means -Wsign-conversion, which gcc's (the project's
# bar) does not: the fuzz build keeps to gcc's set of warnings.
FUZZ_FLAGS   := CC=$(FUZZ_CC) BUILD=$(FUZZ_BUILD) EXTRA_CFLAGS=-Wno-sign-conversion \
                CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link $(FUZZ_SAN)" \
                LDFLAGS="$(FUZZ_SAN)"

# Debian packages needed to build, test and run (make deps installs the missing ones).
DEB_PKGS  := gcc make pkg-config libpq-dev libarchive-dev libsodium-dev \
             libinih-dev libjansson-dev postgresql bats zstd libarchive-tools \
             util-linux procps time tzdata man-db groff-base clang-14 libclang-rt-14-dev strace

.PHONY: all deps test test-run test-long unit e2e check check-asan install uninstall clean bench demo format \
        fuzz fuzz-build fuzz-bins fuzz-smoke fuzz-corpus

all: owlsync

owlsync: $(BUILD)/owlsync
	$(Q)cp $< $@.tmp && mv -f $@.tmp $@

# V=1 shows the full compiler commands.
Q := $(if $(V),,@)

$(BUILD)/owlsync: $(OBJS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/agent/%.o: agent/%.c $(wildcard include/owlsync/*.h) | $(BUILD)/agent
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) $(CPPFLAGS) -I$(BUILD) -c -o $@ $<

# sql/ledger.sql is the one definition of the ledger: compiled in as a C string.
$(BUILD)/agent/ledger.o: $(BUILD)/ledger_sql.h
$(BUILD)/ledger_sql.h: sql/ledger.sql | $(BUILD)/agent
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $< > $@.tmp && mv $@.tmp $@

$(BUILD)/tests/%: tests/unit/%.c tests/unit/unit.h $(LIB_OBJS) | $(BUILD)/tests
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) $(CPPFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS)

# Test tools: small programs that craft hostile inputs for the end-to-end tests.
$(BUILD)/tests/tools/%: tests/tools/%.c $(LIB_OBJS) | $(BUILD)/tests/tools
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) $(CPPFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS)

# Fuzz harnesses (built by fuzz-build, with FUZZ_FLAGS): libFuzzer's main.
$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(LIB_OBJS) | $(BUILD)/fuzz
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) $(CPPFLAGS) -Itests/fuzz $(LDFLAGS) -fsanitize=fuzzer -o $@ $< $(LIB_OBJS) $(LDLIBS)

# fuzzkey writes the fixed test key the seed corpus is signed with.
$(BUILD)/fuzz/fuzzkey: tests/fuzz/fuzzkey.c tests/fuzz/fuzz.h $(LIB_OBJS) | $(BUILD)/fuzz
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) $(CPPFLAGS) -Itests/fuzz $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS)

$(BUILD)/agent $(BUILD)/tests $(BUILD)/tests/tools $(BUILD)/fuzz:
	mkdir -p $@

deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "all packages present"; fi

unit: $(UNIT_BINS)

# Functions that invite overflows or hide errors; every use is refused.
BANNED    := strcpy|strcat|strncat|strncpy|sprintf|vsprintf|strtok|strtok_r|atoi|atol|atoll|sscanf|gets|system|popen|tmpnam|mktemp

# Static checks of the sources: no banned function in the program.
check:
	@if grep -nE '(^|[^A-Za-z0-9_])($(BANNED))[[:space:]]*\(' agent/*.c agent/*.h include/owlsync/*.h; then \
	  echo "make check: banned functions above (use bounded or checked forms: snprintf, strtoul, ...)"; exit 1; \
	else echo "make check: no banned function in agent/ and include/"; fi

# Reformats the sources with the committed .clang-format.
format:
	clang-format -i agent/*.c agent/*.h include/owlsync/*.h tests/unit/*.c tests/unit/*.h tests/tools/*.c \
	  tests/fuzz/*.c tests/fuzz/*.h

# The README's test command: installs missing packages, builds, runs every test.
# The fuzz harnesses run a few seconds each (fuzz-smoke), counted as tests.
test: deps check
	@$(MAKE) --no-print-directory fuzz-build
	@$(MAKE) --no-print-directory test-run FUZZ_SMOKE=1

test-run: $(BUILD)/owlsync $(UNIT_BINS) $(TOOL_BINS)
	@OWLSYNC=$(CURDIR)/$(BUILD)/owlsync BUILD=$(CURDIR)/$(BUILD) GZCRAFT=$(CURDIR)/$(BUILD)/tests/tools/gzcraft \
	  RESIGN=$(CURDIR)/$(BUILD)/tests/tools/resign SEAL=$(CURDIR)/$(BUILD)/tests/tools/seal \
	  $(if $(FUZZ_SMOKE),FUZZ_BUILD=$(abspath $(FUZZ_BUILD)) FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS)) \
	  tests/run $(UNIT_BINS)

# Long tests, not part of make test: each script of tests/long/ runs against the
# built binary and prints its counts (export_kills.sh: kill -9 at every step of
# publishing, then a rerun, then checks); then the fuzzers for LONG_FUZZ_SECONDS
# each (make test-long LONG_FUZZ_SECONDS=3600), ending with their counts.
test-long: deps
	@$(MAKE) --no-print-directory $(BUILD)/owlsync
	@for s in tests/long/*.sh; do \
	  echo "# long: $$(basename $$s)"; \
	  OWLSYNC=$(CURDIR)/$(BUILD)/owlsync $$s || exit 1; \
	done
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(LONG_FUZZ_SECONDS)

# The README's first command: a whole promotion on two throwaway clusters.
demo: deps
	@$(MAKE) --no-print-directory owlsync
	@OWLSYNC=$(CURDIR)/owlsync tests/demo.sh

# Benchmarks (not tests): owlsync against raw COPY and the vendor's INSERT way, in one run.
# make bench [SIZE=5000] [SELECTED=500] [COLUMNS=200] [RUNS=5] [SCALE="10000 100000 1000000"] [SCALE_RUNS=…]
#            [DURABLE=1] [BENCH_TIMEOUT=600] [BENCH_KEEP=1]: see tests/bench/run.sh
bench: deps
	@$(MAKE) --no-print-directory owlsync
	@OWLSYNC=$(CURDIR)/owlsync SIZE="$(SIZE)" SELECTED="$(SELECTED)" COLUMNS="$(COLUMNS)" \
	  RUNS="$(RUNS)" \
	  SCALE="$(if $(filter undefined,$(origin SCALE)),10000 100000 1000000,$(SCALE))" \
	  SCALE_RUNS="$(SCALE_RUNS)" tests/bench/run.sh

# Same tests, built with AddressSanitizer and UndefinedBehaviorSanitizer; any report fails.
check-asan:
	ASAN_OPTIONS=detect_leaks=1:exitcode=86 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=86 \
	$(MAKE) BUILD=build-asan CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  LDFLAGS="-fsanitize=address,undefined" test-run

install: owlsync
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5
	install -m 0755 owlsync $(DESTDIR)$(BINDIR)/owlsync
	for m in $(wildcard man/*.1); do install -m 0644 $$m $(DESTDIR)$(MANDIR)/man1/; done
	for m in $(wildcard man/*.5); do install -m 0644 $$m $(DESTDIR)$(MANDIR)/man5/; done

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/owlsync $(DESTDIR)$(MANDIR)/man1/owlsync.1 $(DESTDIR)$(MANDIR)/man5/owlsync.ini.5

# ---- fuzzing: see tests/fuzz/README.md ----
fuzz-build:
	@$(MAKE) --no-print-directory $(FUZZ_FLAGS) fuzz-bins

fuzz-bins: $(FUZZ_BINS) $(BUILD)/fuzz/fuzzkey

# make fuzz [FUZZ_SECONDS=60] [FUZZ=manifest,cron]: each harness for that long,
# from the seeds and what earlier runs found (FUZZ_BUILD/corpus); fails on a crash.
fuzz: fuzz-build
	@tests/fuzz/run.sh --build $(FUZZ_BUILD) --seconds $(FUZZ_SECONDS) $(if $(FUZZ),--only $(FUZZ))

# A few seconds per harness from the seeds alone; make test runs it.
fuzz-smoke: fuzz-build
	@tests/fuzz/run.sh --build $(FUZZ_BUILD) --seconds $(FUZZ_SMOKE_SECONDS) --fresh

# Remakes tests/fuzz/corpus from a real export (a throwaway PostgreSQL cluster).
fuzz-corpus: fuzz-build owlsync $(BUILD)/tests/tools/seal
	@OWLSYNC=$(CURDIR)/owlsync FUZZKEY=$(CURDIR)/$(FUZZ_BUILD)/fuzz/fuzzkey SEAL=$(CURDIR)/$(BUILD)/tests/tools/seal \
	  tests/fuzz/make-corpus.sh

clean:
	rm -rf build build-asan $(FUZZ_BUILD) owlsync
