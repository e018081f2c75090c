/* KVM's binary statistics reader (core/kvm_stats.c): a statistics file built here in a memfd
 * (the layout of Documentation/virt/kvm/api.rst, KVM_GET_STATS_FD) is read into JSON with the
 * single values in and the histograms out; files that lie about their sizes or offsets are
 * refused; and, where /dev/kvm is usable, a real VM's and vCPU's files read. */
#include "core/kvm_stats.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#define NAME_SIZE 48 /* KVM_STATS_NAME_SIZE */
#define DESC_SIZE (sizeof(struct kvm_stats_desc) + NAME_SIZE)

struct fake_stat {
	const char *name;
	uint32_t type;
	uint16_t size;
	uint64_t value;
};

/* A statistics file: header, id, descriptors, data (one u64 per item). */
static int make_file(const struct fake_stat *st, unsigned n, uint32_t name_size)
{
	int fd = memfd_create("kvm-stats", 0);
	struct kvm_stats_header h = { .name_size = name_size, .num_desc = n };
	uint32_t data_off = 0;
	uint8_t desc[256];

	assert_true(fd >= 0);
	h.id_offset = sizeof(h);
	h.desc_offset = h.id_offset + 64;
	h.data_offset = h.desc_offset + n * (uint32_t)(sizeof(struct kvm_stats_desc) + name_size);
	assert_int_equal(pwrite(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
	assert_int_equal(pwrite(fd, "kvm-1234", 9, h.id_offset), 9);
	for (unsigned i = 0; i < n; i++) {
		struct kvm_stats_desc d = { .flags = st[i].type,
					    .size = st[i].size,
					    .offset = data_off };
		size_t dsz = sizeof(d) + name_size;

		memset(desc, 0, sizeof(desc));
		memcpy(desc, &d, sizeof(d));
		strncpy((char *)desc + sizeof(d), st[i].name, name_size);
		assert_int_equal(pwrite(fd, desc, dsz, h.desc_offset + i * dsz), (ssize_t)dsz);
		for (unsigned k = 0; k < st[i].size; k++) {
			uint64_t v = st[i].value + k;

			assert_int_equal(pwrite(fd, &v, 8, h.data_offset + data_off + 8 * k), 8);
		}
		data_off += 8u * st[i].size;
	}
	return fd;
}

static void test_single_values_read(void **state)
{
	static const struct fake_stat st[] = {
		{ "exits", KVM_STATS_TYPE_CUMULATIVE, 1, 123456789 },
		{ "halt_poll_hist", KVM_STATS_TYPE_LOG_HIST, 32, 7 },
		{ "guest_mode", KVM_STATS_TYPE_INSTANT, 1, 1 },
		{ "halt_wait_hist", KVM_STATS_TYPE_LINEAR_HIST, 8, 9 },
		{ "max_mmu_rmap_size", KVM_STATS_TYPE_PEAK, 1, 42 },
	};
	int fd = make_file(st, 5, NAME_SIZE);
	json_t *o = json_object();

	(void)state;
	assert_int_equal(kvm_stats_read(fd, o), 0);
	assert_int_equal(json_object_size(o), 3);
	assert_int_equal(json_integer_value(json_object_get(o, "exits")), 123456789);
	assert_int_equal(json_integer_value(json_object_get(o, "guest_mode")), 1);
	assert_int_equal(json_integer_value(json_object_get(o, "max_mmu_rmap_size")), 42);
	assert_null(json_object_get(o, "halt_poll_hist"));
	json_decref(o);
	close(fd);
}

/* A name size that does not divide 4 leaves descriptors unaligned: still read (UBSan watches
 * the accesses in the sanitizer build). */
static void test_unaligned_descriptors(void **state)
{
	static const struct fake_stat st[] = {
		{ "a", KVM_STATS_TYPE_CUMULATIVE, 1, 5 },
		{ "b", KVM_STATS_TYPE_CUMULATIVE, 1, 6 },
	};
	int fd = make_file(st, 2, 13);
	json_t *o = json_object();

	(void)state;
	assert_int_equal(kvm_stats_read(fd, o), 0);
	assert_int_equal(json_integer_value(json_object_get(o, "b")), 6);
	json_decref(o);
	close(fd);
}

static void test_bad_files_refused(void **state)
{
	static const struct fake_stat st[] = { { "x", KVM_STATS_TYPE_CUMULATIVE, 1, 1 } };
	struct kvm_stats_header h;
	json_t *o = json_object();
	int fd;

	(void)state;
	/* Empty: no header. */
	fd = memfd_create("empty", 0);
	assert_int_equal(kvm_stats_read(fd, o), -EINVAL);
	close(fd);
	/* A count beyond any KVM's. */
	fd = make_file(st, 1, NAME_SIZE);
	assert_int_equal(pread(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
	h.num_desc = 1u << 30;
	assert_int_equal(pwrite(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
	assert_int_equal(kvm_stats_read(fd, o), -EINVAL);
	close(fd);
	/* Descriptors past the end of the file. */
	fd = make_file(st, 1, NAME_SIZE);
	h.num_desc = 1;
	h.desc_offset = 1u << 20;
	assert_int_equal(pwrite(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
	assert_int_equal(kvm_stats_read(fd, o), -EINVAL);
	close(fd);
	/* A zero-sized statistic. */
	static const struct fake_stat zero[] = { { "z", KVM_STATS_TYPE_CUMULATIVE, 0, 1 } };
	fd = make_file(zero, 1, NAME_SIZE);
	assert_int_equal(kvm_stats_read(fd, o), -EINVAL);
	close(fd);
	/* Not a statistics fd at all. */
	assert_int_equal(kvm_stats_read(-1, o), -EBADF);
	json_decref(o);
}

/* The real thing, where this host has KVM with binary statistics. */
static void test_real_kvm(void **state)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC), vm, vcpu, vs, cs;
	json_t *o;

	(void)state;
	if (kvm < 0) {
		skip(); /* no /dev/kvm on this host */
		return;
	}
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	assert_true(vm >= 0);
	vs = kvm_stats_open(vm);
	if (vs == -ENOTTY || vs == -EINVAL) {
		close(vm);
		close(kvm);
		skip(); /* this host's KVM predates binary statistics (Linux 5.14) */
		return;
	}
	assert_true(vs >= 0);
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	assert_true(vcpu >= 0);
	cs = kvm_stats_open(vcpu);
	assert_true(cs >= 0);
	o = json_object();
	assert_int_equal(kvm_stats_read(vs, o), 0);
	assert_non_null(json_object_get(o, "remote_tlb_flush"));
	json_object_clear(o);
	assert_int_equal(kvm_stats_read(cs, o), 0);
	assert_non_null(json_object_get(o, "exits"));
	assert_int_equal(json_integer_value(json_object_get(o, "exits")), 0); /* never ran */
	json_decref(o);
	close(cs);
	close(vcpu);
	close(vs);
	close(vm);
	close(kvm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_values_read),
		cmocka_unit_test(test_unaligned_descriptors),
		cmocka_unit_test(test_bad_files_refused),
		cmocka_unit_test(test_real_kvm),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
