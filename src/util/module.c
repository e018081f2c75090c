/* Modules (module.h): dlopen() beside the executable.  Loaded with RTLD_NOW, so a module whose
 * symbols the executable or its libraries do not provide fails here, at start-up, with the
 * loader's own line, not later with a lazy-binding abort in the middle of a run.  The symbols a
 * module takes from the executable are the ones src/exports.list exports. */
#include "util/module.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The directory of the running executable (/proc/self/exe resolves the firecracker symlink). */
static int exe_dir(char *dir, size_t n)
{
	ssize_t len = readlink("/proc/self/exe", dir, n - 1);
	char *slash;

	if (len < 0)
		return -errno;
	if ((size_t)len >= n - 1)
		return -ENAMETOOLONG;
	dir[len] = '\0';
	slash = strrchr(dir, '/');
	if (!slash)
		return -ENOENT;
	*slash = '\0';
	return 0;
}

int module_load(const char *file, const char *symbol, uint32_t abi, const void **table, char *err,
		size_t n)
{
	static const char *const where[] = { "", "/../lib/ignition" };
	char dir[PATH_MAX], path[PATH_MAX + 64];
	void *h = NULL, *sym;
	int ret;

	*table = NULL;
	ret = exe_dir(dir, sizeof(dir));
	if (ret) {
		snprintf(err, n, "%s: cannot find the executable's directory: %s", file,
			 strerror(-ret));
		return ret;
	}
	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		snprintf(path, sizeof(path), "%s%s/%s", dir, where[i], file);
		if (access(path, F_OK) == 0)
			break;
		path[0] = '\0';
	}
	if (!path[0]) {
		snprintf(err, n, "module %s not found beside %s/ignition or in %s/../lib/ignition/",
			 file, dir, dir);
		return -ENOENT;
	}
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(err, n, "cannot load %s: %s", path, dlerror());
		return -ELIBBAD;
	}
	sym = dlsym(h, symbol);
	if (!sym) {
		snprintf(err, n, "%s has no %s: not a module of this ignition", path, symbol);
		dlclose(h);
		return -ELIBBAD;
	}
	if (*(const uint32_t *)sym != abi) {
		snprintf(err, n,
			 "%s is from another build of ignition (interface %u, this one needs "
			 "%u)",
			 path, *(const uint32_t *)sym, abi);
		dlclose(h);
		return -ELIBBAD;
	}
	*table = sym;
	return 0;
}
