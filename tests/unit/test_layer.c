/* Snapshot layers without KVM: the page-bitmap helpers and the VMM's dirty marks (gmem.c), the
 * layer record (layer.c) round-tripped and its malformed forms refused, chains of hand-built
 * snapshot directories (state file, sparse memory file, manifest, disk) resolved, applied and
 * refused, and `snapshot flatten` (store.c) checked against the applied chain. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/gmem.h"
#include "core/machine.h"
#include "snapshot/layer.h"
#include "snapshot/snap.h"
#include "snapshot/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE	4096u
#define MEM_MIB 16 /* the smallest machine the machine record allows */
#define RAM	((uint64_t)MEM_MIB << 20)
#define NPAGES	(RAM / PAGE)
#define WORDS	(NPAGES / 64)

static void set_bit(uint64_t *b, uint64_t p)
{
	b[p / 64] |= 1ull << (p % 64);
}

static bool test_bit(const uint64_t *b, uint64_t p)
{
	return b[p / 64] >> (p % 64) & 1;
}

/* ---- bitmap helpers ---- */

static void test_bitmap_runs(void **state)
{
	static const uint64_t want[][2] = { { 5, 1 }, { 60, 8 }, { 127, 2 }, { 190, 10 } };
	uint64_t b[4] = { 0 }, pos = 0, run;
	size_t k = 0;

	set_bit(b, 5);
	for (uint64_t p = 60; p < 68; p++) /* across the first word edge */
		set_bit(b, p);
	set_bit(b, 127); /* the last bit of a word and the first of the next: one run */
	set_bit(b, 128);
	for (uint64_t p = 190; p < 256; p++) /* to n = 200, and bits past it */
		set_bit(b, p);
	while ((run = gmem_bitmap_next_run(b, 200, &pos))) {
		assert_true(k < 4);
		assert_int_equal(pos, want[k][0]);
		assert_int_equal(run, want[k][1]);
		pos += run;
		k++;
	}
	assert_int_equal(k, 4);
	assert_int_equal(gmem_bitmap_count(b, 200), 1 + 8 + 2 + 10);
	/* From inside a run: the rest of it. */
	pos = 62;
	assert_int_equal(gmem_bitmap_next_run(b, 200, &pos), 6);
	assert_int_equal(pos, 62);
	/* At and past n. */
	pos = 200;
	assert_int_equal(gmem_bitmap_next_run(b, 200, &pos), 0);
	pos = 1000;
	assert_int_equal(gmem_bitmap_next_run(b, 200, &pos), 0);
	/* n a multiple of 64: the run 127..128 stops at n, the next word is not read. */
	pos = 127;
	assert_int_equal(gmem_bitmap_next_run(b, 128, &pos), 1);
	assert_int_equal(pos, 127);
	assert_int_equal(gmem_bitmap_count(b, 128), 1 + 8 + 1);
	assert_int_equal(gmem_bitmap_count(b, 61), 2);
	assert_int_equal(gmem_bitmap_words(0), 0);
	assert_int_equal(gmem_bitmap_words(64), 1);
	assert_int_equal(gmem_bitmap_words(65), 2);
}

static void test_bitmap_empty_full(void **state)
{
	uint64_t z[3] = { 0 }, f[3], pos = 0;

	memset(f, 0xff, sizeof(f));
	assert_int_equal(gmem_bitmap_next_run(z, 190, &pos), 0);
	assert_int_equal(gmem_bitmap_count(z, 190), 0);
	pos = 0;
	assert_int_equal(gmem_bitmap_next_run(f, 0, &pos), 0);
	assert_int_equal(gmem_bitmap_count(f, 0), 0);
	/* All set: one run of n, whether or not n ends a word. */
	pos = 0;
	assert_int_equal(gmem_bitmap_next_run(f, 130, &pos), 130);
	assert_int_equal(pos, 0);
	pos = 130;
	assert_int_equal(gmem_bitmap_next_run(f, 130, &pos), 0);
	assert_int_equal(gmem_bitmap_count(f, 130), 130);
	pos = 0;
	assert_int_equal(gmem_bitmap_next_run(f, 192, &pos), 192);
	assert_int_equal(gmem_bitmap_count(f, 192), 192);
	pos = 1;
	assert_int_equal(gmem_bitmap_next_run(f, 64, &pos), 63);
}

/* ---- gmem_mark_dirty ---- */

static void test_mark_dirty_flat(void **state)
{
	static uint8_t ram[16 * PAGE];
	uint64_t out = 0;
	struct gmem gm;

	gmem_init_flat(&gm, ram, sizeof(ram));
	/* Not tracking: nothing recorded, nothing to take. */
	gmem_mark_dirty(&gm, 0, PAGE);
	assert_null(gm.vmm_dirty);
	gmem_take_vmm_dirty(&gm, &out);
	assert_true(out == 0);

	assert_int_equal(gmem_track_dirty(&gm), 0);
	assert_int_equal(gm.nr_pages, 16);
	gmem_mark_dirty(&gm, 0x1000, 1);		      /* page 1 */
	gmem_mark_dirty(&gm, 0x2fff, 2);		      /* straddles 2 and 3 */
	gmem_mark_dirty(&gm, 0x5000, 0);		      /* empty */
	gmem_mark_dirty(&gm, 16 * PAGE, PAGE);		      /* past RAM */
	gmem_mark_dirty(&gm, UINT64_MAX - 8, 16);	      /* far past RAM, wrapping */
	gmem_mark_dirty(&gm, 7 * PAGE, 2 * PAGE);	      /* exactly 7 and 8 */
	gmem_mark_dirty(&gm, 15 * PAGE + 8, 1ull << 40);      /* clamped to the last page */
	assert_int_equal(gmem_write(&gm, 0x4000, "x", 1), 0); /* the VMM's own write */
	assert_int_equal(gmem_write(&gm, 16 * PAGE, "x", 1), -EFAULT);
	gmem_take_vmm_dirty(&gm, &out);
	assert_true(out == (1ull << 1 | 1ull << 2 | 1ull << 3 | 1ull << 4 | 1ull << 7 | 1ull << 8 |
			    1ull << 15));
	/* Taken means cleared; take ORs into what the caller has. */
	out = 1ull << 10;
	gmem_take_vmm_dirty(&gm, &out);
	assert_true(out == 1ull << 10);
	gmem_free(&gm);
}

