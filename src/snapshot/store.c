/* `ignition snapshot list|info|flatten|rm`: look after snapshot directories
 * (docs/snapshots.md). */
#include "snapshot/store.h"

#include "core/machine.h"
#include "snapshot/layer.h"
#include "snapshot/snap.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char store_usage[] =
	"Usage: ignition snapshot COMMAND [ARGS]\n"
	"Look after snapshots written by Ctrl-A s (see 'ignition run --help').\n"
	"\n"
	"Commands:\n"
	"  list [DIR]   the snapshots in DIR (default ./snapshots): name, type, creation time,\n"
	"               memory, vCPUs and the space they take on disk\n"
	"  info SNAP    one snapshot's manifest (type, parent, time, version, configuration,\n"
	"               sizes) and a check of its state file (magic, version, checksum)\n"
	"  flatten SNAP [--out DIR]\n"
	"               merge a Diff snapshot and the layers below it into one Full snapshot:\n"
	"               SNAP itself (swapped in atomically; Diffs over SNAP stay valid), or\n"
	"               the new directory DIR\n"
	"  rm SNAP...   delete snapshots (only directories that hold a snapshot)\n";

/* Suffixes of the directories a snapshot or a flatten is built in (NAME.tmp-PID,
 * NAME.flat-tmp-PID): never listed, whatever they hold. */
#define TMP_SUFFIX  ".tmp-"
#define FLAT_SUFFIX ".flat-tmp-"

/* Blocks a snapshot's files take (sparse memory counts only what was written). */
static unsigned long long disk_usage(const char *dir)
{
	unsigned long long total = 0;
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		struct stat st;

		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode))
			total += (unsigned long long)st.st_blocks * 512;
	}
	closedir(d);
	return total;
}

static json_t *load_manifest(const char *dir, char *err, size_t n)
{
	char path[PATH_MAX];
	json_error_t je;
	json_t *m;

	snprintf(path, sizeof(path), "%s/manifest.json", dir);
	m = json_load_file(path, 0, &je);
	if (!m && je.line > 0)
		snprintf(err, n, "manifest.json: %s (line %d)", je.text, je.line);
	else if (!m)
		snprintf(err, n, "%s", je.text); /* jansson's text names the file */
	else if (!json_is_object(m)) {
		snprintf(err, n, "manifest.json is not a JSON object");
		json_decref(m);
		m = NULL;
	}
	return m;
}

/* Parse the state file: 0 and the record count, or -errno with a reason. */
static int check_state(const char *dir, uint32_t *records, char *why, size_t n)
{
	char path[PATH_MAX];
	struct snap_file f;
	struct stat st;
	uint8_t *buf;
	FILE *fp;
	int ret;

	snprintf(path, sizeof(path), "%s/state", dir);
	fp = fopen(path, "rb");
	if (!fp) {
		snprintf(why, n, "%s", strerror(errno));
		return -errno;
	}
	if (fstat(fileno(fp), &st) < 0 || st.st_size <= 0 || st.st_size > (256 << 20)) {
		fclose(fp);
		snprintf(why, n, "empty or too large");
		return -EINVAL;
	}
	buf = malloc((size_t)st.st_size);
	if (!buf || fread(buf, 1, (size_t)st.st_size, fp) != (size_t)st.st_size) {
		free(buf);
		fclose(fp);
		snprintf(why, n, "cannot read it");
		return -EIO;
	}
	fclose(fp);
	ret = snap_file_parse(&f, buf, (size_t)st.st_size, why, n);
	*records = f.count;
	free(buf);
	return ret;
}

static const char *str_of(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "-";
}

