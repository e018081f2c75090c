/* Snapshot create and restore (layout in snapshot.h, format in docs/snapshots.md). */
#include "snapshot/snapshot.h"

#include "core/machine.h"
#include "core/metrics.h"
#include "core/uffd.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/blk_cow.h"
#include "devices/virtio/net.h"
#include "devices/vmgenid.h"
#include "snapshot/checkpoint.h"
#include "snapshot/layer.h"
#include "snapshot/snap.h"
#include "util/fileio.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE		 4096u
#define IGNITION_VERSION "0.1"

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void snapshot_default_dir(const char *parent, char *out, size_t size)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(out, size, "%s/%04d%02d%02d-%02d%02d%02d-%03ld", parent, tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

static int write_all(int fd, const void *buf, size_t len, off_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

static int create_file(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	return fd < 0 ? -errno : fd;
}

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)(const void *)p;

	for (unsigned i = 0; i < PAGE / 8; i++)
		if (w[i])
			return false;
	return true;
}

/* Guest RAM as one file laid out like the host mapping (low RAM, then the part above 4 GiB),
 * with holes for zero pages.  Pages an anonymous mapping never touched are zero without
 * looking (mincore); a file-backed one (a restored VM) is read in full. */
static int write_memory(int dirfd, const struct gmem *gm, uint64_t *written)
{
	const uint8_t *base = gm->map;
	size_t pages = gm->map_size / PAGE;
	unsigned char *resident = NULL;
	int fd, ret = 0;

	*written = 0;
	fd = create_file(dirfd, "memory");
	if (fd < 0)
		return fd;
	if (ftruncate(fd, (off_t)gm->map_size) < 0) {
		ret = -errno;
		goto out;
	}
	/* Pages of a handler-served VM (gm->lazy) the guest never touched are not resident
	 * either, but they hold the handler's bytes: read those in full too. */
	if (!gm->file_backed && !gm->lazy) {
		resident = malloc(pages);
		if (!resident) {
			ret = -ENOMEM;
			goto out;
		}
		if (mincore(gm->map, gm->map_size, resident) < 0) {
			free(resident);
			resident = NULL; /* then look at every page */
		}
	}
	for (size_t i = 0; i < pages;) {
		size_t run = 0;

		while (i + run < pages && (!resident || (resident[i + run] & 1)) &&
		       !page_is_zero(base + (i + run) * PAGE))
			run++;
		if (run) {
			ret = write_all(fd, base + i * PAGE, run * PAGE, (off_t)(i * PAGE));
			if (ret)
				goto out;
			*written += run * PAGE;
			i += run;
		} else {
			i++;
		}
	}
	if (fsync(fd) < 0)
		ret = -errno;
out:
	free(resident);
	close(fd);
	return ret;
}

/* A Diff layer's memory: a sparse file of RAM's size holding only the pages set in `bits`
 * (zero pages among them stay holes: the bitmap, not the file, says which pages the layer
 * has). */
static int write_diff_memory(int dirfd, const struct gmem *gm, const uint64_t *bits,
			     uint64_t *written)
{
	uint64_t pages = gm->map_size / PAGE, pos = 0, run;
	const uint8_t *base = gm->map;
	int fd, ret = 0;

	*written = 0;
	fd = create_file(dirfd, "memory");
	if (fd < 0)
		return fd;
	if (ftruncate(fd, (off_t)gm->map_size) < 0) {
		ret = -errno;
		goto out;
	}
	while (!ret && (run = gmem_bitmap_next_run(bits, pages, &pos))) {
		for (uint64_t i = pos; !ret && i < pos + run;) {
			uint64_t k = 0;

			while (i + k < pos + run && !page_is_zero(base + (i + k) * PAGE))
				k++;
			if (k) {
				ret = write_all(fd, base + i * PAGE, k * PAGE, (off_t)(i * PAGE));
				*written += k * PAGE;
				i += k;
			} else {
				i++;
			}
		}
		pos += run;
	}
	if (!ret && fsync(fd) < 0)
		ret = -errno;
out:
	close(fd);
	return ret;
}

/* Write disk i of m into the new file dirfd/name and fsync it: the merged image of a
 * copy-on-write disk (base blocks where the guest wrote none, its blocks where it did), a
 * copy of a restore's private copy, or a copy of the image at its path. */
