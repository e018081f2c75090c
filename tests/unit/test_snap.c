/* Snapshot state file: records round-trip field by field; truncated, corrupted, re-versioned
 * and malformed files are refused with a reason; readers never read past a record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "snapshot/snap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static void write_sample(struct snap_writer *w)
{
	snap_writer_init(w);
	snap_rec_begin(w, SNAP_REC_SERIAL, 3, "serial0");
	snap_put_u8(w, 0xab);
	snap_put_u16(w, 0xbeef);
	snap_put_u32(w, 0xdeadbeef);
	snap_put_u64(w, 0x0123456789abcdefull);
	snap_put_bool(w, true);
	snap_put_str(w, "hello", 16);
	snap_rec_begin(w, SNAP_REC_VCPU, 1, "vcpu0");
	snap_put_bytes(w, "\x01\x02\x03", 3);
	snap_rec_begin(w, SNAP_REC_VCPU, 1, "vcpu1"); /* empty payload */
	assert_int_equal(snap_writer_finish(w), 0);
}

static void test_round_trip(void **state)
{
	struct snap_writer w;
	struct snap_file f;
	struct snap_reader r;
	char why[128], s[16];
	uint8_t b[3];

	write_sample(&w);
	/* Explicit little-endian layout: header, then the first record's header. */
	assert_memory_equal(w.buf, "IGNSNAP\0\x01\0\0\0\x03\0\0\0", 16);
	assert_int_equal(w.buf[16], SNAP_REC_SERIAL);
	assert_int_equal(w.buf[18], 3);
	assert_string_equal((char *)w.buf + 20, "serial0");
	assert_int_equal(snap_file_parse(&f, w.buf, w.len, why, sizeof(why)), 0);
	assert_int_equal(f.count, 3);

	assert_int_equal(snap_file_find(&f, SNAP_REC_SERIAL, "serial0", &r), 0);
	assert_int_equal(r.version, 3);
	assert_int_equal(snap_get_u8(&r), 0xab);
	assert_int_equal(snap_get_u16(&r), 0xbeef);
	assert_int_equal(snap_get_u32(&r), 0xdeadbeef);
	assert_true(snap_get_u64(&r) == 0x0123456789abcdefull);
	assert_true(snap_get_bool(&r));
	snap_get_str(&r, s, sizeof(s));
	assert_string_equal(s, "hello");
	assert_int_equal(snap_reader_done(&r), 0);

	assert_int_equal(snap_file_find(&f, SNAP_REC_VCPU, "vcpu0", &r), 0);
	snap_get_bytes(&r, b, 3);
	assert_memory_equal(b, "\x01\x02\x03", 3);
	assert_int_equal(snap_reader_done(&r), 0);
	assert_int_equal(snap_file_record(&f, 2, &r), 0);
	assert_string_equal(r.id, "vcpu1");
	assert_int_equal(r.len, 0);
	assert_int_equal(snap_file_record(&f, 3, &r), -ENOENT);
	/* Keyed by type and id. */
	assert_int_equal(snap_file_find(&f, SNAP_REC_SERIAL, "vcpu0", &r), -ENOENT);
	assert_int_equal(snap_file_find(&f, SNAP_REC_RTC, "serial0", &r), -ENOENT);
	assert_int_not_equal(snap_reader_done(&r), 0);
	snap_writer_free(&w);
}

static void test_reader_bounds(void **state)
{
	struct snap_writer w;
	struct snap_file f;
	struct snap_reader r;
	char s[4];
	uint8_t skip[16];

	write_sample(&w);
	assert_int_equal(snap_file_parse(&f, w.buf, w.len, NULL, 0), 0);
	/* Reading past the payload: zero values and a sticky error. */
	assert_int_equal(snap_file_find(&f, SNAP_REC_VCPU, "vcpu0", &r), 0);
	assert_int_equal(snap_get_u16(&r), 0x0201);
	assert_int_equal(snap_get_u16(&r), 0); /* one byte left */
	assert_int_equal(snap_get_u8(&r), 0);  /* sticky even though it would fit */
	assert_int_not_equal(snap_reader_done(&r), 0);
	/* Not consumed exactly. */
	assert_int_equal(snap_file_find(&f, SNAP_REC_VCPU, "vcpu0", &r), 0);
	snap_get_u8(&r);
	assert_int_not_equal(snap_reader_done(&r), 0);
	/* A string longer than the caller's buffer. */
	assert_int_equal(snap_file_find(&f, SNAP_REC_SERIAL, "serial0", &r), 0);
	snap_get_bytes(&r, skip, 1 + 2 + 4 + 8 + 1);
	snap_get_str(&r, s, sizeof(s));
	assert_string_equal(s, "");
	assert_int_not_equal(snap_reader_done(&r), 0);
	/* A bool that is neither 0 nor 1; snap_fail. */
	assert_int_equal(snap_file_find(&f, SNAP_REC_SERIAL, "serial0", &r), 0);
	snap_get_bool(&r); /* 0xab */
	assert_int_not_equal(snap_reader_done(&r), 0);
	assert_int_equal(snap_file_find(&f, SNAP_REC_VCPU, "vcpu1", &r), 0);
	assert_int_equal(snap_reader_done(&r), 0);
	snap_fail(&r);
	assert_int_not_equal(snap_reader_done(&r), 0);
	snap_writer_free(&w);
}

