/* AML emitter (ACPI 6.4 §20.2, AML grammar).  Objects whose size precedes their contents
 * (Scope, Device, Buffer, Package) are written contents first; aml_end then inserts the
 * PkgLength at the remembered mark, so nothing needs to be measured twice. */
#include "platform/acpi/aml.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Opcodes and prefixes, ACPI 6.4 §20.2. */
#define AML_ZERO_OP	  0x00
#define AML_ONE_OP	  0x01
#define AML_NAME_OP	  0x08
#define AML_BYTE_PREFIX	  0x0a
#define AML_WORD_PREFIX	  0x0b
#define AML_DWORD_PREFIX  0x0c
#define AML_STRING_PREFIX 0x0d
#define AML_QWORD_PREFIX  0x0e
#define AML_SCOPE_OP	  0x10
#define AML_BUFFER_OP	  0x11
#define AML_PACKAGE_OP	  0x12
#define AML_METHOD_OP	  0x14
#define AML_DUAL_NAME	  0x2e
#define AML_MULTI_NAME	  0x2f
#define AML_EXT_OP	  0x5b
#define AML_DEVICE_OP	  0x82 /* after AML_EXT_OP */
#define AML_NOTIFY_OP	  0x86
#define AML_ROOT_CHAR	  '\\'
#define AML_PARENT_CHAR	  '^'

/* Resource descriptor tags, ACPI 6.4 §6.4.2 (small) and §6.4.3 (large). */
#define RES_IRQ_NOFLAGS 0x22 /* small item 0x04, length 2 */
#define RES_IO		0x47 /* small item 0x08, length 7 */
#define RES_END_TAG	0x79 /* small item 0x0f, length 1 */
#define RES_MEM32_FIXED 0x86
#define RES_EXT_IRQ	0x89
#define RES_QWORD_ADDR	0x8a

/* Extended Interrupt Descriptor flags, ACPI 6.4 §6.4.3.6 (bit 1 clear: level-triggered). */
#define EXT_IRQ_CONSUMER 0x01
#define EXT_IRQ_EDGE	 0x02

void aml_init(struct aml *a)
{
	memset(a, 0, sizeof(*a));
}

void aml_free(struct aml *a)
{
	free(a->buf);
	aml_init(a);
}

static int reserve(struct aml *a, size_t n)
{
	size_t cap;
	uint8_t *p;

	if (a->oom)
		return -ENOMEM;
	if (n <= a->cap - a->len)
		return 0;
	if (n > SIZE_MAX / 2 - a->len)
		goto oom;
	cap = a->cap ? a->cap : 256;
	while (cap - a->len < n)
		cap *= 2;
	p = realloc(a->buf, cap);
	if (!p)
		goto oom;
	a->buf = p;
	a->cap = cap;
	return 0;
oom:
	a->oom = true;
	return -ENOMEM;
}

int aml_append(struct aml *a, const void *p, size_t n)
{
	int ret = reserve(a, n);

	if (ret)
		return ret;
	if (n)
		memcpy(a->buf + a->len, p, n);
	a->len += n;
	return 0;
}

static int put8(struct aml *a, uint8_t v)
{
	return aml_append(a, &v, 1);
}

