#include "core/kvm_stats.h"

#include <errno.h>
#include <limits.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* A sanity bound on what we read: KVM 6.x has about 60 vCPU and 30 VM statistics, named in
 * fewer than 64 bytes. */
#define STATS_MAX_DESC 1024
#define STATS_MAX_NAME 256
#define STATS_MAX_SIZE 4096 /* u64 values of one statistic (a histogram's buckets) */

int kvm_stats_open(int kvm_obj_fd)
{
	int fd = ioctl(kvm_obj_fd, KVM_GET_STATS_FD, 0);

	return fd < 0 ? -errno : fd;
}

static int pread_all(int fd, void *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = pread(fd, (char *)buf + done, len - done, off + (off_t)done);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EINVAL; /* shorter than its header says */
		done += (size_t)r;
	}
	return 0;
}

int kvm_stats_read(int stats_fd, json_t *obj)
{
	struct kvm_stats_header h;
	size_t desc_size;
	uint8_t *descs;
	int ret;

	ret = pread_all(stats_fd, &h, sizeof(h), 0);
	if (ret)
		return ret;
	if (h.num_desc > STATS_MAX_DESC || h.name_size == 0 || h.name_size > STATS_MAX_NAME)
		return -EINVAL;
	/* Each descriptor is the fixed part followed by name_size bytes of name. */
	desc_size = sizeof(struct kvm_stats_desc) + h.name_size;
	descs = malloc(desc_size * h.num_desc + 1);
	if (!descs)
		return -ENOMEM;
	ret = pread_all(stats_fd, descs, desc_size * h.num_desc, h.desc_offset);
	for (uint32_t i = 0; !ret && i < h.num_desc; i++) {
		const uint8_t *at = descs + i * desc_size;
		struct kvm_stats_desc d;
		uint32_t type;
		char name[STATS_MAX_NAME + 1];
		uint64_t v;

		memcpy(&d, at, sizeof(d)); /* descriptors need not be aligned */
		type = d.flags & KVM_STATS_TYPE_MASK;
		if (d.size == 0 || d.size > STATS_MAX_SIZE)
			ret = -EINVAL;
		else if (type == KVM_STATS_TYPE_CUMULATIVE || type == KVM_STATS_TYPE_INSTANT ||
			 type == KVM_STATS_TYPE_PEAK) {
			memcpy(name, at + sizeof(d), h.name_size);
			name[h.name_size] = '\0';
			ret = pread_all(stats_fd, &v, sizeof(v), (off_t)h.data_offset + d.offset);
			if (!ret && name[0])
				ret = json_object_set_new(obj, name,
							  json_integer(v > LLONG_MAX
									       ? LLONG_MAX
									       : (json_int_t)v))
					      ? -ENOMEM
					      : 0;
		}
	}
	free(descs);
	return ret;
}
