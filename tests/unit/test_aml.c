/* AML emitter: encodings checked byte by byte (ACPI 6.4 §20.2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "platform/acpi/aml.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define BYTES(...) ((const uint8_t[]){ __VA_ARGS__ }), sizeof((const uint8_t[]){ __VA_ARGS__ })

static void expect_bytes(const struct aml *a, const uint8_t *want, size_t n)
{
	assert_false(a->oom);
	assert_int_equal(a->len, n);
	assert_memory_equal(a->buf, want, n);
}

/* Decode a PkgLength at p: returns its value, *n = bytes it takes. */
static size_t pkglen_decode(const uint8_t *p, int *n)
{
	int follow = p[0] >> 6;
	size_t v;

	*n = follow + 1;
	if (!follow)
		return p[0] & 0x3f;
	v = p[0] & 0x0f;
	for (int i = 1; i <= follow; i++)
		v |= (size_t)p[i] << (4 + 8 * (i - 1));
	return v;
}

static void test_pkglen_forms(void **state)
{
	uint8_t enc[4];
	int n;

	/* One byte: the length (including itself) in bits 0-5, up to 63. */
	assert_int_equal(aml_pkglen_encode(0, enc), 1);
	assert_int_equal(enc[0], 0x01);
	assert_int_equal(aml_pkglen_encode(62, enc), 1);
	assert_int_equal(enc[0], 0x3f);
	/* 63 bytes of body + 2 = 65 = 0x041: lead 0x40 | 0x1, then 0x04. */
	assert_int_equal(aml_pkglen_encode(63, enc), 2);
	assert_int_equal(enc[0], 0x41);
	assert_int_equal(enc[1], 0x04);
	/* Largest two-byte form: 0xfff. */
	assert_int_equal(aml_pkglen_encode(0xffd, enc), 2);
	assert_int_equal(enc[0], 0x4f);
	assert_int_equal(enc[1], 0xff);
	assert_int_equal(aml_pkglen_encode(0xffe, enc), 3);
	assert_int_equal(enc[0], 0x81); /* 0x1001 */
	assert_int_equal(enc[1], 0x00);
	assert_int_equal(enc[2], 0x01);
	assert_int_equal(aml_pkglen_encode(0xffffc, enc), 3);
	assert_int_equal(aml_pkglen_encode(0xffffd, enc), 4);
	assert_int_equal(enc[0] >> 6, 3);
	assert_int_equal(aml_pkglen_encode(AML_PKGLEN_MAX, enc), 4);
	assert_int_equal(pkglen_decode(enc, &n), 0x0fffffff);
	assert_int_equal(n, 4);
	assert_int_equal(aml_pkglen_encode(AML_PKGLEN_MAX + 1, enc), -E2BIG);
	/* Round trip over every boundary region. */
	for (size_t body = 0; body < 0x3000; body++) {
		int len = aml_pkglen_encode(body, enc);

		assert_true(len >= 1 && len <= 3);
		assert_int_equal(pkglen_decode(enc, &n), body + (size_t)len);
		assert_int_equal(n, len);
	}
}

static void test_integers(void **state)
{
	struct aml a;

	aml_init(&a);
	assert_int_equal(aml_integer(&a, 0), 0);
	assert_int_equal(aml_integer(&a, 1), 0);
	assert_int_equal(aml_integer(&a, 2), 0);
	assert_int_equal(aml_integer(&a, 0x1234), 0);
	assert_int_equal(aml_integer(&a, 0xc0000000), 0);
	assert_int_equal(aml_integer(&a, 0x100000000ull), 0);
	expect_bytes(&a, BYTES(0x00, 0x01, 0x0a, 0x02, 0x0b, 0x34, 0x12, 0x0c, 0x00, 0x00, 0x00,
			       0xc0, 0x0e, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00));
	aml_free(&a);
}

static void test_strings_and_names(void **state)
{
	struct aml a;

	aml_init(&a);
	assert_int_equal(aml_name_string(&a, "_HID", "LNRO0005"), 0);
	expect_bytes(&a, BYTES(0x08, '_', 'H', 'I', 'D', 0x0d, 'L', 'N', 'R', 'O', '0', '0', '0',
			       '5', 0x00));
	aml_free(&a);

	aml_init(&a);
	assert_int_equal(aml_string(&a, "caf\xc3\xa9"), -EINVAL);
	assert_int_equal(aml_name_integer(&a, "1ABC", 0), -EINVAL);
	assert_int_equal(aml_name_integer(&a, "ABCDE", 0), -EINVAL);
	assert_int_equal(aml_name_integer(&a, "abc", 0), -EINVAL);
	assert_int_equal(aml_name_integer(&a, "", 0), -EINVAL);
	assert_int_equal(aml_name_integer(&a, "_SB.FOO", 0), -EINVAL);
	aml_free(&a);
}

