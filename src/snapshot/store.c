/* `ignition snapshot list|info|rm`: look after snapshot directories (docs/snapshots.md). */
#include "snapshot/store.h"

#include "snapshot/snap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
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
	"  rm SNAP...   delete snapshots (only directories that hold a snapshot)\n";

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
	if (!m)
		snprintf(err, n, "manifest.json: %s (line %d)", je.text, je.line);
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

		if (names[i]->d_name[0] == '.' || snprintf(path, sizeof(path), "%s/%s", dir,
							   names[i]->d_name) >= (int)sizeof(path))
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

/* Delete a snapshot directory: only the files a snapshot has, then the directory; anything
 * else inside makes it refuse (it is then not ours to delete). */
static int rm_one(const char *dir)
{
	char err[256];
	struct dirent *e;
	json_t *m = load_manifest(dir, err, sizeof(err));
	DIR *d;
	int ret = 0;

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
		const char *s = e->d_name;
		bool ours = !strcmp(s, "state") || !strcmp(s, "memory") ||
			    !strcmp(s, "manifest.json") ||
			    (!strncmp(s, "disk", 4) && s[4] &&
			     strspn(s + 4, "0123456789") == strlen(s + 4));

		if (!strcmp(s, ".") || !strcmp(s, ".."))
			continue;
		if (!ours) {
			fprintf(stderr,
				"ignition: error: '%s' holds '%s', which is not part of a "
				"snapshot: not removed\n",
				dir, s);
			closedir(d);
			return 1;
		}
	}
	rewinddir(d);
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) < 0 && errno != ENOENT) {
			fprintf(stderr, "ignition: error: cannot remove %s/%s: %s\n", dir,
				e->d_name, strerror(errno));
			ret = 1;
		}
	}
	closedir(d);
	if (!ret && rmdir(dir) < 0) {
		fprintf(stderr, "ignition: error: cannot remove '%s': %s\n", dir, strerror(errno));
		ret = 1;
	}
	return ret;
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
