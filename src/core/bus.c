#include "core/bus.h"

#include "util/log.h"

#include <errno.h>
#include <string.h>

void bus_init(struct bus *bus, const char *name)
{
	memset(bus, 0, sizeof(*bus));
	bus->name = name;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len, const struct dev_ops *ops, void *dev)
{
	int i;

	if (len == 0 || base + len < base)
		return -EINVAL;
	if (bus->nr >= BUS_MAX_RANGES)
		return -ENOSPC;
	for (i = 0; i < bus->nr; i++) {
		const struct bus_range *r = &bus->ranges[i];

		if (base < r->base + r->len && r->base < base + len)
			return -EEXIST;
		if (r->base > base)
			break;
	}
	memmove(&bus->ranges[i + 1], &bus->ranges[i],
		(size_t)(bus->nr - i) * sizeof(bus->ranges[0]));
	bus->ranges[i] = (struct bus_range){ .base = base, .len = len, .ops = ops, .dev = dev };
	bus->nr++;
	return 0;
}

void bus_unregister(struct bus *bus, uint64_t base)
{
	for (int i = 0; i < bus->nr; i++) {
		if (bus->ranges[i].base != base)
			continue;
		memmove(&bus->ranges[i], &bus->ranges[i + 1],
			(size_t)(bus->nr - i - 1) * sizeof(bus->ranges[0]));
		bus->nr--;
		return;
	}
}

const struct bus_range *bus_find(const struct bus *bus, uint64_t addr)
{
	int lo = 0, hi = bus->nr - 1;

	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;
		const struct bus_range *r = &bus->ranges[mid];

		if (addr < r->base)
			hi = mid - 1;
		else if (addr - r->base >= r->len)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

static bool size_ok(const struct bus_range *r, uint64_t addr, unsigned len)
{
	if (len != 1 && len != 2 && len != 4 && len != 8)
		return false;
	if (!(r->ops->sizes & len))
		return false;
	/* The access must not run past the end of the window. */
	return len <= r->len - (addr - r->base);
}

bool bus_read(struct bus *bus, uint64_t addr, void *data, unsigned len)
{
	const struct bus_range *r = bus_find(bus, addr);
	uint64_t v;

	if (len > 8)
		len = 8;
	memset(data, 0xff, len);
	if (!r) {
		__atomic_add_fetch(&bus->unhandled, 1, __ATOMIC_RELAXED);
		return false;
	}
	if (!r->ops->read || !size_ok(r, addr, len)) {
		log_guest("%s: %u-byte read at %#llx refused by %s", bus->name, len,
			  (unsigned long long)addr, r->ops->name);
		return true;
	}
	v = r->ops->read(r->dev, addr - r->base, len);
	memcpy(data, &v, len); /* x86 is little-endian, as are device registers */
	return true;
}

bool bus_write(struct bus *bus, uint64_t addr, const void *data, unsigned len)
{
	const struct bus_range *r = bus_find(bus, addr);
	uint64_t v = 0;

	if (!r) {
		__atomic_add_fetch(&bus->unhandled, 1, __ATOMIC_RELAXED);
		return false;
	}
	if (!r->ops->write || !size_ok(r, addr, len)) {
		log_guest("%s: %u-byte write at %#llx refused by %s", bus->name, len,
			  (unsigned long long)addr, r->ops->name);
		return true;
	}
	memcpy(&v, data, len);
	r->ops->write(r->dev, addr - r->base, len, v);
	return true;
}
