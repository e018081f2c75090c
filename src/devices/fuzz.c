/* The fuzz device (see fuzz.h): registers, the two shared windows, the doorbell callback, the
 * DSDT node and the command-line entry, and a debug mode that serves inputs from files. */
#include "devices/fuzz.h"

#include "arch/x86/layout.h"
#include "core/devmgr.h"
#include "core/power.h"
#include "platform/acpi/aml.h"
#include "snapshot/snap.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The windows must lie in the hole: above the MMIO device window, below the IOAPIC, apart. */
_Static_assert(LAYOUT_FUZZ_INPUT_ADDR >= LAYOUT_MMIO_START + LAYOUT_MMIO_SIZE, "fuzz input");
_Static_assert(LAYOUT_FUZZ_INPUT_ADDR + LAYOUT_FUZZ_INPUT_MAX <= LAYOUT_FUZZ_COV_ADDR,
	       "fuzz windows overlap");
_Static_assert(LAYOUT_FUZZ_COV_ADDR + LAYOUT_FUZZ_COV_MAX <= LAYOUT_IOAPIC_ADDR, "fuzz cov");
_Static_assert(LAYOUT_FUZZ_INPUT_ADDR % 4096 == 0 && LAYOUT_FUZZ_COV_ADDR % 4096 == 0,
	       "fuzz windows must be page aligned (KVM memory slots)");

#define PAGE 4096ull

/* Debug mode's inputs (read once at attach). */
struct fuzz_debug {
	uint8_t **data;
	size_t *len;
	size_t n, next;
	const struct power_sink *power;
};

/* What a snapshot keeps (SNAP_REC_FUZZ). */
struct fuzzdev_state {
	uint32_t input_len;
	uint32_t crash_code;
};

struct fuzzdev {
	struct fuzzdev_state st;
	uint8_t *input, *cov; /* host mappings of the windows */
	uint64_t input_size, cov_size;
	uint64_t regs_gpa; /* 0 until attached */
	void (*doorbell)(void *ctx, enum fuzz_doorbell cmd, uint32_t code);
	void *doorbell_ctx;
	uint64_t rung[FUZZ_DOORBELL_CRASH + 1];
	struct fuzz_debug *debug;
};

static uint64_t ops_read(void *dev, uint64_t off, unsigned size)
{
	struct fuzzdev *f = dev;

	if (size != 4)
		return 0;
	switch (off) {
	case FUZZDEV_REG_MAGIC:
		return FUZZDEV_MAGIC;
	case FUZZDEV_REG_VERSION:
		return FUZZDEV_VERSION;
	case FUZZDEV_REG_INPUT_GPA:
		return LAYOUT_FUZZ_INPUT_ADDR & 0xffffffffu;
	case FUZZDEV_REG_INPUT_GPA_HI:
		return LAYOUT_FUZZ_INPUT_ADDR >> 32;
	case FUZZDEV_REG_INPUT_SIZE:
		return f->input_size;
	case FUZZDEV_REG_COV_GPA:
		return LAYOUT_FUZZ_COV_ADDR & 0xffffffffu;
	case FUZZDEV_REG_COV_GPA_HI:
		return LAYOUT_FUZZ_COV_ADDR >> 32;
	case FUZZDEV_REG_COV_SIZE:
		return f->cov_size;
	case FUZZDEV_REG_INPUT_LEN:
		return __atomic_load_n(&f->st.input_len, __ATOMIC_ACQUIRE);
	case FUZZDEV_REG_CRASH_CODE:
		return __atomic_load_n(&f->st.crash_code, __ATOMIC_ACQUIRE);
	default:
		return 0;
	}
}

static void ops_write(void *dev, uint64_t off, unsigned size, uint64_t val)
{
	struct fuzzdev *f = dev;
	uint32_t code = 0;

	if (size != 4)
		return;
	if (off == FUZZDEV_REG_CRASH_CODE) {
		__atomic_store_n(&f->st.crash_code, (uint32_t)val, __ATOMIC_RELEASE);
		return;
	}
	if (off != FUZZDEV_REG_DOORBELL || val < FUZZ_DOORBELL_SNAPSHOT_ME ||
	    val > FUZZ_DOORBELL_CRASH)
		return;
	if (val == FUZZ_DOORBELL_CRASH)
		code = __atomic_load_n(&f->st.crash_code, __ATOMIC_ACQUIRE);
	__atomic_add_fetch(&f->rung[val], 1, __ATOMIC_RELAXED);
	if (f->doorbell)
		f->doorbell(f->doorbell_ctx, (enum fuzz_doorbell)val, code);
}

