/* MMDS: the store (PUT replaces, PATCH merges per RFC 7396, size and depth caps, old data kept
 * on errors), the configuration checks, V2 session tokens against a fake clock, and the guest
 * request logic (JSON vs IMDS text, 401/404/405/501). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "api/mmds.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t fake_ns;

static int64_t fake_now(void)
{
	return fake_ns;
}

static struct mmds *new_store(const char *json)
{
	struct mmds *m;
	char err[256];

	assert_int_equal(mmds_create(&m), 0);
	if (json)
		assert_int_equal(mmds_put(m, json, strlen(json), err, sizeof(err)), 0);
	return m;
}

static void assert_store(struct mmds *m, const char *want)
{
	char *s = mmds_get(m);

	assert_non_null(s);
	assert_string_equal(s, want);
	free(s);
}

static void test_put_patch_get(void **state)
{
	struct mmds *m = new_store(NULL);
	char err[256];
	const char *p1 = "{\"a\":{\"b\":1,\"c\":\"x\"},\"d\":[1,2]}";
	const char *patch = "{\"a\":{\"b\":null,\"e\":{\"f\":true}},\"d\":\"s\",\"g\":null}";

	assert_store(m, "{}");
	assert_int_equal(mmds_put(m, p1, strlen(p1), err, sizeof(err)), 0);
	assert_store(m, p1);
	/* RFC 7396: null deletes, objects merge, other values replace. */
	assert_int_equal(mmds_patch(m, patch, strlen(patch), err, sizeof(err)), 0);
	assert_store(m, "{\"a\":{\"c\":\"x\",\"e\":{\"f\":true}},\"d\":\"s\"}");
	/* A patch object replaces a non-object member. */
	assert_int_equal(mmds_patch(m, "{\"d\":{\"x\":\"y\"}}", 15, err, sizeof(err)), 0);
	assert_store(m, "{\"a\":{\"c\":\"x\",\"e\":{\"f\":true}},\"d\":{\"x\":\"y\"}}");
	/* PUT replaces everything. */
	assert_int_equal(mmds_put(m, "{\"z\":0}", 7, err, sizeof(err)), 0);
	assert_store(m, "{\"z\":0}");
	/* Not an object, invalid JSON: refused, data unchanged. */
	assert_int_equal(mmds_put(m, "[1]", 3, err, sizeof(err)), -EINVAL);
	assert_int_equal(mmds_put(m, "{\"a\":", 5, err, sizeof(err)), -EINVAL);
	assert_int_equal(mmds_patch(m, "\"s\"", 3, err, sizeof(err)), -EINVAL);
	assert_store(m, "{\"z\":0}");
	mmds_destroy(m);
}

static void test_size_cap(void **state)
{
	struct mmds *m = new_store("{\"k\":1}");
	size_t n = MMDS_DATA_MAX + 64;
	char *big = malloc(n + 16), err[256];
	size_t fill;

	assert_non_null(big);
	/* {"v":"xxx..."} exactly MMDS_DATA_MAX bytes fits; one more byte does not. */
	fill = MMDS_DATA_MAX - 8;
	memcpy(big, "{\"v\":\"", 6);
	memset(big + 6, 'x', fill);
	memcpy(big + 6 + fill, "\"}", 3);
	assert_int_equal(mmds_put(m, big, strlen(big), err, sizeof(err)), 0);
	memcpy(big + 6 + fill, "x\"}", 4);
	assert_int_equal(mmds_put(m, big, strlen(big), err, sizeof(err)), -EFBIG);
	/* A patch that would grow the store past the cap is refused as a whole. */
	assert_int_equal(mmds_patch(m, "{\"w\":1}", 7, err, sizeof(err)), -EFBIG);
	{
		char *s = mmds_get(m);

		assert_int_equal(strlen(s), MMDS_DATA_MAX);
		free(s);
	}
	free(big);
	mmds_destroy(m);
}

