/* `ignition snapshot list|info|flatten|rm` (docs/snapshots.md, "Commands"). */
#ifndef IGNITION_SNAPSHOT_STORE_H
#define IGNITION_SNAPSHOT_STORE_H

#include <stddef.h>
#include <stdio.h>

/* argv[0] is "snapshot"; returns the process exit status (0, 1 on an error, 2 on bad usage). */
int snapshot_store_main(int argc, char **argv);

/* Merge the chain of the Diff snapshot in `snap` into one Full snapshot: in place when `out`
 * is NULL (built beside it, then swapped with it atomically), else into the new directory
 * `out`.  It keeps snap's identity, so Diffs over snap stay valid.  One line per layer goes to
 * `progress` (may be NULL).  0, -EALREADY when snap is already Full (nothing written), or
 * -errno with one line in err; a failure or a crash leaves snap as it was or flattened. */
int snapshot_store_flatten(const char *snap, const char *out, FILE *progress, char *err,
			   size_t err_size) __attribute__((warn_unused_result));

#endif
