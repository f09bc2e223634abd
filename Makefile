# owlsync — build, dependencies, tests, install, packages.
# `make` builds ./owlsync; `make test` runs unit and end-to-end tests;
# `make deb` builds the Debian package; `make dist` the source tarball.

PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
DATADIR   ?= $(PREFIX)/share
MANDIR    ?= $(DATADIR)/man
SQLDIR    ?= $(DATADIR)/owlsync/sql
COMPLETIONDIR ?= $(DATADIR)/bash-completion/completions
SYSCONFDIR ?= /etc
# systemd reads units, sysusers.d and tmpfiles.d from /usr/lib and /usr/local/lib
# (Debian 12's packages put units in /lib/systemd/system: debian/rules says so).
UNITDIR   ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
DESTDIR   ?=

# The release number lives in VERSION alone. The source's description is git's
# in a checkout, else the COMMIT file that make dist writes into the tarball.
VERSION   := $(shell cat VERSION)
COMMIT    := $(shell if [ -e .git ]; then git describe --tags --match 'v[0-9]*' --always --dirty --abbrev=12 2>/dev/null; \
                     elif [ -f COMMIT ]; then cat COMMIT; fi)
COMMIT    := $(or $(COMMIT),unknown)

CC        ?= cc
PKGS      := libpq libarchive libsodium inih jansson
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
INIH_VERSION := $(shell pkg-config --modversion inih 2>/dev/null)

WARN      := -Wall -Wextra -Wformat=2 -Wvla -Wmissing-prototypes \
             -Wstrict-prototypes -Wshadow -Wpointer-arith -Wcast-qual \
             -Wundef -Wconversion -Wno-unused-parameter -Werror
CFLAGS    ?= -O2 -g
CPPFLAGS  += -Iinclude -D_GNU_SOURCE
# Reproducible: no build directory in the binary (a build from the tarball,
# anywhere, gives the bytes a build from the checkout gives).
REPRO     := -ffile-prefix-map=$(CURDIR)=. $(if $(filter /%,$(BUILD)),-ffile-prefix-map=$(BUILD)=build)
ALL_CFLAGS = -std=c11 -pthread $(WARN) $(CFLAGS) $(REPRO) $(PKG_CFLAGS) $(EXTRA_CFLAGS)
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

# Debian packages: BUILD_PKGS to build (make deps); TEST_PKGS besides for the
# tests, the demo and the benchmarks (make test installs them); PACKAGE_PKGS for
# make deb and make dist (make test too: tests/e2e/70_package.bats builds, installs
# and purges the package). What the package needs to run is not listed: its
# Depends come from the libraries the binary links (dpkg-shlibdeps).
BUILD_PKGS   := gcc make pkg-config libpq-dev libarchive-dev libsodium-dev libinih-dev libjansson-dev
PACKAGE_PKGS := dpkg-dev debhelper fakeroot lintian git
TEST_PKGS    := postgresql bats zstd libarchive-tools util-linux procps time tzdata man-db groff-base python3 \
                clang-14 libclang-rt-14-dev strace systemd bash-completion $(PACKAGE_PKGS)

.PHONY: all deps deps-test deps-package test test-run test-long unit e2e check check-asan install uninstall clean bench demo format \
        deb dist FORCE \
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
$(BUILD)/agent/ledger.o: CPPFLAGS += -DOWLSYNC_SQLDIR='"$(SQLDIR)"'
$(BUILD)/ledger_sql.h: sql/ledger.sql | $(BUILD)/agent
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $< > $@.tmp && mv $@.tmp $@

# The version and the source's description, rewritten only when they change.
$(BUILD)/agent/main.o $(BUILD)/agent/exporter.o $(BUILD)/agent/cmd_version.o: $(BUILD)/version_gen.h
$(BUILD)/version_gen.h: FORCE | $(BUILD)/agent
	$(Q)printf '#define OWLSYNC_VERSION "%s"\n#define OWLSYNC_COMMIT "%s"\n' '$(VERSION)' '$(COMMIT)' > $@.tmp && \
	  if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi
$(BUILD)/agent/config.o: CPPFLAGS += -DOWLSYNC_INIH_VERSION='"$(or $(INIH_VERSION),unknown)"'

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

# Installs the listed Debian packages that are missing (idempotent; root or sudo).
define apt_missing
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "all packages present"; fi
endef

# What a build needs.
deps:
	$(call apt_missing,$(BUILD_PKGS))

