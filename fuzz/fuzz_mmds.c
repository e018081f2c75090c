/* MMDS as a hostile guest sees it: one HTTP request (method, path, Accept, token, TTL,
 * X-Forwarded-For, already split by the HTTP layer) against a store that a merge patch from the
 * input has changed, under V1 or V2, with a real token, a forged one or none; and the same
 * bytes as an Ethernet frame through the user-networking rewrite in both directions.
 *
 * Input: a flags byte, then NUL-separated fields: method, path, accept, token, ttl, patch. */
#include "api/mmds.h"
#include "harness.h"
#include "net/mmds_net.h"

#include <stdlib.h>
#include <string.h>

#define F_V2	    1u
#define F_JSON	    2u /* Accept: application/json (else the field's bytes) */
#define F_FORWARDED 4u
#define F_REAL_TOK  8u /* send a token the store issued (else the field's bytes) */
#define F_NO_ACCEPT 16u
#define F_NO_TTL    32u

static const char base[] = "{\"latest\":{\"meta-data\":{\"ami-id\":\"ami-1\",\"n\":5,"
			   "\"l\":[1,\"a\",{\"b\":null}],\"o\":{\"p\":\"q\"}}},\"s\":\"t\"}";

static int64_t clock_ns;

static int64_t fake_now(void)
{
	return clock_ns;
}

static void check_response(const struct mmds_response *rs)
{
	static const unsigned ok[] = { 200, 400, 401, 404, 405, 500, 501 };
	bool known = false;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		known |= rs->status == ok[i];
	FUZZ_CHECK(known);
	FUZZ_CHECK(rs->body && rs->content_type);
	FUZZ_CHECK(strlen(rs->body) <= rs->len); /* a string leaf may hold NUL (\u0000) */
	FUZZ_CHECK((rs->status == 405) == (rs->allow != NULL));
}