/* RAM in two regions (below the hole and above 4 GiB): pages are numbered by RAM offset. */
static void test_mark_dirty_two_regions(void **state)
{
	static uint8_t ram[16 * PAGE];
	uint64_t out = 0;
	struct gmem gm;

	memset(&gm, 0, sizeof(gm));
	gm.regions[0] = (struct gmem_region){ .gpa = 0, .size = 8 * PAGE, .hva = ram };
	gm.regions[1] =
		(struct gmem_region){ .gpa = 1ull << 32, .size = 8 * PAGE, .hva = ram + 8 * PAGE };
	gm.nr_regions = 2;
	gm.ram_size = 16 * PAGE;
	assert_int_equal(gmem_track_dirty(&gm), 0);
	gmem_mark_dirty(&gm, (1ull << 32) + PAGE, 1);		  /* RAM page 9 */
	gmem_mark_dirty(&gm, 8 * PAGE, PAGE);			  /* the hole */
	gmem_mark_dirty(&gm, (1ull << 32) - PAGE, PAGE);	  /* still the hole */
	gmem_mark_dirty(&gm, 3 * PAGE + 100, 10);		  /* page 3 */
	gmem_mark_dirty(&gm, (1ull << 32) + 7 * PAGE + 1, ~0ull); /* clamped: page 15 */
	gmem_take_vmm_dirty(&gm, &out);
	assert_true(out == (1ull << 3 | 1ull << 9 | 1ull << 15));
	gmem_free(&gm);
}

/* ---- the layer record ---- */

static void parse(struct snap_writer *w, struct snap_file *f)
{
	assert_int_equal(snap_writer_finish(w), 0);
	assert_int_equal(snap_file_parse(f, w->buf, w->len, NULL, 0), 0);
}

static void test_layer_full_round_trip(void **state)
{
	struct layer_info li = { .kind = LAYER_FULL }, got;
	struct snap_writer w;
	struct snap_reader r;
	struct snap_file f;
	uint8_t zero[LAYER_ID_SIZE] = { 0 };
	char why[256];

	/* A state file from before layers: Full, identity zero. */
	snap_writer_init(&w);
	snap_rec_begin(&w, SNAP_REC_SERIAL, 1, "serial0");
	parse(&w, &f);
	memset(&got, 0xaa, sizeof(got));
	got.bits = NULL;
	assert_int_equal(layer_load(&f, RAM, &got, why, sizeof(why)), 0);
	assert_int_equal(got.kind, LAYER_FULL);
	assert_memory_equal(got.id, zero, LAYER_ID_SIZE);
	assert_null(got.bits);
	snap_writer_free(&w);

	assert_int_equal(layer_new_id(li.id), 0);
	assert_memory_not_equal(li.id, zero, LAYER_ID_SIZE);
	snap_writer_init(&w);
	layer_save(&w, &li);
	parse(&w, &f);
	assert_int_equal(snap_file_find(&f, SNAP_REC_LAYER, "layer", &r), 0);
	assert_int_equal(r.len, 1 + LAYER_ID_SIZE); /* a Full has no parent and no bitmap */
	assert_int_equal(layer_load(&f, RAM, &got, why, sizeof(why)), 0);
	assert_int_equal(got.kind, LAYER_FULL);
	assert_memory_equal(got.id, li.id, LAYER_ID_SIZE);
	assert_null(got.bits);
	assert_string_equal(got.parent, "");
	snap_writer_free(&w);
}

static void test_layer_diff_round_trip(void **state)
{
	uint64_t bits[2] = { 0 };
	struct layer_info li = { .kind = LAYER_DIFF, .nr_pages = 100, .bits = bits }, got;
	struct snap_writer w;
	struct snap_file f;
	char why[256];

	set_bit(bits, 0);
	set_bit(bits, 63);
	set_bit(bits, 64);
	set_bit(bits, 99); /* the last page */
	memset(li.id, 0x11, sizeof(li.id));
	memset(li.parent_id, 0x22, sizeof(li.parent_id));
	strcpy(li.parent, "/var/snaps/base");
	snap_writer_init(&w);
	layer_save(&w, &li);
	parse(&w, &f);
	assert_int_equal(layer_load(&f, 100 * PAGE, &got, why, sizeof(why)), 0);
	assert_int_equal(got.kind, LAYER_DIFF);
	assert_memory_equal(got.id, li.id, LAYER_ID_SIZE);
	assert_memory_equal(got.parent_id, li.parent_id, LAYER_ID_SIZE);
	assert_string_equal(got.parent, "/var/snaps/base");
	assert_int_equal(got.nr_pages, 100);
	assert_non_null(got.bits);
	assert_memory_equal(got.bits, bits, sizeof(bits));
	assert_int_equal(gmem_bitmap_count(got.bits, 100), 4);
	layer_info_free(&got);
	assert_null(got.bits);
	snap_writer_free(&w);
}

/* A layer record built field by field, so each case breaks exactly one thing. */
struct raw_layer {
	uint16_t version;
	uint8_t kind;
	const char *parent;
	uint64_t nr_pages;
	uint64_t words; /* bitmap words written */
	uint64_t bits[3];
	bool extra; /* one byte after the record's fields */
};