static int cmd_list(const char *dir)
{
	struct dirent **names;
	int n, shown = 0;

	n = scandir(dir, &names, NULL, alphasort);
	if (n < 0) {
		fprintf(stderr, "ignition: error: cannot list '%s': %s\n", dir, strerror(errno));
		return 1;
	}
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX], err[256];
		json_t *m, *cfg;

		if (names[i]->d_name[0] == '.' || strstr(names[i]->d_name, TMP_SUFFIX) ||
		    strstr(names[i]->d_name, FLAT_SUFFIX) ||
		    snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name) >=
			    (int)sizeof(path))
			goto next;
		m = load_manifest(path, err, sizeof(err));
		if (!m)
			goto next; /* not a snapshot (or a half-written one, which never has one) */
		if (!shown++)
			printf("%-28s %-5s %-21s %8s %5s %10s\n", "NAME", "TYPE", "CREATED",
			       "MEMORY", "VCPUS", "ON DISK");
		cfg = json_object_get(m, "config");
		printf("%-28s %-5s %-21s %5lld MiB %5lld %6.1f MiB\n", names[i]->d_name,
		       str_of(m, "type"), str_of(m, "created"),
		       (long long)json_integer_value(json_object_get(cfg, "mem_mib")),
		       (long long)json_integer_value(json_object_get(cfg, "vcpus")),
		       (double)disk_usage(path) / (1 << 20));
		json_decref(m);
	next:
		free(names[i]);
	}
	free(names);
	if (!shown)
		printf("no snapshots in %s\n", dir);
	return 0;
}

static int cmd_info(const char *dir)
{
	char err[256], *text;
	uint32_t records = 0;
	json_t *m = load_manifest(dir, err, sizeof(err));

	if (!m) {
		fprintf(stderr, "ignition: error: '%s' is not a snapshot: %s\n", dir, err);
		return 1;
	}
	text = json_dumps(m, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	printf("%s\n", text ? text : "{}");
	free(text);
	json_decref(m);
	if (check_state(dir, &records, err, sizeof(err))) {
		printf("state: REFUSED: %s\n", err);
		return 1;
	}
	printf("state: ok, %u records, format version %d\n", records, SNAP_FORMAT_VERSION);
	printf("on disk: %.1f MiB\n", (double)disk_usage(dir) / (1 << 20));
	return 0;
}

/* The files a snapshot directory holds: state, memory, manifest.json, disk0, disk1... */
static bool is_snapshot_file(const char *s)
{
	return !strcmp(s, "state") || !strcmp(s, "memory") || !strcmp(s, "manifest.json") ||
	       (!strncmp(s, "disk", 4) && s[4] && strspn(s + 4, "0123456789") == strlen(s + 4));
}

/* Delete a snapshot's files, the manifest first (without it, `list` and `rm` no longer take
 * the directory for a snapshot), then the directory.  0, or -errno with one line in err. */
static int remove_files(const char *dir, char *err, size_t n)
{
	struct dirent *e;
	DIR *d = opendir(dir);
	int ret = 0;

	if (!d)
		return err_set(-errno, err, n, "'%s': %s", dir, strerror(errno));
	if (unlinkat(dirfd(d), "manifest.json", 0) < 0 && errno != ENOENT)
		ret = err_set(-errno, err, n, "cannot remove %s/manifest.json: %s", dir,
			      strerror(errno));
	while (!ret && (e = readdir(d))) {
		if (!is_snapshot_file(e->d_name))
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) < 0 && errno != ENOENT)
			ret = err_set(-errno, err, n, "cannot remove %s/%s: %s", dir, e->d_name,
				      strerror(errno));
	}
	closedir(d);
	if (!ret && rmdir(dir) < 0)
		ret = err_set(-errno, err, n, "cannot remove '%s': %s", dir, strerror(errno));
	return ret;
}

/* Delete a snapshot directory: only the files a snapshot has, then the directory; anything
 * else inside makes it refuse (it is then not ours to delete). */
