/* Placeholder until the metrics module lands: no metrics path can be opened. */
#include "core/metrics.h"

#include <errno.h>
#include <stdio.h>

int metrics_open(const char *path, char *err, size_t n)
{
	(void)path;
	snprintf(err, n, "metrics are not implemented yet");
	return -ENOSYS;
}

int metrics_flush(void)
{
	return -ENOENT;
}

void metrics_close(void)
{
}

void metrics_api_request(const char *method, const char *route, unsigned status)
{
	(void)method;
	(void)route;
	(void)status;
}

void metrics_snapshot_time(uint64_t create_us)
{
	(void)create_us;
}

void metrics_restore_time(uint64_t load_us)
{
	(void)load_us;
}