static int load_raw(const struct raw_layer *l, char *why, size_t n)
{
	static const uint8_t id[LAYER_ID_SIZE] = { 1, 2, 3 };
	struct layer_info li;
	struct snap_writer w;
	struct snap_file f;
	int ret;

	snap_writer_init(&w);
	snap_rec_begin(&w, SNAP_REC_LAYER, l->version, "layer");
	snap_put_u8(&w, l->kind);
	snap_put_bytes(&w, id, sizeof(id));
	if (l->kind == LAYER_DIFF) {
		snap_put_bytes(&w, id, sizeof(id));
		snap_put_str(&w, l->parent, PATH_MAX);
		snap_put_u64(&w, l->nr_pages);
		for (uint64_t i = 0; i < l->words; i++)
			snap_put_u64(&w, l->bits[i]);
	}
	if (l->extra)
		snap_put_u8(&w, 0);
	parse(&w, &f);
	why[0] = '\0';
	ret = layer_load(&f, 100 * PAGE, &li, why, n);
	if (ret) {
		assert_null(li.bits); /* nothing left to free on a refusal */
		assert_true(why[0] != '\0');
	}
	layer_info_free(&li);
	snap_writer_free(&w);
	return ret;
}

static void test_layer_refused(void **state)
{
	const struct raw_layer good = {
		.version = 1,
		.kind = LAYER_DIFF,
		.parent = "/snaps/base",
		.nr_pages = 100,
		.words = 2,
		.bits = { 1, 1ull << 35 }, /* pages 0 and 99 */
	};
	struct raw_layer l;
	char why[256];

	assert_int_equal(load_raw(&good, why, sizeof(why)), 0);
	l = (struct raw_layer){ .version = 1, .kind = LAYER_FULL };
	assert_int_equal(load_raw(&l, why, sizeof(why)), 0);

	l = good;
	l.version = 2;
	assert_int_equal(load_raw(&l, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "layer record version 2"));

	l = good;
	l.bits[1] |= 1ull << 36; /* page 100: past the end */
	assert_int_equal(load_raw(&l, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "malformed layer record");

	l = good;
	l.words = 1; /* a bitmap too short */
	assert_int_equal(load_raw(&l, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "malformed layer record");

	l = good;
	l.words = 3; /* too long */
	assert_int_equal(load_raw(&l, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "malformed layer record");

	l = (struct raw_layer){ .version = 1, .kind = LAYER_FULL, .extra = true };
	assert_int_equal(load_raw(&l, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "malformed layer record");

	l = good;
	l.parent = "";
	assert_int_equal(load_raw(&l, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "malformed layer record");

	l = good;
	l.nr_pages = 101; /* not the RAM the machine record says */
	assert_int_equal(load_raw(&l, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "covers 101 pages, RAM has 100"));

	l = good;
	l.nr_pages = 99;
	assert_int_equal(load_raw(&l, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "covers 99 pages"));

	l = (struct raw_layer){ .version = 1, .kind = 2 }; /* neither Full nor Diff */
	assert_int_equal(load_raw(&l, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "malformed layer record");
}

/* ---- hand-built snapshot directories ---- */

static char base[PATH_MAX / 2];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void rm_tree(const char *dir)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int setup(void **state)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(base, sizeof(base), "%s/ign-layer-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
	return mkdtemp(base) ? 0 : -1;
}

static int teardown(void **state)
{
	rm_tree(base);
	return 0;
}

/* One snapshot as the test knows it: where, who, and guest RAM in the pages it holds. */
struct tsnap {
	char dir[PATH_MAX];
	uint8_t id[LAYER_ID_SIZE];
	bool diff;
	uint64_t bits[WORDS]; /* Diff: the pages it holds */
	uint8_t *img;	      /* RAM-sized; zero outside the pages it holds */
};

static void fill(struct tsnap *s, uint64_t page, uint8_t v)
{
	memset(s->img + page * PAGE, v, PAGE);
	s->img[page * PAGE + 1] = (uint8_t)page; /* each page its own bytes */
	if (s->diff)
		set_bit(s->bits, page);
}

static void write_bytes(const char *path, const void *p, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, len), (ssize_t)len);
	close(fd);
}

static uint8_t *read_bytes(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static void path_of(char *out, const char *dir, const char *name)
{
	assert_true(snprintf(out, PATH_MAX, "%s/%s", dir, name) < PATH_MAX);
}

/* The state file: the machine record, a vCPU record, the layer record (not last, so that its
 * place is checked too) and a serial record.  `parent` and `parent_id` are what a Diff
 * records (anything, for the refusal tests). */
static void write_state(const struct tsnap *s, const char *parent, const uint8_t *parent_id)
{
	static struct machine_config mc;
	struct layer_info li = { .kind = s->diff ? LAYER_DIFF : LAYER_FULL };
	struct snap_writer w;
	char path[PATH_MAX];

	memset(&mc, 0, sizeof(mc));
	mc.mem_mib = MEM_MIB;
	mc.smp = 1;
	mc.cpu_template = CPU_TEMPLATE_HOST;
	mc.nr_disks = 1;
	strcpy(mc.disks[0].path, "/images/rootfs.ext4");
	strcpy(mc.cmdline, "console=ttyS0");
	memcpy(li.id, s->id, LAYER_ID_SIZE);
	if (s->diff) {
		memcpy(li.parent_id, parent_id, LAYER_ID_SIZE);
		snprintf(li.parent, sizeof(li.parent), "%s", parent);
		li.nr_pages = NPAGES;
		li.bits = (uint64_t *)s->bits;
	}
	snap_writer_init(&w);
	machine_config_save(&mc, &w);
	snap_rec_begin(&w, SNAP_REC_VCPU, 1, "vcpu0");
	snap_put_bytes(&w, s->id, LAYER_ID_SIZE); /* stands for a vCPU's registers */
	layer_save(&w, &li);
	snap_rec_begin(&w, SNAP_REC_SERIAL, 3, "serial0");
	snap_put_u32(&w, 0x12345678);
	assert_int_equal(snap_writer_finish(&w), 0);
	path_of(path, s->dir, "state");
	write_bytes(path, w.buf, w.len);
	snap_writer_free(&w);
}

/* The memory file: RAM-sized, sparse, holding the snapshot's non-zero pages. */
static void write_memory(const struct tsnap *s)
{
	char path[PATH_MAX];
	int fd;

	path_of(path, s->dir, "memory");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)RAM), 0);
	for (uint64_t p = 0; p < NPAGES; p++) {
		const uint8_t *pg = s->img + p * PAGE;
		bool zero = true;

		for (unsigned i = 0; i < PAGE && zero; i++)
			zero = !pg[i];
		if (!zero)
			assert_int_equal(pwrite(fd, pg, PAGE, (off_t)(p * PAGE)), PAGE);
	}
	close(fd);
}

static void write_manifest(const struct tsnap *s, const char *parent)
{
	char path[PATH_MAX];
	json_t *m = json_pack("{s:s, s:s?, s:s, s:{s:i, s:i}, s:{s:I, s:I, s:I}}", "type",
			      s->diff ? "Diff" : "Full", "parent", s->diff ? parent : NULL,
			      "created", "2026-11-30T12:00:00Z", "config", "mem_mib", MEM_MIB,
			      "vcpus", 1, "sizes", "memory_bytes", (json_int_t)RAM,
			      "memory_written", (json_int_t)0, "state_bytes", (json_int_t)0);

	assert_non_null(m);
	path_of(path, s->dir, "manifest.json");
	assert_int_equal(json_dump_file(m, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER), 0);
	json_decref(m);
}

/* disk0: the snapshot's name at 0 and at 1 MiB, a hole between. */
static void write_disk(const struct tsnap *s)
{
	char path[PATH_MAX];
	const char *name = strrchr(s->dir, '/') + 1;
	int fd;

	path_of(path, s->dir, "disk0");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, name, strlen(name), 0), (ssize_t)strlen(name));
	assert_int_equal(pwrite(fd, name, strlen(name), 1 << 20), (ssize_t)strlen(name));
	close(fd);
}