# What a build, the tests, the demo and the benchmarks need.
deps-test:
	$(call apt_missing,$(BUILD_PKGS) $(TEST_PKGS))

# What make deb needs (make dist: git alone).
deps-package:
	$(call apt_missing,$(BUILD_PKGS) $(PACKAGE_PKGS))

unit: $(UNIT_BINS)

# Functions that invite overflows or hide errors; every use is refused.
BANNED    := strcpy|strcat|strncat|strncpy|sprintf|vsprintf|strtok|strtok_r|atoi|atol|atoll|sscanf|gets|system|popen|tmpnam|mktemp

# Static checks of the sources: no banned function in the program; the man
# pages and debian/changelog carry the version of VERSION.
check:
	@if grep -nE '(^|[^A-Za-z0-9_])($(BANNED))[[:space:]]*\(' agent/*.c agent/*.h include/owlsync/*.h; then \
	  echo "make check: banned functions above (use bounded or checked forms: snprintf, strtoul, ...)"; exit 1; \
	else echo "make check: no banned function in agent/ and include/"; fi
	@for f in $(wildcard man/*.[15]); do \
	  grep -q '^\.TH .* "owlsync $(VERSION)"' $$f || { echo "make check: $$f does not say owlsync $(VERSION) (VERSION)"; exit 1; }; \
	done; \
	[ "$$(sed -n '1s/^owlsync (\([^)]*\)).*/\1/p' debian/changelog)" = "$(VERSION)" ] || \
	  { echo "make check: debian/changelog's first entry is not $(VERSION) (VERSION)"; exit 1; }; \
	echo "make check: man pages and debian/changelog say VERSION ($(VERSION))"