static int save_disk(struct machine *m, int i, int dirfd, const char *name)
{
	const struct blk_cow *cow = m->disks[i] ? virtio_blk_cow(m->disks[i]) : NULL;
	int in = -1, out, ret;

	if (!cow && m->private_fds[i] < 0) {
		in = open(m->cfg.disks[i].path, O_RDONLY | O_CLOEXEC);
		if (in < 0)
			return -errno;
	}
	out = create_file(dirfd, name);
	if (out < 0) {
		ret = out;
		goto close_in;
	}
	if (cow)
		ret = blk_cow_export(cow, out);
	else
		ret = layer_copy_file(in >= 0 ? in : m->private_fds[i], out);
	if (!ret && fsync(out) < 0)
		ret = -errno;
	close(out);
close_in:
	if (in >= 0)
		close(in);
	return ret;
}

static json_t *config_json(const struct machine_config *c)
{
	json_t *disks = json_array(), *nets = json_array();
	json_t *o;

	for (int i = 0; i < c->nr_disks; i++)
		json_array_append_new(disks,
				      json_pack("{s:s, s:b, s:s?, s:s?}", "path", c->disks[i].path,
						"read_only", c->disks[i].read_only, "file",
						c->disks[i].read_only ? NULL : "disk", "id",
						c->disks[i].id[0] ? c->disks[i].id : NULL));
	for (int i = 0; i < c->nr_nets; i++) {
		const struct machine_net *n = &c->nets[i];
		char mac[18];

		snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", n->mac[0], n->mac[1],
			 n->mac[2], n->mac[3], n->mac[4], n->mac[5]);
		json_array_append_new(
			nets, json_pack("{s:s, s:s?, s:s?, s:s?}", "kind",
					n->kind == MACHINE_NET_TAP ? "tap" : "user", "tap",
					n->kind == MACHINE_NET_TAP ? n->tap : NULL, "mac",
					n->has_mac ? mac : NULL, "id", n->id[0] ? n->id : NULL));
	}
	o = json_pack("{s:I, s:i, s:b, s:o, s:o, s:b, s:b, s:s, s:s, s:s}", "mem_mib",
		      (json_int_t)c->mem_mib, "vcpus", (int)c->smp, "acpi", !c->no_acpi, "disks",
		      disks, "nets", nets, "rng", !c->no_rng, "balloon", c->balloon, "kernel",
		      c->kernel, "initrd", c->initrd, "cmdline", c->cmdline);
	if (o && c->vsock_path[0])
		json_object_set_new(
			o, "vsock",
			json_pack("{s:i, s:s}", "cid", (int)c->vsock_cid, "path", c->vsock_path));
	if (o && c->huge_pages)
		json_object_set_new(o, "huge_pages", json_string("2M"));
	return o;
}

