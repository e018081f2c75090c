#include "snap_edit.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <string.h>

void snap_edit_save(struct snap_edit *e, const struct dev_ops *ops, void *dev,
		    enum snap_rec_type type, const char *id)
{
	struct snap_writer w;
	struct snap_file f;
	struct snap_reader r;

	memset(e, 0, sizeof(*e));
	snap_writer_init(&w);
	assert_int_equal(ops->save(dev, &w, id), 0);
	assert_int_equal(snap_writer_finish(&w), 0);
	assert_int_equal(snap_file_parse(&f, w.buf, w.len, NULL, 0), 0);
	assert_int_equal(f.count, 1);
	assert_int_equal(snap_file_find(&f, type, id, &r), 0);
	assert_true(r.len <= sizeof(e->payload));
	e->type = type;
	e->version = r.version;
	strcpy(e->id, r.id);
	memcpy(e->payload, r.p, r.len);
	e->len = r.len;
	snap_writer_free(&w);
}

int snap_edit_restore(const struct snap_edit *e, const struct dev_ops *ops, void *dev)
{
	struct snap_writer w;
	struct snap_file f;
	int ret;

	snap_writer_init(&w);
	snap_rec_begin(&w, e->type, e->version, e->id);
	snap_put_bytes(&w, e->payload, e->len);
	assert_int_equal(snap_writer_finish(&w), 0);
	assert_int_equal(snap_file_parse(&f, w.buf, w.len, NULL, 0), 0);
	ret = ops->restore(dev, &f, e->id);
	snap_writer_free(&w);
	return ret;
}

void snap_edit_assert_same(const struct snap_edit *a, const struct snap_edit *b)
{
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->version, b->version);
	assert_string_equal(a->id, b->id);
	assert_int_equal(a->len, b->len);
	assert_memory_equal(a->payload, b->payload, a->len);
}