/* Re-seal a modified file so that only the check under test can refuse it. */
static void fix_crc(uint8_t *buf, size_t len)
{
	uint32_t c = (uint32_t)crc32(0L, buf, (uInt)(len - 4));

	for (int i = 0; i < 4; i++)
		buf[len - 4 + i] = (uint8_t)(c >> (8 * i));
}

static void test_refuses_corruption(void **state)
{
	struct snap_writer w;
	struct snap_file f;
	char why[128];
	uint8_t *copy;

	write_sample(&w);
	copy = malloc(w.len);
	assert_non_null(copy);
	/* Every truncation. */
	for (size_t n = 0; n < w.len; n++)
		assert_int_not_equal(snap_file_parse(&f, w.buf, n, why, sizeof(why)), 0);
	/* Every single flipped bit is caught (by the CRC at least). */
	for (size_t i = 0; i < w.len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			memcpy(copy, w.buf, w.len);
			copy[i] ^= (uint8_t)(1u << bit);
			assert_int_not_equal(snap_file_parse(&f, copy, w.len, why, sizeof(why)), 0);
		}
	}
	memcpy(copy, w.buf, w.len);
	copy[20] ^= 1;
	assert_int_equal(snap_file_parse(&f, copy, w.len, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "checksum"));
	/* Wrong magic, wrong version (with a valid CRC). */
	memcpy(copy, w.buf, w.len);
	copy[0] = 'X';
	fix_crc(copy, w.len);
	assert_int_equal(snap_file_parse(&f, copy, w.len, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "magic"));
	memcpy(copy, w.buf, w.len);
	copy[8] = 2;
	fix_crc(copy, w.len);
	assert_int_equal(snap_file_parse(&f, copy, w.len, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "version 2"));
	/* A record count larger than the records present. */
	memcpy(copy, w.buf, w.len);
	copy[12] = 4;
	fix_crc(copy, w.len);
	assert_int_equal(snap_file_parse(&f, copy, w.len, why, sizeof(why)), -EINVAL);
	/* Fewer: bytes left over. */
	copy[12] = 2;
	fix_crc(copy, w.len);
	assert_int_equal(snap_file_parse(&f, copy, w.len, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "after the last record"));
	/* A payload length past the end. */
	memcpy(copy, w.buf, w.len);
	copy[16 + 4 + SNAP_ID_MAX + 3] = 0x7f;
	fix_crc(copy, w.len);
	assert_int_equal(snap_file_parse(&f, copy, w.len, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "record 0"));
	/* An unterminated id. */
	memcpy(copy, w.buf, w.len);
	memset(copy + 16 + 4, 'A', SNAP_ID_MAX);
	fix_crc(copy, w.len);
	assert_int_equal(snap_file_parse(&f, copy, w.len, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "id"));
	free(copy);
	snap_writer_free(&w);
}

static void test_writer_errors(void **state)
{
	struct snap_writer w;
	char longid[SNAP_ID_MAX + 1];

	/* A put outside a record. */
	snap_writer_init(&w);
	snap_put_u32(&w, 1);
	assert_int_equal(snap_writer_finish(&w), -EINVAL);
	snap_writer_free(&w);
	/* An id that does not fit. */
	memset(longid, 'a', SNAP_ID_MAX);
	longid[SNAP_ID_MAX] = '\0';
	snap_writer_init(&w);
	snap_rec_begin(&w, SNAP_REC_RTC, 1, longid);
	snap_put_u32(&w, 1);
	assert_int_equal(snap_writer_finish(&w), -EINVAL);
	snap_writer_free(&w);
	/* A string over its bound. */
	snap_writer_init(&w);
	snap_rec_begin(&w, SNAP_REC_RTC, 1, "rtc");
	snap_put_str(&w, "too long", 3);
	assert_int_equal(snap_writer_finish(&w), -EINVAL);
	snap_writer_free(&w);
	/* An empty file is valid. */
	struct snap_file f;

	snap_writer_init(&w);
	assert_int_equal(snap_writer_finish(&w), 0);
	assert_int_equal(snap_file_parse(&f, w.buf, w.len, NULL, 0), 0);
	assert_int_equal(f.count, 0);
	assert_string_equal(snap_rec_name(SNAP_REC_VIRTIO_BLK), "virtio-blk");
	assert_string_equal(snap_rec_name((enum snap_rec_type)999), "unknown");
	snap_writer_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_reader_bounds),
		cmocka_unit_test(test_refuses_corruption),
		cmocka_unit_test(test_writer_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