static int rm_one(const char *dir)
{
	char err[PATH_MAX + 64];
	struct dirent *e;
	json_t *m = load_manifest(dir, err, sizeof(err));
	DIR *d;

	if (!m) {
		fprintf(stderr, "ignition: error: '%s' is not a snapshot: %s\n", dir, err);
		return 1;
	}
	json_decref(m);
	d = opendir(dir);
	if (!d) {
		fprintf(stderr, "ignition: error: '%s': %s\n", dir, strerror(errno));
		return 1;
	}
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
		    is_snapshot_file(e->d_name))
			continue;
		fprintf(stderr,
			"ignition: error: '%s' holds '%s', which is not part of a "
			"snapshot: not removed\n",
			dir, e->d_name);
		closedir(d);
		return 1;
	}
	closedir(d);
	if (remove_files(dir, err, sizeof(err))) {
		fprintf(stderr, "ignition: error: %s\n", err);
		return 1;
	}
	return 0;
}

/* ---- flatten ---- */

/* Create dirfd/name holding buf[0..len) and fsync it.  0 or -errno. */
static int write_file(int dirfd, const char *name, const void *buf, size_t len)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	const uint8_t *p = buf;
	int ret = 0;

	if (fd < 0)
		return -errno;
	while (!ret && len) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			ret = w < 0 ? -errno : -EIO;
		else {
			p += w;
			len -= (size_t)w;
		}
	}
	if (!ret && fsync(fd) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* Bytes of data (not holes) in the file: the manifest's memory_written. */
static uint64_t data_bytes(int fd)
{
	uint64_t total = 0;
	off_t pos = 0, data, hole;

	while ((data = lseek(fd, pos, SEEK_DATA)) >= 0) {
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			break;
		total += (uint64_t)(hole - data);
		pos = hole;
	}
	return total;
}

/* SNAP's state file with its layer record replaced by a Full one of the same identity, every
 * other record copied as it is (type, version, id, payload), in the same order. */
static int full_state(const struct snap_file *f, const uint8_t id[LAYER_ID_SIZE],
		      struct snap_writer *w)
{
	struct layer_info full = { .kind = LAYER_FULL };
	struct snap_reader r;

	memcpy(full.id, id, LAYER_ID_SIZE);
	snap_writer_init(w);
	for (uint32_t i = 0; snap_file_record(f, i, &r) == 0; i++) {
		if (r.type == SNAP_REC_LAYER) {
			layer_save(w, &full);
			continue;
		}
		snap_rec_begin(w, r.type, r.version, r.id);
		snap_put_bytes(w, r.p, r.len);
	}
	return snap_writer_finish(w);
}

/* Copy SNAP's disk files (diskN) into the new directory. */
static int copy_disks(int sfd, int tfd, FILE *progress, char *err, size_t n)
{
	int fd = dup(sfd), ret = 0;
	struct dirent *e;
	DIR *d;

	if (fd < 0 || !(d = fdopendir(fd))) {
		ret = err_set(-errno, err, n, "cannot list the snapshot: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return ret;
	}
	while (!ret && (e = readdir(d))) {
		const char *s = e->d_name;
		int in, out;

		if (strncmp(s, "disk", 4) || !is_snapshot_file(s))
			continue;
		if (progress)
			fprintf(progress, "flatten: copying %s\n", s);
		in = openat(sfd, s, O_RDONLY | O_CLOEXEC);
		out = in < 0 ? -1 : openat(tfd, s, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (in < 0 || out < 0)
			ret = -errno;
		else
			ret = layer_copy_file(in, out);
		if (!ret && fsync(out) < 0)
			ret = -errno;
		if (ret)
			err_set(ret, err, n, "cannot copy %s: %s", s, strerror(-ret));
		if (out >= 0)
			close(out);
		if (in >= 0)
			close(in);
	}
	closedir(d);
	return ret;
}

/* SNAP's manifest as a Full snapshot's: no parent, the new sizes. */
static int write_full_manifest(int tfd, json_t *m, uint64_t ram, uint64_t written, size_t state_len)
{
	json_t *sizes = json_object_get(m, "sizes");
	char *text;
	int ret;

	if (!json_is_object(sizes)) {
		sizes = json_object();
		if (!sizes || json_object_set_new(m, "sizes", sizes))
			return -ENOMEM;
	}
	if (json_object_set_new(m, "type", json_string("Full")) ||
	    json_object_set_new(m, "parent", json_null()) ||
	    json_object_set_new(sizes, "memory_bytes", json_integer((json_int_t)ram)) ||
	    json_object_set_new(sizes, "memory_written", json_integer((json_int_t)written)) ||
	    json_object_set_new(sizes, "state_bytes", json_integer((json_int_t)state_len)))
		return -ENOMEM;
	text = json_dumps(m, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (!text)
		return -ENOMEM;
	/* With the newline snapshot_create writes after it. */
	{
		size_t len = strlen(text);
		char *nl = realloc(text, len + 2);

		if (!nl) {
			free(text);
			return -ENOMEM;
		}
		text = nl;
		memcpy(text + len, "\n", 2);
	}
	ret = write_file(tfd, "manifest.json", text, strlen(text));
	free(text);
	return ret;
}

/* `path` without trailing slashes (a tab-completed "snap/" names the same directory, and the
 * temporary directory goes beside it, not inside). */
static int trim(const char *path, char *out, size_t size)
{
	size_t len = strlen(path);

	while (len > 1 && path[len - 1] == '/')
		len--;
	if (!len || len >= size)
		return -ENAMETOOLONG;
	memcpy(out, path, len);
	out[len] = '\0';
	return 0;
}

/* Build the Full snapshot of `c` (leaf `snap`, its state in f) in the directory tfd. */
static int build_full(int sfd, const struct snap_file *f, const struct layer_info *li,
		      const struct layer_chain *c, json_t *manifest, int tfd, FILE *progress,
		      char *err, size_t n)
{
	struct snap_writer w;
	uint64_t written;
	int mfd, ret;

	/* Memory first and the manifest last: until it has one, nothing takes the temporary
	 * directory for a snapshot. */
	mfd = openat(tfd, "memory", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (mfd < 0)
		return err_set(-errno, err, n, "cannot create the memory file: %s",
			       strerror(errno));
	if (progress)
		fprintf(progress, "flatten: root '%s'\n", c->l[0].dir);
	ret = layer_copy_file(c->l[0].memfd, mfd);
	if (ret)
		err_set(ret, err, n, "cannot copy the memory of '%s': %s", c->l[0].dir,
			strerror(-ret));
	for (int i = 1; !ret && i < c->n; i++) {
		uint64_t pages;

		ret = layer_chain_overlay(c, i, mfd, &pages);
		if (ret)
			err_set(ret, err, n, "cannot lay the pages of '%s' over it: %s",
				c->l[i].dir, strerror(-ret));
		else if (progress)
			fprintf(progress, "flatten: layer %d/%d '%s': %llu pages\n", i, c->n - 1,
				c->l[i].dir, (unsigned long long)pages);
	}
	if (!ret && fsync(mfd) < 0)
		ret = err_set(-errno, err, n, "fsync of the memory file: %s", strerror(errno));
	written = data_bytes(mfd);
	close(mfd);
	if (ret)
		return ret;

	ret = full_state(f, li->id, &w);
	if (ret)
		err_set(ret, err, n, "cannot rewrite the state: %s", strerror(-ret));
	else if ((ret = write_file(tfd, "state", w.buf, w.len)))
		err_set(ret, err, n, "cannot write the state file: %s", strerror(-ret));
	if (!ret)
		ret = copy_disks(sfd, tfd, progress, err, n);
	if (!ret && (ret = write_full_manifest(tfd, manifest, c->ram_bytes, written, w.len)))
		err_set(ret, err, n, "cannot write the manifest: %s", strerror(-ret));
	snap_writer_free(&w);
	if (!ret && fsync(tfd) < 0)
		ret = err_set(-errno, err, n, "fsync of the new directory: %s", strerror(errno));
	return ret;
}

/* Put the finished directory tmp in place: swapped with snap (in place) or renamed to out. */
static int commit(const char *tmp, const char *dest, bool in_place, char *err, size_t n)
{
	if (in_place) {
		/* One step: at every moment `dest` is the old chain or the new Full snapshot. */
		if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dest, RENAME_EXCHANGE) == 0)
			return 0;
		if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)
			return err_set(-errno, err, n,
				       "the file system of '%s' cannot swap two directories "
				       "atomically (renameat2 RENAME_EXCHANGE: %s); flatten with "
				       "--out DIR instead",
				       dest, strerror(errno));
		return err_set(-errno, err, n, "cannot swap '%s' and '%s': %s", tmp, dest,
			       strerror(errno));
	}
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dest, RENAME_NOREPLACE) == 0)
		return 0;
	/* A file system without RENAME_NOREPLACE: rename() would replace an empty directory
	 * made meanwhile, so look once more first. */
	if ((errno == EINVAL || errno == ENOSYS) && access(dest, F_OK) < 0 && errno == ENOENT &&
	    rename(tmp, dest) == 0)
		return 0;
	if (errno == EEXIST || errno == ENOTEMPTY)
		return err_set(-EEXIST, err, n, "'%s' already exists", dest);
	return err_set(-errno, err, n, "cannot rename '%s' to '%s': %s", tmp, dest,
		       strerror(errno));
}