/* Device (FUZZ) { _HID "IGNT0002", _UID 0, _CRS { the registers, the input window, the
 * coverage map } }: the guest's resource tree then holds all three (nothing else claims
 * them), and the command line carries the register address for the guest library. */
static int ops_describe(void *dev, const struct dm_dev *slot, struct dm_describe *ctx)
{
	struct fuzzdev *f = dev;
	struct aml res;
	size_t mark;
	int ret;

	if (ctx->dsdt) {
		aml_init(&res);
		ret = aml_res_mem32(&res, (uint32_t)slot->base, (uint32_t)slot->len, true) ?:
			aml_res_mem32(&res, (uint32_t)LAYOUT_FUZZ_INPUT_ADDR,
				      (uint32_t)f->input_size, true) ?:
			aml_res_mem32(&res, (uint32_t)LAYOUT_FUZZ_COV_ADDR, (uint32_t)f->cov_size,
				      true);
		ret = ret ?: aml_device_begin(ctx->dsdt, FUZZDEV_NODE, &mark) ?:
			aml_name_id(ctx->dsdt, "_HID", FUZZDEV_HID) ?:
			aml_name_integer(ctx->dsdt, "_UID", 0) ?:
			aml_name_resources(ctx->dsdt, "_CRS", &res) ?: aml_end(ctx->dsdt, mark);
		aml_free(&res);
		if (ret)
			return ret;
	}
	if (ctx->cmdline)
		return fuzzdev_cmdline(f, ctx->cmdline, ctx->cmdline_size);
	return 0;
}

/* SNAP_REC_FUZZ payload, version 1: u32 input_len, u32 crash_code.  The windows' contents are
 * not saved: they are the host fuzzer's, which rewrites them for every run. */
#define FUZZ_STATE_VERSION 1

static int ops_save(void *dev, struct snap_writer *w, const char *id)
{
	struct fuzzdev *f = dev;

	snap_rec_begin(w, SNAP_REC_FUZZ, FUZZ_STATE_VERSION, id);
	snap_put_u32(w, __atomic_load_n(&f->st.input_len, __ATOMIC_ACQUIRE));
	snap_put_u32(w, __atomic_load_n(&f->st.crash_code, __ATOMIC_ACQUIRE));
	return w->err;
}

static int ops_restore(void *dev, const struct snap_file *f, const char *id)
{
	struct fuzzdev *d = dev;
	struct fuzzdev_state st;
	struct snap_reader r;

	if (snap_file_find(f, SNAP_REC_FUZZ, id, &r) || r.version != FUZZ_STATE_VERSION)
		return -EINVAL;
	st.input_len = snap_get_u32(&r);
	st.crash_code = snap_get_u32(&r);
	/* A length the window cannot hold would let the guest read past the input. */
	if (snap_reader_done(&r) || st.input_len > d->input_size)
		return -EINVAL;
	__atomic_store_n(&d->st.input_len, st.input_len, __ATOMIC_RELEASE);
	__atomic_store_n(&d->st.crash_code, st.crash_code, __ATOMIC_RELEASE);
	return 0;
}

/* A guest reboot: no input, no code.  The windows belong to the host fuzzer and stay. */
static void ops_reset(void *dev)
{
	struct fuzzdev *f = dev;

	__atomic_store_n(&f->st.input_len, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&f->st.crash_code, 0, __ATOMIC_RELEASE);
}

static void ops_destroy(void *dev)
{
	fuzzdev_destroy(dev);
}

const struct dev_ops fuzzdev_ops = {
	.name = "fuzz",
	/* Every size reaches the device, which answers only 4-byte accesses: others read 0. */
	.sizes = BUS_SZ_ANY,
	.read = ops_read,
	.write = ops_write,
	.reset = ops_reset,
	.describe = ops_describe,
	.save = ops_save,
	.restore = ops_restore,
	.rec = { SNAP_REC_FUZZ, FUZZ_STATE_VERSION },
	.destroy = ops_destroy,
};

/* Shared (no copy-on-write: no page is ever the zero page first and a private copy later) and
 * populated (every page exists before KVM maps it): the guest and the host always touch the
 * same pages.  With a private, lazily faulted window, a run on a kvm_pvm host once lost the
 * guest's first coverage writes (boot 1 in docs/fuzzing.md, "Checks"). */