/* Snapshot `name` under base/sub: Full when parent is NULL, else a Diff over it. */
static void make_snap(struct tsnap *s, const char *sub, const char *name, uint8_t tag,
		      const struct tsnap *parent)
{
	char dir[PATH_MAX];

	memset(s, 0, sizeof(*s));
	snprintf(dir, sizeof(dir), "%s/%s", base, sub);
	mkdir(dir, 0700);
	assert_true(snprintf(s->dir, sizeof(s->dir), "%s/%s", dir, name) < (int)sizeof(s->dir));
	assert_int_equal(mkdir(s->dir, 0700), 0);
	memset(s->id, tag, sizeof(s->id));
	s->diff = parent != NULL;
	s->img = calloc(1, RAM);
	assert_non_null(s->img);
}

static void save_snap(const struct tsnap *s, const struct tsnap *parent)
{
	write_state(s, parent ? parent->dir : NULL, parent ? parent->id : NULL);
	write_memory(s);
	write_manifest(s, parent ? parent->dir : NULL);
	write_disk(s);
}

static void free_snap(struct tsnap *s)
{
	free(s->img);
	s->img = NULL;
}

/* The chain used throughout: A (Full) <- B (Diff) <- C (Diff), under base/sub. */
static struct tsnap A, B, C;

static void build_abc(const char *sub)
{
	make_snap(&A, sub, "A", 0xa0, NULL);
	for (uint64_t p = 0; p < 10; p++)
		fill(&A, p, 0xa0);
	fill(&A, 20, 0xa2);
	fill(&A, 64, 0xa4);
	fill(&A, NPAGES - 1, 0xaf);
	save_snap(&A, NULL);

	make_snap(&B, sub, "B", 0xb0, &A);
	fill(&B, 1, 0xb1);
	fill(&B, 2, 0xb2);
	fill(&B, 63, 0xb3); /* a run across a word edge */
	fill(&B, 64, 0xb4);
	set_bit(B.bits, 20); /* held as a zero page: a hole over A's data */
	save_snap(&B, &A);

	make_snap(&C, sub, "C", 0xc0, &B);
	fill(&C, 2, 0xc2);
	fill(&C, 3, 0xc3);
	fill(&C, NPAGES - 1, 0xcf);
	set_bit(C.bits, 100); /* zero over zero */
	save_snap(&C, &B);
}

static void free_abc(void)
{
	free_snap(&A);
	free_snap(&B);
	free_snap(&C);
}

/* What restoring the chain ending in layers[n-1] gives: the root, each layer laid over. */
static uint8_t *expected(const struct tsnap *const *layers, int n)
{
	uint8_t *ram = malloc(RAM);

	assert_non_null(ram);
	memcpy(ram, layers[0]->img, RAM);
	for (int i = 1; i < n; i++)
		for (uint64_t p = 0; p < NPAGES; p++)
			if (test_bit(layers[i]->bits, p))
				memcpy(ram + p * PAGE, layers[i]->img + p * PAGE, PAGE);
	return ram;
}

static uint8_t *expected_abc(void)
{
	const struct tsnap *l[] = { &A, &B, &C };

	return expected(l, 3);
}

/* What a restore does up to the chain: read the state, the layer record, resolve. */
static int open_chain(const char *dir, struct layer_chain *c, char *why, size_t n)
{
	struct layer_info li;
	struct snap_file f;
	uint8_t *state;
	size_t len;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), ret;

	assert_true(dfd >= 0);
	ret = layer_read_state(dfd, &state, &len);
	close(dfd);
	assert_int_equal(ret, 0);
	ret = snap_file_parse(&f, state, len, why, n);
	if (!ret)
		ret = layer_load(&f, RAM, &li, why, n);
	if (!ret) {
		why[0] = '\0';
		ret = layer_chain_open(c, dir, &li, RAM, why, n);
		assert_null(li.bits); /* moved into the chain, or freed */
		if (ret)
			assert_true(why[0] != '\0');
		layer_info_free(&li);
	}
	free(state);
	return ret;
}