static void test_namestrings(void **state)
{
	struct aml a;

	aml_init(&a);
	assert_int_equal(aml_namestring(&a, "\\_SB"), 0);
	expect_bytes(&a, BYTES('\\', '_', 'S', 'B', '_'));
	aml_free(&a);

	aml_init(&a);
	assert_int_equal(aml_namestring(&a, "_SB.PCI0"), 0);
	expect_bytes(&a, BYTES(0x2e, '_', 'S', 'B', '_', 'P', 'C', 'I', '0'));
	aml_free(&a);

	aml_init(&a);
	assert_int_equal(aml_namestring(&a, "\\A.B.C"), 0);
	expect_bytes(&a, BYTES('\\', 0x2f, 3, 'A', '_', '_', '_', 'B', '_', '_', '_', 'C', '_', '_',
			       '_'));
	aml_free(&a);

	aml_init(&a);
	assert_int_equal(aml_namestring(&a, "^^FOO"), 0);
	assert_int_equal(aml_namestring(&a, "\\"), 0);
	expect_bytes(&a, BYTES('^', '^', 'F', 'O', 'O', '_', '\\', 0x00));
	aml_free(&a);

	aml_init(&a);
	assert_int_equal(aml_namestring(&a, "A..B"), -EINVAL);
	assert_int_equal(aml_namestring(&a, "A."), -EINVAL);
	assert_int_equal(aml_namestring(&a, "\\^A"), -EINVAL);
	assert_int_equal(aml_namestring(&a, "A-B"), -EINVAL);
	assert_int_equal(a.len, 0);
	aml_free(&a);
}

static void test_eisaid(void **state)
{
	struct aml a;

	aml_init(&a);
	/* EisaId("PNP0501") = 0x0105D041 (ACPI 6.4 §19.6.43). */
	assert_int_equal(aml_name_id(&a, "_HID", "PNP0501"), 0);
	expect_bytes(&a, BYTES(0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x05, 0x01));
	aml_free(&a);

	/* An 8-character ACPI id stays a string; lower-case hex is not a PNP id. */
	aml_init(&a);
	assert_int_equal(aml_name_id(&a, "_CID", "PNP0a03"), 0);
	assert_int_equal(a.buf[5], 0x0d);
	assert_int_equal(aml_name_id(&a, "_HID", ""), -EINVAL);
	aml_free(&a);
}

static void test_package(void **state)
{
	const uint64_t s5[4] = { 5, 0, 0, 0 };
	struct aml a;

	aml_init(&a);
	assert_int_equal(aml_name_int_package(&a, "_S5", s5, 4), 0);
	expect_bytes(&a, BYTES(0x08, '_', 'S', '5', '_', 0x12, 0x07, 0x04, 0x0a, 0x05, 0x00, 0x00,
			       0x00));
	aml_free(&a);
}

/* The whole node, assembled by hand from ACPI 6.4 §20.2.5.2 and §6.4. */
static void test_mmio_device_bytes(void **state)
{
	struct aml a;

	aml_init(&a);
	assert_int_equal(aml_mmio_device(&a, "V000", "LNRO0005", 0, 0xc0001000, 0x1000, 5, true),
			 0);
	expect_bytes(&a,
		     BYTES(0x5b, 0x82, 0x3a, 'V', '0', '0', '0',
			   /* Name(_HID, "LNRO0005") */
			   0x08, '_', 'H', 'I', 'D', 0x0d, 'L', 'N', 'R', 'O', '0', '0', '0', '5',
			   0x00,
			   /* Name(_UID, Zero) */
			   0x08, '_', 'U', 'I', 'D', 0x00,
			   /* Name(_CRS, Buffer(0x17) { ... }) */
			   0x08, '_', 'C', 'R', 'S', 0x11, 0x1a, 0x0a, 0x17,
			   /* Memory32Fixed(ReadWrite, 0xC0001000, 0x1000) */
			   0x86, 0x09, 0x00, 0x01, 0x00, 0x10, 0x00, 0xc0, 0x00, 0x10, 0x00, 0x00,
			   /* Interrupt(ResourceConsumer, Level, ActiveHigh, Exclusive) {5}:
			    * flags 0x01 = consumer, bit 1 (edge) clear, bit 2 (active-low) clear */
			   0x89, 0x06, 0x00, 0x01, 0x01, 0x05, 0x00, 0x00, 0x00,
			   /* End tag */
			   0x79, 0x00));
	aml_free(&a);
}