static void *map_window(uint64_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

int fuzzdev_create(const struct fuzzdev_config *cfg, const struct fuzzdev_mem_hook *hook,
		   struct fuzzdev **out)
{
	uint64_t in_size = cfg && cfg->input_size ? cfg->input_size : FUZZDEV_INPUT_SIZE;
	uint64_t cov_size = cfg && cfg->cov_size ? cfg->cov_size : FUZZDEV_COV_SIZE;
	struct fuzzdev *f;
	int ret;

	if (in_size % PAGE || in_size > LAYOUT_FUZZ_INPUT_MAX || cov_size < PAGE ||
	    cov_size > LAYOUT_FUZZ_COV_MAX || (cov_size & (cov_size - 1)))
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->input_size = in_size;
	f->cov_size = cov_size;
	f->input = map_window(in_size);
	f->cov = map_window(cov_size);
	if (!f->input || !f->cov) {
		ret = -ENOMEM;
		goto err;
	}
	if (hook && hook->map) {
		ret = hook->map(hook->ctx, LAYOUT_FUZZ_INPUT_ADDR, f->input, in_size);
		if (!ret)
			ret = hook->map(hook->ctx, LAYOUT_FUZZ_COV_ADDR, f->cov, cov_size);
		if (ret)
			goto err;
	}
	*out = f;
	return 0;
err:
	/* A slot the hook did register keeps pointing at the unmapped memory: harmless, the VM
	 * is torn down after a failed device add and never runs. */
	fuzzdev_destroy(f);
	return ret;
}

static void debug_free(struct fuzz_debug *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->data[i]);
	free(d->data);
	free(d->len);
	free(d);
}

void fuzzdev_destroy(struct fuzzdev *f)
{
	if (!f)
		return;
	if (f->input)
		munmap(f->input, f->input_size);
	if (f->cov)
		munmap(f->cov, f->cov_size);
	debug_free(f->debug);
	free(f);
}

struct add_arg {
	const struct fuzzdev_config *cfg;
};

static int dm_map(void *ctx, uint64_t gpa, void *hva, uint64_t size)
{
	int ret = devmgr_mem_slot(ctx, gpa, hva, size);

	/* No VM (unit tests): the windows exist on the host only. */
	return ret == -ENOSYS ? 0 : ret;
}

static int add_create(struct devmgr *dm, struct dm_dev *slot, const void *arg, void **dev)
{
	const struct add_arg *a = arg;
	const struct fuzzdev_mem_hook hook = { .map = dm_map, .ctx = dm };
	struct fuzzdev *f;
	int ret;

	if (slot->base + slot->len > 0x100000000ull)
		return -ERANGE; /* the DSDT describes it with a Memory32Fixed */
	ret = fuzzdev_create(a->cfg, &hook, &f);
	if (ret)
		return ret;
	f->regs_gpa = slot->base;
	*dev = f;
	return 0;
}

int fuzzdev_add(struct devmgr *dm, const struct fuzzdev_config *cfg, struct fuzzdev **out)
{
	const struct dm_slot_req req = { .id = FUZZDEV_ID,
					 .kind = DM_MMIO,
					 .len = FUZZDEV_REG_SIZE };
	const struct add_arg a = { .cfg = cfg };
	void *dev;
	int ret = devmgr_add(dm, &req, &fuzzdev_ops, add_create, ops_destroy, &a, &dev);

	if (!ret && out)
		*out = dev;
	return ret;
}

void fuzzdev_on_doorbell(struct fuzzdev *f,
			 void (*fn)(void *ctx, enum fuzz_doorbell cmd, uint32_t code), void *ctx)
{
	f->doorbell_ctx = ctx;
	f->doorbell = fn;
}

void fuzzdev_input(struct fuzzdev *f, uint8_t **ptr, size_t *size)
{
	*ptr = f->input;
	*size = f->input_size;
}

int fuzzdev_set_input_len(struct fuzzdev *f, size_t len)
{
	if (len > f->input_size)
		return -EINVAL;
	/* Release: the input's bytes are in the window before the guest can read the length. */
	__atomic_store_n(&f->st.input_len, (uint32_t)len, __ATOMIC_RELEASE);
	return 0;
}