/* Little-endian integer of n bytes (AML and resource descriptors are little-endian). */
static int put_le(struct aml *a, uint64_t v, unsigned n)
{
	uint8_t b[8];

	for (unsigned i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	return aml_append(a, b, n);
}

/* ACPI 6.4 §20.2.4: PkgLength counts itself.  One byte holds up to 63 in bits 0-5; longer
 * forms put the count of following bytes in bits 6-7, the low nibble in bits 0-3 of the lead
 * byte, and the next 8 bits in each following byte. */
int aml_pkglen_encode(size_t body, uint8_t out[4])
{
	size_t total;
	int n;

	if (body + 1 <= 0x3f) {
		out[0] = (uint8_t)(body + 1);
		return 1;
	}
	if (body + 2 <= 0xfff)
		n = 2;
	else if (body + 3 <= 0xfffff)
		n = 3;
	else if (body <= AML_PKGLEN_MAX)
		n = 4;
	else
		return -E2BIG;
	total = body + (size_t)n;
	out[0] = (uint8_t)(((unsigned)(n - 1) << 6) | (total & 0x0f));
	for (int i = 1; i < n; i++)
		out[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	return n;
}

int aml_end(struct aml *a, size_t mark)
{
	uint8_t enc[4];
	int n, ret;

	if (a->oom)
		return -ENOMEM;
	if (mark > a->len)
		return -EINVAL;
	n = aml_pkglen_encode(a->len - mark, enc);
	if (n < 0)
		return n;
	ret = reserve(a, (size_t)n);
	if (ret)
		return ret;
	memmove(a->buf + mark + n, a->buf + mark, a->len - mark);
	memcpy(a->buf + mark, enc, (size_t)n);
	a->len += (size_t)n;
	return 0;
}

int aml_integer(struct aml *a, uint64_t v)
{
	/* ACPI 6.4 §20.2.3 ComputationalData: ZeroOp, OneOp, then the smallest const. */
	if (v == 0)
		return put8(a, AML_ZERO_OP);
	if (v == 1)
		return put8(a, AML_ONE_OP);
	if (v <= 0xff)
		return put8(a, AML_BYTE_PREFIX) ?: put_le(a, v, 1);
	if (v <= 0xffff)
		return put8(a, AML_WORD_PREFIX) ?: put_le(a, v, 2);
	if (v <= 0xffffffffu)
		return put8(a, AML_DWORD_PREFIX) ?: put_le(a, v, 4);
	return put8(a, AML_QWORD_PREFIX) ?: put_le(a, v, 8);
}

int aml_string(struct aml *a, const char *s)
{
	/* ACPI 6.4 §20.2.3: String := StringPrefix AsciiCharList NullChar, chars 0x01-0x7F. */
	for (const char *c = s; *c; c++)
		if ((unsigned char)*c > 0x7f)
			return -EINVAL;
	return put8(a, AML_STRING_PREFIX) ?: aml_append(a, s, strlen(s) + 1);
}

static bool lead_char(char c)
{
	return (c >= 'A' && c <= 'Z') || c == '_';
}

static bool name_char(char c)
{
	return lead_char(c) || (c >= '0' && c <= '9');
}

/* Parse one NameSeg of 1..4 characters from *p into seg[4] (padded with '_'), advancing *p to
 * the character after it. */
static int parse_seg(const char **p, uint8_t seg[4])
{
	const char *s = *p;
	int n = 0;

	if (!lead_char(s[0]))
		return -EINVAL;
	while (name_char(s[n])) {
		if (n == 4)
			return -EINVAL;
		seg[n] = (uint8_t)s[n];
		n++;
	}
	for (int i = n; i < 4; i++)
		seg[i] = '_';
	*p = s + n;
	return 0;
}

/* Emit a single NameSeg (Name(), Device() take a NameString, but ours are always one seg). */
static int nameseg(struct aml *a, const char *name)
{
	uint8_t seg[4];
	const char *p = name;

	if (parse_seg(&p, seg) || *p)
		return -EINVAL;
	return aml_append(a, seg, 4);
}

int aml_namestring(struct aml *a, const char *path)
{
	/* ACPI 6.4 §20.2.2: NameString := RootChar NamePath | PrefixPath NamePath;
	 * NamePath := NameSeg | DualNamePath | MultiNamePath | NullName. */
	uint8_t segs[255][4];
	const char *p = path;
	size_t prefix = 0;
	unsigned n = 0;
	int ret;

	if (*p == AML_ROOT_CHAR)
		p++;
	else
		while (*p == AML_PARENT_CHAR)
			p++;
	prefix = (size_t)(p - path);
	while (*p) {
		if (n == 255 || parse_seg(&p, segs[n]))
			return -EINVAL;
		n++;
		if (*p == '.' && p[1])
			p++;
		else if (*p)
			return -EINVAL;
	}
	ret = aml_append(a, path, prefix);
	if (ret)
		return ret;
	if (n == 0)
		return put8(a, 0x00); /* NullName */
	if (n == 2)
		ret = put8(a, AML_DUAL_NAME);
	else if (n > 2)
		ret = put8(a, AML_MULTI_NAME) ?: put8(a, (uint8_t)n);
	for (unsigned i = 0; i < n && !ret; i++)
		ret = aml_append(a, segs[i], 4);
	return ret;
}

int aml_scope_begin(struct aml *a, const char *path, size_t *mark)
{
	/* DefScope := ScopeOp PkgLength NameString TermList (ACPI 6.4 §20.2.5.1). */
	int ret = put8(a, AML_SCOPE_OP);

	*mark = a->len;
	return ret ?: aml_namestring(a, path);
}

int aml_device_begin(struct aml *a, const char *name, size_t *mark)
{
	/* DefDevice := DeviceOp PkgLength NameString TermList (ACPI 6.4 §20.2.5.2). */
	uint8_t op[2] = { AML_EXT_OP, AML_DEVICE_OP };
	int ret = aml_append(a, op, 2);

	*mark = a->len;
	return ret ?: nameseg(a, name);
}

int aml_method_begin(struct aml *a, const char *name, unsigned nargs, bool serialized, size_t *mark)
{
	/* DefMethod := MethodOp PkgLength NameString MethodFlags TermList (ACPI 6.4 §20.2.5.2);
	 * MethodFlags: bits 0-2 ArgCount, bit 3 SerializeFlag, bits 4-7 SyncLevel (0 here). */
	uint8_t flags = (uint8_t)(nargs | (serialized ? 0x08 : 0));
	int ret;

	if (nargs > 7)
		return -EINVAL;
	ret = put8(a, AML_METHOD_OP);
	*mark = a->len;
	return ret ?: nameseg(a, name) ?: put8(a, flags);
}

int aml_notify(struct aml *a, const char *path, uint64_t value)
{
	/* DefNotify := NotifyOp NotifyObject NotifyValue; NotifyObject := SuperName, here a
	 * NameString; NotifyValue := TermArg => Integer (ACPI 6.4 §20.2.5.3). */
	return put8(a, AML_NOTIFY_OP) ?: aml_namestring(a, path) ?: aml_integer(a, value);
}

static int name_begin(struct aml *a, const char *name)
{
	/* DefName := NameOp NameString DataRefObject (ACPI 6.4 §20.2.5.1). */
	return put8(a, AML_NAME_OP) ?: nameseg(a, name);
}

int aml_name_integer(struct aml *a, const char *name, uint64_t v)
{
	return name_begin(a, name) ?: aml_integer(a, v);
}

int aml_name_string(struct aml *a, const char *name, const char *s)
{
	return name_begin(a, name) ?: aml_string(a, s);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* "AAA####" (three upper-case letters, four upper-case hex digits)? */
static bool is_pnp_id(const char *id)
{
	if (strlen(id) != 7)
		return false;
	for (int i = 0; i < 3; i++)
		if (id[i] < 'A' || id[i] > 'Z')
			return false;
	for (int i = 3; i < 7; i++)
		if (hexval(id[i]) < 0)
			return false;
	return true;
}

int aml_name_id(struct aml *a, const char *name, const char *id)
{
	uint8_t b[4];
	uint32_t v;

	if (!is_pnp_id(id))
		return *id ? aml_name_string(a, name, id) : -EINVAL;
	/* EISA id compression (ACPI 6.4 §19.6.43 EISAID): three 5-bit letters ('A' = 1), then
	 * four hex digits, stored most significant byte first, read as a little-endian DWord. */
	b[0] = (uint8_t)(((id[0] - 0x40) << 2) | ((id[1] - 0x40) >> 3));
	b[1] = (uint8_t)((((id[1] - 0x40) & 7) << 5) | (id[2] - 0x40));
	b[2] = (uint8_t)((hexval(id[3]) << 4) | hexval(id[4]));
	b[3] = (uint8_t)((hexval(id[5]) << 4) | hexval(id[6]));
	v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
	/* Always the DWord form, as ASL's EisaId() does, whatever the value. */
	return name_begin(a, name) ?: put8(a, AML_DWORD_PREFIX) ?: put_le(a, v, 4);
}

int aml_name_int_package(struct aml *a, const char *name, const uint64_t *v, unsigned n)
{
	/* DefPackage := PackageOp PkgLength NumElements PackageElementList (§20.2.5.4). */
	size_t mark;
	int ret;

	if (n > 255)
		return -EINVAL;
	ret = name_begin(a, name) ?: put8(a, AML_PACKAGE_OP);
	mark = a->len;
	ret = ret ?: put8(a, (uint8_t)n);
	for (unsigned i = 0; i < n && !ret; i++)
		ret = aml_integer(a, v[i]);
	return ret ?: aml_end(a, mark);
}

int aml_res_mem32(struct aml *r, uint32_t base, uint32_t len, bool rw)
{
	/* 32-Bit Fixed Memory Range Descriptor, ACPI 6.4 §6.4.3.4: tag, length 9, info (bit 0:
	 * writeable), base, length. */
	if ((uint64_t)base + len > 0x100000000ull)
		return -EINVAL;
	return put8(r, RES_MEM32_FIXED) ?: put_le(r, 9, 2) ?: put8(r, rw ? 1 : 0) ?:
		put_le(r, base, 4) ?: put_le(r, len, 4);
}

int aml_res_mem64(struct aml *r, uint64_t base, uint64_t len, bool rw)
{
	/* QWord Address Space Descriptor, ACPI 6.4 §6.4.3.5.1: tag, length 43, resource type 0
	 * (memory), general flags (bit 3 _MAF, bit 2 _MIF fixed; bit 1 _DEC = 0 positive decode),
	 * type-specific flags (bit 0 _RW; bits 1-2 _MEM = 0 non-cacheable), then granularity,
	 * minimum, maximum, translation offset and length. */
	if (len == 0 || base + len - 1 < base)
		return -EINVAL;
	return put8(r, RES_QWORD_ADDR) ?: put_le(r, 43, 2) ?: put8(r, 0) ?: put8(r, 0x0c) ?:
		put8(r, rw ? 1 : 0) ?: put_le(r, 0, 8) ?: put_le(r, base, 8) ?:
		put_le(r, base + len - 1, 8) ?: put_le(r, 0, 8) ?: put_le(r, len, 8);
}

int aml_res_io(struct aml *r, uint16_t port, uint8_t len)
{
	/* I/O Port Descriptor, ACPI 6.4 §6.4.2.5: tag, info (bit 0: 16-bit decode), minimum and
	 * maximum base (equal: a fixed port), alignment, length. */
	if (len == 0 || (uint32_t)port + len > 0x10000)
		return -EINVAL;
	return put8(r, RES_IO) ?: put8(r, 1) ?: put_le(r, port, 2) ?: put_le(r, port, 2) ?:
		put8(r, 1) ?: put8(r, len);
}

int aml_res_irq(struct aml *r, unsigned irq)
{
	/* IRQ Descriptor without the flags byte, ACPI 6.4 §6.4.2.1: a 16-bit mask of ISA IRQs;
	 * the two-byte form means edge-triggered, active-high, exclusive. */
	if (irq > 15)
		return -EINVAL;
	return put8(r, RES_IRQ_NOFLAGS) ?: put_le(r, 1u << irq, 2);
}

int aml_res_interrupt(struct aml *r, uint32_t gsi, bool level)
{
	/* Extended Interrupt Descriptor, ACPI 6.4 §6.4.3.6: tag, length 6, flags (bit 0 = 1
	 * consumer; bit 1 mode: 1 edge, 0 level; bit 2 polarity: 0 active-high; bit 3 sharing:
	 * 0 exclusive), count 1, interrupt number. */
	uint8_t flags = EXT_IRQ_CONSUMER | (level ? 0 : EXT_IRQ_EDGE);

	return put8(r, RES_EXT_IRQ) ?: put_le(r, 6, 2) ?: put8(r, flags) ?: put8(r, 1) ?:
		put_le(r, gsi, 4);
}

int aml_name_resources(struct aml *a, const char *name, const struct aml *r)
{
	/* A ResourceTemplate is a Buffer (DefBuffer := BufferOp PkgLength BufferSize ByteList,
	 * §20.2.5.4) of descriptors closed by an End Tag whose checksum 0 means "treat as
	 * correct" (ACPI 6.4 §6.4.2.9). */
	uint8_t end[2] = { RES_END_TAG, 0 };
	size_t mark;
	int ret;

	if (r->oom)
		return -ENOMEM;
	ret = name_begin(a, name) ?: put8(a, AML_BUFFER_OP);
	mark = a->len;
	return ret ?: aml_integer(a, r->len + sizeof(end)) ?: aml_append(a, r->buf, r->len) ?:
		aml_append(a, end, sizeof(end)) ?: aml_end(a, mark);
}

/* Device(name) { _HID, _UID, _CRS(res) }. */
static int device_node(struct aml *a, const char *name, const char *hid, uint32_t uid,
		       const struct aml *res)
{
	size_t mark;

	return aml_device_begin(a, name, &mark) ?: aml_name_id(a, "_HID", hid) ?:
		aml_name_integer(a, "_UID", uid) ?: aml_name_resources(a, "_CRS", res) ?:
		aml_end(a, mark);
}

int aml_mmio_device(struct aml *a, const char *name, const char *hid, uint32_t uid, uint64_t base,
		    uint32_t len, int gsi, bool level)
{
	struct aml res;
	int ret;

	if (len == 0 || base + len < base)
		return -EINVAL;
	aml_init(&res);
	if (base + len <= 0x100000000ull)
		ret = aml_res_mem32(&res, (uint32_t)base, len, true);
	else
		ret = aml_res_mem64(&res, base, len, true);
	if (!ret && gsi >= 0)
		ret = aml_res_interrupt(&res, (uint32_t)gsi, level);
	ret = ret ?: device_node(a, name, hid, uid, &res);
	aml_free(&res);
	return ret;
}

int aml_pio_device(struct aml *a, const char *name, const char *hid, uint32_t uid, uint16_t port,
		   uint8_t len, int irq)
{
	struct aml res;
	int ret;

	aml_init(&res);
	ret = aml_res_io(&res, port, len);
	if (!ret && irq >= 0)
		ret = irq <= 15 ? aml_res_irq(&res, (unsigned)irq)
				: aml_res_interrupt(&res, (uint32_t)irq, false);
	ret = ret ?: device_node(a, name, hid, uid, &res);
	aml_free(&res);
	return ret;
}