/* Extended Interrupt Descriptor flags (ACPI 6.4 §6.4.3.6): consumer, level or edge, high. */
static void test_interrupt_descriptor_modes(void **state)
{
	struct aml a;

	aml_init(&a);
	assert_int_equal(aml_res_interrupt(&a, 17, true), 0);
	assert_int_equal(aml_res_interrupt(&a, 17, false), 0);
	expect_bytes(&a, BYTES(0x89, 0x06, 0x00, 0x01, 0x01, 0x11, 0x00, 0x00, 0x00,   /* level */
			       0x89, 0x06, 0x00, 0x03, 0x01, 0x11, 0x00, 0x00, 0x00)); /* edge */
	aml_free(&a);
	/* An edge-triggered MMIO device says Edge. */
	aml_init(&a);
	assert_int_equal(aml_mmio_device(&a, "V000", "LNRO0005", 0, 0xc0001000, 0x1000, 5, false),
			 0);
	assert_non_null(memmem(a.buf, a.len, "\x89\x06\x00\x03\x01\x05", 6));
	aml_free(&a);
	/* A legacy port device above IRQ 15 gets an edge Interrupt(). */
	aml_init(&a);
	assert_int_equal(aml_pio_device(&a, "COM1", "PNP0501", 0, 0x3f8, 8, 17), 0);
	assert_non_null(memmem(a.buf, a.len, "\x89\x06\x00\x03\x01\x11", 6));
	aml_free(&a);
}

static void test_pio_device_bytes(void **state)
{
	struct aml a;

	aml_init(&a);
	assert_int_equal(aml_pio_device(&a, "COM1", "PNP0501", 0, 0x3f8, 8, 4), 0);
	expect_bytes(&a, BYTES(0x5b, 0x82, 0x2b, 'C', 'O', 'M', '1',
			       /* Name(_HID, EisaId("PNP0501")) */
			       0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x05, 0x01,
			       /* Name(_UID, Zero) */
			       0x08, '_', 'U', 'I', 'D', 0x00,
			       /* Name(_CRS, Buffer(0x0d) { ... }) */
			       0x08, '_', 'C', 'R', 'S', 0x11, 0x10, 0x0a, 0x0d,
			       /* IO(Decode16, 0x3F8, 0x3F8, 1, 8) */
			       0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08,
			       /* IRQNoFlags() {4} */
			       0x22, 0x10, 0x00,
			       /* End tag */
			       0x79, 0x00));
	aml_free(&a);

	aml_init(&a);
	assert_int_equal(aml_pio_device(&a, "COM1", "PNP0501", 0, 0x3f8, 0, 4), -EINVAL);
	assert_int_equal(aml_pio_device(&a, "COM1", "PNP0501", 0, 0xfffc, 8, 4), -EINVAL);
	aml_free(&a);
}

/* A device node spans exactly [0, a->len): its PkgLength (after the 2-byte opcode) must say so,
 * in the form the size calls for. */
static void check_device_span(const struct aml *a, int want_pkglen_bytes)
{
	int n;
	size_t v;

	assert_false(a->oom);
	assert_int_equal(a->buf[0], 0x5b);
	assert_int_equal(a->buf[1], 0x82);
	v = pkglen_decode(a->buf + 2, &n);
	assert_int_equal(n, want_pkglen_bytes);
	assert_int_equal(v, a->len - 2);
}