/* Apply chain c over its root's memory file: the guest RAM a restore gets. */
static uint8_t *apply(struct layer_chain *c)
{
	char path[PATH_MAX];
	size_t len;
	uint8_t *ram;

	path_of(path, c->l[0].dir, "memory");
	ram = read_bytes(path, &len);
	assert_int_equal(len, RAM);
	assert_int_equal(layer_chain_apply(c, ram), 0);
	return ram;
}

static void test_chain_three_layers(void **state)
{
	struct layer_chain *c = calloc(1, sizeof(*c));
	uint8_t *ram, *want;
	char why[PATH_MAX + 256];

	build_abc("t");
	assert_int_equal(open_chain(C.dir, c, why, sizeof(why)), 0);
	assert_int_equal(c->n, 3);
	assert_string_equal(c->l[0].dir, A.dir); /* root first */
	assert_string_equal(c->l[1].dir, B.dir);
	assert_string_equal(c->l[2].dir, C.dir);
	assert_null(c->l[0].bits);
	assert_memory_equal(c->l[1].bits, B.bits, sizeof(B.bits));
	assert_memory_equal(c->l[2].bits, C.bits, sizeof(C.bits));
	ram = apply(c);
	want = expected_abc();
	assert_memory_equal(ram, want, RAM);
	/* Spot checks that the expectation itself is what the layers say. */
	assert_int_equal(ram[0], 0xa0);
	assert_int_equal(ram[1 * PAGE], 0xb1);
	assert_int_equal(ram[2 * PAGE], 0xc2);
	assert_int_equal(ram[20 * PAGE], 0); /* B's zero page over A's */
	assert_int_equal(ram[64 * PAGE], 0xb4);
	assert_int_equal(ram[(NPAGES - 1) * PAGE], 0xcf);
	layer_chain_close(c);
	free(ram);
	free(want);

	/* The middle one: two layers. */
	assert_int_equal(open_chain(B.dir, c, why, sizeof(why)), 0);
	assert_int_equal(c->n, 2);
	ram = apply(c);
	assert_int_equal(ram[2 * PAGE], 0xb2);
	assert_int_equal(ram[3 * PAGE], 0xa0);
	layer_chain_close(c);
	free(ram);
	free(c);
	free_abc();
}

static void test_chain_missing_middle(void **state)
{
	struct layer_chain c;
	char why[PATH_MAX + 256];

	build_abc("t");
	rm_tree(B.dir);
	assert_int_equal(open_chain(C.dir, &c, why, sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, "is missing"));
	assert_non_null(strstr(why, B.dir));
	assert_int_equal(c.n, 0);
	free_abc();
}

static void test_chain_corrupt_middle(void **state)
{
	static uint8_t garbage[1000];
	struct layer_chain c;
	char why[PATH_MAX + 256], path[PATH_MAX];
	uint8_t *good;
	size_t len;

	build_abc("t");
	path_of(path, B.dir, "state");
	good = read_bytes(path, &len);

	memset(garbage, 0x55, sizeof(garbage));
	write_bytes(path, garbage, sizeof(garbage));
	assert_int_equal(open_chain(C.dir, &c, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "parent layer"));
	assert_non_null(strstr(why, B.dir));
	assert_non_null(strstr(why, "bad magic"));

	write_bytes(path, good, len - 9); /* truncated */
	assert_int_equal(open_chain(C.dir, &c, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "checksum mismatch"));

	write_bytes(path, good, 0);
	assert_int_equal(open_chain(C.dir, &c, why, sizeof(why)), -EFBIG);
	assert_non_null(strstr(why, "empty or too large"));

	unlink(path);
	assert_int_equal(open_chain(C.dir, &c, why, sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, "cannot read its state file"));

	write_bytes(path, good, len);
	assert_int_equal(open_chain(C.dir, &c, why, sizeof(why)), 0);
	layer_chain_close(&c);

	/* Its memory file cut short, then gone. */
	path_of(path, B.dir, "memory");
	assert_int_equal(truncate(path, (off_t)(RAM / 2)), 0);
	assert_int_equal(open_chain(C.dir, &c, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "the memory file has 8388608 bytes, RAM is 16777216"));
	assert_non_null(strstr(why, B.dir));
	unlink(path);
	assert_int_equal(open_chain(C.dir, &c, why, sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, "memory file"));
	free(good);
	free_abc();
}

static void test_chain_id_mismatch(void **state)
{
	struct tsnap other;
	struct layer_chain c;
	char why[PATH_MAX + 256];

	build_abc("t");
	/* Another snapshot where B was: a Full one with its own identity. */
	rm_tree(B.dir);
	make_snap(&other, "t", "B", 0x0b, NULL);
	fill(&other, 1, 0xee);
	save_snap(&other, NULL);
	assert_int_equal(open_chain(C.dir, &c, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "is not the snapshot"));
	assert_non_null(strstr(why, B.dir));
	free_snap(&other);
	free_abc();
}

static void test_chain_cycle(void **state)
{
	struct tsnap x, y, z;
	struct layer_chain c;
	char why[PATH_MAX + 256];

	/* X's parent is Y, Y's parent is X, identities matching. */
	make_snap(&x, "t", "X", 0x58, &A);
	make_snap(&y, "t", "Y", 0x59, &A);
	fill(&x, 1, 1);
	fill(&y, 2, 2);
	write_state(&x, y.dir, y.id);
	write_state(&y, x.dir, x.id);
	write_memory(&x);
	write_memory(&y);
	assert_int_equal(open_chain(x.dir, &c, why, sizeof(why)), -ELOOP);
	assert_non_null(strstr(why, "its own ancestor"));
	/* Its own parent. */
	make_snap(&z, "t", "Z", 0x5a, &A);
	write_state(&z, z.dir, z.id);
	write_memory(&z);
	assert_int_equal(open_chain(z.dir, &c, why, sizeof(why)), -ELOOP);
	free_snap(&x);
	free_snap(&y);
	free_snap(&z);
}