static char *nested(unsigned depth)
{
	char *s = malloc(8 * depth + 8), *p = s;

	for (unsigned i = 0; i < depth; i++)
		p += sprintf(p, "{\"a\":");
	p += sprintf(p, "1");
	for (unsigned i = 0; i < depth; i++)
		*p++ = '}';
	*p = '\0';
	return s;
}

static void test_depth(void **state)
{
	struct mmds *m = new_store(NULL);
	char err[256], *ok = nested(MMDS_DEPTH_MAX), *deep = nested(MMDS_DEPTH_MAX + 1);
	char *very = nested(5000);

	assert_int_equal(mmds_put(m, ok, strlen(ok), err, sizeof(err)), 0);
	assert_int_equal(mmds_put(m, deep, strlen(deep), err, sizeof(err)), -EINVAL);
	assert_int_equal(mmds_patch(m, very, strlen(very), err, sizeof(err)), -EINVAL);
	/* A patch of allowed depth whose result would be deeper: refused. */
	assert_int_equal(mmds_put(m, "{\"b\":{}}", 8, err, sizeof(err)), 0);
	free(deep);
	deep = nested(MMDS_DEPTH_MAX - 1);
	{
		size_t l = strlen(deep) + 16;
		char *p = malloc(l);

		snprintf(p, l, "{\"b\":%s}", deep);
		assert_int_equal(mmds_patch(m, p, strlen(p), err, sizeof(err)), 0);
		free(deep);
		deep = nested(MMDS_DEPTH_MAX);
		l = strlen(deep) + 16;
		p = realloc(p, l);
		snprintf(p, l, "{\"b\":%s}", deep);
		assert_int_equal(mmds_patch(m, p, strlen(p), err, sizeof(err)), -EINVAL);
		free(p);
	}
	free(ok);
	free(deep);
	free(very);
	mmds_destroy(m);
}

static void test_config(void **state)
{
	struct mmds *m = new_store(NULL);
	struct mmds_config c;
	char err[256];

	mmds_get_config(m, &c);
	assert_int_equal(c.version, 1);
	assert_int_equal(c.ipv4, MMDS_DEFAULT_IPV4);
	c = (struct mmds_config){ .version = 3, .ipv4 = MMDS_DEFAULT_IPV4, .ifaces = 1 };
	assert_int_equal(mmds_set_config(m, &c, err, sizeof(err)), -EINVAL);
	c = (struct mmds_config){ .version = 2, .ipv4 = 0x0a000202u, .ifaces = 1 };
	assert_int_equal(mmds_set_config(m, &c, err, sizeof(err)), -EINVAL);
	c = (struct mmds_config){ .version = 2, .ipv4 = 0xa9fe0001u, .ifaces = 3 };
	assert_int_equal(mmds_set_config(m, &c, err, sizeof(err)), 0);
	memset(&c, 0, sizeof(c));
	mmds_get_config(m, &c);
	assert_int_equal(c.version, 2);
	assert_int_equal(c.ipv4, 0xa9fe0001u);
	assert_int_equal(c.ifaces, 3);
	mmds_destroy(m);
}

static unsigned get(struct mmds *m, const char *path, const char *accept, const char *token,
		    char *body, size_t n)
{
	struct mmds_request rq = {
		.method = "GET", .path = path, .accept = accept, .token = token
	};
	struct mmds_response rs;

	assert_int_equal(mmds_handle(m, &rq, &rs), 0);
	assert_non_null(rs.body);
	assert_int_equal(strlen(rs.body), rs.len);
	snprintf(body, n, "%s", rs.body);
	free(rs.body);
	return rs.status;
}

static unsigned token(struct mmds *m, const char *ttl, bool fwd, char *out)
{
	struct mmds_request rq = {
		.method = "PUT", .path = MMDS_TOKEN_PATH, .ttl = ttl, .forwarded = fwd
	};
	struct mmds_response rs;

	assert_int_equal(mmds_handle(m, &rq, &rs), 0);
	snprintf(out, MMDS_TOKEN_CHARS + 1, "%s", rs.body);
	free(rs.body);
	return rs.status;
}