static void test_mmio_device_pkglen_sizes(void **state)
{
	struct aml a;

	/* Small: no interrupt, _UID Zero. */
	aml_init(&a);
	assert_int_equal(aml_mmio_device(&a, "V001", "LNRO0005", 0, 0xc0000000, 0x200, -1, true),
			 0);
	check_device_span(&a, 1);
	assert_true(a.len - 2 <= 63);
	aml_free(&a);

	/* Largest one-byte form this helper makes: a DWord _UID and an interrupt. */
	aml_init(&a);
	assert_int_equal(
		aml_mmio_device(&a, "V002", "LNRO0005", 0xffffffffu, 0xc0000000, 0x200, 23, true),
		0);
	check_device_span(&a, 1);
	aml_free(&a);

	/* A window above 4 GiB needs a QWordMemory descriptor: > 63 bytes, two-byte form. */
	aml_init(&a);
	assert_int_equal(
		aml_mmio_device(&a, "V003", "LNRO0005", 7, 0x100000000ull, 0x1000, 6, true), 0);
	check_device_span(&a, 2);
	assert_true(a.len - 2 > 63);
	/* The _CRS Buffer inside it: 0x8A descriptor, length 43, min/max/len. */
	{
		const uint8_t *p = memchr(a.buf, 0x8a, a.len);

		assert_non_null(p);
		assert_int_equal(p[1], 43);
		assert_int_equal(p[2], 0);
		assert_int_equal(p[4], 0x0c);
		assert_int_equal(p[5], 0x01);
		assert_int_equal(p[14 + 4], 0x01); /* minimum 0x1_0000_0000 */
		assert_int_equal(p[22], 0xff);	   /* maximum 0x1_0000_0FFF */
		assert_int_equal(p[23], 0x0f);
		assert_int_equal(p[39], 0x10); /* length 0x1000 */
	}
	aml_free(&a);

	aml_init(&a);
	assert_int_equal(aml_mmio_device(&a, "V004", "LNRO0005", 0, 0xc0000000, 0, 5, true),
			 -EINVAL);
	assert_int_equal(aml_mmio_device(&a, "V0004", "LNRO0005", 0, 0xc0000000, 1, 5, true),
			 -EINVAL);
	aml_free(&a);
}

/* Scopes grow past every PkgLength form; nested closes stay consistent. */
static void test_scope_nesting_sizes(void **state)
{
	static const int counts[] = { 0, 1, 2, 60, 1200 };

	for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
		struct aml a;
		size_t mark, body;
		int n;

		aml_init(&a);
		assert_int_equal(aml_scope_begin(&a, "\\_SB", &mark), 0);
		assert_int_equal(mark, 1);
		for (int i = 0; i < counts[c]; i++) {
			char name[5];

			snprintf(name, sizeof(name), "V%03X", (unsigned)i & 0xfff);
			assert_int_equal(aml_mmio_device(&a, name, "LNRO0005", (uint32_t)i,
							 0xc0000000 + 0x1000ull * (unsigned)i,
							 0x1000, 5 + i % 19, true),
					 0);
		}
		body = a.len - 1;
		assert_int_equal(aml_end(&a, mark), 0);
		assert_int_equal(a.buf[0], 0x10);
		assert_int_equal(pkglen_decode(a.buf + 1, &n), a.len - 1);
		assert_int_equal(n, body + 1 <= 63 ? 1 : body + 2 <= 0xfff ? 2 : 3);
		/* The name follows the PkgLength. */
		assert_memory_equal(a.buf + 1 + n, "\\_SB_", 5);
		if (counts[c] == 1200)
			assert_int_equal(n, 3);
		aml_free(&a);
	}
}

static void test_nested_devices(void **state)
{
	struct aml a;
	size_t outer, inner;
	int n1, n2;
	size_t v1, v2;

	aml_init(&a);
	assert_int_equal(aml_scope_begin(&a, "\\_SB", &outer), 0);
	assert_int_equal(aml_device_begin(&a, "PARN", &inner), 0);
	assert_int_equal(aml_name_integer(&a, "_UID", 3), 0);
	assert_int_equal(aml_end(&a, inner), 0);
	assert_int_equal(aml_end(&a, outer), 0);
	v1 = pkglen_decode(a.buf + 1, &n1);
	assert_int_equal(v1, a.len - 1);
	/* Scope: op, pkglen, "\_SB_" (5), then the device. */
	assert_int_equal(a.buf[1 + n1 + 5], 0x5b);
	v2 = pkglen_decode(a.buf + 1 + n1 + 5 + 2, &n2);
	assert_int_equal(v2, a.len - (1 + (size_t)n1 + 5 + 2));
	assert_int_equal(aml_end(&a, a.len + 1), -EINVAL);
	aml_free(&a);
}

/* Method(_EVT, 1, NotSerialized) { Notify(\_SB.VGEN, 0x80) }: the GED event handler the
 * VMGenID device uses, byte by byte (ACPI 6.4 §20.2.5.2 DefMethod, §20.2.5.3 DefNotify). */