static void test_chain_moved_tree(void **state)
{
	struct layer_chain *c = calloc(1, sizeof(*c));
	char from[PATH_MAX], to[PATH_MAX], why[PATH_MAX + 256];
	uint8_t *ram, *want;

	build_abc("old");
	snprintf(from, sizeof(from), "%s/old", base);
	snprintf(to, sizeof(to), "%s/new", base);
	assert_int_equal(rename(from, to), 0);
	/* The recorded parents are gone; each is found beside its child. */
	snprintf(from, sizeof(from), "%s/new/C", base);
	assert_int_equal(open_chain(from, c, why, sizeof(why)), 0);
	assert_int_equal(c->n, 3);
	snprintf(to, sizeof(to), "%s/new/A", base);
	assert_string_equal(c->l[0].dir, to);
	ram = apply(c);
	want = expected_abc();
	assert_memory_equal(ram, want, RAM);
	layer_chain_close(c);
	free(c);
	free(ram);
	free(want);
	free_abc();
}

/* ---- flatten ---- */

/* The records of a state file, for comparing two. */
static void load_state(const char *dir, uint8_t **buf, struct snap_file *f)
{
	char path[PATH_MAX];
	size_t len;

	path_of(path, dir, "state");
	*buf = read_bytes(path, &len);
	assert_int_equal(snap_file_parse(f, *buf, len, NULL, 0), 0);
}

/* `dir` is a Full snapshot of identity `id` whose RAM is `want`, whose records are `old`'s
 * (the layer record aside) and whose disk and manifest are right. */
static void check_flat(const char *dir, const uint8_t *id, const struct snap_file *old,
		       const uint8_t *want, const char *disk_of)
{
	char path[PATH_MAX], why[256];
	struct snap_reader a, b;
	struct layer_info li;
	struct snap_file f;
	struct stat st;
	json_t *m, *sizes;
	uint8_t *buf, *mem, *disk;
	uint64_t data = 0;
	off_t pos = 0, d, h;
	size_t len;
	int fd;

	/* Memory: the applied chain. */
	path_of(path, dir, "memory");
	mem = read_bytes(path, &len);
	assert_int_equal(len, RAM);
	assert_memory_equal(mem, want, RAM);
	free(mem);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	while ((d = lseek(fd, pos, SEEK_DATA)) >= 0) {
		h = lseek(fd, d, SEEK_HOLE);
		data += (uint64_t)(h - d);
		pos = h;
	}
	close(fd);
	assert_true(data < RAM / 2); /* still sparse */

	/* State: Full, the same identity, every other record as it was, in order. */
	load_state(dir, &buf, &f);
	assert_int_equal(layer_load(&f, RAM, &li, why, sizeof(why)), 0);
	assert_int_equal(li.kind, LAYER_FULL);
	assert_memory_equal(li.id, id, LAYER_ID_SIZE);
	assert_int_equal(f.count, old->count);
	for (uint32_t i = 0; i < f.count; i++) {
		assert_int_equal(snap_file_record(old, i, &a), 0);
		assert_int_equal(snap_file_record(&f, i, &b), 0);
		assert_int_equal(a.type, b.type);
		assert_int_equal(a.version, b.version);
		assert_string_equal(a.id, b.id);
		if (a.type == SNAP_REC_LAYER)
			continue;
		assert_int_equal(a.len, b.len);
		assert_memory_equal(a.p, b.p, a.len);
	}
	free(buf);

	/* The manifest says what it is now. */
	path_of(path, dir, "manifest.json");
	m = json_load_file(path, 0, NULL);
	assert_non_null(m);
	assert_string_equal(json_string_value(json_object_get(m, "type")), "Full");
	assert_true(json_is_null(json_object_get(m, "parent")));
	assert_string_equal(json_string_value(json_object_get(m, "created")),
			    "2026-11-30T12:00:00Z");
	sizes = json_object_get(m, "sizes");
	assert_true(json_integer_value(json_object_get(sizes, "memory_bytes")) == (json_int_t)RAM);
	assert_true(json_integer_value(json_object_get(sizes, "memory_written")) ==
		    (json_int_t)data);
	path_of(path, dir, "state");
	assert_int_equal(stat(path, &st), 0);
	assert_true(json_integer_value(json_object_get(sizes, "state_bytes")) == st.st_size);
	json_decref(m);

	/* The disk, copied from the flattened snapshot. */
	path_of(path, dir, "disk0");
	disk = read_bytes(path, &len);
	assert_int_equal(len, (1 << 20) + strlen(disk_of));
	assert_memory_equal(disk, disk_of, strlen(disk_of));
	assert_memory_equal(disk + (1 << 20), disk_of, strlen(disk_of));
	for (size_t i = strlen(disk_of); i < (1 << 20); i++)
		assert_int_equal(disk[i], 0);
	free(disk);
}

/* No temporary directory left in `dir`. */
static void check_no_tmp(const char *sub)
{
	char dir[PATH_MAX];
	struct dirent *e;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/%s", base, sub);
	d = opendir(dir);
	assert_non_null(d);
	while ((e = readdir(d)))
		assert_null(strstr(e->d_name, "tmp"));
	closedir(d);
}

