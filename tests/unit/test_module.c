/* Modules (util/module.c): found beside the executable or in ../lib/ignition/ from it, refused
 * with one line when missing, not a shared object, or without the table's symbol.  The files
 * are made beside this test program (build/tests/) under names of their own and removed. */
#include "util/module.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static char dir[PATH_MAX]; /* this program's directory */
static char lib[PATH_MAX]; /* a real shared object: the cmocka library this program uses */
static char name[64];	   /* a module file name of this run */
static char path[PATH_MAX + 128];

static int setup(void **state)
{
	ssize_t n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
	Dl_info info;

	(void)state;
	if (n <= 0)
		return -1;
	dir[n] = '\0';
	*strrchr(dir, '/') = '\0';
	if (!dladdr((void *)_cmocka_run_group_tests, &info) || !info.dli_fname ||
	    info.dli_fname[0] != '/')
		return -1;
	snprintf(lib, sizeof(lib), "%s", info.dli_fname);
	snprintf(name, sizeof(name), "ign-test-module-%d.so", (int)getpid());
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return 0;
}

/* What module_load reads as the "table"'s interface number in the shared object used here. */
static uint32_t cmocka_word(void)
{
	uint32_t w;

	memcpy(&w, (const void *)_cmocka_run_group_tests, sizeof(w));
	return w;
}

static void test_missing(void **state)
{
	const void *t = (const void *)1;
	char err[512] = "";

	(void)state;
	assert_int_equal(module_load(name, "x", 1, &t, err, sizeof(err)), -ENOENT);
	assert_null(t);
	assert_non_null(strstr(err, name));
	assert_non_null(strstr(err, "not found"));
}

static void test_not_a_shared_object(void **state)
{
	const void *t = NULL;
	char err[512] = "";
	FILE *f = fopen(path, "w");

	(void)state;
	assert_non_null(f);
	fputs("not an ELF file\n", f);
	fclose(f);
	assert_int_equal(module_load(name, "x", 1, &t, err, sizeof(err)), -ELIBBAD);
	assert_null(t);
	assert_non_null(strstr(err, "cannot load"));
	assert_non_null(strstr(err, path));
	unlink(path);
}

static void test_symbol(void **state)
{
	const void *t = NULL;
	char err[512] = "";

	(void)state;
	assert_int_equal(symlink(lib, path), 0);
	/* A shared object without the table: not a module of this ignition. */
	assert_int_equal(module_load(name, "no_such_table_here", 1, &t, err, sizeof(err)),
			 -ELIBBAD);
	assert_null(t);
	assert_non_null(strstr(err, "has no no_such_table_here"));
	/* With it, but another interface number (a table's first four bytes; here the code's):
	 * a module of another build. */
	assert_int_equal(module_load(name, "_cmocka_run_group_tests", cmocka_word() + 1, &t, err,
				     sizeof(err)),
			 -ELIBBAD);
	assert_null(t);
	assert_non_null(strstr(err, "from another build"));
	/* With the right one: the table is the object's symbol (the object already loaded). */
	assert_int_equal(
		module_load(name, "_cmocka_run_group_tests", cmocka_word(), &t, err, sizeof(err)),
		0);
	assert_ptr_equal(t, (const void *)_cmocka_run_group_tests);
	unlink(path);
}

/* Where `make install` puts modules: PREFIX/lib/ignition beside PREFIX/bin. */
static void test_lib_dir(void **state)
{
	char libdir[PATH_MAX + 64], alt[PATH_MAX + 192];
	const void *t = NULL;
	char err[512] = "";

	(void)state;
	snprintf(libdir, sizeof(libdir), "%s/../lib", dir);
	mkdir(libdir, 0755); /* may exist */
	snprintf(libdir, sizeof(libdir), "%s/../lib/ignition", dir);
	mkdir(libdir, 0755);
	snprintf(alt, sizeof(alt), "%s/%s", libdir, name);
	assert_int_equal(symlink(lib, alt), 0);
	assert_int_equal(
		module_load(name, "_cmocka_run_group_tests", cmocka_word(), &t, err, sizeof(err)),
		0);
	assert_ptr_equal(t, (const void *)_cmocka_run_group_tests);
	unlink(alt);
	/* Left empty by this test only: others may use the directory. */
	(void)!rmdir(libdir);
	snprintf(libdir, sizeof(libdir), "%s/../lib", dir);
	(void)!rmdir(libdir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_missing),
		cmocka_unit_test(test_not_a_shared_object),
		cmocka_unit_test(test_symbol),
		cmocka_unit_test(test_lib_dir),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