void fuzzdev_coverage(struct fuzzdev *f, uint8_t **ptr, size_t *size)
{
	*ptr = f->cov;
	*size = f->cov_size;
}

uint64_t fuzzdev_regs_gpa(const struct fuzzdev *f)
{
	return f->regs_gpa;
}

int fuzzdev_cmdline(const struct fuzzdev *f, char *buf, size_t size)
{
	size_t len = strnlen(buf, size);
	int n;

	if (!f->regs_gpa || len >= size)
		return -EINVAL;
	n = snprintf(buf + len, size - len, " ignition.fuzz=0x%llx",
		     (unsigned long long)f->regs_gpa);
	if (n < 0 || (size_t)n >= size - len) {
		buf[len] = '\0';
		return -ENOSPC;
	}
	return 0;
}

uint64_t fuzzdev_doorbells(const struct fuzzdev *f, enum fuzz_doorbell cmd)
{
	if (cmd < FUZZ_DOORBELL_SNAPSHOT_ME || cmd > FUZZ_DOORBELL_CRASH)
		return 0;
	return __atomic_load_n(&f->rung[cmd], __ATOMIC_RELAXED);
}

/* ---- Debug mode ---- */

static int read_file(const char *path, size_t max, uint8_t **data, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint8_t *buf;
	size_t got = 0;
	ssize_t r;

	if (fd < 0)
		return -errno;
	buf = malloc(max ? max : 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (got < max && (r = read(fd, buf + got, max - got)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			free(buf);
			close(fd);
			return (int)r;
		}
		got += (size_t)r;
	}
	close(fd);
	*data = buf;
	*len = got;
	return 0;
}

static size_t cov_bytes_set(const struct fuzzdev *f)
{
	size_t n = 0;

	for (uint64_t i = 0; i < f->cov_size; i++)
		n += f->cov[i] != 0;
	return n;
}

/* The debug doorbell callback (vCPU thread): no reset, so each DONE carries on in place. */
static void debug_doorbell(void *ctx, enum fuzz_doorbell cmd, uint32_t code)
{
	static const char *const names[] = { "?", "SNAPSHOT_ME", "DONE", "CRASH" };
	struct fuzzdev *f = ctx;
	struct fuzz_debug *d = f->debug;
	char line[160];
	int n;

	n = snprintf(line, sizeof(line),
		     "fuzz-debug: doorbell %s code %#x, coverage bytes set %zu\n", names[cmd], code,
		     cov_bytes_set(f));
	if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
	if (cmd == FUZZ_DOORBELL_CRASH || (cmd == FUZZ_DOORBELL_DONE && d->next >= d->n)) {
		n = snprintf(line, sizeof(line), "fuzz-debug: stopping the VM\n");
		if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0)
			return;
		power_request(d->power, VM_STOP_POWEROFF);
		return;
	}
	if (d->next >= d->n)
		return;
	memcpy(f->input, d->data[d->next], d->len[d->next]);
	memset(f->cov, 0, f->cov_size);
	if (fuzzdev_set_input_len(f, d->len[d->next]))
		return;
	n = snprintf(line, sizeof(line), "fuzz-debug: input %zu (%zu bytes) in the window\n",
		     d->next, d->len[d->next]);
	d->next++;
	if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

int fuzzdev_debug_attach(struct fuzzdev *f, const char *files, const struct power_sink *power)
{
	struct fuzz_debug *d = calloc(1, sizeof(*d));
	char *list = strdup(files), *save = NULL;
	size_t cap = 1;
	int ret = -ENOMEM;

	for (const char *p = files; *p; p++)
		cap += *p == ':';
	if (!d || !list)
		goto err;
	d->data = calloc(cap, sizeof(*d->data));
	d->len = calloc(cap, sizeof(*d->len));
	if (!d->data || !d->len)
		goto err;
	for (char *tok = strtok_r(list, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
		ret = read_file(tok, f->input_size, &d->data[d->n], &d->len[d->n]);
		if (ret) {
			log_error("fuzz-debug: input '%s': %s", tok, strerror(-ret));
			goto err;
		}
		d->n++;
	}
	d->power = power;
	free(list);
	debug_free(f->debug);
	f->debug = d;
	fuzzdev_on_doorbell(f, debug_doorbell, f);
	log_info("fuzz-debug: %zu inputs; registers at %#llx", d->n,
		 (unsigned long long)f->regs_gpa);
	return 0;
err:
	free(list);
	debug_free(d);
	return ret;
}