static void test_flatten_in_place(void **state)
{
	struct layer_chain *c = calloc(1, sizeof(*c));
	const struct tsnap *cd[2];
	struct tsnap D;
	struct snap_file old, oldb;
	uint8_t *old_buf, *oldb_buf, *want, *ram;
	char err[PATH_MAX + 256];
	struct layer_info li;
	struct snap_file f;
	uint8_t *buf;

	build_abc("t");
	/* D: a Diff over C, which must still resolve once C is flattened. */
	make_snap(&D, "t", "D", 0xd0, &C);
	fill(&D, 3, 0xd3);
	fill(&D, 500, 0xd5);
	save_snap(&D, &C);
	load_state(C.dir, &old_buf, &old);
	load_state(B.dir, &oldb_buf, &oldb);

	assert_int_equal(snapshot_store_flatten(C.dir, NULL, NULL, err, sizeof(err)), 0);
	want = expected_abc();
	check_flat(C.dir, C.id, &old, want, "C");
	check_no_tmp("t");
	/* The layers below are untouched: B is still a Diff over A. */
	load_state(B.dir, &buf, &f);
	assert_int_equal(layer_load(&f, RAM, &li, err, sizeof(err)), 0);
	assert_int_equal(li.kind, LAYER_DIFF);
	layer_info_free(&li);
	assert_int_equal(f.len, oldb.len);
	assert_memory_equal(buf, oldb_buf, f.len);
	free(buf);

	/* D's recorded parent is C, with C's identity: now a chain of two. */
	assert_int_equal(open_chain(D.dir, c, err, sizeof(err)), 0);
	assert_int_equal(c->n, 2);
	assert_string_equal(c->l[0].dir, C.dir);
	ram = apply(c);
	memcpy(C.img, want, RAM); /* C as a Full snapshot */
	cd[0] = &C;
	cd[1] = &D;
	free(want);
	want = expected(cd, 2);
	assert_memory_equal(ram, want, RAM);
	assert_int_equal(ram[3 * PAGE], 0xd3);
	layer_chain_close(c);
	free(ram);

	/* Once is enough. */
	assert_int_equal(snapshot_store_flatten(C.dir, NULL, NULL, err, sizeof(err)), -EALREADY);

	free(want);
	free(c);
	free(old_buf);
	free(oldb_buf);
	free_snap(&D);
	free_abc();
}

/* A middle layer flattened in place: the Diff above it still resolves through it. */
static void test_flatten_middle(void **state)
{
	struct layer_chain *c = calloc(1, sizeof(*c));
	char err[PATH_MAX + 256];
	struct snap_file old;
	uint8_t *old_buf, *ram, *want;
	const struct tsnap *ab[] = { &A, &B };

	build_abc("t");
	load_state(B.dir, &old_buf, &old);
	assert_int_equal(snapshot_store_flatten(B.dir, NULL, NULL, err, sizeof(err)), 0);
	want = expected(ab, 2);
	check_flat(B.dir, B.id, &old, want, "B");
	free(want);
	assert_int_equal(open_chain(C.dir, c, err, sizeof(err)), 0);
	assert_int_equal(c->n, 2);
	assert_string_equal(c->l[0].dir, B.dir);
	ram = apply(c);
	want = expected_abc();
	assert_memory_equal(ram, want, RAM);
	layer_chain_close(c);
	free(c);
	free(ram);
	free(want);
	free(old_buf);
	free_abc();
}

static void test_flatten_out(void **state)
{
	char out[PATH_MAX], out2[PATH_MAX], err[PATH_MAX + 256], path[PATH_MAX];
	struct snap_file old;
	uint8_t *old_buf, *want, *now;
	size_t len;

	build_abc("t");
	load_state(C.dir, &old_buf, &old);
	snprintf(out, sizeof(out), "%s/t/flat", base);
	assert_int_equal(snapshot_store_flatten(C.dir, out, NULL, err, sizeof(err)), 0);
	want = expected_abc();
	check_flat(out, C.id, &old, want, "C");
	/* C itself is as it was. */
	path_of(path, C.dir, "state");
	now = read_bytes(path, &len);
	assert_int_equal(len, old.len);
	assert_memory_equal(now, old_buf, len);
	free(now);
	check_no_tmp("t");

	/* DIR must not exist. */
	assert_int_equal(snapshot_store_flatten(C.dir, out, NULL, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "already exists"));
	/* Trailing slashes name the same directories. */
	snprintf(out2, sizeof(out2), "%s/t/flat2/", base);
	assert_true(snprintf(path, sizeof(path), "%s/", C.dir) < (int)sizeof(path));
	assert_int_equal(snapshot_store_flatten(path, out2, NULL, err, sizeof(err)), 0);
	out2[strlen(out2) - 1] = '\0';
	check_flat(out2, C.id, &old, want, "C");
	check_no_tmp("t");
	free(want);
	free(old_buf);
	free_abc();
}

/* SNAP named through a symbolic link or as "dir/.": the directory itself is flattened in
 * place, and the link stays a link. */
