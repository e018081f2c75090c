/* Snapshot layers (docs/snapshots.md, "Diff snapshots"): every snapshot has an identity and a
 * kind.  A Full snapshot's `memory` holds all of guest RAM; a Diff snapshot's holds only the
 * pages written since its parent (the snapshot the VM was restored from or last wrote), with a
 * bitmap of those pages in its state file, and names its parent by path and identity.
 * Restoring a Diff resolves the chain down to a Full root, maps the root privately and lays
 * each layer's pages over it, oldest first. */
#ifndef IGNITION_SNAPSHOT_LAYER_H
#define IGNITION_SNAPSHOT_LAYER_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LAYER_ID_SIZE	16
#define LAYER_MAX_DEPTH 64 /* a longer chain is refused: flatten it */

struct snap_writer;
struct snap_file;

enum layer_kind { LAYER_FULL = 0, LAYER_DIFF = 1 };

/* The SNAP_REC_LAYER record.  A state file without one (written before layers existed) is a
 * Full snapshot whose identity is all zeros. */
struct layer_info {
	enum layer_kind kind;
	uint8_t id[LAYER_ID_SIZE];
	uint8_t parent_id[LAYER_ID_SIZE]; /* Diff: the parent's id */
	char parent[PATH_MAX];		  /* Diff: the parent's directory when this was written */
	uint64_t nr_pages;		  /* Diff: pages of RAM the bitmap covers */
	uint64_t *bits;			  /* Diff: the pages this layer holds (malloc'd) */
};

/* A new random identity. 0 or -errno. */
int layer_new_id(uint8_t id[LAYER_ID_SIZE]) __attribute__((warn_unused_result));
/* Append the record (bits only for a Diff). */
void layer_save(struct snap_writer *w, const struct layer_info *li);
/* Read it (absent: Full, zero id).  0, or -EINVAL with one reason in why. */
int layer_load(const struct snap_file *f, uint64_t ram_bytes, struct layer_info *li, char *why,
	       size_t why_size) __attribute__((warn_unused_result));
void layer_info_free(struct layer_info *li);

/* Read a snapshot directory's state file into a malloc'd buffer.  0, -EFBIG for an empty or
 * absurdly large one, or -errno. */
int layer_read_state(int dirfd, uint8_t **buf, size_t *len) __attribute__((warn_unused_result));

/* A resolved chain: l[0] is the Full root, l[n-1] the snapshot asked for. */
struct layer_chain {
	int n;
	struct layer_chain_entry {
		char dir[PATH_MAX];
		int memfd;	/* its memory file, open read-only */
		uint64_t *bits; /* pages it holds (NULL for the root: all of them) */
	} l[LAYER_MAX_DEPTH];
	uint64_t ram_bytes;
};

/* Resolve the chain of the snapshot in `dir` (whose layer record `leaf` was read from its
 * state file; its bits move into the chain) down to its Full root.  A parent is looked for at
 * its recorded path, then beside `dir` under the same name (a tree of snapshots moved as a
 * whole).  Each must exist, parse, be the recorded identity (not another snapshot at that
 * path), have a memory file of ram_bytes, and the chain must end in a Full snapshot within
 * LAYER_MAX_DEPTH without a cycle.  0, or -errno with one line in why. */
int layer_chain_open(struct layer_chain *c, const char *dir, struct layer_info *leaf,
		     uint64_t ram_bytes, char *why, size_t why_size)
	__attribute__((warn_unused_result));
/* Copy every layer's pages above the root into `ram` (ram_bytes long, the root's memory
 * already there), oldest first.  0 or -errno. */
int layer_chain_apply(const struct layer_chain *c, uint8_t *ram)
	__attribute__((warn_unused_result));
void layer_chain_close(struct layer_chain *c);

/* Lay layer i (1..n-1) of the chain over the file `out` (ram_bytes long, holding the layers
 * below i): each page the layer holds is copied, holes included (a page it holds as a hole is
 * a zero page, punched or written as zeros).  *pages gets the count.  0 or -errno. */
int layer_chain_overlay(const struct layer_chain *c, int i, int out, uint64_t *pages)
	__attribute__((warn_unused_result));

/* Make `out` (an empty file open for writing) a copy of `in`: a reflink where the file system
 * shares blocks, else the data extents copied (in the kernel where it can; holes stay holes).
 * 0 or -errno. */
int layer_copy_file(int in, int out) __attribute__((warn_unused_result));

/* fsync the directory that holds `path`, so that a rename or an exchange in it is durable.
 * 0 or -errno. */
int layer_sync_dir_of(const char *path) __attribute__((warn_unused_result));

#endif
