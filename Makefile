# ignition — a microVM monitor for Linux/KVM (x86_64).
# Targets: all (default), test, unit, asan, guest, bench, format, format-check, clean.
# Out-of-tree build in $(BUILD); `make SAN=1` builds with ASan+UBSan into build/asan.

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

SRCS := $(sort $(shell find src -name '*.c'))
MAIN_SRC := src/core/main.c
LIB_SRCS := $(filter-out $(MAIN_SRC),$(SRCS))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
MAIN_OBJ := $(MAIN_SRC:%.c=$(BUILD)/%.o)
TEST_SRCS := $(sort $(wildcard tests/unit/test_*.c))
TEST_FAKE_SRCS := $(sort $(filter-out $(TEST_SRCS),$(wildcard tests/unit/*.c)))
TEST_FAKE_OBJS := $(TEST_FAKE_SRCS:%.c=$(BUILD)/%.o)
TEST_BINS := $(TEST_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all unit unit-bins asan test guest guest-tests bench format format-check clean
all: $(BUILD)/ignition

$(BUILD)/ignition: $(MAIN_OBJ) $(BUILD)/libignition.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libignition.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(TEST_FAKE_OBJS) $(BUILD)/libignition.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(TEST_LDLIBS)

# Unit tests: every device model, no KVM needed.
unit-bins: $(TEST_BINS)
unit: $(TEST_BINS) $(BUILD)/ignition
	@tests/run-unit.sh $(TEST_BINS)

# The same unit tests under AddressSanitizer + UndefinedBehaviorSanitizer.
asan:
	$(MAKE) SAN=1 unit

# Guest assets (kernels, rootfs) into guest/out/, from Debian packages only.
guest:
	$(MAKE) -C guest

# Everything: unit tests, sanitizer run, guest tests under KVM. Ends with "N passed, N failed".
test:
	@tests/run-all.sh

guest-tests: $(BUILD)/ignition
	@tests/guest/run.sh

bench: $(BUILD)/ignition
	bench/boot.sh

FORMAT_FILES = $(shell find src tests -name '*.[ch]')
format:
	clang-format -i $(FORMAT_FILES)
format-check:
	@clang-format --dry-run --Werror $(FORMAT_FILES) && echo "format-check: clean"

clean:
	rm -rf build

-include $(shell find $(BUILD) -type f -name '*.d' 2>/dev/null)