int snapshot_store_flatten(const char *snap_arg, const char *out_arg, FILE *progress, char *err,
			   size_t n)
{
	char snap[PATH_MAX], dest[PATH_MAX], tmp[PATH_MAX], why[PATH_MAX + 128];
	struct machine_config *cfg = NULL;
	struct layer_chain *chain = NULL;
	struct layer_info li = { 0 };
	uint8_t *state = NULL;
	json_t *manifest;
	struct snap_file f;
	size_t len = 0;
	int sfd = -1, tfd = -1, ret;
	bool made_tmp = false;

	if (trim(snap_arg, snap, sizeof(snap)) || (out_arg && trim(out_arg, dest, sizeof(dest))))
		return err_set(-ENAMETOOLONG, err, n, "'%s': name too long",
			       out_arg ? out_arg : snap_arg);
	manifest = load_manifest(snap, why, sizeof(why));
	if (!manifest)
		return err_set(-EINVAL, err, n, "'%s' is not a snapshot: %s", snap, why);
	/* In place, the directory itself is swapped: through a symbolic link, or named "." or
	 * "x/..", the temporary one would land elsewhere than beside it. */
	if (!out_arg && !realpath(snap, dest)) {
		ret = err_set(-errno, err, n, "'%s': %s", snap, strerror(errno));
		goto out;
	}
	if (snprintf(tmp, sizeof(tmp), "%s%s%d", dest, FLAT_SUFFIX, (int)getpid()) >=
	    (int)sizeof(tmp)) {
		ret = err_set(-ENAMETOOLONG, err, n, "'%s': name too long", dest);
		goto out;
	}
	sfd = open(snap, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0) {
		ret = err_set(-errno, err, n, "snapshot '%s': %s", snap, strerror(errno));
		goto out;
	}
	ret = layer_read_state(sfd, &state, &len);
	if (ret) {
		err_set(ret, err, n, "snapshot '%s': cannot read its state file: %s", snap,
			ret == -EFBIG ? "empty or too large" : strerror(-ret));
		goto out;
	}
	ret = snap_file_parse(&f, state, len, why, sizeof(why));
	if (ret) {
		err_set(ret, err, n, "snapshot '%s': state file refused: %s", snap, why);
		goto out;
	}
	cfg = malloc(sizeof(*cfg));
	ret = cfg ? machine_config_load(cfg, &f, why, sizeof(why)) : -ENOMEM;
	if (!ret)
		ret = layer_load(&f, cfg->mem_mib << 20, &li, why, sizeof(why));
	if (ret) {
		err_set(ret, err, n, "snapshot '%s': %s", snap, cfg ? why : "out of memory");
		goto out;
	}
	if (li.kind == LAYER_FULL) {
		ret = err_set(-EALREADY, err, n, "'%s' is already a Full snapshot; nothing to do",
			      snap);
		goto out;
	}
	chain = calloc(1, sizeof(*chain));
	ret = chain ? layer_chain_open(chain, snap, &li, cfg->mem_mib << 20, why, sizeof(why))
		    : -ENOMEM;
	if (ret) {
		err_set(ret, err, n, "snapshot '%s': %s", snap, chain ? why : "out of memory");
		free(chain);
		chain = NULL;
		goto out;
	}
	if (out_arg && (access(dest, F_OK) == 0 || errno != ENOENT)) {
		ret = err_set(-EEXIST, err, n, "'%s' already exists", dest);
		goto out;
	}
	if (mkdir(tmp, 0700) < 0) {
		ret = err_set(-errno, err, n, "cannot create '%s': %s", tmp, strerror(errno));
		goto out;
	}
	made_tmp = true;
	tfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tfd < 0) {
		ret = err_set(-errno, err, n, "cannot open '%s': %s", tmp, strerror(errno));
		goto out;
	}
	ret = build_full(sfd, &f, &li, chain, manifest, tfd, progress, err, n);
	if (!ret)
		ret = commit(tmp, dest, !out_arg, err, n);
	if (ret)
		goto out;
	/* From here the flatten has happened; what fails now only costs space or durability. */
	ret = layer_sync_dir_of(dest);
	if (ret)
		log_warn("fsync of the directory holding '%s': %s", dest, strerror(-ret));
	ret = 0;
	made_tmp = false;
	/* In place, tmp now holds the old snapshot. */
	if (!out_arg && remove_files(tmp, why, sizeof(why)))
		log_warn("the old snapshot is left at '%s': %s", tmp, why);