static void test_method_notify_bytes(void **state)
{
	struct aml a;
	size_t mark;

	aml_init(&a);
	assert_int_equal(aml_method_begin(&a, "_EVT", 1, false, &mark), 0);
	assert_int_equal(mark, 1);
	assert_int_equal(aml_notify(&a, "\\_SB.VGEN", 0x80), 0);
	assert_int_equal(aml_end(&a, mark), 0);
	expect_bytes(&a, BYTES(0x14, 0x13,		 /* MethodOp, PkgLength 19 */
			       '_', 'E', 'V', 'T', 0x01, /* name, flags: 1 arg, NotSerialized */
			       0x86, '\\', 0x2e,	 /* NotifyOp, root, DualNamePrefix */
			       '_', 'S', 'B', '_', 'V', 'G', 'E', 'N', /* \_SB.VGEN */
			       0x0a, 0x80));			       /* BytePrefix 0x80 */
	aml_free(&a);

	/* Serialized, 7 args (the most ArgCount holds), a 2-char name padded, an empty body;
	 * a Notify value of 0 is ZeroOp and a relative one-seg path is just the NameSeg. */
	aml_init(&a);
	assert_int_equal(aml_method_begin(&a, "M0", 7, true, &mark), 0);
	assert_int_equal(aml_end(&a, mark), 0);
	assert_int_equal(aml_notify(&a, "DEV", 0), 0);
	expect_bytes(&a,
		     BYTES(0x14, 0x06, 'M', '0', '_', '_', 0x0f, 0x86, 'D', 'E', 'V', '_', 0x00));
	aml_free(&a);

	/* Refused: 8 args, bad names, a path that is not a NameString. */
	aml_init(&a);
	assert_int_equal(aml_method_begin(&a, "_EVT", 8, false, &mark), -EINVAL);
	assert_int_equal(aml_method_begin(&a, "_EVTX", 0, false, &mark), -EINVAL);
	assert_int_equal(aml_method_begin(&a, "\\_EV", 0, false, &mark), -EINVAL);
	assert_int_equal(aml_notify(&a, "\\_SB..VGEN", 0x80), -EINVAL);
	assert_int_equal(aml_notify(&a, "1BAD", 0x80), -EINVAL);
	aml_free(&a);
}

/* A Method inside a Device inside a Scope: every PkgLength counts its own object only. */
static void test_method_in_device(void **state)
{
	struct aml a;
	size_t scope, dev, meth, meth_at;
	int n;

	aml_init(&a);
	assert_int_equal(aml_scope_begin(&a, "_SB", &scope), 0);
	assert_int_equal(aml_device_begin(&a, "GED0", &dev), 0);
	assert_int_equal(aml_name_id(&a, "_HID", "ACPI0013"), 0);
	meth_at = a.len;
	assert_int_equal(aml_method_begin(&a, "_EVT", 1, false, &meth), 0);
	for (int i = 0; i < 10; i++) /* long enough for a two-byte PkgLength */
		assert_int_equal(aml_notify(&a, "\\_SB.VGEN", 0x80), 0);
	assert_int_equal(aml_end(&a, meth), 0);
	assert_int_equal(aml_end(&a, dev), 0);
	assert_int_equal(aml_end(&a, scope), 0);
	/* The method is the device's last object: its PkgLength reaches the end. */
	/* Closing the device and the scope inserted their (two-byte) PkgLengths before it. */
	meth_at += 2 + 2;
	assert_int_equal(a.buf[meth_at], 0x14);
	assert_int_equal(pkglen_decode(a.buf + meth_at + 1, &n), a.len - meth_at - 1);
	assert_int_equal(n, 2);
	assert_memory_equal(a.buf + meth_at + 1 + n, "_EVT\x01\x86", 6);
	aml_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pkglen_forms),
		cmocka_unit_test(test_integers),
		cmocka_unit_test(test_strings_and_names),
		cmocka_unit_test(test_namestrings),
		cmocka_unit_test(test_eisaid),
		cmocka_unit_test(test_package),
		cmocka_unit_test(test_mmio_device_bytes),
		cmocka_unit_test(test_interrupt_descriptor_modes),
		cmocka_unit_test(test_pio_device_bytes),
		cmocka_unit_test(test_mmio_device_pkglen_sizes),
		cmocka_unit_test(test_scope_nesting_sizes),
		cmocka_unit_test(test_nested_devices),
		cmocka_unit_test(test_method_notify_bytes),
		cmocka_unit_test(test_method_in_device),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
