# ignition — a microVM monitor for Linux/KVM (x86_64).
# Targets: all (default), test, unit, asan, guest, bench, fuzz, fuzz-smoke, format, format-check,
# clean.
# Out-of-tree build in $(BUILD); `make SAN=1` builds with ASan+UBSan into build/asan; `make fuzz`
# builds the libFuzzer targets (clang) into build/fuzz.

SAN ?=
ifeq ($(SAN),1)
BUILD ?= build/asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
else
BUILD ?= build
SANFLAGS :=
endif

CC ?= cc
CFLAGS ?= -O2 -g
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wpointer-arith -Wcast-align -Wwrite-strings -Wvla -Wformat=2 -Wundef \
	-Wno-unused-parameter -Wimplicit-fallthrough
ALL_CFLAGS := -std=gnu11 $(WARN) $(CFLAGS) $(SANFLAGS) -D_GNU_SOURCE -Isrc -MMD -MP -pthread
LDLIBS := -pthread
TEST_LDLIBS := $(shell pkg-config --libs cmocka 2>/dev/null || echo -lcmocka) -pthread
# libslirp (Debian libslirp-dev): user-mode networking, src/net/slirp.c.
SLIRP_CFLAGS := $(shell pkg-config --cflags slirp 2>/dev/null || echo -I/usr/include/slirp)
SLIRP_LIBS := $(shell pkg-config --libs slirp 2>/dev/null || echo -lslirp)
ALL_CFLAGS += $(SLIRP_CFLAGS)
LDLIBS += $(SLIRP_LIBS)
TEST_LDLIBS += $(SLIRP_LIBS)
# liburing (Debian liburing-dev): virtio-blk's asynchronous I/O, src/devices/virtio/blk.c.
URING_LIBS := $(shell pkg-config --libs liburing 2>/dev/null || echo -luring)
LDLIBS += $(URING_LIBS)
TEST_LDLIBS += $(URING_LIBS)
# libseccomp (Debian libseccomp-dev): the per-thread filters, src/core/seccomp.c.
SECCOMP_LIBS := $(shell pkg-config --libs libseccomp 2>/dev/null || echo -lseccomp)
LDLIBS += $(SECCOMP_LIBS)
TEST_LDLIBS += $(SECCOMP_LIBS)
# jansson (Debian libjansson-dev): JSON for snapshot manifests and the control socket.
JANSSON_CFLAGS := $(shell pkg-config --cflags jansson 2>/dev/null)
JANSSON_LIBS := $(shell pkg-config --libs jansson 2>/dev/null || echo -ljansson)
ALL_CFLAGS += $(JANSSON_CFLAGS)
LDLIBS += $(JANSSON_LIBS)
TEST_LDLIBS += $(JANSSON_LIBS)
# zlib (Debian zlib1g-dev): the CRC-32 of snapshot state files, src/snapshot/snap.c.
# libmicrohttpd: the HTTP of the REST API (src/api/) and of the guest's metadata service (MMDS);
# only the HTTP module links it (HTTP_MOD_SRCS below)
MHD_CFLAGS := $(shell pkg-config --cflags libmicrohttpd 2>/dev/null)
MHD_LIBS := $(shell pkg-config --libs libmicrohttpd 2>/dev/null || echo -lmicrohttpd)
ALL_CFLAGS += $(MHD_CFLAGS)
TEST_LDLIBS += $(MHD_LIBS)

# The GUI (src/ui/, docs/gui.md): SDL2 for the --gui window, libvncserver for --vnc, libpng
# for screenshots.  Only the GUI module links them (UI_MOD_SRCS below).
GUI_CFLAGS := $(shell pkg-config --cflags sdl2 libvncserver libpng 2>/dev/null)
GUI_LIBS := $(shell pkg-config --libs sdl2 libvncserver libpng 2>/dev/null || echo -lSDL2 -lvncserver -lpng16)
ALL_CFLAGS += $(GUI_CFLAGS)
TEST_LDLIBS += $(GUI_LIBS)

ZLIB_LIBS := $(shell pkg-config --libs zlib 2>/dev/null || echo -lz)
LDLIBS += $(ZLIB_LIBS)
TEST_LDLIBS += $(ZLIB_LIBS)

