/* `ignition browser` argument parsing: defaults, every option, and every kind of bad input. */
/* argv arrays of string literals, as a shell would pass them. */
#pragma GCC diagnostic ignored "-Wdiscarded-qualifiers"
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "browser/browser.h"

#include <errno.h>
#include <string.h>

#define ARGS(...)	   ((char *[]){ "browser", __VA_ARGS__, NULL })
#define NARGS(...)	   ((int)(sizeof((char *[]){ "browser", __VA_ARGS__ }) / sizeof(char *)))
#define PARSE(o, err, ...) browser_parse(NARGS(__VA_ARGS__), ARGS(__VA_ARGS__), o, err, sizeof(err))

static void test_defaults(void **state)
{
	struct browser_opts o;
	char err[256];
	char *argv[] = { "browser", NULL };

	(void)state;
	assert_int_equal(browser_parse(1, argv, &o, err, sizeof(err)), 0);
	assert_null(o.url);
	assert_null(o.base);
	assert_null(o.gui);
	assert_null(o.vnc);
	assert_null(o.control);
	assert_null(o.net);
	assert_false(o.make_base);
	assert_false(o.rebuild);
	assert_int_equal(o.base_timeout, 1800);
}

static void test_all_options(void **state)
{
	struct browser_opts o;
	char err[256];

	(void)state;
	assert_int_equal(PARSE(&o, err, "--gui=headless", "--vnc", "5901", "--control", "/c",
			       "--net", "user,host-loopback=on", "--base", "/b", "--rebuild",
			       "--base-timeout", "600", "https://example.org/a?b=c&d=%20"),
			 0);
	assert_string_equal(o.gui, "headless");
	assert_string_equal(o.vnc, "5901");
	assert_string_equal(o.control, "/c");
	assert_string_equal(o.net, "user,host-loopback=on");
	assert_string_equal(o.base, "/b");
	assert_true(o.rebuild);
	assert_int_equal(o.base_timeout, 600);
	assert_string_equal(o.url, "https://example.org/a?b=c&d=%20");
	/* A scheme in any case comes out in lower case; none gets http://. */
	assert_int_equal(PARSE(&o, err, "HTTPS://Example.org/A"), 0);
	assert_string_equal(o.url, "https://Example.org/A");
	assert_int_equal(PARSE(&o, err, "Http://a/"), 0);
	assert_string_equal(o.url, "http://a/");
	assert_int_equal(PARSE(&o, err, "example.org:8080/x"), 0);
	assert_string_equal(o.url, "http://example.org:8080/x");
	assert_int_equal(PARSE(&o, err, "10.0.2.2/a://b"), 0);
	assert_string_equal(o.url, "http://10.0.2.2/a://b");
	/* --gui alone is the window. */
	assert_int_equal(PARSE(&o, err, "--gui"), 0);
	assert_string_equal(o.gui, "sdl");
	assert_int_equal(PARSE(&o, err, "--make-base", "--base", "/b"), 0);
	assert_true(o.make_base);
}

static void test_bad_input(void **state)
{
	struct browser_opts o;
	char err[256], long_url[2100];

	(void)state;
	assert_int_equal(PARSE(&o, err, "--gui=x11"), -EINVAL);
	assert_non_null(strstr(err, "x11"));
	assert_int_equal(PARSE(&o, err, "--base-timeout", "5"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--base-timeout", "10x"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--base-timeout", "99999999999999999999"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--base"), -EINVAL);
	assert_non_null(strstr(err, "needs a value"));
	assert_int_equal(PARSE(&o, err, "--frobnicate"), -EINVAL);
	assert_non_null(strstr(err, "--frobnicate"));
	/* Not one printable ASCII line: spaces, control characters, bytes above ASCII. */
	assert_int_equal(PARSE(&o, err, "http://a b/"), -EINVAL);
	assert_non_null(strstr(err, "percent-encode"));
	assert_int_equal(PARSE(&o, err, "http://a/\n"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "http://caf\xc3\xa9/"), -EINVAL);
	assert_int_equal(PARSE(&o, err, ""), -EINVAL);
	memset(long_url, 'a', sizeof(long_url) - 1);
	long_url[sizeof(long_url) - 1] = '\0';
	assert_int_equal(PARSE(&o, err, long_url), -EINVAL);
	long_url[2000] = '\0';
	assert_int_equal(PARSE(&o, err, long_url), 0);
	/* Without a scheme: http:// in front, past the 2000 bytes given. */
	assert_int_equal(strlen(o.url), 2007);
	assert_memory_equal(o.url, "http://aaa", 10);
	/* Schemes: http and https only. */
	assert_int_equal(PARSE(&o, err, "ftp://a/"), -EINVAL);
	assert_non_null(strstr(err, "ftp://"));
	assert_int_equal(PARSE(&o, err, "file:///etc/passwd"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "https://"), -EINVAL);
	assert_non_null(strstr(err, "nothing after"));
	/* One URL. */
	assert_int_equal(PARSE(&o, err, "http://a/", "http://b/"), -EINVAL);
	assert_non_null(strstr(err, "http://b/"));
	/* --make-base starts no session. */
	assert_int_equal(PARSE(&o, err, "--make-base", "http://a/"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--make-base", "--gui"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--make-base", "--net", "user"), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_all_options),
		cmocka_unit_test(test_bad_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