static void set_version(struct mmds *m, unsigned v)
{
	struct mmds_config c = { .version = v, .ipv4 = MMDS_DEFAULT_IPV4, .ifaces = 1 };
	char err[128];

	assert_int_equal(mmds_set_config(m, &c, err, sizeof(err)), 0);
}

static void test_tokens(void **state)
{
	struct mmds *m = new_store("{\"k\":\"v\"}");
	char t1[MMDS_TOKEN_CHARS + 1], t2[MMDS_TOKEN_CHARS + 1], body[256], saved;

	mmds_set_clock(m, fake_now);
	fake_ns = 1000000000;
	set_version(m, 2);
	assert_int_equal(token(m, "10", false, t1), 200);
	assert_int_equal(strlen(t1), MMDS_TOKEN_CHARS);
	assert_int_equal(token(m, "21600", false, t2), 200);
	assert_string_not_equal(t1, t2);
	assert_int_equal(get(m, "/k", NULL, t1, body, sizeof(body)), 200);
	assert_string_equal(body, "v");
	/* No token, a wrong one, a truncated one: 401. */
	assert_int_equal(get(m, "/k", NULL, NULL, body, sizeof(body)), 401);
	saved = t1[0];
	t1[0] = saved == 'a' ? 'b' : 'a';
	assert_int_equal(get(m, "/k", NULL, t1, body, sizeof(body)), 401);
	t1[0] = saved;
	assert_int_equal(get(m, "/k", NULL, "", body, sizeof(body)), 401);
	/* Expiry: valid until 10 s have passed, not at 10 s. */
	fake_ns += 10000000000 - 1;
	assert_int_equal(get(m, "/k", NULL, t1, body, sizeof(body)), 200);
	fake_ns += 1;
	assert_int_equal(get(m, "/k", NULL, t1, body, sizeof(body)), 401);
	assert_int_equal(get(m, "/k", NULL, t2, body, sizeof(body)), 200);
	/* TTL bounds and form; X-Forwarded-For refused. */
	assert_int_equal(token(m, NULL, false, body), 400);
	assert_int_equal(token(m, "0", false, body), 400);
	assert_int_equal(token(m, "21601", false, body), 400);
	assert_int_equal(token(m, "-5", false, body), 400);
	assert_int_equal(token(m, "99999999999", false, body), 400);
	assert_int_equal(token(m, "1 ", false, body), 400);
	assert_int_equal(token(m, "1", true, body), 400);
	/* V1: no token needed, a token is accepted. */
	set_version(m, 1);
	assert_int_equal(get(m, "/k", NULL, NULL, body, sizeof(body)), 200);
	assert_int_equal(get(m, "/k", NULL, t2, body, sizeof(body)), 200);
	mmds_destroy(m);
}

static void test_token_table_full(void **state)
{
	struct mmds *m = new_store("{\"k\":\"v\"}");
	char first[MMDS_TOKEN_CHARS + 1], t[MMDS_TOKEN_CHARS + 1], body[128];

	mmds_set_clock(m, fake_now);
	fake_ns = 0;
	set_version(m, 2);
	assert_int_equal(token(m, "100", false, first), 200);
	for (int i = 0; i < MMDS_TOKENS_MAX - 1; i++)
		assert_int_equal(token(m, "200", false, t), 200);
	assert_int_equal(get(m, "/k", NULL, first, body, sizeof(body)), 200);
	/* One more: the token that expires first makes room. */
	assert_int_equal(token(m, "300", false, t), 200);
	assert_int_equal(get(m, "/k", NULL, first, body, sizeof(body)), 401);
	assert_int_equal(get(m, "/k", NULL, t, body, sizeof(body)), 200);
	mmds_destroy(m);
}

