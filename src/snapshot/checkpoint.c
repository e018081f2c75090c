/* In-place checkpoint and reset (checkpoint.h). */
#include "snapshot/checkpoint.h"

#include "core/vcpu_state.h"
#include "devices/virtio/net.h"
#include "devices/vmgenid.h"
#include "snapshot/layer.h"
#include "snapshot/snapshot.h"
#include "util/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int fail(int ret, char *err, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(int ret, char *err, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
	return ret;
}

static void drop_state(struct checkpoint *c)
{
	snap_writer_free(&c->state);
	free(c->vcpus);
	c->vcpus = NULL;
	c->nr_vcpus = 0;
	c->valid = false;
}

void checkpoint_free(struct checkpoint *c)
{
	drop_state(c);
	if (c->mem)
		munmap(c->mem, c->mem_size);
	memset(c, 0, sizeof(*c));
}

static uint8_t *map_private(size_t size, int fd)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_NORESERVE | (fd < 0 ? MAP_ANONYMOUS : 0), fd, 0);

	if (p == MAP_FAILED)
		return NULL;
	madvise(p, size, MADV_DONTDUMP);
	return p;
}

int checkpoint_from_memory_file(struct checkpoint *c, struct machine *m, int memfd,
				const struct layer_chain *layers)
{
	size_t size = m->vm.gm.map_size;

	if (c->mem)
		munmap(c->mem, c->mem_size);
	c->mem = map_private(size, memfd);
	if (!c->mem)
		return -errno;
	c->mem_size = size;
	return layers ? layer_chain_apply(layers, c->mem) : 0;
}

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)(const void *)p;

	for (size_t i = 0; i < GMEM_PAGE_SIZE / 8; i++)
		if (w[i])
			return false;
	return true;
}

/* The first checkpoint of a booted VM: copy RAM's non-zero pages (zero ones stay untouched
 * in the anonymous mapping, which reads as zeros and costs nothing). */
static int copy_all(struct checkpoint *c, const struct gmem *gm)
{
	const uint8_t *ram = gm->map;

	c->mem = map_private(gm->map_size, -1);
	if (!c->mem)
		return -errno;
	c->mem_size = gm->map_size;
	for (size_t off = 0; off < gm->map_size; off += GMEM_PAGE_SIZE)
		if (!page_is_zero(ram + off))
			memcpy(c->mem + off, ram + off, GMEM_PAGE_SIZE);
	return 0;
}

/* Copy the pages set in `bits` from `from` to `to` (both RAM-offset layout).  Pages. */
static uint64_t copy_pages(uint8_t *to, const uint8_t *from, const uint64_t *bits, uint64_t n)
{
	uint64_t pos = 0, run, total = 0;

	while ((run = gmem_bitmap_next_run(bits, n, &pos))) {
		memcpy(to + (pos << GMEM_PAGE_SHIFT), from + (pos << GMEM_PAGE_SHIFT),
		       run << GMEM_PAGE_SHIFT);
		total += run;
		pos += run;
	}
	return total;
}

/* Decode the state image's vCPU records once, so a reset only loads them. */
static int decode_state(struct checkpoint *c, unsigned nr_vcpus, char *err, size_t n)
{
	char why[200];
	int ret;

	ret = snap_file_parse(&c->f, c->state.buf, c->state.len, why, sizeof(why));
	if (ret)
		return fail(ret, err, n, "checkpoint state: %s", why);
	c->vcpus = calloc(nr_vcpus, sizeof(*c->vcpus));
	if (!c->vcpus)
		return fail(-ENOMEM, err, n, "out of memory");
	c->nr_vcpus = nr_vcpus;
	for (unsigned i = 0; i < nr_vcpus; i++) {
		char id[16];

		snprintf(id, sizeof(id), "vcpu%u", i);
		ret = vcpu_state_load(&c->vcpus[i], &c->f, id);
		if (ret)
			return fail(ret, err, n, "checkpoint state: vCPU %u: %s", i,
				    strerror(-ret));
	}
	return 0;
}

int checkpoint_take(struct checkpoint *c, struct machine *m, char *err, size_t n)
{
	struct vm *vm = &m->vm;
	bool paused_here = false;
	int ret;

	if (!vm->dirty.on)
		return fail(-ENOTSUP, err, n, "checkpoints need --track-dirty");
	ret = vm_pause(vm);
	if (ret && ret != -EALREADY)
		return fail(ret, err, n, "cannot pause the VM: %s", strerror(-ret));
	paused_here = ret == 0;
	devmgr_quiesce(&vm->dm);
	drop_state(c);
	ret = vm_dirty_sync(vm);
	if (ret) {
		fail(ret, err, n, "cannot read the dirty-page log: %s", strerror(-ret));
		goto out;
	}
	if (!c->mem)
		ret = copy_all(c, &vm->gm);
	else
		copy_pages(c->mem, vm->gm.map, vm->dirty.acc[VM_DIRTY_RESET], vm->dirty.nr_pages);
	if (ret) {
		fail(ret, err, n, "cannot keep a copy of guest memory: %s", strerror(-ret));
		goto out;
	}
	vm_dirty_clear(vm, VM_DIRTY_RESET);
	snap_writer_init(&c->state);
	ret = snapshot_capture(m, &c->state);
	if (ret) {
		fail(ret, err, n, "cannot capture the VM's state: %s", strerror(-ret));
		goto out;
	}
	ret = decode_state(c, vm->cfg.nr_vcpus, err, n);
	if (ret)
		goto out;
	ret = machine_disks_checkpoint(m);
	if (ret) {
		fail(ret, err, n, "cannot checkpoint the disks: %s", strerror(-ret));
		goto out;
	}
	c->valid = true;
	c->resets = 0;
out:
	if (ret)
		drop_state(c);
	if (paused_here)
		vm_resume(vm);
	return ret;
}