static void frames(const uint8_t *data, size_t size)
{
	uint8_t *f = malloc(size ? size : 1), out[MMDS_NET_ARP_LEN];
	static const uint8_t mac[6] = { 0x52, 0x55, 10, 0, 2, 2 };
	static uint32_t by_port[65536];
	uint32_t gip = 0;
	uint16_t port = 0;

	if (!f)
		return;
	memcpy(f, data, size);
	if (mmds_net_to_slirp(f, size, MMDS_DEFAULT_IPV4, 0x0a0002fdu) == MMDS_NET_ARP)
		FUZZ_CHECK(mmds_net_arp_reply(f, size, MMDS_DEFAULT_IPV4, mac, out) ==
			   MMDS_NET_ARP_LEN);
	else
		FUZZ_CHECK(mmds_net_arp_reply(f, size, MMDS_DEFAULT_IPV4, mac, out) == 0);
	memcpy(f, data, size);
	mmds_net_from_slirp(f, size, MMDS_DEFAULT_IPV4, 0x0a0002fdu);
	/* The TAP path: out, then (any frame as slirp's answer) in, with one port known. */
	memcpy(f, data, size);
	switch (mmds_net_tap_out(f, size, MMDS_DEFAULT_IPV4, 0x0a00020fu, &gip, &port)) {
	case MMDS_NET_TAP_ARP:
		FUZZ_CHECK(memcmp(f, data, size) == 0);
		break;
	case MMDS_NET_TAP_TCP:
		by_port[port] = gip ? gip : 1;
		break;
	case MMDS_NET_TAP_PASS:
		FUZZ_CHECK(memcmp(f, data, size) == 0);
		break;
	}
	memcpy(f, data, size);
	mmds_net_tap_in(f, size, MMDS_DEFAULT_IPV4, 0x0a00020fu, by_port);
	by_port[port] = 0;
	free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf, *field[6] = { 0 }, err[256], tok[MMDS_TOKEN_CHARS + 1] = "";
	struct mmds_config cfg = { .version = 1, .ipv4 = MMDS_DEFAULT_IPV4, .ifaces = 1 };
	struct mmds_request rq = { 0 };
	struct mmds_response rs;
	struct mmds *m;
	uint8_t flags;
	size_t nf = 0;

	frames(data, size);
	if (size < 1 || size > 65536)
		return 0;
	flags = data[0];
	buf = malloc(size);
	if (!buf)
		return 0;
	memcpy(buf, data + 1, size - 1);
	buf[size - 1] = '\0';
	for (char *p = buf; nf < 6 && p <= buf + size - 1; p += strlen(p) + 1)
		field[nf++] = p;
	if (mmds_create(&m)) {
		free(buf);
		return 0;
	}
	mmds_set_clock(m, fake_now);
	clock_ns = 1000;
	FUZZ_CHECK(mmds_put(m, base, strlen(base), err, sizeof(err)) == 0);
	if (nf == 6 && field[5][0])
		(void)!mmds_patch(m, field[5], strlen(field[5]), err, sizeof(err));
	if (flags & F_V2)
		cfg.version = 2;
	FUZZ_CHECK(mmds_set_config(m, &cfg, err, sizeof(err)) == 0);
	if (flags & F_REAL_TOK) {
		struct mmds_request t = { .method = "PUT", .path = MMDS_TOKEN_PATH, .ttl = "5" };

		FUZZ_CHECK(mmds_handle(m, &t, &rs) == 0 && rs.status == 200);
		memcpy(tok, rs.body, sizeof(tok) - 1);
		free(rs.body);
	}
	rq.method = nf > 0 ? field[0] : "GET";
	rq.path = nf > 1 ? field[1] : "/";
	rq.accept = (flags & F_NO_ACCEPT) ? NULL
		    : (flags & F_JSON)	  ? "application/json"
		    : nf > 2		  ? field[2]
					  : NULL;
	rq.token = (flags & F_REAL_TOK) ? tok : nf > 3 ? field[3] : NULL;
	rq.ttl = (flags & F_NO_TTL) ? NULL : nf > 4 ? field[4] : NULL;
	rq.forwarded = flags & F_FORWARDED;
	/* Twice: before the real token expires, and after. */
	for (int i = 0; i < 2; i++) {
		FUZZ_CHECK(mmds_handle(m, &rq, &rs) == 0);
		check_response(&rs);
		if (flags & F_REAL_TOK && !strcmp(rq.method, "GET"))
			FUZZ_CHECK(rs.status != 401 || i == 1);
		free(rs.body);
		clock_ns += 5000000000;
	}
	mmds_destroy(m);
	free(buf);
	return 0;
}

static void seed(struct fuzz_seed *s, const char *name, uint8_t flags, const char *const f[6])
{
	seed_u8(s, flags);
	for (int i = 0; i < 6; i++)
		seed_bytes(s, f[i], strlen(f[i]) + 1);
	fuzz_seed_save(s, name);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static struct fuzz_seed s;

	if (!fuzz_want_seeds())
		return 0;
	seed(&s, "get-text", 0,
	     (const char *const[6]){ "GET", "/latest/meta-data", "", "", "", "" });
	seed(&s, "get-json", F_JSON,
	     (const char *const[6]){ "GET", "/latest/meta-data/l", "", "", "", "" });
	seed(&s, "v2-token", F_V2 | F_REAL_TOK,
	     (const char *const[6]){ "GET", "/latest/meta-data/o/p", "", "", "", "" });
	seed(&s, "v2-forged", F_V2,
	     (const char *const[6]){ "GET", "/s", "text/plain", "00ff", "", "" });
	seed(&s, "token-put", F_V2,
	     (const char *const[6]){ "PUT", MMDS_TOKEN_PATH, "", "", "21600", "" });
	seed(&s, "token-fwd", F_V2 | F_FORWARDED,
	     (const char *const[6]){ "PUT", MMDS_TOKEN_PATH, "", "", "60", "" });
	seed(&s, "patched", 0,
	     (const char *const[6]){ "GET", "//latest//x/", "*/*", "", "",
				     "{\"latest\":{\"x\":{\"y\":\"z\"},\"meta-data\":null}}" });
	seed(&s, "delete", 0, (const char *const[6]){ "DELETE", "/", "", "", "", "" });
	return 0;
}
