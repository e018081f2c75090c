/* Snapshot layers: identity, the Diff page bitmap, chain resolution (layer.h). */
#include "snapshot/layer.h"

#include "core/gmem.h"
#include "snapshot/snap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define LAYER_VERSION 1
#define STATE_MAX     (256u << 20) /* a state file is a few hundred KiB; refuse absurd ones */

int layer_new_id(uint8_t id[LAYER_ID_SIZE])
{
	size_t got = 0;

	while (got < LAYER_ID_SIZE) {
		ssize_t r = getrandom(id + got, LAYER_ID_SIZE - got, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		got += (size_t)r;
	}
	return 0;
}

void layer_save(struct snap_writer *w, const struct layer_info *li)
{
	snap_rec_begin(w, SNAP_REC_LAYER, LAYER_VERSION, "layer");
	snap_put_u8(w, (uint8_t)li->kind);
	snap_put_bytes(w, li->id, LAYER_ID_SIZE);
	if (li->kind != LAYER_DIFF)
		return;
	snap_put_bytes(w, li->parent_id, LAYER_ID_SIZE);
	snap_put_str(w, li->parent, PATH_MAX - 1);
	snap_put_u64(w, li->nr_pages);
	for (uint64_t i = 0; i < gmem_bitmap_words(li->nr_pages); i++)
		snap_put_u64(w, li->bits[i]);
}

int layer_load(const struct snap_file *f, uint64_t ram_bytes, struct layer_info *li, char *why,
	       size_t n)
{
	struct snap_reader r;
	uint64_t words;
	uint8_t kind;

	memset(li, 0, sizeof(*li));
	if (snap_file_find(f, SNAP_REC_LAYER, "layer", &r))
		return 0; /* before layers: a Full snapshot */
	if (r.version != LAYER_VERSION) {
		snprintf(why, n, "layer record version %u (this build reads %u)", r.version,
			 LAYER_VERSION);
		return -EINVAL;
	}
	kind = snap_get_u8(&r);
	snap_get_bytes(&r, li->id, LAYER_ID_SIZE);
	if (kind == LAYER_DIFF) {
		li->kind = LAYER_DIFF;
		snap_get_bytes(&r, li->parent_id, LAYER_ID_SIZE);
		snap_get_str(&r, li->parent, sizeof(li->parent));
		li->nr_pages = snap_get_u64(&r);
		if (!r.err && li->nr_pages != ram_bytes >> GMEM_PAGE_SHIFT) {
			snprintf(why, n, "the layer's page bitmap covers %llu pages, RAM has %llu",
				 (unsigned long long)li->nr_pages,
				 (unsigned long long)(ram_bytes >> GMEM_PAGE_SHIFT));
			return -EINVAL;
		}
		words = gmem_bitmap_words(li->nr_pages);
		/* The reader bounds this: a length that does not match fails snap_reader_done. */
		if (!r.err && r.len - r.off == words * 8) {
			li->bits = calloc(words ? words : 1, 8);
			if (!li->bits) {
				snprintf(why, n, "out of memory");
				return -ENOMEM;
			}
			for (uint64_t i = 0; i < words; i++)
				li->bits[i] = snap_get_u64(&r);
			if (li->nr_pages % 64) /* bits past the end must be clear */
				if (li->bits[words - 1] >> (li->nr_pages % 64))
					snap_fail(&r);
		} else {
			snap_fail(&r);
		}
		if (!li->parent[0])
			snap_fail(&r);
	} else if (kind != LAYER_FULL) {
		snap_fail(&r);
	}
	if (snap_reader_done(&r)) {
		layer_info_free(li);
		snprintf(why, n, "malformed layer record");
		return -EINVAL;
	}
	return 0;
}

void layer_info_free(struct layer_info *li)
{
	free(li->bits);
	li->bits = NULL;
}

int layer_read_state(int dirfd, uint8_t **buf, size_t *len)
{
	int fd = openat(dirfd, "state", O_RDONLY | O_CLOEXEC);
	struct stat st;
	size_t got = 0;
	int ret = 0;

	*buf = NULL;
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	if (st.st_size <= 0 || (uint64_t)st.st_size > STATE_MAX) {
		ret = -EFBIG;
		goto out;
	}
	*buf = malloc((size_t)st.st_size);
	if (!*buf) {
		ret = -ENOMEM;
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, *buf + got, (size_t)st.st_size - got);

		if (r <= 0) {
			ret = r < 0 ? -errno : -EIO;
			break;
		}
		got += (size_t)r;
	}
	*len = got;
	if (ret) {
		free(*buf);
		*buf = NULL;
	}
out:
	close(fd);
	return ret;
}