static int write_manifest(int dirfd, const struct machine_config *c,
			  const struct snapshot_stats *st, size_t state_len, const char *parent)
{
	char created[32];
	struct timespec ts;
	struct tm tm;
	json_t *m;
	char *text;
	int fd, ret;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
	m = json_pack("{s:s, s:s?, s:s, s:s, s:i, s:o, s:{s:I, s:I, s:I}}", "type",
		      parent ? "Diff" : "Full", "parent", parent, "created", created,
		      "ignition_version", IGNITION_VERSION, "format_version", SNAP_FORMAT_VERSION,
		      "config", config_json(c), "sizes", "memory_bytes",
		      (json_int_t)st->memory_bytes, "memory_written",
		      (json_int_t)st->memory_written, "state_bytes", (json_int_t)state_len);
	if (!m)
		return -ENOMEM;
	text = json_dumps(m, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(m);
	if (!text)
		return -ENOMEM;
	fd = create_file(dirfd, "manifest.json");
	if (fd < 0) {
		free(text);
		return fd;
	}
	ret = write_all(fd, text, strlen(text), 0);
	if (!ret)
		ret = write_all(fd, "\n", 1, (off_t)strlen(text));
	if (!ret && fsync(fd) < 0)
		ret = -errno;
	close(fd);
	free(text);
	return ret;
}

/* `path` made absolute against the directory the machine was created in (lexically: the
 * event loop's filter has no getcwd or readlink). */
static void absolute(const struct machine *m, const char *path, char *out, size_t size)
{
	if (path[0] == '/' || snprintf(out, size, "%s/%s", m->cwd, path) >= (int)size)
		snprintf(out, size, "%s", path);
}

/* Remove what a failed snapshot left in its temporary directory. */
static void remove_tmp(const char *tmp, int dirfd)
{
	static const char *const names[] = { "state", "memory", "manifest.json" };
	char name[16];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unlinkat(dirfd, names[i], 0);
	for (int i = 0; i < MACHINE_MAX_DISKS; i++) {
		snprintf(name, sizeof(name), "disk%d", i);
		unlinkat(dirfd, name, 0);
	}
	rmdir(tmp);
}

static int capture_state(struct machine *m, struct snap_writer *w, const struct layer_info *li)
{
	unsigned n = m->vm.cfg.nr_vcpus;
	struct vcpu_state *vs = calloc(n, sizeof(*vs));
	int ret;

	if (!vs)
		return -ENOMEM;
	ret = vm_save_vcpus(&m->vm, vs);
	if (!ret) {
		machine_config_save(&m->cfg, w);
		ret = vm_save_state(&m->vm, w);
	}
	for (unsigned i = 0; !ret && i < n; i++) {
		char id[16];

		snprintf(id, sizeof(id), "vcpu%u", i);
		vcpu_state_save(&vs[i], w, id);
	}
	if (!ret)
		ret = devmgr_save(&m->vm.dm, w);
	if (!ret) {
		if (li)
			layer_save(w, li);
		ret = snap_writer_finish(w);
	}
	free(vs);
	return ret;
}

int snapshot_capture(struct machine *m, struct snap_writer *w)
{
	return capture_state(m, w, NULL);
}

int snapshot_create(struct machine *m, const char *dir, struct snapshot_stats *stats, char *err,
		    size_t n)
{
	struct snapshot_stats st = { .memory_bytes = m->vm.gm.map_size };
	uint64_t t0 = now_us(), t;
	/* With dirty tracking, a VM whose memory descends from a snapshot writes a Diff. */
	bool diff = m->vm.dirty.on && m->snap_parent[0];
	struct layer_info li = { .kind = diff ? LAYER_DIFF : LAYER_FULL };
	char tmp[PATH_MAX];
	struct snap_writer w;
	bool paused_here = false;
	int dirfd = -1, fd, ret;

	if (strlen(dir) + 16 >= sizeof(tmp))
		return err_set(-ENAMETOOLONG, err, n, "snapshot directory name too long");
	if (access(dir, F_OK) == 0)
		return err_set(-EEXIST, err, n, "'%s' already exists", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp-%d", dir, (int)getpid());
	if (mkdir(tmp, 0700) < 0)
		return err_set(-errno, err, n, "cannot create '%s': %s", tmp, strerror(errno));
	dirfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		ret = err_set(-errno, err, n, "cannot open '%s': %s", tmp, strerror(errno));
		rmdir(tmp);
		return ret;
	}
	ret = vm_pause(&m->vm);
	if (ret && ret != -EALREADY) {
		err_set(ret, err, n, "cannot pause the VM: %s", strerror(-ret));
		goto out;
	}
	paused_here = ret == 0;
	devmgr_quiesce(&m->vm.dm);
	t = now_us();
	st.pause_us = t - t0;

	/* Harvest the dirty log now, with every writer stopped; the snapshot consumer's pages
	 * are forgotten only once this snapshot exists (a failed one leaves them for the next). */
	ret = m->vm.dirty.on ? vm_dirty_sync(&m->vm) : 0;
	if (ret) {
		err_set(ret, err, n, "cannot read the dirty-page log: %s", strerror(-ret));
		goto out;
	}
	ret = layer_new_id(li.id);
	if (ret) {
		err_set(ret, err, n, "cannot draw a snapshot id: %s", strerror(-ret));
		goto out;
	}
	if (diff) {
		memcpy(li.parent_id, m->snap_id, sizeof(li.parent_id));
		snprintf(li.parent, sizeof(li.parent), "%s", m->snap_parent);
		li.nr_pages = m->vm.dirty.nr_pages;
		li.bits = m->vm.dirty.acc[VM_DIRTY_SNAPSHOT]; /* borrowed */
		st.diff = true;
		st.diff_pages = gmem_bitmap_count(li.bits, li.nr_pages);
	}
	snap_writer_init(&w);
	ret = capture_state(m, &w, &li);
	if (ret) {
		err_set(ret, err, n, "cannot capture the VM's state: %s", strerror(-ret));
		snap_writer_free(&w);
		goto out;
	}
	fd = create_file(dirfd, "state");
	ret = fd < 0 ? fd : write_all(fd, w.buf, w.len, 0);
	if (!ret && fsync(fd) < 0)
		ret = -errno;
	if (fd >= 0)
		close(fd);
	st.state_us = now_us() - t;
	t = now_us();
	if (ret) {
		err_set(ret, err, n, "cannot write the state file: %s", strerror(-ret));
		snap_writer_free(&w);
		goto out;
	}
	ret = diff ? write_diff_memory(dirfd, &m->vm.gm, li.bits, &st.memory_written)
		   : write_memory(dirfd, &m->vm.gm, &st.memory_written);
	st.memory_us = now_us() - t;
	t = now_us();
	if (ret) {
		err_set(ret, err, n, "cannot write the memory file: %s", strerror(-ret));
		snap_writer_free(&w);
		goto out;
	}
	for (int i = 0; i < m->cfg.nr_disks; i++) {
		char name[16];

		if (m->cfg.disks[i].read_only)
			continue;
		snprintf(name, sizeof(name), "disk%d", i);
		ret = save_disk(m, i, dirfd, name);
		if (ret) {
			err_set(ret, err, n, "cannot copy disk '%s': %s", m->cfg.disks[i].path,
				strerror(-ret));
			snap_writer_free(&w);
			goto out;
		}
	}
	st.disks_us = now_us() - t;
	t = now_us();
	ret = write_manifest(dirfd, &m->cfg, &st, w.len, diff ? li.parent : NULL);
	snap_writer_free(&w);
	if (ret) {
		err_set(ret, err, n, "cannot write the manifest: %s", strerror(-ret));
		goto out;
	}
	/* Everything durable, then the one step that makes it a snapshot. */
	if (fsync(dirfd) < 0) {
		ret = err_set(-errno, err, n, "fsync '%s': %s", tmp, strerror(errno));
		goto out;
	}
	if (rename(tmp, dir) < 0) {
		ret = err_set(-errno, err, n, "cannot rename '%s' to '%s': %s", tmp, dir,
			      strerror(errno));
		goto out;
	}
	ret = layer_sync_dir_of(dir);
	if (ret) /* the snapshot is complete; only its durability across a crash is in doubt */
		log_warn("fsync of the directory holding '%s': %s", dir, strerror(-ret));
	ret = 0;
	/* The VM's memory now equals this snapshot's: the next one is a Diff over it. */
	if (m->vm.dirty.on) {
		vm_dirty_clear(&m->vm, VM_DIRTY_SNAPSHOT);
		absolute(m, dir, m->snap_parent, sizeof(m->snap_parent));
		memcpy(m->snap_id, li.id, sizeof(m->snap_id));
	}
	st.sync_us = now_us() - t;
out:
	if (ret)
		remove_tmp(tmp, dirfd);
	close(dirfd);
	if (paused_here)
		vm_resume(&m->vm);
	st.total_us = now_us() - t0;
	if (stats)
		*stats = st;
	if (!ret && st.diff)
		metrics_diff_snapshot_time(st.total_us);
	else if (!ret)
		metrics_snapshot_time(st.total_us);
	return ret;
}

/* A private disk over the snapshot's disk `name`, which the restored guest never writes: an
 * unlinked file in the snapshot directory that is a reflink of it where the file system has
 * them (d->base_fd -1), else an empty sparse file of its size that virtio-blk uses as a
 * copy-on-write overlay over the snapshot's file, opened read-only as d->base_fd.  Either
 * way the cost does not grow with the disk's size.  0 or -errno. */
static int private_disk(int dirfd, const char *name, struct machine_disk_fds *d)
{
	int in = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	struct stat st;
	int out, ret;

	if (in < 0)
		return -errno;
	if (fstat(in, &st) < 0) {
		ret = -errno;
		goto close_in;
	}
	/* Of the disk's size: the overlay as it is, a reflink's target replaced by the clone. */
	out = open_unnamed(dirfd, ".", (uint64_t)st.st_size);
	if (out < 0) {
		ret = out;
		goto close_in;
	}
	if (ioctl(out, FICLONE, in) == 0) {
		close(in);
		d->fd = out;
		return 0;
	}
	/* No reflink (ext4: EOPNOTSUPP; across file systems: EXDEV; EINVAL...).  Whatever the
	 * reason, as layer_copy_file() falls back to copying: the overlay needs no more of the file
	 * system than a sparse file.  (A base the kernel cannot read, which a copy would
	 * report here, shows as I/O errors of the guest's reads instead.) */
	d->fd = out;
	d->base_fd = in;
	return 0;

close_in:
	close(in);
	return ret;
}

/* Every record must be one this restore reads: a known type, an id that names something in
 * the rebuilt machine, and no (type, id) twice.  A record that would be silently skipped means
 * a snapshot from something else (a newer ignition, a hand-edited file).  The records of the
 * VM itself are listed here; every other one is a device's, and the device manager answers
 * for it from what each device's ops table declares (devmgr_check_record): this loader keeps
 * no list of device record types that a new device could be missing from. */
static int check_records(const struct snap_file *f, struct machine *m, char *why, size_t n)
{
	struct snap_reader r, q;

	for (uint32_t i = 0; snap_file_record(f, i, &r) == 0; i++) {
		bool ok;
		unsigned idx;
		char tail;
		int ret;

		switch (r.type) {
		case SNAP_REC_MACHINE:
			ok = !strcmp(r.id, "machine");
			break;
		case SNAP_REC_VCPU:
			ok = sscanf(r.id, "vcpu%u%c", &idx, &tail) == 1 && idx < m->cfg.smp;
			break;
		case SNAP_REC_IRQCHIP:
			ok = !strcmp(r.id, "irqchip");
			break;
		case SNAP_REC_PIT:
			ok = !strcmp(r.id, "pit");
			break;
		case SNAP_REC_CLOCK:
			ok = !strcmp(r.id, "kvmclock");
			break;
		case SNAP_REC_LAYER:
			ok = !strcmp(r.id, "layer");
			break;
		default:
			ret = devmgr_check_record(&m->vm.dm, r.type, r.version, r.id, why, n);
			if (ret)
				return ret;
			ok = true;
			break;
		}
		if (!ok) {
			snprintf(why, n, "a %s record for '%s', which this machine does not have",
				 snap_rec_name(r.type), r.id);
			return -EINVAL;
		}
		for (uint32_t j = 0; j < i; j++) {
			if (snap_file_record(f, j, &q) == 0 && q.type == r.type &&
			    !strcmp(q.id, r.id)) {
				snprintf(why, n, "two %s records for '%s'", snap_rec_name(r.type),
					 r.id);
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* Each restore is a machine of its own (DESIGN.md §5): every NIC gets the MAC given for this
 * run (mac= with --net) or a fresh one, and its link bounces so that the guest re-probes it and
 * renews its lease.  After the vCPUs are loaded: an interrupt raised before would land in a
 * LAPIC that the vCPU state then overwrites. */
static void new_identity(struct machine *m, const struct snapshot_overrides *ov,
			 const bool keep_mac[MACHINE_MAX_NETS])
{
	for (int i = 0; i < m->cfg.nr_nets; i++) {
		struct machine_net *c = &m->cfg.nets[i];
		uint8_t mac[6];

		if (!m->nets[i])
			continue;
		if (ov && ov->nr_nets && ov->nets[i].has_mac)
			memcpy(mac, ov->nets[i].mac, sizeof(mac));
		else if (keep_mac[i] && c->has_mac)
			memcpy(mac, c->mac, sizeof(mac));
		else
			virtio_net_random_mac(mac);
		if (virtio_net_set_mac_after_restore(m->nets[i], mac))
			continue; /* not a usable MAC (the CLI refuses those): keep the old one */
		memcpy(c->mac, mac, sizeof(mac));
		c->has_mac = true;
		log_info("virtio-net%d: MAC %02x:%02x:%02x:%02x:%02x:%02x", i, mac[0], mac[1],
			 mac[2], mac[3], mac[4], mac[5]);
		virtio_net_bounce_link(m->nets[i]);
	}
}

int snapshot_override_backends(struct machine_config *c, const struct snapshot_overrides *ov,
			       bool keep_mac[MACHINE_MAX_NETS], char *err, size_t n)
{
	bool named = false;

	for (int i = 0; i < c->nr_nets; i++)
		named |= c->nets[i].id[0] != '\0';
	if (ov->nr_net_backends > c->nr_nets)
		return err_set(-EINVAL, err, n,
			       "network_overrides: %d interfaces given, the snapshot has %d",
			       ov->nr_net_backends, c->nr_nets);
	for (int k = 0; k < ov->nr_net_backends; k++) {
		const struct snapshot_net_override *o = &ov->net_backends[k];
		struct machine_net *net;
		int i = named ? -1 : k;

		for (int j = 0; named && j < c->nr_nets; j++)
			if (!strcmp(c->nets[j].id, o->id))
				i = j;
		if (i < 0)
			return err_set(-EINVAL, err, n,
				       "network_overrides: the snapshot has no network interface "
				       "`%.64s`",
				       o->id);
		if (keep_mac[i])
			return err_set(-EINVAL, err, n,
				       "network_overrides: interface `%.64s` is given twice",
				       o->id);
		net = &c->nets[i];
		if (o->kind == MACHINE_NET_TAP &&
		    (!o->tap || !o->tap[0] || strlen(o->tap) >= sizeof(net->tap)))
			return err_set(-EINVAL, err, n,
				       "network_overrides: `%.64s`: invalid TAP device name",
				       o->id);
		if (strlen(o->id) >= sizeof(net->id))
			return err_set(-EINVAL, err, n, "network_overrides: iface_id too long");
		if (!named)
			snprintf(net->id, sizeof(net->id), "%s", o->id);
		net->kind = o->kind;
		snprintf(net->tap, sizeof(net->tap), "%s",
			 o->kind == MACHINE_NET_TAP ? o->tap : "");
		keep_mac[i] = true;
	}
	return 0;
}

int snapshot_restore(struct machine *m, const char *dir, const struct snapshot_overrides *ov,
		     const struct machine_env *env, char *err, size_t n)
{
	bool keep_mac[MACHINE_MAX_NETS] = { false };
	struct machine_env e = *env;
	struct machine_config cfg;
	struct machine_disk_fds disk_fds[MACHINE_MAX_DISKS];
	struct vcpu_state *vs = NULL;
	struct layer_chain *chain = NULL;
	struct layer_info li = { 0 };
	uint8_t *state = NULL;
	struct snap_file f;
	size_t len = 0;
	int dirfd, memfd = -1, ret;
	char why[256];
	struct stat st;
	const char *uffd = ov ? ov->uffd_path : NULL;

	uint64_t t_begin = log_uptime_us(), t_state, t_disks, t_machine, t_vm, t_devs;

	for (int i = 0; i < MACHINE_MAX_DISKS; i++)
		disk_fds[i] = (struct machine_disk_fds){ .fd = -1, .base_fd = -1 };
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return err_set(-errno, err, n, "snapshot '%s': %s", dir, strerror(errno));
	ret = layer_read_state(dirfd, &state, &len);
	if (ret) {
		err_set(ret, err, n, "snapshot '%s': cannot read its state file: %s", dir,
			ret == -EFBIG ? "empty or too large" : strerror(-ret));
		goto out;
	}
	ret = snap_file_parse(&f, state, len, why, sizeof(why));
	if (ret) {
		err_set(ret, err, n, "snapshot '%s': state file refused: %s", dir, why);
		goto out;
	}
	ret = machine_config_load(&cfg, &f, why, sizeof(why));
	if (!ret)
		ret = layer_load(&f, cfg.mem_mib << 20, &li, why, sizeof(why));
	if (ret) {
		err_set(ret, err, n, "snapshot '%s': %s", dir, why);
		goto out;
	}
	if (li.kind == LAYER_DIFF) {
		chain = calloc(1, sizeof(*chain));
		ret = chain ? layer_chain_open(chain, dir, &li, cfg.mem_mib << 20, why, sizeof(why))
			    : -ENOMEM;
		if (ret) {
			err_set(ret, err, n, "snapshot '%s': %s", dir,
				chain ? why : "out of memory");
			free(chain);
			chain = NULL;
			goto out;
		}
	}
	t_state = log_uptime_us();
	if (ov && ov->vsock_path) {
		if (!cfg.vsock_path[0]) {
			ret = err_set(-EINVAL, err, n, "--vsock: the snapshot has no vsock device");
			goto out;
		}
		if (ov->vsock_cid && ov->vsock_cid != cfg.vsock_cid) {
			ret = err_set(-EINVAL, err, n,
				      "--vsock: the snapshot's guest CID is %u, not %u",
				      cfg.vsock_cid, ov->vsock_cid);
			goto out;
		}
		snprintf(cfg.vsock_path, sizeof(cfg.vsock_path), "%s", ov->vsock_path);
	}
	if (ov && ov->nr_nets) {
		if (ov->nr_nets != cfg.nr_nets) {
			ret = err_set(-EINVAL, err, n,
				      "--net given %d times; the snapshot has %d "
				      "network devices",
				      ov->nr_nets, cfg.nr_nets);
			goto out;
		}
		for (int i = 0; i < cfg.nr_nets; i++) {
			char id[MACHINE_ID_MAX];

			/* The API's name for the interface stays: only the back end changes. */
			memcpy(id, cfg.nets[i].id, sizeof(id));
			cfg.nets[i] = ov->nets[i];
			memcpy(cfg.nets[i].id, id, sizeof(id));
		}
	}
	if (ov && ov->nr_net_backends &&
	    (ret = snapshot_override_backends(&cfg, ov, keep_mac, err, n)))
		goto out;
	for (int i = 0; i < cfg.nr_disks; i++) {
		char name[16];

		if (ov && ov->disks[i]) {
			snprintf(cfg.disks[i].path, sizeof(cfg.disks[i].path), "%s", ov->disks[i]);
			continue;
		}
		if (cfg.disks[i].read_only)
			continue; /* shared as it is: nothing writes it */
		snprintf(name, sizeof(name), "disk%d", i);
		/* cfg.disks[i].path keeps the path the snapshot recorded (where the disk came
		 * from); the device is built on the private disk's files. */
		ret = private_disk(dirfd, name, &disk_fds[i]);
		if (ret) {
			err_set(ret, err, n, "snapshot '%s': disk %d (%s): %s", dir, i, name,
				strerror(-ret));
			goto out;
		}
	}
	e.disk_fds = disk_fds;
	t_disks = log_uptime_us();
	if (uffd && chain) {
		ret = err_set(
			-EINVAL, err, n,
			"snapshot '%s' is a Diff: its memory file holds only the pages of its "
			"layer, which a page-fault handler cannot serve alone; flatten it "
			"first (ignition snapshot flatten)",
			dir);
		goto out;
	}
	if (cfg.huge_pages && !uffd) {
		ret = err_set(
			-EINVAL, err, n,
			"snapshot '%s' is of a VM with huge pages: as in Firecracker it loads "
			"only with a page-fault handler (mem_backend Uffd), not by mapping its "
			"memory file",
			dir);
		goto out;
	}
	/* A Diff maps its chain's root; the layers are laid over it once the VM exists.  With
	 * a handler the memory file is optional (an in-place checkpoint maps it if present). */
	memfd = chain ? dup(chain->l[0].memfd) : openat(dirfd, "memory", O_RDONLY | O_CLOEXEC);
	if (memfd < 0 && uffd && errno == ENOENT) {
		/* served by the handler alone */
	} else if (memfd < 0 || fstat(memfd, &st) < 0) {
		ret = err_set(-errno, err, n, "snapshot '%s': memory file: %s", dir,
			      strerror(errno));
		goto out;
	} else if ((uint64_t)st.st_size != cfg.mem_mib << 20) {
		ret = err_set(-EINVAL, err, n,
			      "snapshot '%s': the memory file has %lld bytes, the machine %llu MiB",
			      dir, (long long)st.st_size, (unsigned long long)cfg.mem_mib);
		goto out;
	}
	e.mem_fd = uffd ? -1 : memfd;
	e.mem_uffd = uffd != NULL;
	ret = machine_create(m, &cfg, &e, err, n);
	if (ret)
		goto out;
	/* Before anything touches guest memory: every first touch waits for the handler. */
	if (uffd && (ret = uffd_backend_connect(&m->vm.gm, uffd, &m->uffd, err, n)))
		goto out_machine;
	if (chain) {
		ret = layer_chain_apply(chain, m->vm.gm.map);
		if (ret) {
			err_set(ret, err, n, "snapshot '%s': cannot read its layers' memory: %s",
				dir, strerror(-ret));
			goto out_machine;
		}
		log_info("restore: %d layers laid over '%s'", chain->n - 1, chain->l[0].dir);
	}
	if (m->vm.dirty.on && ov && ov->checkpoint && memfd >= 0) {
		ret = checkpoint_from_memory_file(ov->checkpoint, m, memfd, chain);
		if (ret) {
			err_set(ret, err, n, "cannot map the snapshot's memory for resets: %s",
				strerror(-ret));
			goto out_machine;
		}
	}
	absolute(m, dir, m->snap_parent, sizeof(m->snap_parent));
	memcpy(m->snap_id, li.id, sizeof(m->snap_id));
	/* The machine keeps the private disks open (a later snapshot copies a plain one from
	 * there; a copy-on-write disk's device has its own fds on both files). */
	for (int i = 0; i < MACHINE_MAX_DISKS; i++) {
		m->private_fds[i] = disk_fds[i].fd;
		disk_fds[i].fd = -1;
	}
	t_machine = log_uptime_us();
	/* The interrupt controllers first: device restores re-raise pending interrupt lines
	 * (a UART edge, a virtio level), which must land in the restored IOAPIC and PICs. */
	ret = check_records(&f, m, why, sizeof(why));
	/* Lines raised by device restores wait for the vCPUs' LAPICs (devmgr_irqs_release). */
	devmgr_irqs_hold(&m->vm.dm);
	m->vm.clock_as_saved = ov && ov->clock_as_saved; /* also for later in-place resets */
	if (!ret)
		ret = vm_restore_state(&m->vm, &f, why, sizeof(why));
	t_vm = log_uptime_us();
	if (!ret)
		ret = devmgr_restore(&m->vm.dm, &f, why, sizeof(why));
	t_devs = log_uptime_us();
	if (ret) {
		err_set(ret, err, n, "snapshot '%s': %s", dir, why);
		goto out_machine;
	}
	ret = vm_setup_vcpus(&m->vm, 0);
	if (ret) {
		err_set(ret, err, n, "cannot create the vCPUs: %s", strerror(-ret));
		goto out_machine;
	}
	vs = calloc(cfg.smp, sizeof(*vs));
	if (!vs) {
		ret = err_set(-ENOMEM, err, n, "out of memory");
		goto out_machine;
	}
	for (unsigned i = 0; i < cfg.smp; i++) {
		char id[16];

		snprintf(id, sizeof(id), "vcpu%u", i);
		ret = vcpu_state_load(&vs[i], &f, id);
		if (ret) {
			err_set(ret, err, n, "snapshot '%s': the %s record is %s", dir, id,
				ret == -ENOENT ? "missing" : "malformed");
			goto out_machine;
		}
	}
	ret = vm_load_vcpus(&m->vm, vs);
	if (ret) {
		err_set(ret, err, n, "snapshot '%s': the vCPU state does not load here: %s", dir,
			strerror(-ret));
		goto out_machine;
	}
	devmgr_irqs_release(&m->vm.dm);
	new_identity(m, ov, keep_mac);
	/* A clone is a new generation: a new VMGenID and its interrupt, raised only now that
	 * the vCPUs' LAPIC state is loaded (loading it would drop an interrupt already in IRR). */
	ret = vmgenid_new_generation(m->vmgenid);
	if (ret) {
		err_set(ret, err, n, "vmgenid: no new generation: %s", strerror(-ret));
		goto out_machine;
	}
	if (m->uffd && (ret = uffd_backend_start(m->uffd, &m->vm, err, n)))
		goto out_machine;
	/* For bench/snapshot.sh (IGNITION_LOG=info): where a restore's time goes. */
	log_info("restore timeline (us since start): begin %llu, state file read and checked "
		 "+%llu, private disks +%llu, VM + memory mapping + devices +%llu (of which KVM "
		 "memory slots %llu), irqchip/PIT/clock +%llu, device state +%llu, vCPUs +%llu",
		 (unsigned long long)t_begin, (unsigned long long)(t_state - t_begin),
		 (unsigned long long)(t_disks - t_state), (unsigned long long)(t_machine - t_disks),
		 (unsigned long long)m->vm.memslot_us, (unsigned long long)(t_vm - t_machine),
		 (unsigned long long)(t_devs - t_vm),
		 (unsigned long long)(log_uptime_us() - t_devs));
	metrics_restore_time(log_uptime_us() - t_begin);
	goto out;
out_machine:
	machine_destroy(m);
out:
	if (chain) {
		layer_chain_close(chain);
		free(chain);
	}
	layer_info_free(&li);
	free(vs);
	free(state);
	if (memfd >= 0)
		close(memfd); /* the mapping keeps the file */
	for (int i = 0; i < MACHINE_MAX_DISKS; i++) {
		if (disk_fds[i].fd >= 0)
			close(disk_fds[i].fd);
		if (disk_fds[i].base_fd >= 0)
			close(disk_fds[i].base_fd);
	}
	close(dirfd);
	return ret;
}