static void test_flatten_paths(void **state)
{
	char link[PATH_MAX], dot[PATH_MAX], err[PATH_MAX + 256];
	const struct tsnap *ab[] = { &A, &B };
	struct snap_file oldb, oldc;
	uint8_t *oldb_buf, *oldc_buf, *want;
	struct stat st;

	build_abc("t");
	load_state(B.dir, &oldb_buf, &oldb);
	load_state(C.dir, &oldc_buf, &oldc);
	snprintf(link, sizeof(link), "%s/t/link", base);
	assert_int_equal(symlink(C.dir, link), 0);
	assert_int_equal(snapshot_store_flatten(link, NULL, NULL, err, sizeof(err)), 0);
	assert_int_equal(lstat(link, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	want = expected_abc();
	check_flat(C.dir, C.id, &oldc, want, "C");
	free(want);
	check_no_tmp("t");

	assert_true(snprintf(dot, sizeof(dot), "%s/.", B.dir) < (int)sizeof(dot));
	assert_int_equal(snapshot_store_flatten(dot, NULL, NULL, err, sizeof(err)), 0);
	want = expected(ab, 2);
	check_flat(B.dir, B.id, &oldb, want, "B");
	check_no_tmp("t");
	free(want);
	free(oldb_buf);
	free(oldc_buf);
	free_abc();
}

/* --out on another file system (tmpfs in /dev/shm when the test directory is elsewhere): no
 * reflink and no copy_file_range there, so the read-and-write copy does the work. */
static void test_flatten_out_other_fs(void **state)
{
	char dir[] = "/dev/shm/ign-layer-XXXXXX", out[PATH_MAX], err[PATH_MAX + 256];
	struct stat a, b;
	struct snap_file old;
	uint8_t *old_buf, *want;
	int ret;

	if (stat("/dev/shm", &a) || stat(base, &b) || a.st_dev == b.st_dev || !mkdtemp(dir)) {
		print_message("no /dev/shm on another file system: skipping\n");
		skip();
	}
	build_abc("t");
	load_state(C.dir, &old_buf, &old);
	snprintf(out, sizeof(out), "%s/flat", dir);
	ret = snapshot_store_flatten(C.dir, out, NULL, err, sizeof(err));
	if (ret)
		print_error("%s\n", err);
	want = expected_abc();
	if (!ret)
		check_flat(out, C.id, &old, want, "C");
	rm_tree(dir);
	assert_int_equal(ret, 0);
	free(want);
	free(old_buf);
	free_abc();
}

static void test_flatten_refused(void **state)
{
	char err[PATH_MAX + 256], path[PATH_MAX];
	struct snap_file old;
	uint8_t *old_buf, *now;
	size_t len;

	build_abc("t");
	assert_int_equal(snapshot_store_flatten(A.dir, NULL, NULL, err, sizeof(err)), -EALREADY);
	assert_non_null(strstr(err, "is already a Full snapshot; nothing to do"));
	snprintf(path, sizeof(path), "%s/t/out", base);
	assert_int_equal(snapshot_store_flatten(A.dir, path, NULL, err, sizeof(err)), -EALREADY);
	assert_int_equal(access(path, F_OK), -1);

	snprintf(path, sizeof(path), "%s/t/empty", base);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(snapshot_store_flatten(path, NULL, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "is not a snapshot"));
	snprintf(path, sizeof(path), "%s/t/nothing", base);
	assert_int_equal(snapshot_store_flatten(path, NULL, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "is not a snapshot"));

	/* A broken chain: refused with the chain's reason, C untouched, nothing left over. */
	load_state(C.dir, &old_buf, &old);
	rm_tree(B.dir);
	assert_int_equal(snapshot_store_flatten(C.dir, NULL, NULL, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "is missing"));
	path_of(path, C.dir, "state");
	now = read_bytes(path, &len);
	assert_int_equal(len, old.len);
	assert_memory_equal(now, old_buf, len);
	free(now);
	check_no_tmp("t");

	/* C's own state file damaged. */
	write_bytes(path, "IGNSNAP", 8);
	assert_int_equal(snapshot_store_flatten(C.dir, NULL, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "state file refused"));
	free(old_buf);
	free_abc();
}

/* `ignition snapshot flatten` as typed. */
static void test_flatten_cli(void **state)
{
	char out[PATH_MAX], opt[PATH_MAX + 8], none[PATH_MAX];
	char cmd[] = "snapshot", verb[] = "flatten", dash_out[] = "--out", bogus[] = "--bogus";
	char *usage1[] = { cmd, verb };
	char *usage2[] = { cmd, verb, C.dir, dash_out };
	char *usage3[] = { cmd, verb, C.dir, bogus };
	char *usage4[] = { cmd, verb, C.dir, A.dir };
	char *to[] = { cmd, verb, opt, C.dir };
	char *full[] = { cmd, verb, A.dir };
	char *missing[] = { cmd, verb, none };
	char *in_place[] = { cmd, verb, C.dir };
	struct snap_file old;
	uint8_t *old_buf, *want;

	build_abc("t");
	load_state(C.dir, &old_buf, &old);
	snprintf(out, sizeof(out), "%s/t/cli", base);
	snprintf(opt, sizeof(opt), "--out=%s", out);
	snprintf(none, sizeof(none), "%s/t/none", base);
	assert_int_equal(snapshot_store_main(2, usage1), 2);
	assert_int_equal(snapshot_store_main(4, usage2), 2);
	assert_int_equal(snapshot_store_main(4, usage3), 2);
	assert_int_equal(snapshot_store_main(4, usage4), 2);
	assert_int_equal(snapshot_store_main(4, to), 0);
	want = expected_abc();
	check_flat(out, C.id, &old, want, "C");
	assert_int_equal(snapshot_store_main(3, full), 0);
	assert_int_equal(snapshot_store_main(3, missing), 1);
	assert_int_equal(snapshot_store_main(3, in_place), 0);
	check_flat(C.dir, C.id, &old, want, "C");
	assert_int_equal(snapshot_store_main(3, in_place), 0); /* now Full: nothing to do */
	free(want);
	free(old_buf);
	free_abc();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bitmap_runs),
		cmocka_unit_test(test_bitmap_empty_full),
		cmocka_unit_test(test_mark_dirty_flat),
		cmocka_unit_test(test_mark_dirty_two_regions),
		cmocka_unit_test(test_layer_full_round_trip),
		cmocka_unit_test(test_layer_diff_round_trip),
		cmocka_unit_test(test_layer_refused),
		cmocka_unit_test_setup_teardown(test_chain_three_layers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_missing_middle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_corrupt_middle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_id_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_cycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_moved_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flatten_in_place, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flatten_middle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flatten_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flatten_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flatten_out_other_fs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flatten_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flatten_cli, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