/* Back ends start over and the VM keeps who it is now: each NIC keeps its current MAC (the
 * device record brought back the checkpoint's) and its link bounces, so the guest re-probes it
 * and renews its lease (and sees slirp's connections as gone). */
static void restart_backends(struct machine *m)
{
	for (int i = 0; i < m->cfg.nr_nets; i++) {
		if (!m->nets[i])
			continue;
		if (m->cfg.nets[i].has_mac &&
		    virtio_net_set_mac_after_restore(m->nets[i], m->cfg.nets[i].mac))
			continue;
		virtio_net_bounce_link(m->nets[i]);
	}
}

int checkpoint_reset(struct checkpoint *c, struct machine *m, unsigned flags,
		     struct reset_stats *st, char *err, size_t n)
{
	struct vm *vm = &m->vm;
	struct reset_stats s = { 0 };
	uint64_t t0 = now_us(), t;
	bool paused_here = false;
	char why[200];
	int ret;

	if (!c->valid)
		return fail(-ENOENT, err, n, "no checkpoint (Ctrl-A c marks one)");
	ret = vm_pause(vm);
	if (ret && ret != -EALREADY)
		return fail(ret, err, n, "cannot pause the VM: %s", strerror(-ret));
	paused_here = ret == 0;
	devmgr_quiesce(&vm->dm);
	t = now_us();
	s.pause_us = t - t0;
	ret = vm_dirty_sync(vm);
	if (ret) {
		fail(ret, err, n, "cannot read the dirty-page log: %s", strerror(-ret));
		goto stop;
	}
	/* Pages put back differ from what the last snapshot holds: the next diff takes them. */
	for (uint64_t w = 0; w < gmem_bitmap_words(vm->dirty.nr_pages); w++)
		vm->dirty.acc[VM_DIRTY_SNAPSHOT][w] |= vm->dirty.acc[VM_DIRTY_RESET][w];
	s.pages = copy_pages(vm->gm.map, c->mem, vm->dirty.acc[VM_DIRTY_RESET], vm->dirty.nr_pages);
	vm_dirty_clear(vm, VM_DIRTY_RESET);
	ret = vm_remap_memory(vm);
	if (ret) {
		fail(ret, err, n, "cannot make KVM drop its mappings: %s", strerror(-ret));
		goto stop;
	}
	s.memory_us = now_us() - t;
	t = now_us();
	ret = machine_disks_rollback(m);
	if (ret) {
		fail(ret, err, n, "cannot roll the disks back: %s", strerror(-ret));
		goto stop;
	}
	s.disks_us = now_us() - t;
	t = now_us();
	/* As a restore: the interrupt controllers before the devices (whose restore re-raises
	 * pending lines), the vCPUs last.  Devices are reset first: restore loads only onto a
	 * device at power-on state, and reset drops in-flight work and host connections. */
	devmgr_reset(&vm->dm);
	devmgr_irqs_hold(&vm->dm); /* raised lines wait for the vCPUs' LAPICs */
	ret = vm_restore_state(vm, &c->f, why, sizeof(why));
	if (!ret)
		ret = devmgr_restore(&vm->dm, &c->f, why, sizeof(why));
	if (ret) {
		fail(ret, err, n, "cannot reload the device state: %s", why);
		goto stop;
	}
	ret = vm_load_vcpus(vm, c->vcpus);
	if (ret) {
		fail(ret, err, n, "cannot reload the vCPU state: %s", strerror(-ret));
		goto stop;
	}
	devmgr_irqs_release(&vm->dm);
	restart_backends(m);
	if ((flags & RESET_NEW_GENERATION) && m->vmgenid) {
		ret = vmgenid_new_generation(m->vmgenid);
		if (ret) /* the rollback itself is complete */
			log_warn("reset: no new VMGenID: %s", strerror(-ret));
	}
	s.state_us = now_us() - t;
	c->resets++;
	if (paused_here)
		vm_resume(vm);
	s.total_us = now_us() - t0;
	if (st)
		*st = s;
	return 0;
stop:
	/* Part of the VM is rolled back and part is not: it must not run on like that. */
	vm_request_stop(vm, VM_STOP_ERROR);
	if (paused_here)
		vm_resume(vm);
	return ret;
}
