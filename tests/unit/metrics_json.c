#include "metrics_json.h"

#include "core/metrics.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

json_t *metrics_json_take(void)
{
	char path[] = "/tmp/ignition-metrics-XXXXXX", err[256], line[65536];
	int fd = mkstemp(path);
	json_error_t je;
	json_t *root = NULL;
	FILE *f;

	if (fd < 0)
		return NULL;
	close(fd);
	if (metrics_open(path, err, sizeof(err)) == 0 && metrics_flush() == 0) {
		f = fopen(path, "r");
		if (f && fgets(line, sizeof(line), f))
			root = json_loads(line, 0, &je);
		if (f)
			fclose(f);
	}
	metrics_close();
	unlink(path);
	return root;
}

uint64_t metrics_json_get(json_t *root, const char *section, const char *key)
{
	json_t *s = json_object_get(root, section), *v = s ? json_object_get(s, key) : NULL;

	if (!json_is_integer(v))
		fail_msg("metrics: no integer %s.%s", section, key);
	return (uint64_t)json_integer_value(v);
}