/* Open `dir`'s memory file (it must be ram_bytes long) into e.  0 or -errno with why. */
static int open_memory(struct layer_chain_entry *e, uint64_t ram_bytes, char *why, size_t n)
{
	char path[PATH_MAX + 8];
	struct stat st;

	snprintf(path, sizeof(path), "%s/memory", e->dir);
	e->memfd = open(path, O_RDONLY | O_CLOEXEC);
	if (e->memfd < 0 || fstat(e->memfd, &st) < 0) {
		int err = errno;

		snprintf(why, n, "layer '%s': memory file: %s", e->dir, strerror(err));
		return -err;
	}
	if ((uint64_t)st.st_size != ram_bytes) {
		snprintf(why, n, "layer '%s': the memory file has %lld bytes, RAM is %llu", e->dir,
			 (long long)st.st_size, (unsigned long long)ram_bytes);
		return -EINVAL;
	}
	return 0;
}

/* Where the parent of the layer in `child` is: its recorded path if that is a directory, else
 * the directory of that name beside `child`. */
static int find_parent(const char *child, const char *recorded, char *out, size_t size)
{
	const char *base = strrchr(recorded, '/');
	char beside[PATH_MAX];
	const char *slash = strrchr(child, '/');
	struct stat st;

	if (stat(recorded, &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(out, size, "%s", recorded);
		return 0;
	}
	base = base ? base + 1 : recorded;
	int len = slash ? snprintf(beside, sizeof(beside), "%.*s/%s", (int)(slash - child), child,
				   base)
			: snprintf(beside, sizeof(beside), "%s", base);

	if (len < 0 || len >= (int)sizeof(beside))
		return -ENAMETOOLONG;
	if (stat(beside, &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(out, size, "%s", beside);
		return 0;
	}
	return -ENOENT;
}

int layer_chain_open(struct layer_chain *c, const char *dir, struct layer_info *leaf,
		     uint64_t ram_bytes, char *why, size_t n)
{
	/* Walked leaf first into l[], reversed at the end so that l[0] is the root. */
	uint8_t want[LAYER_ID_SIZE];
	struct layer_info cur = *leaf;
	int ret = 0;

	memset(c, 0, sizeof(*c));
	c->ram_bytes = ram_bytes;
	for (int i = 0; i < LAYER_MAX_DEPTH; i++)
		c->l[i].memfd = -1;
	leaf->bits = NULL; /* the chain owns them now */
	snprintf(c->l[0].dir, sizeof(c->l[0].dir), "%s", dir);
	c->l[0].bits = cur.bits;
	c->n = 1;
	ret = open_memory(&c->l[0], ram_bytes, why, n);
	while (!ret && cur.kind == LAYER_DIFF) {
		struct layer_chain_entry *e;
		struct snap_file f;
		char pwhy[200];
		uint8_t *state = NULL;
		size_t len = 0;
		int dfd;

		if (c->n == LAYER_MAX_DEPTH) {
			snprintf(why, n, "more than %d layers (a cycle, or flatten the chain)",
				 LAYER_MAX_DEPTH);
			ret = -ELOOP;
			break;
		}
		e = &c->l[c->n];
		if (find_parent(c->l[c->n - 1].dir, cur.parent, e->dir, sizeof(e->dir))) {
			snprintf(why, n, "layer '%s': its parent '%s' is missing",
				 c->l[c->n - 1].dir, cur.parent);
			ret = -ENOENT;
			break;
		}
		c->n++;
		memcpy(want, cur.parent_id, sizeof(want));
		dfd = open(e->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		ret = dfd < 0 ? -errno : layer_read_state(dfd, &state, &len);
		if (dfd >= 0)
			close(dfd);
		if (!ret)
			ret = snap_file_parse(&f, state, len, pwhy, sizeof(pwhy));
		else
			snprintf(pwhy, sizeof(pwhy), "cannot read its state file: %s",
				 ret == -EFBIG ? "empty or too large" : strerror(-ret));
		if (!ret)
			ret = layer_load(&f, ram_bytes, &cur, pwhy, sizeof(pwhy));
		free(state);
		if (ret) {
			snprintf(why, n, "parent layer '%s': %s", e->dir, pwhy);
			break;
		}
		e->bits = cur.bits; /* NULL for the root */
		if (memcmp(cur.id, want, sizeof(want))) {
			snprintf(why, n,
				 "parent layer '%s' is not the snapshot '%s' was taken from "
				 "(another snapshot at that path)",
				 e->dir, c->l[c->n - 2].dir);
			ret = -EINVAL;
			break;
		}
		for (int i = 0; i < c->n - 1; i++)
			if (!strcmp(c->l[i].dir, e->dir)) {
				snprintf(why, n, "layer '%s' is its own ancestor (a cycle)",
					 e->dir);
				ret = -ELOOP;
			}
		if (!ret)
			ret = open_memory(e, ram_bytes, why, n);
	}
	if (ret) {
		layer_chain_close(c);
		return ret;
	}
	for (int i = 0; i < c->n / 2; i++) {
		struct layer_chain_entry t = c->l[i];

		c->l[i] = c->l[c->n - 1 - i];
		c->l[c->n - 1 - i] = t;
	}
	return 0;
}

int layer_chain_apply(const struct layer_chain *c, uint8_t *ram)
{
	uint64_t pages = c->ram_bytes >> GMEM_PAGE_SHIFT;

	for (int i = 1; i < c->n; i++) {
		uint64_t pos = 0, run;

		while ((run = gmem_bitmap_next_run(c->l[i].bits, pages, &pos))) {
			uint64_t off = pos << GMEM_PAGE_SHIFT, len = run << GMEM_PAGE_SHIFT;

			while (len) {
				ssize_t r = pread(c->l[i].memfd, ram + off, len, (off_t)off);

				if (r < 0 && errno == EINTR)
					continue;
				if (r <= 0)
					return r < 0 ? -errno : -EIO;
				off += (uint64_t)r;
				len -= (uint64_t)r;
			}
			pos += run;
		}
	}
	return 0;
}

void layer_chain_close(struct layer_chain *c)
{
	for (int i = 0; i < c->n; i++) {
		free(c->l[i].bits);
		c->l[i].bits = NULL;
		if (c->l[i].memfd >= 0)
			close(c->l[i].memfd);
		c->l[i].memfd = -1;
	}
	c->n = 0;
}

/* [off, off+len) of `in` to the same place in `out` by read and write: where the kernel cannot
 * copy between the two (another file system: EXDEV; a file system without it). */
static int copy_by_hand(int in, int out, uint64_t off, uint64_t len)
{
	size_t size = len < (1u << 20) ? (size_t)len : (1u << 20);
	uint8_t *buf = malloc(size ? size : 1);
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	while (!ret && len) {
		ssize_t r = pread(in, buf, len < size ? (size_t)len : size, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			ret = r < 0 ? -errno : -EIO; /* EOF inside the range: the file shrank */
			break;
		}
		for (ssize_t done = 0; !ret && done < r;) {
			ssize_t w = pwrite(out, buf + done, (size_t)(r - done), (off_t)off + done);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				ret = w < 0 ? -errno : -EIO;
			else
				done += w;
		}
		off += (uint64_t)r;
		len -= (uint64_t)r;
	}
	free(buf);
	return ret;
}

/* [off, off+len) of `in` to the same place in `out`: copy_file_range (the kernel copies, or
 * shares blocks where the file system can), else read and write. */
static int copy_range(int in, int out, uint64_t off, uint64_t len)
{
	loff_t a = (loff_t)off, b = (loff_t)off;

	while (len) {
		ssize_t r = copy_file_range(in, &a, out, &b, (size_t)len, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 &&
		    (errno == EXDEV || errno == EOPNOTSUPP || errno == ENOSYS || errno == EINVAL))
			return copy_by_hand(in, out, (uint64_t)a, len);
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		len -= (uint64_t)r;
	}
	return 0;
}

/* Zeros over [off, off+len) of `out`: a hole where the file system punches them. */
static int zero_range(int out, uint64_t off, uint64_t len)
{
	static const uint8_t zeros[64 << 10];

	if (fallocate(out, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
		return 0;
	if (errno != EOPNOTSUPP && errno != ENOSYS)
		return -errno;
	while (len) {
		size_t k = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		ssize_t w = pwrite(out, zeros, k, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		off += (uint64_t)w;
		len -= (uint64_t)w;
	}
	return 0;
}

/* [off, end) of `in` over `out`: its data extents copied, its holes made zeros in `out`. */
static int copy_sparse(int in, int out, uint64_t off, uint64_t end)
{
	while (off < end) {
		off_t data = lseek(in, (off_t)off, SEEK_DATA), hole;
		int ret;

		if (data < 0 && errno != ENXIO)
			return -errno;
		if (data < 0 || (uint64_t)data > end)
			data = (off_t)end; /* ENXIO: only a hole is left */
		if ((uint64_t)data > off) {
			ret = zero_range(out, off, (uint64_t)data - off);
			if (ret)
				return ret;
		}
		if ((uint64_t)data >= end)
			break;
		hole = lseek(in, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		if ((uint64_t)hole > end)
			hole = (off_t)end;
		ret = copy_range(in, out, (uint64_t)data, (uint64_t)(hole - data));
		if (ret)
			return ret;
		off = (uint64_t)hole;
	}
	return 0;
}

int layer_chain_overlay(const struct layer_chain *c, int i, int out, uint64_t *pages)
{
	uint64_t n = c->ram_bytes >> GMEM_PAGE_SHIFT, pos = 0, run;
	int ret = 0;

	*pages = 0;
	if (i < 1 || i >= c->n)
		return -EINVAL;
	while (!ret && (run = gmem_bitmap_next_run(c->l[i].bits, n, &pos))) {
		ret = copy_sparse(c->l[i].memfd, out, pos << GMEM_PAGE_SHIFT,
				  (pos + run) << GMEM_PAGE_SHIFT);
		*pages += run;
		pos += run;
	}
	return ret;
}

int layer_copy_file(int in, int out)
{
	struct stat st;
	off_t pos = 0;

	if (ioctl(out, FICLONE, in) == 0)
		return 0;
	if (fstat(in, &st) < 0 || ftruncate(out, st.st_size) < 0)
		return -errno;
	while (pos < st.st_size) {
		off_t data = lseek(in, pos, SEEK_DATA), hole;
		int ret;

		if (data < 0)
			return errno == ENXIO ? 0 : -errno; /* ENXIO: only a hole is left */
		hole = lseek(in, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		ret = copy_range(in, out, (uint64_t)data, (uint64_t)(hole - data));
		if (ret)
			return ret;
		pos = hole;
	}
	return 0;
}

/* fsync the directory that holds `path` (a rename or an exchange in it is durable then). */
int layer_sync_dir_of(const char *path)
{
	char parent[PATH_MAX];
	char *slash;
	int fd, ret = 0;

	snprintf(parent, sizeof(parent), "%s", path);
	slash = strrchr(parent, '/');
	if (slash == parent)
		parent[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		snprintf(parent, sizeof(parent), ".");
	fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		ret = -errno;
	close(fd);
	return ret;
}
