/* Test helper for device snapshots: take one device's record out of a save, change it, and feed
 * it back as a one-record state file, so each refusal test touches exactly one field. */
#ifndef IGNITION_TESTS_SNAP_EDIT_H
#define IGNITION_TESTS_SNAP_EDIT_H

#include "core/bus.h"
#include "snapshot/snap.h"

#include <stddef.h>
#include <stdint.h>

/* One record, editable. */
struct snap_edit {
	enum snap_rec_type type;
	uint16_t version;
	char id[SNAP_ID_MAX];
	uint8_t payload[1024];
	size_t len;
};

/* Save `dev` through ops->save under `id` and copy out its record of `type`, asserting that
 * the save succeeded and wrote exactly that one record. */
void snap_edit_save(struct snap_edit *e, const struct dev_ops *ops, void *dev,
		    enum snap_rec_type type, const char *id);
/* Write `e` as a state file (header, the one record, CRC), parse it and call ops->restore
 * with e->id; returns what the restore returned. */
int snap_edit_restore(const struct snap_edit *e, const struct dev_ops *ops, void *dev);
/* Assert that two saves are identical (type, version, id and payload). */
void snap_edit_assert_same(const struct snap_edit *a, const struct snap_edit *b);

#endif