out:
	if (made_tmp && remove_files(tmp, why, sizeof(why)))
		log_warn("%s", why);
	if (tfd >= 0)
		close(tfd);
	if (chain) {
		layer_chain_close(chain);
		free(chain);
	}
	layer_info_free(&li);
	free(cfg);
	free(state);
	if (sfd >= 0)
		close(sfd);
	json_decref(manifest);
	return ret;
}

static int cmd_flatten(int argc, char **argv)
{
	const char *snap = NULL, *out = NULL;
	char err[PATH_MAX + 256];
	bool bad = false;
	int ret;

	for (int i = 0; i < argc && !bad; i++) {
		if (!strcmp(argv[i], "--out") && i + 1 < argc && !out)
			out = argv[++i];
		else if (!strncmp(argv[i], "--out=", 6) && argv[i][6] && !out)
			out = argv[i] + 6;
		else if (argv[i][0] != '-' && !snap)
			snap = argv[i];
		else
			bad = true;
	}
	if (bad || !snap) {
		fputs(store_usage, stderr);
		return 2;
	}
	ret = snapshot_store_flatten(snap, out, stderr, err, sizeof(err));
	if (ret == -EALREADY) {
		printf("%s\n", err);
		return 0;
	}
	if (ret) {
		fprintf(stderr, "ignition: error: %s\n", err);
		return 1;
	}
	printf("flattened '%s' into a Full snapshot%s%s\n", snap, out ? " at " : "",
	       out ? out : "");
	return 0;
}

int snapshot_store_main(int argc, char **argv)
{
	int ret = 0;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		fputs(store_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "list")) {
		if (argc > 3) {
			fputs(store_usage, stderr);
			return 2;
		}
		return cmd_list(argc == 3 ? argv[2] : "snapshots");
	}
	if (!strcmp(argv[1], "info")) {
		if (argc != 3) {
			fputs(store_usage, stderr);
			return 2;
		}
		return cmd_info(argv[2]);
	}
	if (!strcmp(argv[1], "flatten"))
		return cmd_flatten(argc - 2, argv + 2);
	if (!strcmp(argv[1], "rm")) {
		if (argc < 3) {
			fputs(store_usage, stderr);
			return 2;
		}
		for (int i = 2; i < argc; i++)
			ret |= rm_one(argv[i]);
		return ret;
	}
	fprintf(stderr,
		"ignition: error: unknown snapshot command '%s' (try 'ignition snapshot "
		"--help')\n",
		argv[1]);
	return 2;
}