SRCS := $(sort $(shell find src -name '*.c'))
MAIN_SRC := src/core/main.c
# Modules (src/util/module.h): shared objects beside the executable, loaded only by a process
# that needs them, so that a console VM does not map and relocate their libraries at every
# launch.  Their objects are position-independent; the unit tests link them in directly.
# src/exports.list names the executable's functions they call.
UI_MOD_SRCS := src/ui/ui.c src/ui/sdl.c src/ui/vnc.c src/ui/screenshot.c src/ui/shadow.c
UI_MOD_OBJS := $(UI_MOD_SRCS:%.c=$(BUILD)/%.o)
HTTP_MOD_SRCS := src/api/server.c src/api/mmds_http.c
HTTP_MOD_OBJS := $(HTTP_MOD_SRCS:%.c=$(BUILD)/%.o)
MOD_OBJS := $(UI_MOD_OBJS) $(HTTP_MOD_OBJS)
MODULES := $(BUILD)/ignition-ui.so $(BUILD)/ignition-http.so
LIB_SRCS := $(filter-out $(MAIN_SRC) $(UI_MOD_SRCS) $(HTTP_MOD_SRCS),$(SRCS))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
MAIN_OBJ := $(MAIN_SRC:%.c=$(BUILD)/%.o)
TEST_SRCS := $(sort $(wildcard tests/unit/test_*.c))
TEST_FAKE_SRCS := $(sort $(filter-out $(TEST_SRCS),$(wildcard tests/unit/*.c)))
TEST_FAKE_OBJS := $(TEST_FAKE_SRCS:%.c=$(BUILD)/%.o)
TEST_BINS := $(TEST_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all install unit unit-bins asan test test-browser guest guest-gui guest-browser guest-fuzz guest-tests bench fuzz fuzz-smoke format format-check \
	clean
all: $(BUILD)/ignition $(MODULES) $(BUILD)/firecracker $(BUILD)/uffd_handler

# The page-fault handler that the API test serves a Uffd snapshot load with (docs/api.md).
$(BUILD)/uffd_handler: tests/api/uffd_handler.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(JANSSON_LIBS)

# Firecracker mode (src/api/fc_main.c): argv[0] "firecracker" selects it, so a tool that execs
# `firecracker` gets ignition.  `make install FIRECRACKER=1` puts both names on the PATH.
$(BUILD)/firecracker: $(BUILD)/ignition
	ln -sf ignition $@

$(BUILD)/ignition: $(MAIN_OBJ) $(BUILD)/libignition.a src/exports.list
	$(CC) $(ALL_CFLAGS) -Wl,--dynamic-list=src/exports.list -o $@ $(MAIN_OBJ) \
		$(BUILD)/libignition.a $(LDLIBS)

# Only a module's table is visible outside it (fewer symbols and relocations to load).
$(MOD_OBJS): ALL_CFLAGS += -fPIC -fvisibility=hidden
$(MOD_OBJS): Makefile

# A module must bind completely against the executable and its own libraries: loading it into
# `ignition --version` with every symbol bound at once (LD_BIND_NOW) fails the build on a
# symbol missing from src/exports.list, not a user's run.
MODULE_LINK = $(CC) $(ALL_CFLAGS) -shared -o $@.tmp $(filter %.o,$^) $(1) && \
	ASAN_OPTIONS=verify_asan_link_order=0 LD_BIND_NOW=1 LD_PRELOAD=$(abspath $@.tmp) \
		$(BUILD)/ignition --version >/dev/null && mv $@.tmp $@
$(BUILD)/ignition-ui.so: $(UI_MOD_OBJS) $(BUILD)/ignition
	$(call MODULE_LINK,$(GUI_LIBS))
$(BUILD)/ignition-http.so: $(HTTP_MOD_OBJS) $(BUILD)/ignition
	$(call MODULE_LINK,$(MHD_LIBS))

$(BUILD)/libignition.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(TEST_FAKE_OBJS) $(MOD_OBJS) $(BUILD)/libignition.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(TEST_LDLIBS)

# Unit tests: every device model, no KVM needed.
unit-bins: $(TEST_BINS)
unit: $(TEST_BINS) $(BUILD)/ignition $(MODULES)
	@tests/run-unit.sh $(TEST_BINS)

# The same unit tests under AddressSanitizer + UndefinedBehaviorSanitizer.
asan:
	$(MAKE) SAN=1 unit

# Guest assets (kernels, rootfs) into guest/out/, from Debian packages only.
guest:
	$(MAKE) -C guest

# The desktop guest (cage + foot; mmdebstrap, needs root) into guest/out/rootfs-gui.ext4.
guest-gui:
	$(MAKE) -C guest gui

# The browser guest (Firefox ESR in cage; mmdebstrap, needs root) into
# guest/out/rootfs-browser.ext4, for `ignition browser` (docs/browser.md).
guest-browser:
	$(MAKE) -C guest browser

# The fuzz harness images (planted, libpng) into guest/out/fuzz/ (docs/fuzzing.md).
guest-fuzz:
	$(MAKE) -C guest fuzz

# Everything: unit tests, sanitizer run, guest tests under KVM. Ends with "N passed, N failed".
test:
	@tests/run-all.sh

guest-tests: $(BUILD)/ignition $(MODULES)
	@tests/guest/run.sh

# The disposable browser's checks on their own (boot 8 of `make test`: tests/guest/browser.sh).
test-browser: $(BUILD)/ignition $(MODULES)
	@tests/guest/browser.sh

bench: $(BUILD)/ignition $(MODULES)
	bench/boot.sh

# `make install [PREFIX=/usr/local] [DESTDIR=...]` copies build/ignition to $(PREFIX)/bin; with
# FIRECRACKER=1 also a symlink $(PREFIX)/bin/firecracker -> ignition: started under that name,
# ignition takes Firecracker's command line and serves its REST API (docs/api.md).
PREFIX ?= /usr/local
.PHONY: install
install: $(BUILD)/ignition $(MODULES)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/ignition
	install -m 0755 $(BUILD)/ignition $(DESTDIR)$(PREFIX)/bin/ignition
	install -m 0644 $(MODULES) $(DESTDIR)$(PREFIX)/lib/ignition/
ifeq ($(FIRECRACKER),1)
	ln -sfn ignition $(DESTDIR)$(PREFIX)/bin/firecracker
endif

# libFuzzer targets (docs/architecture.md, "Fuzzing"): fuzz/fuzz_<name>.c, each linked with the
# library sources, the shared harness fuzz/harness.c and the fake guest memory of the unit tests,
# all compiled by clang with ASan + UBSan and coverage instrumentation.
FUZZ_CC ?= clang
FUZZ_BUILD := build/fuzz
# A smoke run: the seeds and a short mutation of each target, to catch crashes (a long campaign
# is `make fuzz-smoke FUZZ_SECONDS=600` or a target run by hand, docs/architecture.md).
FUZZ_SECONDS ?= 10
FUZZ_SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# clang's -Wcast-align fires on every cast to a wider type (gcc's only on strict-alignment
# targets), and it flags the GNU struct kvm_msrs idiom in vcpu.c: both are off here, while UBSan
# checks the alignment of every access that is actually made.
FUZZ_WARN := $(WARN) -Wno-cast-align -Wno-gnu-variable-sized-type-not-at-end
FUZZ_CFLAGS := -std=gnu11 $(FUZZ_WARN) $(CFLAGS) $(FUZZ_SANFLAGS) -fsanitize=fuzzer-no-link \
	-D_GNU_SOURCE -Isrc -Itests/unit -MMD -MP -pthread $(SLIRP_CFLAGS) $(JANSSON_CFLAGS) $(GUI_CFLAGS)
FUZZ_SRCS := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_NAMES := $(FUZZ_SRCS:fuzz/%.c=%)
FUZZ_BINS := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/%)
FUZZ_SMOKE := $(FUZZ_NAMES:%=fuzz-smoke-%)
FUZZ_LIB_SRCS := $(LIB_SRCS) $(filter-out $(FUZZ_SRCS),$(wildcard fuzz/*.c)) tests/unit/fake_virtq.c
FUZZ_LIB_OBJS := $(FUZZ_LIB_SRCS:%.c=$(FUZZ_BUILD)/%.o)
.PHONY: $(FUZZ_SMOKE)

fuzz: $(FUZZ_BINS)

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_BUILD)/libignition-fuzz.a: $(FUZZ_LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_BINS): $(FUZZ_BUILD)/%: $(FUZZ_BUILD)/fuzz/%.o $(FUZZ_BUILD)/libignition-fuzz.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(SLIRP_LIBS) $(URING_LIBS) $(SECCOMP_LIBS) $(ZLIB_LIBS) $(JANSSON_LIBS) $(MHD_LIBS) -pthread

# Each target runs FUZZ_SECONDS (niced) from a fresh corpus that it seeds itself
# (IGN_FUZZ_SEED_DIR), with its temporary files in the same throw-away directory, and prints one
# "PASS|FAIL fuzz/<name> (...)" line; a crashing input is kept in build/fuzz/artifacts/.
fuzz-smoke: $(FUZZ_SMOKE)
$(FUZZ_SMOKE): fuzz-smoke-%: $(FUZZ_BUILD)/%
	@mkdir -p $(FUZZ_BUILD)/artifacts
	@base=/dev/shm; [ -d $$base ] && [ -w $$base ] || base=$${TMPDIR:-/tmp}; \
	dir=$$(mktemp -d -p $$base ign-fuzz-smoke.XXXXXX) && mkdir $$dir/corpus $$dir/tmp || exit 1; \
	TMPDIR=$$dir/tmp IGN_FUZZ_SEED_DIR=$$dir/corpus nice -n 10 $< -max_total_time=$(FUZZ_SECONDS) \
		-print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/artifacts/$*- $$dir/corpus \
		>$$dir/log 2>&1; \
	rc=$$?; \
	runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$dir/log); \
	cov=$$(grep -a -o 'cov: [0-9]*' $$dir/log | tail -n 1); \
	if [ $$rc -eq 0 ] && [ -n "$$runs" ]; then \
		echo "PASS fuzz/$* ($$runs runs in $(FUZZ_SECONDS) s, $$cov)"; \
	else \
		grep -a -v -e '^#[0-9]' -e '^INFO:' $$dir/log | tail -n 40 | sed 's/^/    | /'; \
		echo "FAIL fuzz/$* (exit status $$rc; crashing input in $(FUZZ_BUILD)/artifacts/)"; \
		rc=1; \
	fi; \
	rm -rf $$dir; exit $$rc

FORMAT_FILES = $(shell find src tests fuzz guest/fuzz -name '*.[ch]')
format:
	clang-format -i $(FORMAT_FILES)
format-check:
	@clang-format --dry-run --Werror $(FORMAT_FILES) && echo "format-check: clean"

clean:
	rm -rf build

-include $(shell find $(BUILD) -type f -name '*.d' 2>/dev/null)