# Reformats the sources with the committed .clang-format.
format:
	clang-format -i agent/*.c agent/*.h include/owlsync/*.h tests/unit/*.c tests/unit/*.h tests/tools/*.c \
	  tests/fuzz/*.c tests/fuzz/*.h

# The README's test command: installs missing packages, builds, runs every test.
# The fuzz harnesses run a few seconds each (fuzz-smoke), counted as tests.
test: deps-test check
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
test-long: deps-test
	@$(MAKE) --no-print-directory $(BUILD)/owlsync
	@for s in tests/long/*.sh; do \
	  echo "# long: $$(basename $$s)"; \
	  OWLSYNC=$(CURDIR)/$(BUILD)/owlsync $$s || exit 1; \
	done
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(LONG_FUZZ_SECONDS)

# The README's first command: a whole promotion on two throwaway clusters.
demo: deps-test
	@$(MAKE) --no-print-directory owlsync
	@OWLSYNC=$(CURDIR)/owlsync tests/demo.sh

# Benchmarks (not tests): owlsync against raw COPY and the vendor's INSERT way, in one run.
# make bench [SIZE=5000] [SELECTED=500] [COLUMNS=200] [RUNS=5] [SCALE="10000 100000 1000000"] [SCALE_RUNS=…]
#            [DURABLE=1] [BENCH_TIMEOUT=600] [BENCH_KEEP=1]: see tests/bench/run.sh
bench: deps-test
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

# The files the package installs, the same from make install: the binary, the
# man pages, the systemd unit (its ExecStart= pointed at BINDIR), the sysusers.d
# and tmpfiles.d entries, the example configuration, the SQL files and the bash
# completion. Installed into the running system (no DESTDIR) as root, the user
# and directories are made at once, as the package's postinst makes them.
MAN1      := $(wildcard man/*.1)
MAN5      := $(wildcard man/*.5)
SQL_FILES := $(wildcard sql/*.sql)
INSTALLED := $(BINDIR)/owlsync $(MAN1:man/%=$(MANDIR)/man1/%) $(MAN5:man/%=$(MANDIR)/man5/%) \
             $(UNITDIR)/owlsync.service $(SYSUSERSDIR)/owlsync.conf $(TMPFILESDIR)/owlsync.conf \
             $(SYSCONFDIR)/owlsync/owlsync.ini.example $(SQL_FILES:sql/%=$(SQLDIR)/%) \
             $(COMPLETIONDIR)/owlsync

install: owlsync
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(UNITDIR) \
	  $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(SQLDIR) $(DESTDIR)$(COMPLETIONDIR)
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/owlsync
	install -m 0755 owlsync $(DESTDIR)$(BINDIR)/owlsync
	install -m 0644 $(MAN1) $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(MAN5) $(DESTDIR)$(MANDIR)/man5/
	sed 's|^ExecStart=/usr/bin/owlsync |ExecStart=$(BINDIR)/owlsync |' config/owlsync.service > $(DESTDIR)$(UNITDIR)/owlsync.service.tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/owlsync.service.tmp && mv -f $(DESTDIR)$(UNITDIR)/owlsync.service.tmp $(DESTDIR)$(UNITDIR)/owlsync.service
	install -m 0644 config/owlsync.sysusers $(DESTDIR)$(SYSUSERSDIR)/owlsync.conf
	install -m 0644 config/owlsync.tmpfiles $(DESTDIR)$(TMPFILESDIR)/owlsync.conf
	install -m 0644 owlsync.ini.example $(DESTDIR)$(SYSCONFDIR)/owlsync/owlsync.ini.example
	install -m 0644 $(SQL_FILES) $(DESTDIR)$(SQLDIR)/
	install -m 0644 completion/owlsync.bash $(DESTDIR)$(COMPLETIONDIR)/owlsync
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v systemd-sysusers >/dev/null; then \
	  systemd-sysusers $(SYSUSERSDIR)/owlsync.conf && systemd-tmpfiles --create $(TMPFILESDIR)/owlsync.conf; \
	  echo "user owlsync and its directories made; then: systemctl daemon-reload"; fi

# Removes what install put in (not the user, /var/lib/owlsync or the spool:
# they hold state and bundles).
uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	-rmdir $(DESTDIR)$(SQLDIR) $(DESTDIR)$(DATADIR)/owlsync $(DESTDIR)$(SYSCONFDIR)/owlsync 2>/dev/null

# ---- release: make dist, make deb ----
DIST      := owlsync-$(VERSION)
DEB_DIR   ?= $(BUILD)/deb

# owlsync-VERSION.tar.gz: HEAD's files (git archive) and a COMMIT file with
# HEAD's git description, so a build from the tarball, without .git, says the
# version and commit that a build from the checkout says (and, built with the
# same flags, is the same bytes: tests/e2e/70_package.bats).
dist:
	@[ -e .git ] || { echo "make dist: needs the git checkout"; exit 2; }
	@git diff --quiet HEAD -- 2>/dev/null || echo "make dist: uncommitted changes are left out: the tarball is HEAD"
	$(Q)tmp=$$(mktemp -d) && \
	  git describe --tags --match 'v[0-9]*' --always --abbrev=12 HEAD > $$tmp/COMMIT && \
	  git archive --format=tar.gz --prefix=$(DIST)/ --add-file=$$tmp/COMMIT -o $(DIST).tar.gz.tmp HEAD; \
	  rc=$$?; rm -rf $$tmp; [ $$rc = 0 ] && mv -f $(DIST).tar.gz.tmp $(DIST).tar.gz && echo "$(DIST).tar.gz"

# owlsync_VERSION_ARCH.deb (here, for apt install ./owlsync_*.deb), built by
# dpkg-buildpackage from the dist tarball unpacked in DEB_DIR (nothing of
# BUILD is reused; outside a checkout, from a copy of the tree without build
# output), then checked by lintian (debian/owlsync.lintian-overrides). Installs
# the Debian packages it needs first (deps-package).
deb: deps-package $(if $(wildcard .git),dist)
	$(Q)[ "$$(sed -n '1s/^owlsync (\([^)]*\)).*/\1/p' debian/changelog)" = "$(VERSION)" ] || \
	  { echo "make deb: debian/changelog's version is not VERSION ($(VERSION))"; exit 2; }
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/$(DIST)
	$(if $(wildcard .git),tar -xzf $(DIST).tar.gz -C $(DEB_DIR), \
	  tar -cf - --exclude=./build --exclude=./build-asan --exclude=./$(FUZZ_BUILD) --exclude=./owlsync \
	    --exclude='./owlsync[-_]*' . | tar -xf - -C $(DEB_DIR)/$(DIST))
	cd $(DEB_DIR)/$(DIST) && dpkg-buildpackage -us -uc
	lintian --fail-on error,warning --display-info --pedantic --info $(DEB_DIR)/owlsync_$(VERSION)_*.changes
	cp $(DEB_DIR)/owlsync_$(VERSION)_*.deb .
	@ls owlsync_$(VERSION)_*.deb

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
	rm -rf build build-asan $(FUZZ_BUILD) owlsync owlsync-*.tar.gz owlsync_*.deb