static void test_request_formats(void **state)
{
	struct mmds *m = new_store(
		"{\"latest\":{\"meta-data\":{\"ami-id\":\"ami-1\",\"z\":{},\"n\":5,\"arr\":[1]}},"
		"\"b\":true}");
	struct mmds_request rq = { .method = "POST", .path = "/" };
	struct mmds_response rs;
	char body[512];

	assert_int_equal(get(m, "/latest/meta-data/ami-id", NULL, NULL, body, sizeof(body)), 200);
	assert_string_equal(body, "ami-1");
	assert_int_equal(
		get(m, "/latest/meta-data/ami-id/", "text/plain", NULL, body, sizeof(body)), 200);
	assert_string_equal(body, "ami-1");
	/* An object: sorted keys, '/' after sub-objects. */
	assert_int_equal(get(m, "/latest/meta-data", NULL, NULL, body, sizeof(body)), 200);
	assert_string_equal(body, "ami-id\narr\nn\nz/");
	assert_int_equal(get(m, "/", NULL, NULL, body, sizeof(body)), 200);
	assert_string_equal(body, "b\nlatest/");
	/* JSON: the subtree as JSON. */
	assert_int_equal(
		get(m, "/latest/meta-data/ami-id", "application/json", NULL, body, sizeof(body)),
		200);
	assert_string_equal(body, "\"ami-1\"");
	assert_int_equal(
		get(m, "/latest/meta-data/arr", "application/json", NULL, body, sizeof(body)), 200);
	assert_string_equal(body, "[1]");
	/* No text form for numbers, booleans, arrays. */
	assert_int_equal(get(m, "/latest/meta-data/n", NULL, NULL, body, sizeof(body)), 501);
	assert_int_equal(get(m, "/latest/meta-data/arr", NULL, NULL, body, sizeof(body)), 501);
	assert_int_equal(get(m, "/b", NULL, NULL, body, sizeof(body)), 501);
	/* Missing paths, and paths through a leaf. */
	assert_int_equal(get(m, "/latest/nope", NULL, NULL, body, sizeof(body)), 404);
	assert_int_equal(get(m, "/latest/meta-data/ami-id/x", NULL, NULL, body, sizeof(body)), 404);
	/* Other methods: 405 with Allow; PUT elsewhere than the token path: 404. */
	assert_int_equal(mmds_handle(m, &rq, &rs), 0);
	assert_int_equal(rs.status, 405);
	assert_string_equal(rs.allow, "GET, PUT");
	free(rs.body);
	rq.method = "PUT";
	rq.path = "/latest";
	assert_int_equal(mmds_handle(m, &rq, &rs), 0);
	assert_int_equal(rs.status, 404);
	free(rs.body);
	/* imds_compat: IMDS text even when JSON is asked for; a value without a text form is
	 * then a 501 as for any text request. */
	{
		struct mmds_config c;
		char err[128];

		mmds_get_config(m, &c);
		c.imds_compat = true;
		assert_int_equal(mmds_set_config(m, &c, err, sizeof(err)), 0);
	}
	assert_int_equal(
		get(m, "/latest/meta-data/ami-id", "application/json", NULL, body, sizeof(body)),
		200);
	assert_string_equal(body, "ami-1");
	assert_int_equal(get(m, "/latest/meta-data", "application/json", NULL, body, sizeof(body)),
			 200);
	assert_string_equal(body, "ami-id\narr\nn\nz/");
	assert_int_equal(
		get(m, "/latest/meta-data/arr", "application/json", NULL, body, sizeof(body)), 501);
	mmds_destroy(m);
	/* An empty store: 404 for everything. */
	m = new_store(NULL);
	assert_int_equal(get(m, "/", NULL, NULL, body, sizeof(body)), 404);
	mmds_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_patch_get),	cmocka_unit_test(test_size_cap),
		cmocka_unit_test(test_depth),		cmocka_unit_test(test_config),
		cmocka_unit_test(test_tokens),		cmocka_unit_test(test_token_table_full),
		cmocka_unit_test(test_request_formats),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
